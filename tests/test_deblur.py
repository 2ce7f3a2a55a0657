"""Deblurring end to end: named kernels, the training task, the protocol, eval and tuning."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from rimkit.cli import main
from rimkit.evaluate import runner
from rimkit.evaluate.protocols import DeblurProtocol
from rimkit.models import RIMConfig
from rimkit.operators import Blur, box_kernel, gaussian_kernel, kernel_from_spec, motion_kernel
from rimkit.reconstruct import RIMReconstructor, initial_estimate
from rimkit.solvers.tuning import SETTINGS, Setting, grid_search
from rimkit.tasks import TASKS, BlurTask
from rimkit.train import ExperimentConfig
from rimkit.train.checkpoint import export_weights


def test_kernel_specs_name_the_kernel_helpers_and_bad_specs_are_refused():
    assert torch.equal(kernel_from_spec("gaussian:1.6"), gaussian_kernel(1.6))
    assert torch.equal(kernel_from_spec("motion:15:45"), motion_kernel(15, 45))
    assert torch.equal(kernel_from_spec(" box:5 "), box_kernel(5))
    for spec, wanted in [
        ("gaussian", "unknown kernel"),
        ("motion:9", "unknown kernel"),
        ("disk:3", "unknown kernel"),
        ("gaussian:wide", "is not a number"),
        ("gaussian:0", "std must be finite and > 0"),
        ("motion:0.5:10", "length must be finite and >= 1"),
    ]:
        with pytest.raises(ValueError, match=wanted):
            kernel_from_spec(spec)


def test_the_blur_task_draws_a_normalised_kernel_per_sample_and_starts_at_y():
    x = torch.rand(6, 1, 32, 32)
    m = BlurTask(sigma=(5, 5)).sample(x, torch.Generator().manual_seed(1))
    kernels = m.operator.kernel
    assert kernels.shape == (6, 17, 17) and m.name == "blur"
    assert torch.allclose(kernels.sum(dim=(1, 2)), torch.ones(6), atol=1e-5)
    assert len({tuple(k.flatten().tolist()) for k in kernels}) == 6  # each sample its own
    assert torch.equal(m.x0, m.y.clamp(0, 1))
    assert torch.allclose(m.sigma, torch.full((6,), 5 / 255), atol=1e-7)
    noise = m.y - m.operator(x)
    assert abs(noise.std().item() - 5 / 255) < 0.1 * 5 / 255
    again = BlurTask(sigma=(5, 5)).sample(x, torch.Generator().manual_seed(1))
    assert torch.equal(again.y, m.y)
    assert TASKS["blur"] is BlurTask


def test_the_blur_task_draws_only_the_families_it_is_given():
    gen = torch.Generator().manual_seed(0)
    task = BlurTask(kernels=("gaussian",), std=(2.0, 2.0), size=13)
    assert torch.equal(task.kernel(gen), gaussian_kernel(2.0, 13))
    motion = BlurTask(kernels=("motion",), length=(9, 9), size=11).kernel(gen)
    assert motion.shape == (11, 11) and not torch.equal(motion, motion.T.flip(0))


@pytest.mark.parametrize(
    "fields, wanted",
    [
        ({"kernels": ("disk",)}, "unknown blur kernels"),
        ({"size": 16}, "odd integer"),
        ({"std": (0.5, 9.0)}, "std must be a range"),
        ({"length": (3, 40)}, "length must be a range"),
        ({"sigma": (5, 1)}, "sigma must be a range"),
        ({"boundary": "reflect"}, "unknown boundary"),
    ],
)
def test_a_bad_blur_task_is_named_when_the_recipe_is_read(fields, wanted):
    entry = {"name": "blur", **fields}
    with pytest.raises(ValueError, match=wanted):
        ExperimentConfig.from_dict({"tasks": [entry]})


def test_deblurring_starts_from_the_blurred_image():
    y = torch.rand(1, 1, 12, 12) * 1.2
    assert torch.equal(initial_estimate(Blur(gaussian_kernel(1.0)), y), y.clamp(0, 1))


def test_the_deblur_protocol_is_reproducible_and_blurs_the_whole_image_circularly():
    image = np.random.default_rng(0).random((20, 24))
    protocol = DeblurProtocol("motion:9:30", 7.65, seed=3)
    case = protocol.cases(image, 2, "img")[0]
    again = protocol.cases(image, 2, "img")[0]
    assert case.setting == "motion:9:30,sigma=7.65" and case.task == "blur"
    assert torch.equal(case.y, again.y) and case.y.shape == (1, 1, 20, 24)
    noise = case.y - case.operator(case.truth)
    assert abs(noise.std().item() - 0.03) < 0.006
    other = DeblurProtocol("motion:9:30", 7.65, seed=4).cases(image, 2, "img")[0]
    assert not torch.equal(other.y, case.y)  # the seed is seed + index
    noiseless = DeblurProtocol("gaussian:1.6", 0.0).cases(image, 0, "img")[0]
    assert noiseless.setting == "gaussian:1.6"
    assert torch.allclose(noiseless.y.sum(), noiseless.truth.sum())  # circular keeps the sum
    assert DeblurProtocol("box:3", 0.0, boundary="zero").setting == "box:3,zero"
    with pytest.raises(ValueError, match="unknown kernel"):
        DeblurProtocol("wide")
    with pytest.raises(ValueError, match="sigma must be"):
        DeblurProtocol("gaussian:1", -1.0)


def test_eval_blur_defaults_to_the_published_noise_levels_and_needs_a_kernel(tmp_path):
    spec = runner.EvalSpec(task="blur", data=tmp_path, kernels=("gaussian:1.6", "motion:9:0"))
    settings = [p.setting for p in runner.make_protocols(spec)]
    assert settings == [
        "gaussian:1.6,sigma=2.55",
        "gaussian:1.6,sigma=7.65",
        "motion:9:0,sigma=2.55",
        "motion:9:0,sigma=7.65",
    ]
    assert "--kernel gaussian:1.6 motion:9:0" in spec.command_line()
    with pytest.raises(ValueError, match="at least one kernel"):
        runner.make_protocols(runner.EvalSpec(task="blur", data=tmp_path, kernels=()))


def test_baselines_take_the_deblurring_weight_tuned_for_the_nearest_noise_level():
    case = DeblurProtocol("gaussian:1.6", 7.65).cases(np.zeros((16, 16)), 0, "z")[0]
    setting, level = runner.tuned_setting(case)
    assert setting == "blur" and level == pytest.approx(7.65)
    assert {(s.task, s.level) for s in SETTINGS} >= {("blur", 2.55), ("blur", 7.65)}


def test_tuning_deblurring_searches_the_noisy_grid_on_blurred_crops():
    setting = Setting("blur", 7.65, crop=24, crops_per_image=2)
    assert setting.grid[0] == 1e-3 and setting.grid[-1] == 1.0
    clean = torch.rand(2, 1, 24, 24)
    m = setting.measure(clean, torch.Generator().manual_seed(0))
    assert isinstance(m.operator, Blur) and m.operator.kernel.shape[0] == 2
    result = grid_search("tv", m, grid=[1e-3, 1e-1], iterations=5, level=7.65)
    assert result.task == "blur" and len(result.psnr) == 2


def _gray_model(tmp_path) -> str:
    cfg = RIMConfig(channels=1, features=4, hidden=4, train_steps=2)
    torch.manual_seed(0)
    path = tmp_path / "gray.safetensors"
    config = {"model": cfg.to_dict(), "tasks": [{"name": "blur"}]}
    export_weights(path, cfg.build(), {"config": config})
    return str(path)


def test_eval_blur_runs_a_model_and_baselines(image_folder, tmp_path, capsys):
    out = tmp_path / "e"
    status = main(
        [
            "eval", "--model", _gray_model(tmp_path), "--task", "blur", "--data",
            str(image_folder), "--kernel", "gaussian:1.6", "motion:7:45", "--sigma", "5",
            "--limit", "2", "--baselines", "tv,cg-tikhonov", "--baseline-option",
            "tv.iterations=5", "--out", str(out), "-q",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert status == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"] == ["gaussian:1.6,sigma=5", "motion:7:45,sigma=5"]
    assert summary["methods"] == ["rim", "tv", "cg-tikhonov"]
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 * 3 and all(float(r["psnr"]) > 10 for r in rows)


def test_eval_blur_names_a_bad_kernel_in_one_line(image_folder, tmp_path, capsys):
    status = main(
        ["eval", "--task", "blur", "--data", str(image_folder), "--kernel", "motion:9",
         "--out", str(tmp_path / "x")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and "unknown kernel 'motion:9'" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_a_model_trained_on_blur_starts_from_the_blurred_image(tmp_path):
    from rimkit.zoo import load_model

    loaded = load_model(_gray_model(tmp_path))
    assert loaded.model.start == "task"
    y = torch.rand(1, 1, 16, 16)
    first = RIMReconstructor(loaded.model, steps=1)(y, Blur(gaussian_kernel(1.0)), 0.02)
    assert first.estimates[0].shape == y.shape


def test_eval_blur_notes_noise_outside_the_models_training(image_folder, tmp_path, capsys):
    out = tmp_path / "e"
    status = main(
        ["eval", "--model", _gray_model(tmp_path), "--task", "blur", "--data", str(image_folder),
         "--sigma", "5", "25", "--limit", "1", "--baselines", "none", "--out", str(out), "-q"]
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    summary = (out / "summary.md").read_text()
    assert "trained for sigma 0-15; sigma 25 lies outside" in summary
    assert runner.trained_sigma_range({"tasks": [{"name": "blur"}]}, task="blur") == (0, 15)
    assert runner.trained_sigma_range({"tasks": [{"name": "denoise"}]}) == (0, 55)


# ----------------------------------------------------------------------------- valid boundary


@pytest.mark.parametrize("kernel", [motion_kernel(9, 30), box_kernel(4), torch.rand(5, 8)])
def test_a_valid_blur_is_the_valid_convolution_and_its_adjoint(kernel):
    op = Blur(kernel.double(), "valid")
    x = torch.randn(2, 3, 20, 23, dtype=torch.float64)
    y = op(x)
    flipped = kernel.double().flip(0, 1)[None, None].repeat(3, 1, 1, 1)  # conv2d correlates
    torch.testing.assert_close(y, torch.nn.functional.conv2d(x, flipped, groups=3))
    v = torch.randn_like(y)
    torch.testing.assert_close((y * v).sum(), (x * op.adjoint(v)).sum())
    top, bottom, left, right = op.margins()
    interior = Blur(kernel.double(), "circular")(x)[..., top : 20 - bottom, left : 23 - right]
    torch.testing.assert_close(y, interior)


def test_a_valid_blur_starts_from_y_extended_by_its_edges():
    op = Blur(motion_kernel(9, 30), "valid")  # 9x9: four pixels past every edge
    y = torch.rand(2, 1, 12, 14)
    x0 = initial_estimate(op, y)
    assert x0.shape == (2, 1, 20, 22)
    torch.testing.assert_close(x0[..., 4:16, 4:18], y)
    torch.testing.assert_close(x0[..., :4, 4:18], y[..., :1, :].expand(2, 1, 4, 14))


def test_the_shipped_deblur_model_restores_a_photo_with_valid_boundaries():
    import skimage.data

    from rimkit.pipeline import restore
    from rimkit.zoo import load_model

    model = load_model("deblur").model
    x = skimage.data.camera()[100:228, 180:308] / 255.0
    kernel = motion_kernel(15, 120).double()
    y = Blur(kernel, "valid")(torch.from_numpy(x)[None, None])[0, 0].numpy()
    y = y + np.random.default_rng(0).normal(0, 2.55 / 255, y.shape)
    truth = x[7:-7, 7:-7]  # y's field of view
    error = {}
    for boundary in ("valid", "circular"):
        out = restore(y, "blur", model, sigma=2.55, kernel=kernel.numpy(), boundary=boundary)
        assert out.image.shape == y.shape
        error[boundary] = np.mean((out.image - truth) ** 2)
    blurred = np.mean((np.clip(y, 0, 1) - truth) ** 2)
    assert error["valid"] < 0.6 * blurred and error["valid"] < 0.4 * error["circular"]


def test_a_valid_blur_reconstructs_in_tiles_like_whole():
    from rimkit.zoo import load_model

    model = load_model("deblur").model
    import skimage.data

    x = torch.from_numpy(skimage.data.camera()[:150, 200:370] / 255.0)[None, None].float()
    op = Blur(gaussian_kernel(1.6), "valid")
    y = op(x)
    whole = RIMReconstructor(model)(y, op, 0.01).final
    tiled = RIMReconstructor(model, tile=96, overlap=16)(y, op, 0.01).final
    assert tiled.shape == whole.shape == x.shape
    assert (tiled - whole)[..., 5:-5, 5:-5].abs().mean() < 0.01 * (y.std())
    assert (tiled - whole).abs().max() < 0.025  # no seam: a tile's margins do not blend in
    with pytest.raises(ValueError, match="blur with circular boundaries"):
        RIMReconstructor(model, tile=96)(x, Blur(gaussian_kernel(1.6)), 0.01)


def test_the_valid_protocol_scores_y_s_field_of_view(image_folder, tmp_path, capsys):
    case = DeblurProtocol("motion:9:30", 2.55, boundary="valid").cases(
        np.full((40, 48), 0.5), 0, "g"
    )[0]
    assert case.setting == "motion:9:30,valid,sigma=2.55"
    assert case.y.shape[-2:] == (32, 40) and case.shave == 4 and case.display.shape == (40, 48)
    out = tmp_path / "e"
    argv = ["eval", "--model", _gray_model(tmp_path), "--task", "blur", "--data",
            str(image_folder), "--kernel", "motion:9:30", "--boundary", "valid", "--limit", "1",
            "--baselines", "tv", "--baseline-option", "tv.iterations=5", "--out", str(out),
            "-q"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"] == ["motion:9:30,valid,sigma=2.55", "motion:9:30,valid,sigma=7.65"]
    assert "--boundary valid" in (out / "summary.md").read_text()
    status = main(["eval", "--task", "denoise", "--data", str(image_folder), "--boundary",
                   "valid", "--out", str(tmp_path / "d")])  # fmt: skip
    assert status == 2 and "--boundary applies to --task blur only" in capsys.readouterr().err


def test_cli_degrade_and_reconstruct_with_valid_boundaries(tmp_path, capsys):
    blurred, sharp = tmp_path / "blurred.npy", tmp_path / "sharp.png"
    common = ["--task", "blur", "--kernel", "motion:9:30", "--boundary", "valid", "--sigma", "2"]
    assert main(["degrade", "example:camera", str(blurred), *common, "-q"]) == 0
    y = np.load(blurred)
    assert y.shape == (512 - 8, 512 - 8)
    tail = ["--model", "deblur", "--tile", "256", "-q"]
    assert main(["reconstruct", str(blurred), str(sharp), *common, *tail]) == 0
    assert np.asarray(Image.open(sharp)).shape == y.shape
