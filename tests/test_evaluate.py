"""rimkit.evaluate: metrics against scikit-image, the protocols, reports and `rimkit eval`."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import metrics as skm
from skimage.color import rgb2ycbcr

from rimkit.cli import main
from rimkit.evaluate import figures, metrics, runner
from rimkit.evaluate.benchmarking import provenance, replace_section
from rimkit.evaluate.protocols import (
    DenoiseProtocol,
    InpaintProtocol,
    LensingProtocol,
    MRIProtocol,
    ProjectionProtocol,
    SuperResolutionProtocol,
    add_noise,
    psnr_curve,
    score,
    sr_measurement,
)
from rimkit.evaluate.report import markdown_table, parse_markdown_table, write_report
from rimkit.io import from_tensor, to_tensor
from rimkit.models import RIMConfig, build_rim
from rimkit.operators import BicubicDownsample
from rimkit.reconstruct import RIMReconstructor
from rimkit.train.checkpoint import export_weights


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _smooth(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A smooth-ish 8-bit image in [0, 1] (structure for SSIM, not white noise)."""
    rng = _rng(seed)
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = 0.5 + 0.3 * np.sin(6 * xx + 3 * yy + seed)
    if len(shape) == 3:
        base = np.stack([base, np.roll(base, 3, 0), np.roll(base, 5, 1)], axis=-1)
    return np.round(np.clip(base + 0.05 * rng.random(shape), 0, 1) * 255) / 255


# ----------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("peak", [1.0, 255.0])
def test_psnr_matches_skimage(peak):
    ref = _rng(1).random((20, 17)) * peak
    est = np.clip(ref + _rng(2).normal(0, 0.05 * peak, ref.shape), 0, peak)
    expected = skm.peak_signal_noise_ratio(ref, est, data_range=peak)
    assert metrics.psnr(est, ref, peak) == pytest.approx(expected, abs=1e-10)
    assert math.isinf(metrics.psnr(ref, ref, peak))


@pytest.mark.parametrize("shape", [(32, 27), (24, 30, 3)])
@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_ssim_matches_skimage_gaussian(shape, data_range):
    ref = _smooth(shape, 3) * data_range
    est = np.clip(ref + _rng(4).normal(0, 0.08 * data_range, shape), 0, data_range)
    expected = skm.structural_similarity(
        ref,
        est,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=data_range,
        channel_axis=-1 if len(shape) == 3 else None,
    )
    assert metrics.ssim(est, ref, data_range) == pytest.approx(expected, abs=1e-10)


def test_ssim_uniform_window_matches_skimage_default():
    ref, est = _smooth((25, 25), 5), _smooth((25, 25), 6)
    expected = skm.structural_similarity(ref, est, data_range=1.0)
    assert metrics.ssim(est, ref, 1.0, gaussian=False) == pytest.approx(expected, abs=1e-10)


def test_metrics_accept_a_tensor_like_the_array():
    ref = _smooth((16, 16, 3), 7)
    est = _smooth((16, 16, 3), 8)
    t_est = to_tensor(est, torch.float64)
    assert metrics.psnr(t_est, ref) == pytest.approx(metrics.psnr(est, ref), abs=1e-12)
    assert metrics.ssim(t_est, ref) == pytest.approx(metrics.ssim(est, ref), abs=1e-12)


def test_y_channel_known_values_and_skimage():
    white, black = np.ones((2, 2, 3)), np.zeros((2, 2, 3))
    np.testing.assert_allclose(metrics.rgb_to_y(white) * 255, 235.0, atol=1e-9)
    np.testing.assert_allclose(metrics.rgb_to_y(black) * 255, 16.0, atol=1e-9)
    rgb = _rng(9).random((5, 6, 3))
    np.testing.assert_allclose(metrics.rgb_to_y(rgb) * 255, rgb2ycbcr(rgb)[..., 0], atol=1e-9)
    gray = _rng(10).random((4, 4))
    assert metrics.y_channel(gray) is not None and np.array_equal(metrics.y_channel(gray), gray)
    with pytest.raises(ValueError, match="RGB"):
        metrics.rgb_to_y(gray)


@pytest.mark.parametrize("border", [0, 1, 3])
def test_shave_removes_exactly_border_pixels_per_side(border):
    image = np.arange(10 * 12 * 3, dtype=float).reshape(10, 12, 3)
    out = metrics.shave(image, border)
    assert out.shape == (10 - 2 * border, 12 - 2 * border, 3)
    assert np.array_equal(out, image[border : 10 - border, border : 12 - border])
    with pytest.raises(ValueError, match="cannot shave"):
        metrics.shave(image, 5)


def test_crop_to_multiple_and_quantize():
    assert metrics.crop_to_multiple(np.zeros((10, 14)), 4).shape == (8, 12)
    q = metrics.quantize(np.array([[-0.5, 0.1234, 0.5, 1.7]]))
    assert np.array_equal(q * 255, np.round(q * 255)) and q.min() == 0 and q.max() == 1
    assert metrics.to_8bit(np.array([[0.5, 1.2]])).tolist() == [[128, 255]]


def test_mri_metrics_follow_fastmri():
    ref = _smooth((24, 24), 11) * 3.0
    est = (ref + _rng(12).normal(0, 0.1, ref.shape)) * np.exp(0.3j)  # complex: magnitude counts
    m = metrics.mri_metrics(est, ref)
    mag = np.abs(est)
    assert m["nmse"] == pytest.approx(np.sum((ref - mag) ** 2) / np.sum(ref**2), rel=1e-12)
    peak = ref.max()
    assert m["psnr"] == pytest.approx(skm.peak_signal_noise_ratio(ref, mag, data_range=peak))
    assert m["ssim"] == pytest.approx(skm.structural_similarity(ref, mag, data_range=peak))


# ----------------------------------------------------------------------------- protocols


