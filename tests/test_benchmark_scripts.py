"""The benchmark scripts end to end on a tiny generated image folder (no ../shared needed)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))
WITH_DATA = [s for s in SCRIPTS if s not in ("layout.py", "photon.py", "train_speed.py")]
"""The scripts built on ``_common.parser`` (``--data``, ``--model``, ``--output`` ...)."""
ABSENT = "absent=no-such-model"

# Runs a benchmark script as ``python SCRIPT ARGS`` does, its default models (those measured
# without --model) replaced by the JSON list in argv[2]: a default that cannot be loaded is
# what a missing row is made of, and no shipped model is missing.
WITH_DEFAULTS = """
import json, runpy, sys
script, defaults = sys.argv[1], json.loads(sys.argv[2])
sys.path.insert(0, script.rsplit("/", 1)[0])
import _common
make = _common.parser
_common.parser = lambda doc, **kw: make(doc, **{**kw, "models": defaults})
sys.argv = [script, *sys.argv[3:]]
runpy.run_path(script, run_name="__main__")
"""


def script_cmd(name: str, *args: str, defaults: tuple[str, ...] | None = None) -> list[str]:
    """The command that runs ``benchmarks/NAME`` with ``args`` (and these default models)."""
    if defaults is None:
        return [sys.executable, str(BENCH / name), *args]
    return [sys.executable, "-c", WITH_DEFAULTS, str(BENCH / name), json.dumps(defaults), *args]


def run_cmd(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )


def one_error(done: subprocess.CompletedProcess) -> str:
    """The one-line ``error: ...`` of a run that stopped on bad input (exit status 2), after
    nothing but notes of missing default models."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    *notes, last = done.stderr.strip().splitlines()
    assert last.startswith("error: ") and all(n.startswith("note: ") for n in notes), done.stderr
    return last


