"""Reconstruction: one call for a RIM, tiles without seams, loading models, `rimkit reconstruct`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from rimkit.cli import main
from rimkit.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from rimkit.io import to_tensor
from rimkit.models import RIMConfig
from rimkit.models.opponent import from_opponent, to_opponent
from rimkit.operators import (
    BicubicDownsample,
    CartesianMRI,
    ComplexAsChannels,
    Identity,
    Inpainting,
    bicubic_upsample,
    random_mask,
    random_projection,
    variable_density_mask,
)
from rimkit.pipeline import restore
from rimkit.reconstruct import RIMReconstructor, initial_estimate
from rimkit.train.checkpoint import export_weights
from rimkit.zoo import load_model


def busy_model(channels: int = 1, steps: int = 3):
    """A small RIM whose output layer is non-zero, so it changes its input."""
    torch.manual_seed(0)
    model = RIMConfig(channels=channels, features=6, hidden=6, train_steps=steps).build()
    with torch.no_grad():
        model.cell.out.weight.normal_(0, 0.05)
    return model.eval()


def saved_model(tmp_path, channels: int = 1):
    model = busy_model(channels)
    path = tmp_path / f"model{channels}.safetensors"
    cfg = RIMConfig(channels=channels, features=6, hidden=6, train_steps=3)
    export_weights(path, model, {"config": {"model": cfg.to_dict()}})
    return path, model


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


@pytest.mark.parametrize("kind", ["denoise", "inpaint", "sr"])
def test_tiles_blend_without_seams(kind):
    torch.manual_seed(1)
    x = torch.rand(1, 1, 90, 100)
    if kind == "denoise":
        op, y = Identity(), x
    elif kind == "inpaint":
        op = Inpainting(random_mask((1, 1, 90, 100), 0.5, torch.Generator().manual_seed(0)))
        y = op(x)
    else:
        op, y = BicubicDownsample(2), BicubicDownsample(2)(torch.rand(1, 1, 180, 200))
    model = busy_model()
    whole = RIMReconstructor(model)(y, op, 0.1)
    tiled = RIMReconstructor(model, tile=48, overlap=16)(y, op, 0.1)
    assert len(tiled.estimates) == len(whole.estimates)
    assert tiled.final.shape == whole.final.shape
    assert _psnr(tiled.final, whole.final) > 45
    # no seams: the difference to the whole-image result is small and has no steps
    err = (tiled.final - whole.final)[0, 0]
    assert err.abs().max() < 0.05
    assert (err[1:] - err[:-1]).abs().max() < 0.02 and (err[:, 1:] - err[:, :-1]).abs().max() < 0.02


def test_tiles_reject_operators_that_do_not_act_locally():
    op = random_projection("gaussian", (1, 8, 8), 0.5)
    with pytest.raises(ValueError, match="tiled reconstruction supports"):
        RIMReconstructor(busy_model(), tile=4, overlap=1)(op(torch.rand(1, 1, 8, 8)), op, 0.1)


def test_initial_estimates_follow_the_operator():
    y = torch.rand(1, 1, 8, 8)
    assert torch.equal(initial_estimate(Identity(), y), y)
    lr = torch.rand(1, 1, 4, 4)
    torch.testing.assert_close(
        initial_estimate(BicubicDownsample(2), lr), bicubic_upsample(lr, 2).clamp(0, 1)
    )
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., ::2] = 1
    filled = initial_estimate(Inpainting(mask), y * mask)
    assert torch.allclose(filled[..., 1::2], (y * mask).sum() / mask.sum())
    mri = ComplexAsChannels(CartesianMRI(torch.ones(1, 1, 8, 8)))
    k = mri(torch.cat([y, torch.zeros_like(y)], 1))
    torch.testing.assert_close(initial_estimate(mri, k)[:, :1], y, atol=1e-6, rtol=0)


def test_load_model_round_trips_weights_and_names_bad_sources(tmp_path):
    path, model = saved_model(tmp_path)
    loaded = load_model(path)
    restored = loaded.model.state_dict()
    for name, a in model.state_dict().items():
        b = restored[name]
        assert torch.equal(a, b), name
    assert loaded.config["model"]["features"] == 6
    with pytest.raises(ValueError, match="unknown model"):
        load_model(tmp_path / "nothing")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot read"):
        load_model(bad)


def test_gray_model_restores_colour_super_resolution_on_y():
    rgb = 0.4 + 0.2 * np.random.default_rng(0).random((10, 12, 3))  # no clipping after SR
    out = restore(rgb, "sr", busy_model(), scale=2)
    assert out.image.shape == (20, 24, 3) and len(out.frames) == 3
    chroma = bicubic_upsample(torch.from_numpy(np.moveaxis(rgb_to_ycbcr(rgb), -1, 0))[None], 2)
    np.testing.assert_allclose(
        rgb_to_ycbcr(out.image)[..., 1:],
        np.moveaxis(chroma[0].numpy(), 0, -1)[..., 1:],
        atol=1e-6,
    )


def test_gray_rim_denoises_colour_in_opponent_coordinates():
    rgb = np.random.default_rng(1).random((9, 11, 3))
    model = busy_model()
    out = restore(rgb, "denoise", model, sigma=20)
    z = to_opponent(to_tensor(rgb))  # (1, 3, 9, 11)
    per_channel = [
        restore(z[0, c].numpy(), "denoise", model, sigma=20 / math.sqrt(3)).image for c in range(3)
    ]
    want = from_opponent(torch.from_numpy(np.stack(per_channel))[None].float())[0]
    np.testing.assert_allclose(
        out.image, np.clip(np.moveaxis(want.numpy(), 0, -1), 0, 1), atol=1e-5
    )


def test_mri_restores_a_magnitude_image():
    model = RIMConfig(cell="mri", channels=2, link="identity", features=4, hidden=4, train_steps=2)
    x = np.random.default_rng(2).random((16, 16))
    mask = np.ones((16, 16))
    op = CartesianMRI(torch.ones(1, 1, 16, 16))
    k = op(torch.from_numpy(x)[None, None])[0, 0].numpy()
    out = restore(k, "mri", model.build(), mask=mask)
    np.testing.assert_allclose(out.image, x, atol=1e-5)  # untrained: the zero-filled image


def test_mri_restores_k_space_of_any_scale_alike():
    cfg = RIMConfig(cell="mri", channels=2, features=4, hidden=4, train_steps=3)
    torch.manual_seed(0)
    model = cfg.build()
    torch.nn.init.normal_(model.cell.out.weight, 0, 0.1)  # a model that changes its input
    x = np.random.default_rng(3).random((16, 16))
    mask = np.zeros((16, 16))
    mask[:, ::2] = 1
    op = CartesianMRI(torch.from_numpy(mask)[None, None])
    k = op(torch.from_numpy(x)[None, None])[0, 0].numpy()
    unit = restore(k, "mri", model, mask=mask, sigma=2)
    scaled = restore(k * 1e-4, "mri", model, mask=mask, sigma=2e-4)
    zero_filled = np.abs(op.adjoint(torch.from_numpy(k)[None, None])[0, 0].numpy())
    assert not np.allclose(unit.image, zero_filled, atol=1e-3)
    np.testing.assert_allclose(scaled.image, unit.image * 1e-4, rtol=1e-4, atol=1e-9)
    with pytest.raises(ValueError, match="nothing to restore"):
        restore(np.zeros((16, 16), complex), "mri", model, mask=mask)


def test_a_gray_model_restores_mri_k_space_as_a_real_image():
    cfg = RIMConfig(features=4, hidden=4, train_steps=2)
    x = np.random.default_rng(4).random((16, 16))
    mask = np.ones((16, 16))
    k = CartesianMRI(torch.ones(1, 1, 16, 16))(torch.from_numpy(x)[None, None])[0, 0].numpy()
    out = restore(k, "mri", cfg.build(), mask=mask)  # untrained: its start, |zero-filled|
    np.testing.assert_allclose(out.image, x, atol=1e-3)  # (the sigmoid link clamps near 0, 1)
    rgb = RIMConfig(channels=3, features=4, hidden=4, train_steps=2).build()
    with pytest.raises(ValueError, match="or a gray one"):
        restore(k, "mri", rgb, mask=mask)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "denoise"}, "needs at least 9x9 pixels: give the noise level"),
        ({"task": "denoise", "sigma": 300}, r"\[0, 255\]"),
        ({"task": "inpaint"}, "needs the sampling mask"),
        ({"task": "inpaint", "mask": np.ones((3, 3))}, "give the mask written"),
        ({"task": "sr", "scale": 1}, "integer >= 2"),
        ({"task": "paint"}, "unknown task"),
    ],
)
def test_restore_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        restore(np.zeros((8, 8)), model=busy_model(), **kwargs)


def test_colour_model_refuses_gray_input():
    with pytest.raises(ValueError, match="3-channel images but the input has 1"):
        restore(np.zeros((8, 8)), "denoise", busy_model(channels=3), sigma=5)


def test_ycbcr_matches_scikit_image_and_inverts():
    from skimage.color import rgb2ycbcr

    rgb = np.random.default_rng(3).random((5, 6, 3))
    np.testing.assert_allclose(rgb_to_ycbcr(rgb) * 255, rgb2ycbcr(rgb), atol=1e-10)
    np.testing.assert_allclose(rgb_to_y(rgb), rgb_to_ycbcr(rgb)[..., 0])
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-12)


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def measurement(tmp_path):
    rng = np.random.default_rng(4)
    pixels = (rng.random((24, 20)) * 255).astype(np.uint8)
    path = tmp_path / "noisy.png"
    Image.fromarray(pixels).save(path)
    return path


def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_reconstruct_writes_output_and_trajectory(tmp_path, measurement, capsys):
    model, _ = saved_model(tmp_path)
    out, gif = tmp_path / "clean.png", tmp_path / "steps.gif"
    args = ("reconstruct", measurement, out, "--task", "denoise", "--sigma", 25, "--model", model)
    status, stdout, err = _run(capsys, *args, "--trajectory", gif)
    assert status == 0 and "3 steps" in stdout and "past the T" not in err
    assert f"and every step to {gif}" in stdout
    assert np.asarray(Image.open(out)).shape == (24, 20)
    assert Image.open(gif).n_frames == 3
    status, _, err = _run(capsys, *args)
    assert status == 2 and "--force" in err
    frames = tmp_path / "frames"
    status, _, err = _run(capsys, *args, "--force", "--trajectory", frames, "--steps", 5)
    assert status == 0 and sorted(p.name for p in frames.iterdir())[-1] == "step-005.png"
    assert f"--steps 5 runs '{model}' past the T = 3 steps it was trained for" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "denoise", "--sigma", "-4"], r"\[0, 255\]"),
        (["--task", "denoise", "--sigma", "5", "--model", "nope"], "unknown model 'nope'"),
        (["--task", "sr", "--scale", "2.5"], "integer >= 2"),
        (["--task", "inpaint", "--mask", "{small}"], "give the mask written"),
        (["--task", "denoise", "--sigma", "5", "--steps", "0"], "--steps must be >= 1"),
    ],
)
def test_cli_reconstruct_bad_input(tmp_path, measurement, capsys, extra, message):
    model, _ = saved_model(tmp_path)
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "small.png")
    extra = [e.format(small=tmp_path / "small.png") for e in extra]
    if "--model" not in extra:
        extra += ["--model", str(model)]
    status, _, err = _run(capsys, "reconstruct", measurement, tmp_path / "o.png", *extra)
    assert status == 2, err
    assert __import__("re").search(message, err) and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_cli_reconstruct_lensing_recovers_the_source_better_than_the_lensed_image(tmp_path, capsys):
    """The shipped lensing model undoes a lens given on the command line, and so does 3task,
    trained on random projections only, by transfer."""
    from skimage import data

    source = data.camera()[::8, ::8]  # 64x64
    Image.fromarray(source).save(tmp_path / "source.png")
    lens = ["--einstein-radius", 0.45, "--axis-ratio", 0.7, "--angle", 30, "--shear", 0.02, -0.01]
    argv = ["--task", "lensing", *lens, "-q"]
    assert _run(capsys, "degrade", tmp_path / "source.png", tmp_path / "lensed.png", *argv)[0] == 0
    lensed = tmp_path / "lensed.png"
    for name, model in (("lensing.png", []), ("3task.png", ["--model", "3task"])):
        status, _, err = _run(capsys, "reconstruct", lensed, tmp_path / name, *argv, *model)
        assert status == 0, err
    truth = source / 255.0

    def psnr(name):
        return -10 * np.log10(np.mean((np.asarray(Image.open(tmp_path / name)) / 255 - truth) ** 2))

    assert psnr("3task.png") > psnr("lensed.png") + 5
    assert psnr("lensing.png") > psnr("3task.png") + 1
    status, _, err = _run(capsys, "reconstruct", lensed, tmp_path / "t.png", *argv, "--tile", 32)
    assert status == 2 and "tiles do not apply" in err


def test_cli_reconstruct_refuses_nan_input_and_same_output(tmp_path, capsys):
    np.save(tmp_path / "nan.npy", np.array([[0.1, np.nan], [0.2, 0.3]]))
    status, _, err = _run(
        capsys,
        "reconstruct",
        tmp_path / "nan.npy",
        tmp_path / "o.npy",
        "--task",
        "denoise",
        "--sigma",
        5,
        "--model",
        saved_model(tmp_path)[0],
    )
    assert status == 2 and "NaN or Inf" in err
    status, _, err = _run(
        capsys, "reconstruct", tmp_path / "nan.npy", tmp_path / "nan.npy", "--task", "denoise"
    )
    assert status == 2 and "is the INPUT" in err


def test_cli_models_lists_every_shipped_card_or_says_none(capsys):
    from rimkit.zoo import WEIGHTS_DIR

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    cards = [json.loads(p.read_text()) for p in sorted(WEIGHTS_DIR.glob("*.json"))]
    if not cards:
        assert "no pretrained models" in out
    for card in cards:
        assert f"{card['name']}: {card['task']}" in out
        assert all(f"{key}: {value}" in out for key, value in card["scores"].items())
        assert f"({card['inference_gflop']:g} GFLOP per 481x321 image at T)" in out


def test_cli_reconstruct_refuses_a_scale_the_model_was_not_trained_for(tmp_path, capsys):
    model = RIMConfig(features=4, hidden=4, train_steps=2)
    path = tmp_path / "sr.safetensors"
    config = {"model": model.to_dict(), "tasks": [{"name": "sr", "scales": [2, 4]}]}
    export_weights(path, model.build(), {"config": config})
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "lr.png")
    argv = ("reconstruct", tmp_path / "lr.png", tmp_path / "o.png", "--task", "sr")
    status, _, err = _run(capsys, *argv, "--scale", 3, "--model", path)
    assert status == 2 and "trained for scales 2, 4, not 3" in err
    assert _run(capsys, *argv, "--scale", 4, "--model", path, "-q")[0] == 0


def test_restore_refuses_a_scale_the_loaded_model_was_not_trained_for(tmp_path):
    from rimkit.pipeline import restore
    from rimkit.zoo import load_model

    model = RIMConfig(features=4, hidden=4, train_steps=2)
    path = tmp_path / "sr.safetensors"
    config = {"model": model.to_dict(), "tasks": [{"name": "sr", "scales": [2, 4]}]}
    export_weights(path, model.build(), {"config": config})
    loaded = load_model(path).model
    assert loaded.trained_scales == (2, 4)
    low = np.full((10, 10), 0.5)
    with pytest.raises(ValueError, match="trained for scales 2, 4, not 3"):
        restore(low, "sr", loaded, scale=3)
    assert restore(low, "sr", loaded, scale=3, scales=(3,)).image.shape == (30, 30)
    assert restore(low, "sr", loaded, scale=4).image.shape == (40, 40)


def test_cli_reconstruct_names_a_missing_or_broken_input(tmp_path, capsys):
    model, _ = saved_model(tmp_path)
    (tmp_path / "fake.png").write_text("not an image")
    for name, message in (("missing.png", "does not exist"), ("fake.png", "not a readable image")):
        argv = ("reconstruct", tmp_path / name, tmp_path / "o.png", "--task", "denoise")
        status, _, err = _run(capsys, *argv, "--sigma", 5, "--model", model)
        assert status == 2 and message in err


def test_progress_ticks_once_per_step():
    from rimkit.likelihood import GaussianLikelihood
    from rimkit.reconstruct import CountingLikelihood

    class Counter:
        n = 0

        def update(self, k):
            self.n += k

    y, counter = torch.rand(1, 1, 8, 8), Counter()
    busy_model()(CountingLikelihood(GaussianLikelihood(Identity(), y, 0.1), counter), x0=y, steps=6)
    assert counter.n == 6


def test_pretrained_models_are_reachable_from_the_package():
    import rimkit
    from rimkit.zoo import WEIGHTS_DIR

    on_disk = sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))
    assert [card.name for card in rimkit.list_models()] == on_disk
    for name in on_disk:
        assert rimkit.load_pretrained(name).channels >= 1
    with pytest.raises(ValueError, match="unknown pretrained model"):
        rimkit.load_pretrained("no-such-model")


def test_tiles_round_to_the_scale():
    op = BicubicDownsample(3)
    y = op(torch.rand(1, 1, 150, 120))
    model = busy_model()
    tiled = RIMReconstructor(model, tile=50, overlap=10)(y, op, 0.0)  # 48 and 12 pixels
    assert _psnr(tiled.final, RIMReconstructor(model)(y, op, 0.0).final) > 40


def test_real_estimate_gets_a_real_gradient_from_a_complex_operator():
    from rimkit.likelihood import GaussianLikelihood

    op = CartesianMRI(torch.ones(1, 1, 8, 8))
    x = torch.rand(1, 1, 8, 8)
    grad = GaussianLikelihood(op, op(torch.rand(1, 1, 8, 8)), 0.1).grad(x)
    assert grad.dtype == x.dtype


@pytest.mark.parametrize(
    ("tasks", "start"),
    [
        ([{"name": "projection", "kinds": ["gaussian"], "ratio": [0.3, 0.5]}], "flat"),
        ([{"name": "denoise", "sigma": [5, 50]}], "task"),
    ],
)
def test_a_model_starts_where_its_training_started(image_folder, tmp_path, tasks, start):
    from rimkit.likelihood import GaussianLikelihood
    from rimkit.train import ExperimentConfig, train

    config = {
        "model": {"features": 4, "hidden": 4, "train_steps": 2},
        "data": {"train": str(image_folder), "val_images": 2, "val_patches": 4, "patch_size": 16},
        "tasks": tasks,
        "optim": {"iterations": 1, "batch_size": 2, "val_every": 1, "checkpoint_every": 1},
    }
    train(ExperimentConfig.from_dict(config), tmp_path / "run", progress=False)
    model = load_model(tmp_path / "run").model
    assert model.start == start

    y = torch.rand(1, 1, 16, 16)
    x0 = torch.full_like(y, 0.5) if start == "flat" else y
    with torch.no_grad():
        expected = model(GaussianLikelihood(Identity(), y, 0.1), x0=x0).final
    torch.testing.assert_close(RIMReconstructor(model)(y, Identity(), 0.1).final, expected)


def test_cli_denoises_a_colour_image_with_the_shipped_colour_model(tmp_path, capsys):
    from skimage import data as examples

    truth = examples.astronaut()[100:164, 180:244] / 255.0  # (64, 64, 3), a face and a flag
    noisy = truth + 25 / 255 * np.random.default_rng(0).standard_normal(truth.shape)
    np.save(tmp_path / "noisy.npy", noisy)
    out = tmp_path / "clean.npy"
    status, stdout, _ = _run(
        capsys, "reconstruct", tmp_path / "noisy.npy", out, "--task", "denoise", "--sigma", 25
    )
    assert status == 0 and "denoise-rgb" in stdout
    clean = np.load(out)
    assert clean.shape == (64, 64, 3)
    mse = lambda a: float(np.mean((np.clip(a, 0, 1) - truth) ** 2))  # noqa: E731
    assert 10 * np.log10(mse(noisy) / mse(clean)) > 6  # at least 6 dB better than the input
    gray = restore(noisy, "denoise", load_model("denoise-gray").model, sigma=25).image
    assert mse(clean) < mse(gray)  # the colour fine-tune beats the gray weights it started from


def test_every_task_has_a_shipped_default_model_that_fits_it():
    from rimkit.cli import DEFAULT_MODELS
    from rimkit.zoo import list_models

    cards = {card.name: card for card in list_models()}
    for task, by_channels in DEFAULT_MODELS.items():
        for channels, name in by_channels.items():
            assert name in cards, f"rimkit reconstruct --task {task} wants {name!r}"
            model = load_model(name).model
            assert model.channels in ((2,) if task == "mri" else (1, channels)), (task, name)


def test_the_shipped_mri_model_beats_zero_filled_on_a_generated_slice():
    yy, xx = np.mgrid[-1:1:96j, -1:1:96j]
    head = ((xx / 0.8) ** 2 + (yy / 0.9) ** 2 < 1) * (0.5 + 0.3 * (xx**2 + yy**2 < 0.2))
    gen = torch.Generator().manual_seed(0)
    mask = variable_density_mask((96, 96), 4.0, generator=gen)[0, 0].double().numpy()
    op = CartesianMRI(torch.from_numpy(mask)[None, None])
    k = op(torch.from_numpy(head)[None, None])[0, 0].numpy()
    zero_filled = np.abs(op.adjoint(torch.from_numpy(k)[None, None])[0, 0].numpy())
    restored = restore(k, "mri", load_model("mri").model, mask=mask).image
    error = lambda x: np.mean((x - head) ** 2)  # noqa: E731
    assert error(restored) < 0.4 * error(zero_filled)  # measured: 0.16 (0.21 single-coil mri)


def test_the_shipped_deblur_model_beats_the_blurred_input_and_the_transfer_model():
    from rimkit.io import read_image
    from rimkit.operators import Blur, motion_kernel

    truth = read_image("example:camera", gray=True)[128:256, 128:256]  # scikit-image's camera
    kernel = motion_kernel(9, 30)
    x = torch.from_numpy(truth)[None, None]
    noise = 2.55 / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    y = (Blur(kernel.double())(x) + noise.double())[0, 0].numpy()
    mse = lambda a: float(np.mean((np.clip(a, 0, 1) - truth) ** 2))  # noqa: E731
    sharp = restore(y, "blur", load_model("deblur").model, kernel=kernel.numpy(), sigma=2.55)
    transfer = restore(y, "blur", load_model("3task").model, kernel=kernel.numpy(), sigma=2.55)
    assert mse(sharp.image) < 0.3 * mse(y)  # measured: 0.14 of it (23.2 -> 31.7 dB)
    assert mse(sharp.image) < 0.6 * mse(transfer.image)  # measured: 0.34 of it


def test_the_shipped_irim_denoises_at_its_t_and_trails_denoise_gray():
    from rimkit.io import read_image
    from rimkit.models import InvertibleRIM

    truth = read_image("example:camera", gray=True)[128:256, 128:256]  # scikit-image's camera
    gen = torch.Generator().manual_seed(0)
    y = truth + 25 / 255 * torch.randn(truth.shape, generator=gen).numpy()
    mse = lambda a: float(np.mean((np.clip(a, 0, 1) - truth) ** 2))  # noqa: E731
    irim = load_model("irim-denoise-gray").model
    assert isinstance(irim, InvertibleRIM) and irim.train_steps == 8
    denoised = restore(y, "denoise", irim, sigma=25).image
    reference = restore(y, "denoise", load_model("denoise-gray").model, sigma=25).image
    assert mse(denoised) < 0.15 * mse(y)  # measured: 0.124 of it
    assert mse(reference) < mse(denoised) < 1.4 * mse(reference)  # measured: 1.20 times


def test_listing_the_models_does_not_import_torch():
    """``rimkit models`` reads the cards only: torch's import (seconds) waits for a load."""
    import subprocess
    import sys

    code = (
        "import sys, contextlib, io\n"
        "from rimkit.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out: status = main(['models'])\n"
        "import rimkit.zoo\n"
        "print(status, 'torch' in sys.modules, 'denoise-gray:' in out.getvalue())\n"
        "rimkit.zoo.load_model\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "False", "True", "True"]


def test_the_operator_is_copied_to_the_models_device_never_moved():
    from rimkit.operators import Blur, gaussian_kernel
    from rimkit.reconstruct import in_model_dtype

    blur = Blur(gaussian_kernel(1.0))
    assert in_model_dtype(blur, torch.float32, "cpu") is blur  # already there: no copy
    moved = in_model_dtype(blur, torch.float32, "meta")  # stands in for a GPU
    assert moved.kernel.device.type == "meta" and blur.kernel.device.type == "cpu"