def test_dncnn_protocol_is_deterministic_per_seed_and_does_not_clip():
    white = np.ones((16, 16))
    protocol = DenoiseProtocol(50, seed=7)
    a = protocol.cases(white, 2, "w")[0]
    b = protocol.cases(white, 2, "w")[0]
    c = protocol.cases(white, 3, "w")[0]
    assert torch.equal(a.y, b.y) and not torch.equal(a.y, c.y)
    noise = torch.randn((1, 1, 16, 16), generator=torch.Generator().manual_seed(9), dtype=float)
    torch.testing.assert_close(a.y, 1.0 + 50 / 255 * noise, rtol=0, atol=1e-12)
    assert a.y.max() > 1.0 and a.y.dtype == torch.float64  # no clipping, float
    assert a.sigma == pytest.approx(50 / 255) and a.setting == "sigma=50"


def test_denoise_patches_are_seeded_crops_each_with_its_own_noise():
    image = _smooth((40, 48))
    protocol = DenoiseProtocol(25, seed=3, patch=16, patches=4)
    cases = protocol.cases(image, 1, "img")
    again = protocol.cases(image, 1, "img")
    assert len(cases) == 4 and len({c.image for c in cases}) == 4
    for case, same in zip(cases, again, strict=True):
        top, left = (int(v) for v in case.image.split("@")[1].split(","))
        crop = torch.as_tensor(image[top : top + 16, left : left + 16], dtype=torch.float64)
        torch.testing.assert_close(case.truth[0, 0], crop)
        assert torch.equal(case.y, same.y) and case.setting == "sigma=25"
    noises = [(c.y - c.truth).flatten() for c in cases]
    assert not torch.allclose(noises[0], noises[1])
    with pytest.raises(ValueError, match="smaller than"):
        DenoiseProtocol(25, patch=64).cases(image, 0, "img")
    with pytest.raises(ValueError, match="patches must be"):
        DenoiseProtocol(25, patch=16, patches=0)


@pytest.mark.parametrize("sigma", [-1.0, math.nan, math.inf])
@pytest.mark.parametrize(
    "make",
    [
        lambda s: DenoiseProtocol(s),
        lambda s: InpaintProtocol(0.5, sigma=s),
        lambda s: ProjectionProtocol("gaussian", 0.3, sigma=s),
        lambda s: LensingProtocol(0.45, sigma=s),
        lambda s: add_noise(torch.zeros(1, 1, 2, 2), s, seed=0),
    ],
    ids=["denoise", "inpaint", "projection", "lensing", "add_noise"],
)
def test_noise_sigma_must_be_finite_and_non_negative(make, sigma):
    with pytest.raises(ValueError, match="sigma must be a finite number >= 0 on the 0-255 scale"):
        make(sigma)


def test_noisy_settings_name_their_sigma():
    assert InpaintProtocol(0.5).setting == "missing=0.5"
    assert InpaintProtocol(0.5, sigma=10).setting == "missing=0.5,sigma=10"
    assert ProjectionProtocol("fourier", 0.25).setting == "fourier,m/n=0.25"
    assert ProjectionProtocol("fourier", 0.25, sigma=2.5).setting == "fourier,m/n=0.25,sigma=2.5"
    assert LensingProtocol(0.3).setting == "einstein=0.3"
    assert LensingProtocol(0.3, sigma=5, psf=1.5).setting == "einstein=0.3,psf=1.5,sigma=5"


def test_quantised_variant_is_on_the_8bit_grid():
    case = DenoiseProtocol(25, quantize=True).cases(_smooth((16, 16)), 0, "x")[0]
    levels = case.y * 255
    assert torch.equal(levels, levels.round()) and case.y.min() >= 0 and case.y.max() <= 1
    plain = add_noise(case.truth, 25, 0)
    torch.testing.assert_close(case.y, (plain.clamp(0, 1) * 255).round() / 255)


def test_sr_protocol_crops_rounds_and_uses_y():
    rgb = _smooth((19, 22, 3), 13)
    case = SuperResolutionProtocol(3).cases(rgb, 0, "img")[0]
    assert case.truth.shape == (1, 1, 18, 21) and case.y.shape == (1, 1, 6, 7)
    assert case.shave == 3 and case.setting == "x3"
    hr = rgb[:18, :21]
    lr = BicubicDownsample(3)(to_tensor(hr, torch.float64))
    lr8 = np.round(np.clip(lr[0].permute(1, 2, 0).numpy(), 0, 1) * 255) / 255
    expected_y = np.round(metrics.rgb_to_y(lr8) * 255) / 255
    np.testing.assert_allclose(case.y[0, 0].numpy(), expected_y, atol=1e-12)
    truth, lr_gray = sr_measurement(_smooth((12, 12), 1), 2)
    assert truth.shape == (12, 12) and lr_gray.shape == (6, 6)
    assert math.isinf(case.score(case.truth)["psnr"])


def test_inpaint_and_projection_protocols_are_reproducible():
    image = _smooth((40, 48), 14)
    inpaint = InpaintProtocol(0.75, seed=1)
    case = inpaint.cases(image, 0, "img")[0]
    assert int((case.operator.mask == 0).sum()) == round(0.75 * 40 * 48)
    assert torch.equal(case.y, inpaint.cases(image, 0, "img")[0].y)
    patches = InpaintProtocol(0.5, patch=16, patches=3).cases(image, 0, "img")
    assert len(patches) == 3 and patches[0].truth.shape == (1, 1, 16, 16)
    proj = ProjectionProtocol("bernoulli", 0.25, patches=2, patch=16)
    first, second = proj.cases(image, 4, "img"), proj.cases(image, 4, "img")
    assert [c.image for c in first] == [c.image for c in second]
    assert all(torch.equal(a.y, b.y) for a, b in zip(first, second, strict=True))
    assert first[0].y.shape == (1, 64) and first[0].setting == "bernoulli,m/n=0.25"