@pytest.fixture
def data(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "images"
    folder.mkdir(parents=True)
    ramp = np.linspace(0, 255, 40)[None, :, None] * np.ones((40, 1, 3))
    image = np.clip(ramp + rng.normal(0, 10, ramp.shape), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(folder / "a.png")
    return tmp_path / "data"


def run_script(
    name: str, data: Path, out: Path, *extra: str, defaults: tuple[str, ...] = (ABSENT,)
) -> str:
    """The section ``name`` writes to ``out`` (``defaults``: its default models; without
    ``--model`` in ``extra`` those are measured, a row marked missing for one not found)."""
    out.write_text("# Benchmarks\n")
    args = ["--data", str(data), "--set", "images", "--baselines", "tv", "--quiet"]
    args += ["--threads", "1", "--output", str(out), *extra]
    done = run_cmd(script_cmd(name, *args, defaults=defaults))
    assert done.returncode == 0, done.stderr
    return out.read_text()


def tiny_model(folder: Path) -> Path:
    """An untrained one-channel RIM (4 features, T = 2) saved as ``folder/rim.safetensors``."""
    import torch

    from rimkit.models import RIMConfig
    from rimkit.train.checkpoint import export_weights

    cfg = RIMConfig(features=4, hidden=4, train_steps=2)
    torch.manual_seed(0)
    model = folder / "rim.safetensors"
    export_weights(model, cfg.build(), {"config": {"model": cfg.to_dict()}})
    return model


def header(text: str) -> str:
    """The column header of the section's first table."""
    return next(line for line in text.splitlines() if line.startswith("| method"))


def test_denoise_gray_quantised_only_writes_only_quantised_columns(data, tmp_path):
    text = run_script(
        "denoise_gray.py", data, tmp_path / "B.md", "--quantised-only", "--sigmas", "25"
    )
    assert header(text) == "| method | qs=25 |"
    assert "| absent (ours) | missing |" in text
    tv_row = next(line for line in text.splitlines() if line.startswith("| tv (ours)"))
    assert float(tv_row.split("|")[2]) > 20


def test_denoise_gray_only_flags_exclude_each_other(data, tmp_path):
    out = tmp_path / "B.md"
    out.write_text("")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "denoise_gray.py"), "--plain-only"]
    cmd += ["--quantised-only", "--output", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "not allowed with argument" in done.stderr


def test_denoise_rgb_columns_choose_the_settings(data, tmp_path):
    text = run_script(
        "denoise_rgb.py", data, tmp_path / "B.md", "--columns", "s=25", "qs=25",
        "--section", "rgb-extra", "--title", "Colour, more",
    )  # fmt: skip
    assert "<!-- begin: rgb-extra -->\n## Colour, more" in text
    assert header(text) == "| method | s=25 | qs=25 |"
    assert text.count("| absent (ours) | missing | missing |") == 2  # PSNR and SSIM tables
    published = next(line for line in text.splitlines() if line.startswith("| RIM (published)"))
    assert [c.strip() for c in published.split("|")[2:4]] == ["", "30.84"]


def test_a_journal_resumes_a_stopped_benchmark_and_is_deleted_at_the_end(data, tmp_path):
    out, journal = tmp_path / "B.md", tmp_path / "run.jsonl"
    args = ["--quantised-only", "--sigmas", "25", "--journal", str(journal)]
    twice = "<!-- begin: denoise-gray -->\n<!-- end: denoise-gray -->\n"
    out.write_text(twice * 2)  # writing the section fails after the evaluation
    cmd = script_cmd(
        "denoise_gray.py", "--data", str(data), "--set", "images", "--baselines", "tv",
        "--quiet", "--output", str(out), *args, defaults=(ABSENT,),
    )  # fmt: skip
    done = run_cmd(cmd)
    error = one_error(done)
    assert "more than once" in error and f"the finished images stay in --journal {journal}" in error
    header_line, entry = journal.read_text().splitlines()
    row = json.loads(entry)["rows"][0]
    assert row["method"] == "tv" and row["psnr"] > 20
    row["psnr"] = 99.0  # the rerun must read this image from the journal, not recompute it
    journal.write_text(header_line + "\n" + json.dumps({**json.loads(entry), "rows": [row]}) + "\n")

    text = run_script("denoise_gray.py", data, out, *args)
    tv_row = next(line for line in text.splitlines() if line.startswith("| tv (ours)"))
    assert float(tv_row.split("|")[2]) == 99.0
    assert not journal.exists()

    journal.write_text(header_line + "\n")  # a journal of sigma 25, given to a run at 50
    cmd[cmd.index("--sigmas") + 1] = "50"
    done = run_cmd(cmd)
    assert one_error(done).startswith("error: journal") and "different evaluation" in done.stderr


def test_projections_curve_factor_sets_how_far_past_t_the_curves_go(data, tmp_path):
    model = tiny_model(tmp_path)
    common = ("--model", f"tiny={model}", "--patches", "1", "--ratios", "0.5", "--fractions", "0.5")
    more = ("--curve-factor", "4", "--section", "past-t", "--title", "Past T")
    text = run_script("projections.py", data, tmp_path / "B.md", *common, *more)
    assert "<!-- begin: past-t -->\n## Past T" in text
    assert "up to 4T" in text
    curve_header = next(line for line in text.splitlines() if line.startswith("| method | task"))
    assert curve_header == (
        "| method | task | t=1 | t=T/2 | t=T | t=1.5T | t=2T | t=3T | t=4T | T |"
    )
    rows = [line for line in text.splitlines() if line.startswith("| tiny | ")]
    assert rows and all(len(r.split("|")) == len(curve_header.split("|")) for r in rows)
    assert all(float(r.split("|")[9]) > 0 for r in rows)  # the t=4T column was measured
    plain = run_script("projections.py", data, tmp_path / "C.md", *common)
    assert "| t=2T | T |" in plain and "t=3T" not in plain


def test_projection_subspaces_scores_each_method_with_each_part_of_its_error_removed(
    data, tmp_path
):
    model = tiny_model(tmp_path)
    text = run_script(
        "projection_subspaces.py", data, tmp_path / "B.md", "--patches", "1",
        "--ratios", "0.3", "--sigmas", "0", "15", defaults=(f"tiny={model}", ABSENT),
    )  # fmt: skip
    parts = ["", "range exact", "null exact"]
    columns = [f"{m}, {p}".rstrip(", ") for m in ("tiny", "absent", "tv") for p in parts]
    assert header(text.replace("| setting", "| method")) == f"| method | {' | '.join(columns)} |"
    rows = [line.split("|")[2:-1] for line in text.splitlines() if "m/n=0.3" in line]
    settings = [line.split("|")[1].strip() for line in text.splitlines() if "m/n=0.3" in line]
    assert settings == [
        "gaussian,m/n=0.3", "bernoulli,m/n=0.3", "gaussian,m/n=0.3,sigma=15",
        "bernoulli,m/n=0.3,sigma=15",
    ]  # fmt: skip
    for cells in rows:
        tiny, absent, tv = (cells[i : i + 3] for i in (0, 3, 6))
        assert [c.strip() for c in absent] == ["missing"] * 3
        plain, *oracles = map(float, tiny)
        assert all(o > plain + 1 for o in oracles)  # an untrained RIM errs in both parts
        plain, *oracles = map(float, tv)  # TV's noiseless estimate is nearly consistent:
        assert all(o > plain - 0.05 for o in oracles)  # the 8-bit rounding may cost a little


def test_projection_subspaces_splits_the_error_by_a_projector_onto_the_row_space():
    done = subprocess.run(
        [sys.executable, "-m", "doctest", "-v", "projection_subspaces.py"],
        cwd=BENCH, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^[1-9]\d* passed and 0 failed", done.stdout, re.M), done.stdout


def test_a_curve_factor_below_one_is_refused_by_the_parser(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "lensing.py"), "--curve-factor", "0.5"]
    cmd += ["--output", str(tmp_path / "B.md")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--curve-factor: must be at least 1, got 0.5" in done.stderr
    assert not (tmp_path / "B.md").exists()


def test_lensing_writes_a_row_per_radius_and_a_curve_per_model(data, tmp_path):
    model = tiny_model(tmp_path)
    text = run_script(
        "lensing.py", data, tmp_path / "B.md", "--patches", "1",
        "--radii", "0.3", "0.5", "--psf", "1", "--sigma", "2", defaults=(ABSENT, f"tiny={model}"),
    )  # fmt: skip
    assert "<!-- begin: lensing -->" in text
    rows = [line for line in text.splitlines() if line.startswith("| einstein=")]
    assert [r.split("|")[1].strip() for r in rows] == [
        "einstein=0.3,psf=1,sigma=2",
        "einstein=0.5,psf=1,sigma=2",
    ]
    assert all(r.split("|")[2].strip() == "missing" for r in rows)  # the absent model
    assert all(float(r.split("|")[3]) > 0 and float(r.split("|")[4]) > 0 for r in rows)
    curve = [line for line in text.splitlines() if line.startswith("| tiny | lensing |")]
    assert len(curve) == 1 and curve[0].rstrip("| ").endswith("2")


def test_a_self_ensemble_row_beside_the_plain_model(data, tmp_path):
    text = run_script(
        "denoise_rgb.py", data, tmp_path / "B.md", "--columns", "s=25",
        "--model", "rgb=denoise-rgb", "--model", "rgb8=denoise-rgb", "--ensemble", "rgb8=8",
    )  # fmt: skip
    assert "Self-ensemble rows (`rgb8`: 8 flips/rotations" in text
    rows: dict[str, str] = {}  # the first (PSNR) table's cells
    for line in text.splitlines():
        if line.startswith("| "):
            rows.setdefault(line.split("|")[1].strip(), line.split("|")[2])
    plain, ensemble = float(rows["rgb (ours)"].split()[0]), float(rows["rgb8 (ours)"].split()[0])
    assert plain > 20 and ensemble > 20 and plain != ensemble
    cmd = [sys.executable, str(ROOT / "benchmarks" / "denoise_rgb.py"), "--data", str(data)]
    cmd += ["--set", "images", "--model", "rgb=denoise-rgb", "--ensemble", "nope=8"]
    cmd += ["--output", str(tmp_path / "C.md")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert "no --model labelled 'nope'" in one_error(done)


def test_super_resolution_writes_the_section_it_is_given(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "data" / "eval" / "Set5"
    folder.mkdir(parents=True)
    ramp = np.linspace(0, 255, 48)[None, :, None] * np.ones((48, 1, 3))
    image = np.clip(ramp + rng.normal(0, 10, ramp.shape), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(folder / "a.png")
    out = tmp_path / "B.md"
    out.write_text("# Benchmarks\n")
    cmd = script_cmd(
        "super_resolution.py", "--data", str(tmp_path / "data"), "--sets", "Set5",
        "--baselines", "bicubic", "--quiet", "--threads", "1", "--output", str(out),
        "--section", "sr-extra", "--title", "SR, more", defaults=(ABSENT,),
    )  # fmt: skip
    done = run_cmd(cmd)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "<!-- begin: sr-extra -->\n## SR, more" in text
    assert "<!-- begin: super-resolution -->" not in text
    bicubic = next(line for line in text.splitlines() if line.startswith("| bicubic (ours)"))
    assert all(float(cell.split("/")[0]) > 20 for cell in bicubic.split("|")[2:5])


def test_mri_measures_each_set_of_scans_at_each_acceleration(tmp_path):
    import torch

    from rimkit.models import RIMConfig
    from rimkit.train.checkpoint import export_weights

    rng = np.random.default_rng(0)
    mri = tmp_path / "data" / "mri"
    (mri / "bart_pics_brain").mkdir(parents=True)
    np.save(mri / "t1_coronal_slice.npy", rng.random((24, 24)))
    np.savez(mri / "dipy_b0_10slices.npz", volume=rng.integers(0, 4096, (20, 20, 3, 1)))
    header = "# Dimensions\n1 16 18 1 2 " + "1 " * 11 + "\n"
    (mri / "bart_pics_brain" / "img.hdr").write_text(header)
    scan = (rng.random((1, 16, 18, 1, 2)) + 1j * rng.random((1, 16, 18, 1, 2))).astype("c8")
    scan.ravel(order="F").tofile(mri / "bart_pics_brain" / "img.cfl")
    models = {}
    for name, cfg in (
        ("tiny", RIMConfig(cell="mri", channels=2, features=4, hidden=4, train_steps=2)),
        ("gray", RIMConfig(features=4, hidden=4, train_steps=2)),
        ("rgb", RIMConfig(channels=3, features=4, hidden=4, train_steps=2)),
    ):
        models[name] = tmp_path / f"{name}.safetensors"
        torch.manual_seed(0)
        export_weights(models[name], cfg.build(), {"config": {"model": cfg.to_dict()}})
    out = tmp_path / "B.md"
    out.write_text("# Benchmarks\n")
    defaults = (*(f"{name}={path}" for name, path in models.items()), ABSENT)
    base = script_cmd("mri.py", "--data", str(tmp_path / "data"), defaults=defaults)
    cmd = [*base, "--output", str(out), "--accelerations", "2", "4"]
    cmd += ["--baselines", "zero-filled", "--quiet", "--threads", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "note: default model 'rgb'" in done.stderr  # the default with 3 channels: a note
    text = out.read_text()
    assert "Images: t1-coronal 1, dipy-b0 3, bart-brain 1. Mask: 1-D variable-density" in text
    assert "Single coil." in text
    for name in ("t1-coronal", "dipy-b0", "bart-brain"):
        table = text.split(f"### {name}: PSNR (dB) / SSIM")[1].split("###")[0]
        rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| R=")]
        assert [r[0].strip() for r in rows] == ["R=2", "R=4"]
        for row in rows:
            tiny, gray, rgb, absent, zero_filled = (c.strip() for c in row[1:])
            assert absent == "missing" and rgb == "missing"
            # untrained RIMs leave their zero-filled start unchanged (the gray one: its magnitude)
            assert tiny == zero_filled and float(zero_filled.split(" / ")[0]) > 0
            assert float(gray.split(" / ")[0]) >= float(zero_filled.split(" / ")[0]) - 0.01
    assert "`rgb` (" in text and "has 3 channels, this benchmark needs 1 or 2" in text
    given = [*base, "--model", f"rgb={models['rgb']}", "--output", str(tmp_path / "G.md")]
    error = one_error(subprocess.run(given, capture_output=True, text=True, timeout=300))
    assert f"--model rgb={models['rgb']}: has 3 channels, this benchmark needs 1 or 2" in error
    fastmri = [*base, "--output", str(tmp_path / "F.md"), "--sets", "t1-coronal"]
    fastmri += ["--mask", "random", "--accelerations", "4", "--baselines", "zero-filled", "--quiet"]
    done = subprocess.run(fastmri, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "F.md").read_text()
    assert "Mask: fastMRI's random columns" in text and "| R=4,random | " in text


def test_deblur_writes_psnr_and_ssim_per_kernel_and_noise_level(data, tmp_path):
    model = tiny_model(tmp_path)
    text = run_script(
        "deblur.py", data, tmp_path / "B.md", "--kernels", "gaussian:1.6", "motion:7:45",
        "--sigmas", "2.55", defaults=(ABSENT, f"tiny={model}"),
    )  # fmt: skip
    assert "<!-- begin: deblur -->" in text
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| gauss")]
    rows += [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| motion")]
    assert [r[0].strip() for r in rows] == ["gaussian:1.6,sigma=2.55", "motion:7:45,sigma=2.55"]
    for row in rows:
        assert row[1].strip() == "missing"  # the absent model
        for cell in row[2:]:
            psnr, ssim = (float(v) for v in cell.split("/"))
            assert psnr > 10 and 0 < ssim <= 1


def test_deblur_names_a_bad_kernel(data, tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "deblur.py"), "--data", str(data)]
    cmd += ["--kernels", "disk:3", "--output", str(tmp_path / "B.md")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert "unknown kernel 'disk:3'" in one_error(done)
    assert not (tmp_path / "B.md").exists()


def test_mri_multicoil_scores_each_method_on_the_scan_and_its_thinned_samples(tmp_path):
    import torch

    from rimkit.models import RIMConfig
    from rimkit.operators import MultiCoilMRI, gaussian_2d_mask, synthetic_coil_maps
    from rimkit.train.checkpoint import export_weights

    scan = tmp_path / "data" / "mri" / "bart_pics_brain"
    scan.mkdir(parents=True)
    yy, xx = np.mgrid[-1:1:32j, -1:1:40j]
    head = 0.1 + 0.8 * ((xx / 0.8) ** 2 + (yy / 0.9) ** 2 < 1)
    g = torch.Generator().manual_seed(0)
    mask = gaussian_2d_mask((32, 40), 3.0, center_fraction=0.4, generator=g).double()
    maps = synthetic_coil_maps(4, (32, 40), 1, g, torch.complex128)
    kspace = MultiCoilMRI(mask, maps)(torch.from_numpy(head)[None, None])[0].numpy()
    bart = np.moveaxis(kspace, 0, -1)[None].astype("c8")  # (1, H, W, coils), BART's order
    (scan / "ksp.hdr").write_text("# Dimensions\n1 32 40 4 1\n")
    bart.ravel(order="F").tofile(scan / "ksp.cfl")
    (scan / "img.hdr").write_text("# Dimensions\n1 32 40 1 2\n")
    img = np.stack([head, 0.1 * head], -1)[None, :, :, None].astype("c8")  # two ESPIRiT maps
    img.ravel(order="F").tofile(scan / "img.cfl")
    cfg = RIMConfig(cell="mri", channels=2, link="identity", features=4, hidden=4, train_steps=2)
    model = tmp_path / "tiny.safetensors"
    export_weights(model, cfg.build(), {"config": {"model": cfg.to_dict()}})
    out = tmp_path / "B.md"
    out.write_text("# Benchmarks\n")
    cmd = script_cmd(
        "mri_multicoil.py", "--data", str(tmp_path / "data"), "--baselines", "zero-filled,tv",
        "--drop", "0", "0.5", "--output", str(out), "--quiet", "--threads", "1",
        defaults=(f"tiny={model}", ABSENT),
    )  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "k-space (4, 32, 40) (coils, H, W)" in text
    columns = header(text).split("|")[2:-1:2]
    rates = [float(c.split(",")[0].removeprefix(" R ")) for c in columns]
    assert rates[1] > 1.5 * rates[0] and rates[2:] == rates[:2]  # half the points left out
    assert [c.split(",")[1].split(":")[0].strip() for c in columns] == ["espirit"] * 2 + [
        "lowres"
    ] * 2  # a column pair for each way of estimating the maps
    multicoil, single = text.split("### Single coil, the image's own phase kept")
    for table, count in ((multicoil, 4), (single, 2)):
        rows = {
            line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1:2]]
            for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| method")
        }
        assert rows["absent"] == ["missing"] * count
        assert rows["tiny"] == rows["zero-filled"]  # untrained: the zero-filled start
        tv, zero_filled = (float(rows[m][0].split(" / ")[0]) for m in ("tv", "zero-filled"))
        assert tv > zero_filled
    assert "| tiny without the phase map |" in single and "| R 4: PSNR / SSIM |" in single


def test_train_speed_counts_memory_that_grows_with_t_except_for_the_irim():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "train_speed", ROOT / "benchmarks" / "train_speed.py"
    )
    train_speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_speed)
    saved = {
        name: [train_speed.saved_bytes(cfg, steps) for steps in (2, 4)]
        for name, cfg in train_speed.MEMORY.items()
    }
    growth = {name: (b - a) / 2 for name, (a, b) in saved.items()}  # bytes per step
    per_estimate = 32 * 1 * 32 * 32 * 4  # one (32, 1, 32, 32) float32 tensor
    assert growth["i-RIM, invert-to-learn"] <= 2 * per_estimate  # what the loss keeps per step
    assert growth["cpu cell"] > 10 * growth["cpu cell, checkpointing"]
    assert growth["cpu cell, checkpointing"] > 3 * growth["i-RIM, invert-to-learn"]


def test_noise_level_scores_the_estimators_and_each_method_told_them(data, tmp_path):
    model = tiny_model(tmp_path)
    text = run_script(
        "noise_level.py", data, tmp_path / "B.md", "--sigmas", "10", "30", "--quantised",
        defaults=(ABSENT, f"tiny={model}"),
    )  # fmt: skip
    assert "<!-- begin: noise-level -->" in text
    errors = [line.split("|")[1:-1] for line in text.splitlines() if "| pca |" in line]
    assert [r[0].strip() for r in errors] == ["sigma=10", "sigma=30", "sigma=10,q8", "sigma=30,q8"]
    assert all(abs(float(r[2])) < 2.5 for r in errors)  # the image has noise of its own, ~6.7
    methods = next(line for line in text.splitlines() if line.startswith("| setting | absent"))
    assert [m.strip() for m in methods.split("|")[1:-1]] == [
        "setting", "absent", "absent (est. pca)", "absent (est. wavelet)", "tiny",
        "tiny (est. pca)", "tiny (est. wavelet)", "tv", "tv (est. pca)",
    ]  # fmt: skip


def test_noise_level_with_missing_pixels_scores_the_scattered_mask_estimate(data, tmp_path):
    text = run_script("noise_level.py", data, tmp_path / "B.md", "--sigmas", "20",
                      "--missing", "0.1")  # fmt: skip
    errors = [line.split("|")[1:-1] for line in text.splitlines() if "| pca |" in line]
    assert [r[0].strip() for r in errors] == ["missing=0.1,sigma=20"]
    assert abs(float(errors[0][2])) < 4  # the image has noise of its own, ~6.7
    assert "wavelet" not in text and "missing at random" in text and "plane fits" in text


def test_deblur_with_valid_boundaries_adds_the_circular_assumption_rows(data, tmp_path):
    model = tiny_model(tmp_path)
    text = run_script(
        "deblur.py", data, tmp_path / "B.md", "--kernels", "motion:7:45", "--sigmas", "2.55",
        "--boundary", "valid", "--circular-too", defaults=(ABSENT, f"tiny={model}"),
    )  # fmt: skip
    methods = next(line for line in text.splitlines() if line.startswith("| setting"))
    assert [m.strip() for m in methods.split("|")[1:-1]] == [
        "setting", "absent", "absent (circular assumed)", "tiny", "tiny (circular assumed)", "tv",
    ]  # fmt: skip
    row = next(line for line in text.splitlines() if line.startswith("| motion"))
    assert row.split("|")[1].strip() == "motion:7:45,valid,sigma=2.55"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "deblur.py"), "--data", str(data)]
    cmd += ["--circular-too", "--output", str(tmp_path / "C.md"), "--model", "a=no-such"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert "give both" in one_error(done)


@pytest.mark.parametrize("script", ["denoise_gray.py", "layout.py"])
def test_an_output_in_a_missing_folder_or_a_folder_stops_before_any_work(data, tmp_path, script):
    journal = tmp_path / "run.jsonl"
    args = ["--data", str(data), "--set", "images", "--baselines", "tv", "--quiet"]
    args += ["--sigmas", "25", "--journal", str(journal)]
    for output, message in (
        (tmp_path / "nodir" / "B.md", f"the folder {str(tmp_path / 'nodir')!r} does not exist"),
        (tmp_path, "is a folder; give the Markdown file to update"),
    ):
        start = time.monotonic()
        extra = args if script != "layout.py" else []
        done = run_cmd(script_cmd(script, *extra, "--output", str(output), defaults=(ABSENT,)))
        error = one_error(done)
        assert error.startswith(f"error: --output {str(output)!r}") and message in error
        assert time.monotonic() - start < 60
        assert not journal.exists()  # no image was evaluated
        assert "note: default model" not in done.stderr  # nor a model loaded


def test_limit_with_the_default_output_is_refused(data):
    published = (ROOT / "BENCHMARKS.md").read_bytes()
    args = ["--data", str(data), "--set", "images", "--baselines", "tv", "--limit", "1"]
    for output in ([], ["--output", str(ROOT / "BENCHMARKS.md")]):
        error = one_error(run_cmd(script_cmd("denoise_gray.py", *args, *output)))
        assert "--limit would replace a published section" in error
        assert "give --output FILE for a quick check" in error
    assert (ROOT / "BENCHMARKS.md").read_bytes() == published


@pytest.mark.parametrize("script", WITH_DATA)
def test_a_missing_data_root_is_one_line_naming_it(tmp_path, script):
    root = tmp_path / "nonexistent"
    expected = (
        f"error: data root {str(root)!r} does not exist; give --data or set RIMKIT_DATA to the "
        "folder holding eval/ and train/"
    )
    out = ["--output", str(tmp_path / "B.md")]
    assert one_error(run_cmd(script_cmd(script, *out), RIMKIT_DATA=str(root))) == expected
    if script == "denoise_gray.py":
        given = script_cmd(script, "--data", str(root), *out)
        assert one_error(run_cmd(given, RIMKIT_DATA=str(tmp_path))) == expected
    assert not (tmp_path / "B.md").exists()


def test_a_missing_image_set_or_scan_in_the_data_root_is_one_line(data, tmp_path):
    out = ["--output", str(tmp_path / "B.md"), "--baselines", "tv"]
    for script in ("denoise_gray.py", "speed.py", "noise_level.py"):
        done = run_cmd(script_cmd(script, "--data", str(data), "--set", "eval/Set13", *out))
        missing = str(data / "eval" / "Set13")
        assert one_error(done) == (
            f"error: image set {missing!r} does not exist; name a folder inside --data "
            f"{str(data)!r}"
        )
    done = run_cmd(script_cmd("mri_multicoil.py", "--data", str(data), *out))
    assert f"no ksp.cfl or img.cfl in {str(data / 'mri' / 'bart_pics_brain')!r}" in one_error(done)
    done = run_cmd(script_cmd("mri.py", "--data", str(data), *out))
    error = one_error(done)
    assert "t1_coronal_slice.npy' does not exist (the t1-coronal scans in --data)" in error


@pytest.mark.parametrize("script", ["denoise_gray.py", "mri_multicoil.py"])
def test_an_unknown_baseline_is_one_line(data, tmp_path, script):
    args = ["--data", str(data), "--baselines", "tv,bm4d", "--output", str(tmp_path / "B.md")]
    error = one_error(run_cmd(script_cmd(script, *args, defaults=())))
    assert error.startswith("error: --baselines: unknown baseline 'bm4d'; known: ")


@pytest.mark.parametrize(
    ("script", "option", "value", "message"),
    [
        ("projections.py", "--ratios", "0", "ratio must lie in (0, 1], got 0.0"),
        ("projection_subspaces.py", "--patches", "0", "patches must be an int >= 1, got 0"),
        ("denoise_gray.py", "--sigmas", "-5", "sigma must be a finite number >= 0"),
        ("denoise_rgb.py", "--seed", "-1", "seed must be an int >= 0, got -1"),
        ("lensing.py", "--radii", "0", "einstein_radius must be > 0, got 0.0"),
        ("mri.py", "--accelerations", "0.5", "acceleration must be a number >= 1, got 0.5"),
        ("noise_level.py", "--sigmas", "-3", "sigma must be a finite number >= 0"),
        ("speed.py", "--sigma", "-1", "sigma must be a finite number >= 0"),
        ("super_resolution.py", "--seed", "-1", "seed must be an int >= 0, got -1"),
        ("deblur.py", "--sigmas", "-1", "sigma must be a finite number >= 0"),
        ("tv_convergence.py", "--seed", "-1", "seed must be an int >= 0, got -1"),
    ],
)
def test_an_option_value_the_protocols_refuse_is_one_line(
    data, tmp_path, script, option, value, message
):
    out = tmp_path / "B.md"
    args = ["--data", str(data), "--output", str(out), f"{option}={value}"]
    error = one_error(run_cmd(script_cmd(script, *args, defaults=())))
    assert error.startswith(f"error: {message}"), error
    assert not out.exists()


def test_a_model_given_that_cannot_be_loaded_is_an_error_naming_it(data, tmp_path):
    args = ["--data", str(data), "--set", "images", "--baselines", "tv", "--sigmas", "25"]
    args += ["--quiet", "--output", str(tmp_path / "B.md"), "--model", "rim=denoise-gray"]
    done = run_cmd(script_cmd("denoise_gray.py", *args, "--model", "typo=denoise-grey"))
    error = one_error(done)
    assert error.startswith("error: --model typo=denoise-grey: unknown model 'denoise-grey'")
    assert "not a shipped model" in error and not (tmp_path / "B.md").exists()


def test_a_default_model_that_cannot_be_loaded_is_a_missing_row_and_a_note(data, tmp_path):
    out = tmp_path / "B.md"
    out.write_text("")
    args = ["--data", str(data), "--set", "images", "--baselines", "tv", "--quantised-only"]
    args += ["--sigmas", "25", "--quiet", "--output", str(out)]
    done = run_cmd(script_cmd("denoise_gray.py", *args, defaults=(ABSENT, "gone=no-more")))
    assert done.returncode == 0, done.stderr
    notes = done.stderr.strip().splitlines()  # one line each, even with --quiet
    expected = (("absent", "no-such-model"), ("gone", "no-more"))
    assert len(notes) == len(expected)
    for note, (label, source) in zip(notes, expected, strict=True):
        assert note.startswith(
            f"note: default model {label!r} ({source}) not loaded, its rows say missing: "
            f"unknown model {source!r}: not a shipped model ("
        )
    text = out.read_text()
    assert "| absent (ours) | missing |" in text and "| gone (ours) | missing |" in text
    assert "- `gone` (no-more): missing: unknown model 'no-more'" in text


def option_help(text: str, option: str) -> str:
    """The help of ``option`` in ``--help`` output, as one line."""
    block = re.search(rf"^  {re.escape(option)}\b(.*?)(?=^  -|^\S|\Z)", text, re.M | re.S)
    assert block, option
    return " ".join(block.group(1).split())


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_shows_the_docstring_its_examples_and_the_defaults(script):
    done = run_cmd(script_cmd(script, "--help"), COLUMNS="1000")  # no wrapped lines
    assert done.returncode == 0, done.stderr
    text = done.stdout
    doc = ast.get_docstring(ast.parse((BENCH / script).read_text()))
    description = doc.split("\n\n")[0]
    assert description.endswith(".") and description in text  # a whole sentence, not cut off
    examples = [line.strip() for line in doc.splitlines() if line.strip().startswith("python ")]
    assert examples and all(line in text for line in examples)
    if script in WITH_DATA:
        assert "(default: $RIMKIT_DATA, else ../shared/data)" in option_help(text, "--data")
        output = option_help(text, "--output")
        assert "(default: BENCHMARKS.md at the repository root" in output
        assert "a quick check (--limit) needs another file" in output
        if "--journal" in text:
            assert "a script with several parts" in option_help(text, "--journal")
            assert "writes FILE.PART files" in option_help(text, "--journal")
    for option in ("--set", "--sets", "--sigmas", "--kernels", "--radii", "--accelerations"):
        if re.search(rf"^  {option}\b", text, re.M):
            assert "default" in option_help(text, option), option
    if re.search(r"^  --patches\b", text, re.M):
        assert "(default: 8)" in option_help(text, "--patches")


def test_sr_protocol_scores_bicubic_under_each_lr_recipe(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "data" / "eval" / "Tiny"
    folder.mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (48, 50, 3), dtype=np.uint8)).save(folder / "a.png")
    out = tmp_path / "B.md"
    out.write_text("# Benchmarks\n")
    args = ["--data", str(tmp_path / "data"), "--sets", "Tiny", "--output", str(out)]
    done = run_cmd(script_cmd("sr_protocol.py", *args, "--threads", "1"))
    assert done.returncode == 0, done.stderr
    rows = [line for line in out.read_text().splitlines() if line.startswith("| Tiny (1)")]
    assert [row.split(" | ")[1] for row in rows] == ["x2", "x3", "x4"]
    for row in rows:  # noise-like pixels: rounding between MATLAB's passes moves many of them
        differing = float(row.split(" | ")[-1].rstrip(" |%"))
        assert 1 < differing < 60


def test_tv_convergence_runs_tv_three_ways_on_every_tasks_measurements(tmp_path):
    rng = np.random.default_rng(2)
    ramp = np.linspace(0, 255, 36)[None, :] * np.ones((36, 1))
    gray = np.clip(ramp + rng.normal(0, 8, ramp.shape), 0, 255).astype(np.uint8)
    for name, image in (("Set12", gray), ("Set5", np.stack([gray] * 3, -1)), ("BSD68", gray)):
        (tmp_path / "data" / "eval" / name).mkdir(parents=True)
        Image.fromarray(image).save(tmp_path / "data" / "eval" / name / "a.png")
    (tmp_path / "data" / "mri").mkdir()
    np.savez(tmp_path / "data" / "mri" / "dipy_b0_10slices.npz", volume=gray[:, :, None, None])
    out = tmp_path / "B.md"
    out.write_text("# Benchmarks\n")
    args = ["--data", str(tmp_path / "data"), "--images", "1", "--patches", "1", "--quiet"]
    done = run_cmd(script_cmd("tv_convergence.py", *args, "--threads", "1", "--output", str(out)))
    assert done.returncode == 0, done.stderr
    rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith("| ")]
    assert rows[0][2:5] == ["equal steps, 100", "balanced, 100", "balanced, 1000"]
    tasks = [row[0].lstrip("| ").split(":")[0] for row in rows[1:]]
    assert (
        tasks
        == ["blur"] * 4
        + ["inpaint"] * 2
        + ["sr"] * 3
        + ["projection"] * 4
        + ["lensing"] * 2
        + ["mri"] * 2
    )
    sets = {"blur": "Set12", "inpaint": "Set12", "sr": "Set5", "mri": "dipy-b0"}
    for task, row in zip(tasks, rows[1:], strict=True):
        assert row[1] == f"1 of {sets.get(task, 'BSD68')}"
        equal, balanced, long = (float(v) for v in row[2:5])
        assert float(row[5]) == pytest.approx(balanced - equal, abs=0.011)  # of unrounded means
        assert float(row[6].rstrip(" |")) == pytest.approx(long - balanced, abs=0.011)
