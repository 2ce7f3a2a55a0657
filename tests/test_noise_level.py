"""Noise-level estimation: its accuracy, the parts it leaves out, and where it is used."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from rimkit.cli import main
from rimkit.evaluate import DenoiseProtocol, InpaintProtocol
from rimkit.evaluate.runner import EvalSpec, baseline_method, blind_method, run_eval
from rimkit.noise_level import estimate_noise_level
from rimkit.operators import Inpainting
from rimkit.pipeline import restore
from rimkit.zoo import load_model


def camera() -> np.ndarray:
    return skimage.data.camera() / 255.0  # (512, 512) in [0, 1]


def noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    return image + np.random.default_rng(seed).normal(0, sigma, image.shape)


@pytest.mark.parametrize("sigma255", [5, 25, 50])
def test_pca_estimate_is_within_six_percent_on_a_natural_image(sigma255):
    estimate = estimate_noise_level(noisy(camera(), sigma255 / 255)) * 255
    assert abs(estimate - sigma255) < 0.06 * sigma255


def test_pca_beats_the_wavelet_estimate_at_low_noise():
    y = noisy(camera(), 5 / 255)
    pca, wavelet = (abs(estimate_noise_level(y, method=m) * 255 - 5) for m in ("pca", "wavelet"))
    assert pca < 0.5 < wavelet  # texture leaks into the finest wavelet band


def test_a_small_image_is_not_biased_low():
    # the smallest sample eigenvalue of 58^2 patches in 49 dimensions is about 21 % low
    estimates = [estimate_noise_level(noisy(np.zeros((64, 64)), 0.1, s)) for s in range(4)]
    assert abs(np.mean(estimates) - 0.1) < 0.003


def test_the_estimate_scales_with_the_image():
    y = noisy(camera(), 0.1)
    assert estimate_noise_level(7.0 * y) == pytest.approx(7.0 * estimate_noise_level(y))


def test_a_mask_leaves_out_the_unobserved_pixels():
    blocks = np.ones((512, 512), bool)
    blocks[256:] = False  # the lower half is a hole
    y = noisy(camera(), 25 / 255) * blocks
    with_mask = estimate_noise_level(y, mask=blocks) * 255
    assert abs(with_mask - 25) < 1.5
    assert estimate_noise_level(y) * 255 < 20  # the flat zeros pass as noiseless texture


def test_clipped_pixels_are_left_out():
    y = np.round(np.clip(noisy(camera(), 25 / 255), 0, 1) * 255) / 255  # an 8-bit photo
    assert abs(estimate_noise_level(y) * 255 - 25) < 1.25


def test_a_colour_image_gets_the_mean_of_its_channels():
    rng = np.random.default_rng(2)
    y = 0.5 + rng.normal(0, 1, (128, 128, 3)) * np.array([0.05, 0.1, 0.15])
    assert estimate_noise_level(y) == pytest.approx(0.1, abs=0.004)


@pytest.mark.parametrize(
    ("image", "kwargs", "message"),
    [
        (np.zeros((32, 32), complex), {}, "real image"),
        (np.zeros(100), {}, "real image"),
        (np.full((32, 32), np.nan), {}, "NaN"),
        (np.zeros((6, 40)), {}, "at least 9x9"),
        (np.zeros((32, 32)), {"method": "mad"}, "unknown noise-level method"),
        (np.zeros((32, 32)), {"mask": np.ones((3, 3))}, "the mask is"),
        (np.zeros((32, 32)), {"mask": np.ones((32, 32)), "method": "wavelet"}, "takes no mask"),
        (np.zeros((32, 32)), {"mask": np.eye(32)}, "give the noise level"),
    ],
)
def test_bad_input_is_named(image, kwargs, message):
    with pytest.raises(ValueError, match=message):
        estimate_noise_level(image, **kwargs)


def test_restore_with_auto_sigma_tells_the_model_the_estimate():
    model = load_model("denoise-gray").model
    x = camera()[128:224, 128:224]
    y = noisy(x, 25 / 255)
    auto = restore(y, "denoise", model, sigma="auto")
    told = restore(y, "denoise", model, sigma=auto.sigma)
    assert abs(auto.sigma - 25) < 1.25
    np.testing.assert_array_equal(auto.image, told.image)
    error = np.mean((auto.image - x) ** 2)
    assert error < 0.25 * np.mean((y - x) ** 2)


@pytest.mark.parametrize(
    ("task", "sigma", "message"),
    [("mri", "auto", "not one: give the noise level"), ("denoise", "high", "a number")],
)
def test_restore_refuses_auto_sigma_where_it_cannot_apply(task, sigma, message):
    model = load_model("denoise-gray").model
    with pytest.raises(ValueError, match=message):
        restore(np.zeros((16, 16)), task, model, sigma=sigma)


def test_cli_reconstruct_estimates_sigma_and_refuses_a_bad_one(tmp_path, capsys):
    x = camera()[128:224, 128:224]
    path = tmp_path / "noisy.png"
    Image.fromarray(np.round(np.clip(noisy(x, 15 / 255), 0, 1) * 255).astype(np.uint8)).save(path)
    status = main(["reconstruct", str(path), str(tmp_path / "out.png"), "--task", "denoise",
                   "--sigma", "auto", "--quiet"])  # fmt: skip
    assert status == 0 and (tmp_path / "out.png").exists()
    for name, extra in (("out2.png", ["--sigma", "auto"]), ("out3.png", [])):  # the default
        status = main(["reconstruct", str(path), str(tmp_path / name), "--task", "denoise",
                       *extra])  # fmt: skip
        out = capsys.readouterr().out
        estimate = float(out.split("sigma ")[1].split()[0])
        assert status == 0 and abs(estimate - 15) < 1
    with pytest.raises(SystemExit) as exit_info:
        main(["reconstruct", str(path), str(tmp_path / "out4.png"), "--task", "denoise",
              "--sigma", "lots"])  # fmt: skip
    assert exit_info.value.code == 2 and "or auto" in capsys.readouterr().err
    assert not (tmp_path / "out4.png").exists()


def test_a_blind_method_is_told_the_estimate_not_the_truth():
    told = []

    def spy(case):
        told.append(case.sigma)
        return [case.y]

    base = baseline_method("tv", "denoise")
    method = blind_method(type(base)("spy", spy))
    y_case = DenoiseProtocol(25).cases(camera(), 0, "camera")[0]
    method.run(y_case)
    assert told[0] != y_case.sigma and abs(told[0] * 255 - 25) < 1.25
    blocks = torch.ones(1, 1, 512, 512)
    blocks[..., 256:, :] = 0  # the lower half missing
    x = torch.from_numpy(camera())[None, None]
    y = Inpainting(blocks)(x + 10 / 255 * torch.randn(x.shape, generator=torch.Generator()))
    method.run(dataclasses.replace(y_case, operator=Inpainting(blocks), y=y, task="inpaint"))
    assert abs(told[1] * 255 - 10) < 0.6  # without the mask: the flat holes pull it down
    scattered = InpaintProtocol(0.5, sigma=10).cases(camera(), 0, "camera")[0]
    method.run(scattered)  # no 7x7 patch is whole: local plane fits instead
    assert abs(told[2] * 255 - 10) < 1.5


@pytest.mark.parametrize(("observed", "sigma255"), [(0.8, 5), (0.5, 25), (0.2, 50)])
def test_a_scattered_mask_gets_an_estimate_from_local_plane_fits(observed, sigma255):
    rng = np.random.default_rng(3)
    mask = rng.random((512, 512)) < observed  # too few whole 7x7 patches for the PCA
    y = noisy(camera(), sigma255 / 255) * mask
    estimate = estimate_noise_level(y, mask=mask) * 255
    assert sigma255 - 0.5 < estimate < sigma255 + 0.15 * sigma255 + 1  # texture: biased high
    ramp = np.linspace(0, 1, 256)[None, :] * np.ones((256, 1))
    planar = noisy(ramp, sigma255 / 255) * mask[:256, :256]
    estimate = estimate_noise_level(planar, mask=mask[:256, :256]) * 255
    assert abs(estimate - sigma255) < 0.04 * sigma255  # no texture: no bias


def test_a_scattered_mask_with_too_few_observed_pixels_is_refused():
    mask = np.random.default_rng(4).random((40, 40)) < 0.3  # about 480 observed pixels
    with pytest.raises(ValueError, match=r"only \d+ observed pixel\(s\).*give the noise level"):
        estimate_noise_level(noisy(np.zeros((40, 40)), 0.1) * mask, mask=mask)


def test_eval_sigma_estimate_is_refused_where_the_measurement_is_no_image(tmp_path):
    spec = EvalSpec(task="projection", data=tmp_path, baselines=("tv",), sigma_estimate="pca")
    with pytest.raises(ValueError, match="leave it out"):
        run_eval(spec)
    with pytest.raises(ValueError, match="unknown noise-level estimator"):
        blind_method(baseline_method("tv", "denoise"), "mad")


def test_an_image_clipped_almost_everywhere_still_gets_an_estimate():
    halves = np.zeros((64, 64))
    halves[:, 32:] = 1
    y = np.clip(noisy(halves, 0.3), 0, 1)  # half its pixels at 0 or 1
    assert 0.1 < estimate_noise_level(y) < 0.3  # clipped patches kept: biased low
