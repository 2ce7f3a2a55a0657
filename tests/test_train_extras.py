"""Training with an optional extra that is missing: refused before the run folder is made."""

from __future__ import annotations

import sys

import pytest
import yaml

from rimkit.cli import main
from rimkit.train import ExperimentConfig, train
from rimkit.train.launch import launch

TINY = {
    "model": {"features": 4, "hidden": 4, "train_steps": 2},
    "data": {"val_images": 2, "val_patches": 8, "patch_size": 16, "stride": 8},
    "optim": {"iterations": 2, "batch_size": 4, "val_every": 2, "tensorboard": True},
}


@pytest.fixture
def no_tensorboard(monkeypatch):
    """``from torch.utils.tensorboard import ...`` raises ImportError, as without the extra."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)


def _config(folder) -> ExperimentConfig:
    return ExperimentConfig.from_dict({**TINY, "data": {**TINY["data"], "train": str(folder)}})


def test_train_without_tensorboard_writes_nothing(no_tensorboard, image_folder, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"pip install 'rimkit\[tensorboard\]'"):
        train(_config(image_folder), out, progress=False)
    assert not out.exists()
    with pytest.raises(ValueError, match=r"optim\.tensorboard needs TensorBoard"):
        launch(_config(image_folder), out, nproc=2, progress=False)
    assert not out.exists()


def test_cli_train_without_tensorboard_is_one_line_and_leaves_no_folder(
    no_tensorboard, image_folder, tmp_path, capsys
):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(_config(image_folder).to_dict()))
    out = tmp_path / "run"
    status = main(["train", str(recipe), "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "pip install 'rimkit[tensorboard]'" in err
    assert not out.exists()