def test_lensing_protocol_draws_a_seeded_lens_per_patch():
    image = _smooth((40, 48), 15)
    protocol = LensingProtocol(0.4, sigma=5, psf=1.0, patch=16, patches=3, seed=2)
    first, second = protocol.cases(image, 1, "img"), protocol.cases(image, 1, "img")
    assert [c.image for c in first] == [c.image for c in second] and len(first) == 3
    assert all(torch.equal(a.y, b.y) for a, b in zip(first, second, strict=True))
    ops = [c.operator for c in first]
    ones = torch.ones(1, 1, 16, 16, dtype=torch.float64)
    assert not torch.allclose(ops[0](ones), ops[1](ones))  # each patch has its own lens
    assert first[0].y.shape == (1, 1, 16, 16) and first[0].sigma == pytest.approx(5 / 255)
    assert runner.tuned_setting(first[0]) == ("lensing", pytest.approx(0.4))
    with pytest.raises(ValueError, match="einstein_radius must be > 0"):
        LensingProtocol(0.0)
    with pytest.raises(ValueError, match="psf must be a width >= 0"):
        LensingProtocol(0.4, psf=-1.0)


def test_constant_patches_are_drawn_again_unless_the_image_is_flat():
    image = np.ones((64, 64))  # saturated white, like the sky of some BSD68 images
    image[:, 48:] = _smooth((64, 16), 3)  # structure in a strip a quarter wide
    cases = ProjectionProtocol("gaussian", 0.5, patch=16, patches=20).cases(image, 0, "im")
    assert all(float(c.truth.max()) > float(c.truth.min()) for c in cases)
    assert all(math.isfinite(c.score(c.y.new_ones(c.truth.shape))["psnr"]) for c in cases)
    flat = ProjectionProtocol("gaussian", 0.5, patch=16, patches=2).cases(np.ones((20, 20)), 0, "f")
    assert len(flat) == 2  # nothing else to draw: kept after FLAT_REDRAWS tries


def test_convergence_curve_runs_past_the_trained_steps():
    model = build_rim(features=4, hidden=4, train_steps=2)
    case = DenoiseProtocol(25).cases(_smooth((16, 16)), 0, "x")[0]
    traj = RIMReconstructor(model, steps=5)(case.y, case.operator, case.sigma)
    curve = psnr_curve(traj.estimates, case)
    assert len(curve) == 5 and all(np.isfinite(curve))
    method = runner.rim_method(model, curve_steps=5)
    result = runner.evaluate([("x", _smooth((16, 16)))], [DenoiseProtocol(25)], [method])
    assert len(result.curves["sigma=25"]["rim"]) == 5
    assert result.rows[0]["psnr"] == pytest.approx(curve[1])  # reported at the trained T = 2


# ----------------------------------------------------------------------------- evaluate() input


def _never(case):
    raise AssertionError("a method ran although the input was bad")


def _gauss(case):
    """A method of one's own: a 3 x 3 mean of the measurement, as a tensor (1, C, H, W)."""
    return [torch.nn.functional.avg_pool2d(case.y, 3, 1, 1, count_include_pad=False)]


def _evaluate(images, *methods, **kw):
    return runner.evaluate(images, [DenoiseProtocol(25)], list(methods), **kw)


_FLOAT = _smooth((16, 16))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (
            (_FLOAT * 255).round().astype(np.uint8),
            r"image 'c' holds uint8 values: give floats "
            r"in \[0, 1\] \(img / 255\), as rimkit.evaluate.load_images returns",
        ),
        ((_FLOAT * 65535).astype(np.uint16), r"uint16 values: .*\(img / 65535\)"),
        ((_FLOAT * 100).astype(np.int64), r"int64 values: .*divide it by its maximum"),
        (_FLOAT * 255, r"image 'c' holds values up to 2\d\d(\.\d+)?; .*by its maximum\)$"),
        (_FLOAT * 2 - 0.5, r"values from -0.\d+ to 1.\d+; evaluation images are in \[0, 1\]"),
        (np.stack([_FLOAT] * 3), r"shape \(3, 16, 16\); .*for channels first, np.moveaxis"),
        (_FLOAT[None], r"shape \(1, 16, 16\); .*for channels first"),
        (np.dstack([_FLOAT] * 4), r"shape \(16, 16, 4\); .*drop the alpha channel"),
        (_FLOAT[None, ..., None], r"shape \(1, 16, 16, 1\); evaluation images are \(H, W\)"),
        (np.where(_FLOAT > 0.5, np.nan, _FLOAT), "image 'c' contains NaN or Inf"),
        (_FLOAT + 0j, "image 'c' holds complex values; evaluation images are real"),
        (np.full((16, 16), "a"), "image 'c' holds <U1 values"),
        (torch.rand(3, 16, 16), r"image 'c' is a tensor of shape \(3, 16, 16\)"),
    ],
)
def test_evaluate_refuses_bad_images_before_any_work(image, message):
    with pytest.raises(ValueError, match=message):
        _evaluate([("ok", _FLOAT), ("c", image)], runner.Method("never", _never))


def test_evaluate_refuses_images_that_are_not_name_array_pairs():
    with pytest.raises(ValueError, match=r"list of \(name, array\) pairs.*got one ndarray"):
        _evaluate(_FLOAT, runner.Method("never", _never))
    with pytest.raises(ValueError, match=r"\(name, array\) pairs.*an item of type ndarray"):
        _evaluate([_FLOAT], runner.Method("never", _never))


def test_evaluate_takes_float_gray_rgb_and_tensor_images_and_mri_magnitudes():
    gray = _smooth((16, 16))
    images = [
        ("gray", gray),
        ("gray32", gray.astype(np.float32)),
        ("one-channel", gray[..., None]),
        ("tensor", to_tensor(gray, torch.float64)),
        ("binary", gray > 0.5),
    ]
    result = _evaluate(images, runner.Method("gauss", _gauss))
    assert [r["image"] for r in result.rows] == [n for n, _ in images]
    assert all(math.isfinite(r["psnr"]) for r in result.rows)
    alone = [_evaluate([image], runner.Method("gauss", _gauss)).rows[0] for image in images]
    assert alone[0]["psnr"] == alone[2]["psnr"] == alone[3]["psnr"]  # same image, same noise
    rgb = _evaluate([("rgb", _smooth((16, 16, 3)))], runner.Method("gauss", _gauss))
    assert math.isfinite(rgb.rows[0]["psnr"])
    mri = runner.evaluate(
        [("slice", gray)], [MRIProtocol(4.0)], [runner.baseline_method("zero-filled", "mri")]
    )
    assert math.isfinite(mri.rows[0]["psnr"])


