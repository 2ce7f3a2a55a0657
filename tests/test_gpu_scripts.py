"""scripts/gpu/train_many.sh and unpack.sh, run on the CPU with a tiny recipe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "model": {"features": 4, "hidden": 4, "train_steps": 2},
    "data": {"train": "train/tiny", "val_images": 2, "val_patches": 8, "patch_size": 16},
    "tasks": [{"name": "projection", "kinds": ["gaussian"], "ratio": [0.2, 0.4]}],
    "optim": {"iterations": 4, "batch_size": 4, "val_every": 2, "checkpoint_every": 2},
}


def _bash(workdir: Path, *args: str, out: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OUT": str(out),
        "DEVICE": "cpu",
        "PRECISION": "fp32",
        "PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        ["bash", *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("tar") is None, reason="no bash")
def test_train_many_brings_runs_back_in_two_files_each_and_unpack_resumes(image_folder, tmp_path):
    work = tmp_path / "work"
    (work / "gpu-data" / "train").mkdir(parents=True)
    shutil.copytree(image_folder, work / "gpu-data" / "train" / "tiny")
    for name in ("scripts", "src"):
        (work / name).symlink_to(ROOT / name)
    (work / "tiny-a.yaml").write_text(yaml.safe_dump(TINY))
    (work / "tiny-b.yaml").write_text(yaml.safe_dump({**TINY, "model": {"variant": "gdn"}}))

    many = ("scripts/gpu/train_many.sh", "120", "tiny-a.yaml", "tiny-b.yaml")
    run = _bash(work, *many, out=work / "o")
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(p.name for p in (work / "o").iterdir()) == [
        "tiny-a.last.optim.safetensors",
        "tiny-a.tar",
        "tiny-b.last.optim.safetensors",
        "tiny-b.tar",
    ]
    with tarfile.open(work / "o" / "tiny-a.tar") as tar:
        names = {Path(n).name for n in tar.getnames()}
    assert {"last.model.safetensors", "config.yaml", "log.csv", "console.txt"} <= names

    unpacked = _bash(work, "scripts/gpu/unpack.sh", "o", out=work / "unused")
    assert unpacked.returncode == 0, unpacked.stdout + unpacked.stderr
    joined = load_file(str(work / "runs" / "gpu-tiny-a" / "last.safetensors"))
    assert any(k.startswith("optim/exp_avg_sq/") for k in joined)
    resumed_config = work / "gpu-resume" / "tiny-a" / "config.yaml"
    longer = yaml.safe_load(resumed_config.read_text())
    longer["optim"]["iterations"] = 6  # a resumed run may only grow its iterations
    resumed_config.write_text(yaml.safe_dump(longer))
    again = _bash(work, "scripts/gpu/train_many.sh", "120", "tiny-a.yaml", out=work / "o2")
    assert again.returncode == 0, again.stdout + again.stderr
    with tarfile.open(work / "o2" / "tiny-a.tar") as tar:
        log = tar.extractfile("./log.csv").read().decode()
    assert [row.split(",")[0] for row in log.splitlines()[1:]] == ["1", "2", "3", "4", "5", "6"]


def test_train_many_refuses_more_configs_than_can_come_back(tmp_path):
    done = _bash(ROOT, "scripts/gpu/train_many.sh", "1", "a", "b", "c", "d", out=tmp_path)
    assert done.returncode == 2
    assert "1 to 3 configs" in done.stdout
