"""bf16 inference: ``load_model(..., precision=)``, ``--precision`` of reconstruct, compare and
eval, the benchmarks' ``--precision LABEL=P``, and the checks they share (rimkit.precision)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rimkit import precision as precision_module
from rimkit.cli import main
from rimkit.likelihood import GaussianLikelihood
from rimkit.models import RIMConfig, build_rim
from rimkit.operators import Identity
from rimkit.precision import PRECISIONS, apply_precision, check_precision, native_bf16
from rimkit.zoo import load_model, save_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def saved_model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    rim = build_rim("restoration", channels=1, features=8, hidden=8, train_steps=3)
    with torch.no_grad():  # untrained, its output layer is zero: give every weight a value
        for weight in rim.parameters():
            weight.normal_(0, 0.2)
    return save_model(tmp_path / "m.safetensors", rim, [{"name": "denoise"}])


@pytest.fixture
def noisy_png(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    ramp = np.linspace(40, 200, 24)[None, :] * np.ones((20, 1))
    image = np.clip(ramp + rng.normal(0, 20, ramp.shape), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "noisy.png")
    return tmp_path / "noisy.png"


@pytest.fixture
def native(monkeypatch):
    """Pretend the CPU computes bfloat16 natively (no slowness warning), as CI machines may not."""
    monkeypatch.setattr(precision_module, "native_bf16", lambda device: True)


def test_check_precision_names_the_setting_and_the_known_ones():
    check_precision("fp32")
    check_precision("bf16")
    with pytest.raises(ValueError, match=r"unknown --precision 'fp16'; known: fp32, bf16"):
        check_precision("fp16", "--precision")
    assert PRECISIONS == ("fp32", "bf16")


def test_bf16_runs_the_cell_in_bfloat16_and_keeps_the_estimate_float32(saved_model, native):
    plain = load_model(saved_model).model
    fast = load_model(saved_model, precision="bf16").model
    assert plain.cell_dtype is None and fast.cell_dtype == torch.bfloat16
    seen = []
    fast.cell.register_forward_hook(lambda cell, args, out: seen.append(out[0].dtype))
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    y = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a = plain(GaussianLikelihood(Identity(), y, 0.1), x0=y).final
        b = fast(GaussianLikelihood(Identity(), y, 0.1), x0=y).final
    assert seen == [torch.bfloat16] * 3
    assert b.dtype == torch.float32
    assert 0 < (a - b).abs().max() < 0.02  # bfloat16 rounding of the updates, not another result


def test_bf16_without_native_support_warns_that_it_is_slower(saved_model, monkeypatch):
    monkeypatch.setattr(precision_module, "native_bf16", lambda device: False)
    with pytest.warns(UserWarning, match=r"no native bfloat16 .*likely slower than fp32"):
        load_model(saved_model, precision="bf16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(saved_model, precision="fp32")


def test_native_bf16_is_a_bool_for_every_kind_of_device():
    assert isinstance(native_bf16("cpu"), bool)
    assert isinstance(native_bf16(torch.device("cpu")), bool)
    assert native_bf16("meta") is False


def test_a_model_without_a_cell_takes_fp32_and_refuses_bf16():
    irim = RIMConfig(variant="invertible", features=4, hidden=4, train_steps=2).build()
    assert apply_precision(irim, "fp32", "cpu") is irim
    with pytest.raises(ValueError, match=r"InvertibleRIM has no separate cell: use precision fp32"):
        apply_precision(irim, "bf16", "cpu")
    with pytest.raises(ValueError, match=r"unknown precision 'half'"):
        load_model("denoise-gray", precision="half")


def test_reconstruct_and_compare_take_precision(saved_model, noisy_png, tmp_path, capsys, native):
    args = ["reconstruct", str(noisy_png), "--task", "denoise", "--sigma", "25", "-q"]
    args += ["--model", str(saved_model)]
    assert main([*args, str(tmp_path / "fp32.png")]) == 0
    assert main([*args, str(tmp_path / "bf16.png"), "--precision", "bf16"]) == 0
    a = np.asarray(Image.open(tmp_path / "fp32.png"), dtype=float)
    b = np.asarray(Image.open(tmp_path / "bf16.png"), dtype=float)
    assert a.shape == b.shape and np.abs(a - b).max() <= 4  # a few 8-bit levels at most
    with pytest.raises(SystemExit) as stop:
        main([*args, str(tmp_path / "c.png"), "--precision", "fp16"])
    assert stop.value.code == 2 and "invalid choice: 'fp16'" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()
    compare = ["compare", str(noisy_png), "--task", "denoise", "--sigma", "25", "-q"]
    compare += ["--methods", str(saved_model), "--out", str(tmp_path / "cmp")]
    assert main([*compare, "--precision", "bf16"]) == 0, capsys.readouterr().err


def test_eval_takes_precision_and_writes_it_in_its_command(saved_model, tmp_path, native):
    from rimkit.evaluate.request import EvalSpec, run_eval

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray((rng.random((24, 24)) * 255).astype(np.uint8)).save(folder / "a.png")
    spec = EvalSpec(
        task="denoise", data=folder, out=tmp_path / "ev", model=str(saved_model),
        sigmas=(25.0,), baselines=(), precision="bf16", quiet=True,
    )  # fmt: skip
    assert "--precision bf16" in spec.command_line()
    run_eval(spec)
    assert (tmp_path / "ev" / "results.csv").is_file()
    with pytest.raises(ValueError, match=r"unknown --precision 'fp64'"):
        run_eval(EvalSpec(task="denoise", data=folder, precision="fp64"))
    argv = ["eval", "--model", str(saved_model), "--task", "denoise", "--data", str(folder)]
    argv += ["--sigma", "25", "--baselines", "none", "--out", str(tmp_path / "cli"), "-q"]
    assert main([*argv, "--precision", "bf16"]) == 0
    assert "--precision bf16" in (tmp_path / "cli" / "summary.md").read_text()


def test_benchmarks_take_a_precision_per_label(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--data", str(tmp_path)]
    cmd += ["--model", "a=denoise-gray", "--precision", "b=bf16", "--output", str(tmp_path / "B")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--precision b=bf16: no --model labelled 'b'" in done.stderr
    cmd[cmd.index("b=bf16")] = "a=fp16"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert "--precision a=fp16: the value must be one of fp32, bf16" in done.stderr