def test_evaluate_refuses_methods_that_share_a_name():
    tv = runner.baseline_method("tv", "denoise", {"iterations": 2})
    strong = runner.baseline_method("tv", "denoise", {"iterations": 2, "weight": 0.5})
    message = (
        r"two or more methods are named 'tv' \(methods: tv, gauss, tv\), so their scores would "
        r"be merged; name them apart: rim_method\(model, name=...\)"
    )
    with pytest.raises(ValueError, match=message):
        _evaluate([("x", _FLOAT)], tv, runner.Method("gauss", _gauss), strong)
    renamed = dataclasses.replace(strong, name="tv-strong")
    result = _evaluate([("x", _FLOAT)], tv, renamed)
    assert result.methods == ["tv", "tv-strong"]
    with pytest.raises(ValueError, match="methods are Method objects, got function"):
        _evaluate([("x", _FLOAT)], _gauss)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_an_estimate_with_nan_or_inf_scores_nan_with_a_warning(bad):
    def broken(case):
        x = _gauss(case)[0].clone()
        x[..., 0, 0] = bad if case.image == "a" else 0.5
        return [_gauss(case)[0], x]  # the reported (last) estimate is broken

    images = [("a", _smooth((16, 16), 1)), ("b", _smooth((16, 16), 2))]
    message = r"method 'broken' returned an estimate with NaN or Inf values on image 'a' \(sigma"
    with pytest.warns(RuntimeWarning, match=message):
        result = _evaluate(images, runner.Method("broken", broken), runner.Method("gauss", _gauss))
    rows = {(r["image"], r["method"]): r for r in result.rows}
    assert math.isnan(rows["a", "broken"]["psnr"]) and math.isnan(rows["a", "broken"]["ssim"])
    assert math.isfinite(rows["a", "gauss"]["psnr"]) and math.isfinite(rows["b", "broken"]["psnr"])
    assert math.isnan(result.mean("sigma=25", "broken"))  # the mean shows it
    assert math.isnan(result.mean("sigma=25", "broken", "ssim"))
    assert math.isfinite(result.mean("sigma=25", "gauss"))
    curve = result.curves["sigma=25"]["broken"]
    assert math.isfinite(curve[0]) and math.isnan(curve[1])
    assert result.examples["sigma=25"]["results"]["broken"][0].shape == (16, 16)


def test_estimates_on_the_0_255_scale_are_noted_once_and_scored_as_returned():
    def in_255(case):
        return [x * 255 for x in _gauss(case)]

    images = [("a", _smooth((16, 16), 1)), ("b", _smooth((16, 16), 2))]
    message = r"method 'in_255' returned an estimate up to .* on image 'a' .* divide its estimates"
    with pytest.warns(RuntimeWarning, match=message) as caught:
        result = _evaluate(images, runner.Method("in_255", in_255), runner.Method("gauss", _gauss))
    assert len([w for w in caught if "0-255" in str(w.message)]) == 1  # once, for that method
    assert result.mean("sigma=25", "in_255") < 10 < result.mean("sigma=25", "gauss")  # clipped
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # estimates overshooting [0, 1] a little: no note
        _evaluate(images, runner.Method("over", lambda case: [x * 1.5 for x in _gauss(case)]))


def test_method_run_may_return_arrays_and_must_return_a_list_of_the_truths_shape():
    def as_arrays(case):
        return [from_tensor(x) for x in _gauss(case)]

    tensors = _evaluate([("x", _FLOAT)], runner.Method("gauss", _gauss)).rows[0]
    arrays = _evaluate([("x", _FLOAT)], runner.Method("gauss", as_arrays)).rows[0]
    assert arrays["psnr"] == tensors["psnr"] and arrays["ssim"] == tensors["ssim"]
    bare = runner.Method("bare", lambda case: _gauss(case)[0])
    message = r"bare\.run must return a list of estimates, got a Tensor on image 'x'"
    with pytest.raises(ValueError, match=message):
        _evaluate([("x", _FLOAT)], bare)
    small = runner.Method("small", lambda case: [case.y[..., :8]])
    message = (
        r"method 'small' returned an estimate of shape \(1, 1, 16, 8\) on image 'x' "
        r"\(sigma=25\); estimates are tensors \(1, 1, 16, 16\) or arrays \(16, 16\), the"
    )
    with pytest.raises(ValueError, match=message):
        _evaluate([("x", _FLOAT)], small)
    chw = runner.Method("chw", lambda case: [np.zeros((3, 16, 16))])
    message = r"'chw' returned an estimate of shape \(3, 16, 16\) .* or arrays \(16, 16, 3\)"
    with pytest.raises(ValueError, match=message):
        _evaluate([("x", _smooth((16, 16, 3)))], chw)


def test_case_scores_take_arrays_like_the_module_level_score():
    case = DenoiseProtocol(25).cases(_FLOAT, 0, "x")[0]
    estimate = _FLOAT + 0.02
    assert case.score(estimate) == score(estimate, _FLOAT)
    assert case.psnr(estimate) == score(estimate, _FLOAT)["psnr"]
    with pytest.raises(ValueError, match=r"an array \(H, W\) / \(H, W, C\), got an array"):
        case.score(np.zeros(5))


def test_a_method_without_estimates_or_with_too_few_is_named():
    empty = runner.Method("gauss", lambda case: [])
    message = r"method 'gauss' returned no estimates on image 'x' \(sigma=25\); its run must"
    with pytest.raises(ValueError, match=message):
        _evaluate([("x", _FLOAT)], empty)
    short = runner.Method("gauss", _gauss, report_step=3)
    message = r"method 'gauss' reports estimate 3 \(report_step\) but returned 1 on image 'x'"
    with pytest.raises(ValueError, match=message):
        _evaluate([("x", _FLOAT)], short)
    negative = runner.Method("gauss", _gauss, report_step=-1)
    with pytest.raises(ValueError, match="method 'gauss' has report_step -1; it counts from 1"):
        _evaluate([("x", _FLOAT)], negative)


def test_a_method_of_ones_own_is_told_to_set_its_fingerprint_for_journals(tmp_path):
    assert "fingerprint" in runner.evaluate.__doc__ and "journal" in runner.Method.__doc__
    assert "a method of your own" in runner.Method.__doc__
    path = tmp_path / "run.jsonl"
    _evaluate([("x", _FLOAT)], runner.Method("mine", _gauss, fingerprint="v1"), journal=path)
    changed = runner.Method("mine", lambda case: [case.y], fingerprint="v2")
    with pytest.raises(ValueError, match="different evaluation"):  # not resumed with v1's rows
        _evaluate([("x", _FLOAT)], changed, journal=path)


def test_baseline_method_checks_the_task_and_that_the_baseline_applies():
    with pytest.raises(ValueError, match=r"unknown task 'no-such-task'; known: denoise, sr"):
        runner.baseline_method("tv", "no-such-task")
    with pytest.raises(ValueError, match="baseline 'bm3d' applies to denoise only, not to sr"):
        runner.baseline_method("bm3d", "sr")
    with pytest.raises(ValueError, match="baseline 'bicubic' applies to sr only, not to denoise"):
        runner.baseline_method("bicubic", "denoise")
    with pytest.raises(ValueError, match="unknown baseline 'nope'"):
        runner.baseline_method("nope", "denoise")
    assert runner.baseline_method("bicubic", "sr").name == "bicubic"


# ----------------------------------------------------------------------------- reports


def test_report_embeds_figures_and_tables(tmp_path):
    png = tmp_path / "f.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(png)
    table = [["method", "PSNR"], ["tv", 27.123], ["a<b", None]]
    out = write_report(tmp_path / "r.html", "T & co", [("Scores", table)], [("fig", png)])
    text = out.read_text()
    assert "<td>27.12</td>" in text and "a&lt;b" in text and "T &amp; co" in text
    assert text.count('src="data:image/png;base64,') == 1 and "http" not in text
    md = markdown_table(table)
    assert parse_markdown_table(md) == [["method", "PSNR"], ["tv", "27.12"], ["a<b", "-"]]


def test_replace_section_keeps_other_sections(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    replace_section(path, "a", "alpha 1")
    replace_section(path, "b", "beta")
    replace_section(path, "a", "alpha 2")
    text = path.read_text()
    assert "alpha 2" in text and "alpha 1" not in text and "beta" in text
    assert text.index("<!-- begin: a -->") < text.index("<!-- begin: b -->")
    assert "seed 3" in provenance(3, "cmd") and "torch" in provenance(3, "cmd")


# ----------------------------------------------------------------------------- rimkit eval


def run_eval(capsys, *argv):
    status = main(["eval", *(str(a) for a in argv)])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    for i, shape in enumerate([(24, 28), (26, 24), (24, 24, 3)]):
        Image.fromarray((_smooth(shape, i) * 255).astype(np.uint8)).save(root / f"im{i}.png")
    return root


def _model(tmp_path, tasks=None, name="rim.safetensors", busy=False, steps=2, channels=1):
    """A small RIM file; ``busy``: with a random output layer, so that it changes its input."""
    cfg = RIMConfig(features=4, hidden=4, train_steps=steps, channels=channels)
    config = {"model": cfg.to_dict(), **({"tasks": tasks} if tasks is not None else {})}
    torch.manual_seed(0)
    path = tmp_path / name
    model = cfg.build()
    if busy:
        torch.nn.init.normal_(model.cell.out.weight, 0, 0.1)
    export_weights(path, model, {"config": config})
    return path


def test_eval_end_to_end_writes_every_file(tmp_path, folder, capsys):
    out = tmp_path / "out"
    model = _model(tmp_path, [{"name": "denoise", "sigma": [0, 55]}])
    status, stdout, err = run_eval(
        capsys, "--model", model, "--task", "denoise", "--data", folder, "--sigma", 15, 25,
        "--baselines", "tv", "--baseline-option", "tv.iterations=3", "--curve-steps", 4,
        "--out", out, "--quiet",
    )  # fmt: skip
    assert status == 0, err
    assert stdout == ""
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 2 * 2  # images x sigmas x methods
    assert {r["method"] for r in rows} == {"rim", "tv"}
    assert all(float(r["psnr"]) > 0 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"] == ["sigma=15", "sigma=25"] and summary["trained_steps"] == 2
    assert len(summary["summary"]) == 4 and summary["images"] == 3
    md = (out / "summary.md").read_text()
    assert "| rim |" in md and "| tv |" in md and "seed: 0" in md
    assert f"RIM weights: {model}" in md and "(iteration" not in md  # no iteration recorded
    with open(out / "convergence.csv") as handle:
        curve = list(csv.DictReader(handle))
    rim_steps = [
        int(r["step"]) for r in curve if r["method"] == "rim" and r["setting"] == "sigma=15"
    ]
    assert rim_steps == [1, 2, 3, 4]  # past the trained T = 2
    figures_written = sorted(p.name for p in out.glob("*.png"))
    assert figures_written == ["convergence.png", "grid-sigma=15.png", "grid-sigma=25.png"]
    for name in figures_written:
        with Image.open(out / name) as img:
            img.verify()
    html = (out / "report.html").read_text()
    assert "<table>" in html and "Mean PSNR" in html and "<td>rim</td>" in html
    assert len(re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"', html)) == 3


def test_eval_several_models_share_one_table(tmp_path, folder, capsys):
    denoise = [{"name": "denoise", "sigma": [0, 55]}]
    first = _model(tmp_path, denoise, "first.safetensors", busy=True)
    second = _model(tmp_path, denoise, "second.safetensors", steps=3)
    out = tmp_path / "out"
    argv = ["--model", first, "--model", second, "--task", "denoise", "--data", folder]
    argv += ["--sigma", 25, "--baselines", "none", "--curve-steps", 4, "--out", out, "-q"]
    status, _, err = run_eval(capsys, *argv)
    assert status == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"] == ["first", "second"]  # the file names of several models
    assert summary["model"] == [str(first), str(second)] and summary["trained_steps"] is None
    assert [m["trained_steps"] for m in summary["models"]] == [2, 3]
    first_psnr, second_psnr = (s["psnr"] for s in summary["summary"])
    assert first_psnr != second_psnr  # each row its own model's estimates
    md = (out / "summary.md").read_text()
    assert "RIMs trained for T = 2 (first), 3 (second) steps" in md
    assert f"RIM weights of first: {first}" in md and f"RIM weights of second: {second}" in md
    assert f"--model {first} --model {second}" in summary["command"]

    status, _, err = run_eval(capsys, *argv, "--force", "--label", "a", "--label", "b")
    assert status == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"] == ["a", "b"] and "--label a --label b" in summary["command"]

    status, _, err = run_eval(capsys, *argv, "--force", "--label", "a")
    assert status == 2 and "1 --label for 2 --model" in err
    status, _, err = run_eval(capsys, *argv[:4], "--model", first, *argv[4:], "--force")
    assert status == 2 and "share a name" in err and "--label" in err
    rgb = _model(tmp_path, denoise, "rgb.safetensors", channels=3)
    status, _, err = run_eval(capsys, "--model", rgb, *argv, "--force")
    assert status == 2 and "different channels" in err and "separate runs" in err


def test_eval_of_several_models_names_its_default_folder_after_them(
    tmp_path, folder, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    model = _model(tmp_path, [{"name": "denoise", "sigma": [0, 55]}])
    argv = ["--task", "denoise", "--data", folder, "--sigma", 25, "--limit", 1, "-q"]
    status, _, err = run_eval(capsys, "--model", model, "--label", "a", "--model", model,
                              "--label", "b", "--baselines", "none", *argv)  # fmt: skip
    assert status == 0, err
    assert (tmp_path / "evals" / "a_b-denoise" / "summary.md").is_file()
    run_folder = tmp_path / "runs" / "v1.2"
    run_folder.mkdir(parents=True)
    _model(run_folder, [{"name": "denoise", "sigma": [0, 55]}], name="model.safetensors")
    status, _, err = run_eval(capsys, "--model", "runs/v1.2", "--model", "rim.safetensors",
                              "--baselines", "none", *argv)  # fmt: skip
    assert status == 0, err
    folder = tmp_path / "evals" / f"runs_v1.2_{tmp_path.name}_rim-denoise"
    found = json.loads((folder / "summary.json").read_text())
    assert found["methods"] == ["v1.2", "rim"]  # the folder's name and the file's stem
    run_folder.rename(tmp_path / "runs" / "denoise-gray")  # a run named as a shipped model
    status, _, err = run_eval(capsys, "--model", "runs/denoise-gray", "--baselines", "none", *argv)
    assert status == 0 and (tmp_path / "evals" / "runs_denoise-gray-denoise").is_dir(), err
    (tmp_path / "runs" / "denoise-gray").rename(tmp_path / "denoise-gray")
    status, _, err = run_eval(capsys, "--model", "./denoise-gray", "--baselines", "none", *argv)
    assert status == 0 and (tmp_path / "evals" / f"{tmp_path.name}_denoise-gray-denoise").is_dir()


def test_eval_rgb_images_become_gray_for_a_gray_model_and_baselines_only(tmp_path, folder, capsys):
    status, _, err = run_eval(
        capsys, "--task", "sr", "--data", folder, "--scale", 2, "--baselines", "bicubic,tv",
        "--baseline-option", "tv.iterations=2", "--out", tmp_path / "sr", "-q",
    )  # fmt: skip
    assert status == 0, err
    summary = json.loads((tmp_path / "sr" / "summary.json").read_text())
    assert summary["methods"] == ["bicubic", "tv"] and summary["model"] is None


def test_eval_without_matplotlib_skips_the_plot_and_says_so(tmp_path, folder, capsys, monkeypatch):
    monkeypatch.setattr(figures, "have_matplotlib", lambda: False)
    out = tmp_path / "noplot"
    status, _, err = run_eval(
        capsys, "--task", "denoise", "--data", folder, "--sigma", 25, "--baselines", "tv",
        "--baseline-option", "tv.iterations=2", "--limit", 1, "--out", out, "-q",
    )  # fmt: skip
    assert status == 0, err
    assert (out / "convergence.csv").is_file() and not (out / "convergence.png").exists()
    assert "matplotlib is not installed" in (out / "summary.md").read_text()


def test_eval_bad_input_is_one_line_and_exit_2(tmp_path, folder, capsys, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    common = ["--baselines", "tv", "--baseline-option", "tv.iterations=2", "-q"]
    status, _, err = run_eval(capsys, "--task", "denoise", "--data", empty, *common)
    assert status == 2 and "no images" in err and len(err.strip().splitlines()) == 1
    status, _, err = run_eval(capsys, "--task", "denoise", "--data", tmp_path / "nope", *common)
    assert status == 2 and "does not exist" in err

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.png").write_bytes(b"not a png")
    out = tmp_path / "o1"
    status, _, err = run_eval(capsys, "--task", "denoise", "--data", broken, "--out", out, *common)
    assert status == 2 and "bad.png" in err and "not a readable image" in err

    sr_model = _model(tmp_path, [{"name": "sr", "scales": [2, 4]}], "sr.safetensors")
    status, _, err = run_eval(
        capsys, "--model", sr_model, "--task", "sr", "--data", folder, "--scale", 3,
        "--out", tmp_path / "o2", *common,
    )  # fmt: skip
    assert status == 2 and "trained for scales 2, 4" in err and "3" in err

    from rimkit.solvers import bm3d_adapter

    def missing():
        raise ImportError("no bm3d")

    monkeypatch.setattr(bm3d_adapter, "import_bm3d", missing)
    status, _, err = run_eval(
        capsys, "--task", "denoise", "--data", folder, "--baselines", "bm3d",
        "--out", tmp_path / "o3", "-q",
    )  # fmt: skip
    assert status == 2 and "rimkit[bm3d]" in err and "'bm3d'" in err
    status, _, err = run_eval(
        capsys, "--task", "sr", "--data", folder, "--baselines", "bm3d", "--out", tmp_path / "o4"
    )
    assert status == 2 and "denoise only" in err

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "results.csv").write_text("old")
    (taken / "grid-sigma=99.png").write_bytes(b"stale figure of an earlier run")
    argv = ["--task", "denoise", "--data", folder, "--sigma", 25, "--limit", 1, "--out", taken]
    status, _, err = run_eval(capsys, *argv, *common)
    assert status == 2 and "--force" in err and (taken / "results.csv").read_text() == "old"
    status, _, err = run_eval(capsys, *argv, *common, "--force")
    assert status == 0, err
    assert (taken / "results.csv").read_text() != "old"
    assert sorted(p.name for p in taken.glob("grid-*")) == ["grid-sigma=25.png"]


def test_eval_warns_when_the_model_does_not_record_its_scales(tmp_path, folder, capsys):
    model = _model(tmp_path)  # no tasks in its config
    status, out, err = run_eval(
        capsys, "--model", model, "--task", "sr", "--data", folder, "--scale", 2, "--limit", 1,
        "--baselines", "none", "--out", tmp_path / "w",
    )  # fmt: skip
    assert status == 0, err
    assert "warning" in err and "no record of its scales" in err and "| rim |" in out


def test_cli_module_is_light_and_knows_the_projection_kinds():
    import subprocess
    import sys

    from rimkit.evaluate import cli
    from rimkit.operators import PROJECTION_KINDS

    assert cli.PROJECTION_KINDS == PROJECTION_KINDS
    code = "import sys, rimkit.evaluate.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os
    import stat

    from rimkit.evaluate.report import atomic_write_text

    path = atomic_write_text(tmp_path / "a.md", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    os.chmod(path, 0o640)
    assert stat.S_IMODE(atomic_write_text(path, "y").stat().st_mode) == 0o640


def test_eval_refuses_an_output_folder_inside_the_data(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / "a.png")
    status, _, err = run_eval(
        capsys, "--task", "denoise", "--data", folder, "--baselines", "tv", "--out", folder / "r"
    )
    assert status == 2 and "inside --data" in err
    assert not (folder / "r").exists()


def test_eval_self_ensemble_averages_flips_and_is_refused_for_projections(tmp_path, folder, capsys):
    model = _model(tmp_path, [{"name": "denoise", "sigma": [0, 55]}], busy=True)
    common = ["--model", model, "--data", folder, "--baselines", "none", "--quiet", "--limit", 1]
    psnr = {}
    for size in (1, 4):
        out = tmp_path / f"e{size}"
        argv = ["--task", "denoise", "--sigma", 25, "--ensemble", size, "--out", out, *common]
        status, _, err = run_eval(capsys, *argv)
        assert status == 0, err
        with open(out / "results.csv") as handle:
            psnr[size] = float(next(csv.DictReader(handle))["psnr"])
        assert ("--ensemble 4" in (out / "summary.md").read_text()) == (size == 4)
    assert psnr[1] != psnr[4]
    status, _, err = run_eval(
        capsys, "--task", "projection", "--ensemble", 2, "--out", tmp_path / "p", *common
    )
    assert status == 2 and "projection does not" in err and "Traceback" not in err
    assert not (tmp_path / "p").exists()


def test_eval_lensing_runs_a_rim_and_baselines_and_refuses_the_ensemble(tmp_path, folder, capsys):
    model = _model(tmp_path, [{"name": "projection", "sigma": [0, 55]}], busy=True)
    out = tmp_path / "lens"
    status, _, err = run_eval(
        capsys, "--model", model, "--task", "lensing", "--data", folder, "--patch", 16,
        "--patches", 2, "--einstein-radius", 0.3, 0.5, "--psf", 1, "--sigma", 5,
        "--baselines", "tv", "--baseline-option", "tv.iterations=3", "--out", out, "-q",
    )  # fmt: skip
    assert status == 0, err
    summary = json.loads((out / "summary.json").read_text())
    settings = ["einstein=0.3,psf=1,sigma=5", "einstein=0.5,psf=1,sigma=5"]
    assert summary["settings"] == settings and summary["methods"] == ["rim", "tv"]
    with open(out / "results.csv") as handle:
        assert (
            len(list(csv.DictReader(handle))) == 3 * 2 * 2 * 2
        )  # images x patches x radii x methods
    md = (out / "summary.md").read_text()
    assert "--einstein-radius 0.3 0.5 --psf 1" in md
    status, _, err = run_eval(
        capsys, "--task", "lensing", "--data", folder, "--ensemble", 2, "--baselines", "tv",
        "--out", tmp_path / "e",
    )  # fmt: skip
    assert status == 2 and "lensing does not" in err and not (tmp_path / "e").exists()


def test_rim_method_fingerprint_names_the_ensemble():
    model = build_rim(features=4, hidden=4, train_steps=2)
    assert "ensemble" not in runner.rim_method(model).fingerprint
    assert runner.rim_method(model, ensemble=8).fingerprint.endswith("self-ensemble 8")
    with pytest.raises(ValueError, match="one of"):
        runner.rim_method(model, ensemble=3)


def test_two_images_of_one_name_are_refused():
    image = np.zeros((16, 16))
    with pytest.raises(ValueError, match=r"two or more images are named 'x'; rows and journals"):
        _evaluate([("x", image), ("x", image)], runner.Method("gauss", _gauss))


def test_an_image_named_by_a_path_is_told_to_use_a_string():
    from pathlib import Path

    with pytest.raises(ValueError, match=r"an image's name is a string, got \w*Path"):
        _evaluate([(Path("a.png"), np.zeros((16, 16)))], runner.Method("gauss", _gauss))


@pytest.mark.parametrize("form", ["magnitude array", "complex tensor", "channels"])
def test_an_mri_method_of_ones_own_may_return_a_magnitude_or_complex_image(form):
    from rimkit.evaluate import Method, MRIProtocol, evaluate
    from rimkit.operators import channels_to_complex

    def exact(case):  # the truth itself, in the form under test
        truth = case.truth
        if form == "magnitude array":
            return [truth[0].square().sum(0).sqrt().numpy()]  # (H, W)
        if form == "complex tensor":
            return [channels_to_complex(truth)]  # (1, 1, H, W) complex
        return [truth]

    image = np.linspace(0.1, 1, 24 * 24).reshape(24, 24)
    result = evaluate([("ramp", image)], [MRIProtocol(4.0)], [Method("mine", exact)])
    assert result.summary()[0]["psnr"] > 50  # the truth in each form (8-bit scoring: 58.9)


def test_eval_takes_models_as_paths_a_label_alone_and_refuses_boundary_off_blur(
    tmp_path, folder, capsys, monkeypatch
):
    model = _model(tmp_path, [{"name": "denoise", "sigma": [0, 55]}])
    spec = runner.EvalSpec(
        "denoise", folder, out=tmp_path / "two", model=[model, model], label=["a", "b"],
        sigmas=(25.0,), baselines=(), limit=1, quiet=True,
    )  # fmt: skip
    summary = json.loads((runner.run_eval(spec) / "summary.json").read_text())
    assert summary["model"] == [str(model)] * 2 and summary["methods"] == ["a", "b"]

    monkeypatch.chdir(tmp_path)
    argv = ["--task", "denoise", "--data", folder, "--sigma", 25, "--limit", 1, "-q"]
    status, _, err = run_eval(capsys, *argv, "--label", "mine", "--baselines", "tv",
                              "--baseline-option", "tv.iterations=2")  # fmt: skip
    assert status == 0, err
    assert (tmp_path / "evals" / "mine-denoise" / "summary.md").is_file()
    status, _, err = run_eval(capsys, *argv, "--boundary", "circular", "--baselines", "tv")
    assert status == 2 and "--boundary applies to --task blur only" in err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--scale", 3], "--scale applies to --task sr only, not denoise"),
        (["--fraction", 0.3], "--fraction applies to --task inpaint only"),
        (["--kinds", "fourier"], "--kinds applies to --task projection only"),
        (["--ratio", 0.3], "--ratio applies to --task projection only"),
        (["--einstein-radius", 0.3], "--einstein-radius applies to --task lensing only"),
        (["--psf", 2], "--psf applies to --task lensing only"),
        (["--acceleration", 8], "--acceleration applies to --task mri only"),
        (["--coils", 8], "--coils applies to --task mri only"),
        (["--mask", "random"], "--mask applies to --task mri only"),
        (["--patch", 8], "--patch applies to --task inpaint / projection / lensing only"),
        (["--patches", 3], "--patches applies to --task inpaint / projection / lensing only"),
        (["--kernel", "gaussian:2"], "--kernel applies to --task blur only"),
        (["--crop", 0], "--crop must be >= 1, got 0"),
    ],
)
def test_eval_refuses_options_its_task_would_ignore(tmp_path, folder, capsys, flags, message):
    argv = ["--task", "denoise", "--data", folder, "--sigma", 25, "--baselines", "tv"]
    status, _, err = run_eval(capsys, *argv, *flags, "--out", tmp_path / "out")
    assert status == 2 and message in err and not (tmp_path / "out").exists()


def test_eval_spec_refuses_other_tasks_options_and_notes_a_short_curve(tmp_path, folder):
    with pytest.raises(ValueError, match="--quantize applies to --task denoise only, not sr"):
        runner.EvalSpec("sr", folder, quantize=True)
    with pytest.raises(ValueError, match="--measured applies to --task mri only, not blur"):
        runner.EvalSpec("blur", folder, measured=True)
    with pytest.raises(ValueError, match="inpainting runs whole images unless --patches"):
        runner.EvalSpec("inpaint", folder, patch=8)
    runner.EvalSpec("inpaint", folder, patch=8, patches=2)  # crops of 8: both read
    runner.EvalSpec("denoise", folder, scales=(2, 3, 4), coils=1)  # the defaults pass
    model = _model(tmp_path, [{"name": "denoise", "sigma": [0, 55]}], steps=3)
    spec = runner.EvalSpec(
        "denoise", folder, out=tmp_path / "o", model=str(model), sigmas=(25.0,), baselines=(),
        limit=1, curve_steps=2, quiet=True,
    )  # fmt: skip
    with pytest.warns(UserWarning, match=r"--curve-steps 2 is below the step rim reports \(3\)"):
        runner.run_eval(spec)


def test_an_exact_match_counts_as_the_psnr_ceiling_in_means():
    from rimkit.evaluate import DenoiseProtocol, Method, evaluate

    def truth(case):  # the truth itself, at every step: 8-bit scoring finds no error
        return [case.truth, case.truth]

    images = [
        ("flat", np.full((16, 16), 100 / 255)),
        ("ramp", np.arange(256.0).reshape(16, 16) / 255),
    ]
    result = evaluate(images, [DenoiseProtocol(25)], [Method("exact", truth)])
    assert [row["psnr"] for row in result.rows] == [math.inf, math.inf]  # the rows keep inf
    assert result.summary()[0]["psnr"] == runner.PSNR_CEILING
    assert result.curves["sigma=25"]["exact"] == [runner.PSNR_CEILING] * 2
    rows = [{"setting": "s", "method": "m", "psnr": p, "ssim": 1.0, "seconds": 0.0}
            for p in (math.inf, 30.0)]  # fmt: skip
    assert runner.Evaluation(rows=rows).summary()[0]["psnr"] == (runner.PSNR_CEILING + 30) / 2
    rows[1]["psnr"] = math.nan  # a failed estimate still makes the mean NaN
    assert math.isnan(runner.Evaluation(rows=rows).summary()[0]["psnr"])
