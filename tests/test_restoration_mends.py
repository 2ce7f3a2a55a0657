"""What an audit of super-resolution, deblurring and inpainting met (session 33): masks that
are colour or not 0 / 1, a missing mask file, and other inputs that were taken silently or
refused with a message that did not fit. Everything runs on generated images."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from rimkit.cli import main
from rimkit.io import read_mask
from rimkit.pipeline import restore
from rimkit.zoo import load_model


@pytest.fixture(scope="module")
def inpainter():
    return load_model("3task").model


@pytest.fixture
def holes() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    mask = (rng.random((24, 24)) > 0.5).astype(np.float64)
    return rng.random((24, 24)) * mask, mask


def test_a_mask_with_holes_in_its_alpha_channel_reads_them_as_holes(tmp_path):
    holes = np.zeros((8, 8), bool)
    holes[2:5, 3:7] = True
    white = np.full((8, 8), 255, np.uint8)
    alpha = np.where(holes, 0, 255).astype(np.uint8)
    Image.fromarray(np.stack([white, white, white, alpha], -1), "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(np.stack([white, alpha], -1), "LA").save(tmp_path / "la.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no alpha-dropped note: the alpha is the mask
        for name in ("rgba.png", "la.png"):
            assert np.array_equal(read_mask(tmp_path / name), (~holes).astype(np.float64))
    gray = np.where(holes[::-1], 0, 255).astype(np.uint8)  # holes drawn too, and made clear
    Image.fromarray(np.stack([gray, alpha], -1), "LA").save(tmp_path / "both.png")
    assert np.array_equal(read_mask(tmp_path / "both.png"), (~holes & ~holes[::-1]).astype(float))
    opaque = np.stack([gray, np.full((8, 8), 255, np.uint8)], -1)  # opaque: the gray is the mask
    Image.fromarray(opaque, "LA").save(tmp_path / "opaque.png")
    assert np.array_equal(read_mask(tmp_path / "opaque.png"), gray / 255.0)
    black = np.stack([np.zeros((8, 8), np.uint8), alpha], -1)  # black strokes: ambiguous
    Image.fromarray(black, "LA").save(tmp_path / "black.png")
    with pytest.raises(ValueError, match="observes nothing once its transparent pixels"):
        read_mask(tmp_path / "black.png")


def test_a_colour_mask_file_whose_channels_differ_is_refused(tmp_path):
    mask = np.zeros((8, 8, 3), np.uint8)
    mask[..., 1] = 255  # green everywhere, holes marked red and blue: luminance read it as 0.59
    Image.fromarray(mask).save(tmp_path / "m.png")
    with pytest.raises(ValueError, match="a colour image whose channels differ; a mask is gray"):
        read_mask(tmp_path / "m.png")
    Image.fromarray(np.dstack([mask[..., 1]] * 3)).save(tmp_path / "gray.png")
    assert read_mask(tmp_path / "gray.png").tolist() == np.ones((8, 8)).tolist()


def test_a_missing_mask_file_is_named_a_mask(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"mask file '.*nothing.png' does not exist"):
        read_mask(tmp_path / "nothing.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "y.png")
    argv = ["reconstruct", str(tmp_path / "y.png"), str(tmp_path / "x.png"), "--task", "inpaint"]
    assert main([*argv, "--mask", str(tmp_path / "nothing.png")]) == 2
    assert "mask file" in capsys.readouterr().err


def test_a_mask_between_0_and_1_gets_a_note_of_how_it_is_read(holes, inpainter):
    y, mask = holes
    assert mask.mean() == pytest.approx(0.543, abs=1e-3)  # the pixels given 0.8
    with pytest.warns(UserWarning, match=r"the mask is not 0 / 1: 54.3% of its pixels lie between"):
        restore(y, "inpaint", inpainter, mask=np.where(mask > 0, 0.8, 0.0))


@pytest.mark.parametrize("layout", ["(H, W, 1)", "(H, W, 3)"])
def test_python_takes_a_mask_with_a_channel_axis_as_the_cli_does(holes, inpainter, layout):
    y, mask = holes
    given = mask[..., None] if layout == "(H, W, 1)" else np.dstack([mask] * 3)
    expected = restore(y, "inpaint", inpainter, mask=mask).image
    assert np.array_equal(restore(y, "inpaint", inpainter, mask=given).image, expected)
    if layout == "(H, W, 3)":
        with pytest.raises(ValueError, match="the mask has 3 channels that differ"):
            restore(y, "inpaint", inpainter, mask=np.dstack([mask, mask, 1 - mask]))


def test_a_tile_too_small_says_the_smallest_that_works(tmp_path, capsys):
    Image.fromarray(np.full((20, 20), 128, np.uint8)).save(tmp_path / "lr.png")
    argv = ["reconstruct", str(tmp_path / "lr.png"), str(tmp_path / "hr.png"), "--task", "sr"]
    assert main([*argv, "--scale", "2", "--tile", "41"]) == 2
    err = capsys.readouterr().err
    assert "tile 41 (rounded down to 40, a multiple of scale 2) is too small" in err
    assert "at least 66 pixels of the restored image" in err
    assert main([*argv, "--scale", "2", "--tile", "66", "-q"]) == 0


def test_kernel_files_are_read_as_kernels_in_python_and_the_cli(tmp_path, capsys):
    from rimkit.degrade import degrade
    from rimkit.operators import kernel_from_spec

    image = np.random.default_rng(0).random((24, 24))
    box = np.ones((3, 3), dtype=np.int64)  # integers: read as numbers, not as image values
    np.save(tmp_path / "box.npy", box)
    named = degrade(image, "blur", sigma=0, kernel="box:3").measurement
    from_file = degrade(image, "blur", sigma=0, kernel=str(tmp_path / "box.npy")).measurement
    assert np.allclose(from_file, named) and kernel_from_spec("box:3").shape == (3, 3)
    np.save(tmp_path / "line.npy", np.ones(5))
    with pytest.raises(ValueError, match=r"a 1-D profile k blurs along rows as k\[None, :\]"):
        degrade(image, "blur", sigma=0, kernel=str(tmp_path / "line.npy"))
    picture = np.zeros((5, 5, 3), np.uint8)
    picture[2, 2] = (255, 0, 0)
    Image.fromarray(picture).save(tmp_path / "red.png")
    argv = ["degrade", "example:camera", str(tmp_path / "b.png"), "--task", "blur"]
    assert main([*argv, "--kernel", str(tmp_path / "red.png")]) == 2
    assert "channels differ; a blur kernel is one channel" in capsys.readouterr().err


def test_an_even_sized_kernel_is_noted_for_its_half_pixel_shift():
    from rimkit.operators import blur_kernel, checked_kernel

    with pytest.warns(UserWarning, match=r"box:4 has its centre of mass at pixel \(1.5, 1.5\)"):
        blur_kernel("box:4")
    with pytest.warns(UserWarning, match=r"-0.5 rows and -0.5 columns from its centre pixel"):
        checked_kernel(np.ones((4, 4)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        blur_kernel("box:3"), checked_kernel(np.ones((3, 5)) / 15)


def test_sr_scales_are_checked_alike_and_an_untrained_one_names_the_way_out():
    from rimkit.degrade import degrade

    image = np.random.default_rng(0).random((12, 12))
    with pytest.raises(ValueError, match=r"scale must be an integer >= 2"):
        degrade(image, "sr", scale=1)
    with pytest.warns(UserWarning, match="too small for rimkit to up-sample back"):
        low = degrade(image[:6, :6], "sr", scale=2).measurement
    assert low.shape == (3, 3)
    sr = load_model("sr")
    with pytest.raises(ValueError, match=r"not 5; a baseline takes any scale \(baseline 'bicubic'"):
        restore(np.random.default_rng(1).random((10, 10)), "sr", sr, scale=5)
    assert restore(image, "sr", None, baseline="bicubic", scale=5).image.shape == (60, 60)


def test_a_baseline_far_past_its_tuned_noise_levels_gets_a_note():
    from rimkit.solvers.tuned import tuned_baseline

    with pytest.warns(UserWarning, match=r"tv's weight for blur is tuned at noise levels up to"):
        assert tuned_baseline("tv", "blur", 50, sigma=50).weight > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tuned_baseline("tv", "blur", 50, sigma=50, weight=0.05)  # a weight of one's own
        tuned_baseline("tv", "denoise", 50, sigma=50)  # tuned there
        tuned_baseline("tv", "sr", 2, sigma=20)  # within twice the highest (15)


@pytest.mark.parametrize(
    ("protocol", "message"),
    [
        ("SuperResolutionProtocol(4)", r"'tiny' \(8x8 after the crop to a multiple of 4\)"),
        (
            "ProjectionProtocol('gaussian', 0.3, patch=16)",
            r"'tiny' \(9x9\) is smaller than the 16x16 patches",
        ),
        ("InpaintProtocol(0.5, patch=16)", r"'tiny' \(9x9\) is smaller than the 16x16 patches"),
        ("DeblurProtocol('gaussian:1.6')", r"'tiny' \(9x9\) is smaller than the 11x11 kernel"),
    ],
)
def test_an_image_a_protocol_cannot_use_stops_evaluation_before_any_work(protocol, message):
    from rimkit.evaluate import protocols as P
    from rimkit.evaluate.methods import Method
    from rimkit.evaluate.runner import evaluate

    runs = []

    def identity_like(case):
        runs.append(case.image)
        return [case.truth]

    images = [("big", np.full((32, 32), 0.5)), ("tiny", np.full((9, 9), 0.5))]
    first = P.SuperResolutionProtocol(2)
    with pytest.raises(ValueError, match=message):
        evaluate(images, [first, eval(protocol, vars(P))], [Method("m", identity_like)])
    assert runs == []  # nothing ran: 'big' at x2 was not scored and then thrown away


def test_python_degrade_takes_data_units_as_restore_does():
    from rimkit.degrade import degrade

    counts = np.full((64, 64), 3000.0)
    counts[16:48, 16:48] = 4000.0
    noisy = degrade(counts, "denoise", sigma=40, seed=0, units="data").measurement
    assert abs(float(np.std(noisy[:12, :12] - 3000.0)) - 40) < 4  # noise of 40 counts
    assert abs(float(noisy[20:44, 20:44].mean()) - 4000) < 5
    blurred = degrade(counts, "blur", sigma=0, kernel="gaussian:1.6", units="data").measurement
    assert blurred.max() < 4000.01 and blurred.min() > 2999.99  # a weighted mean of counts
    with pytest.raises(ValueError, match="quantize rounds an image in \\[0, 1\\] to 8 bits"):
        degrade(counts, "denoise", sigma=40, quantize=True, units="data")
    with pytest.raises(ValueError, match="units must be 'image' or 'data'"):
        degrade(counts / 4000, "denoise", sigma=25, units="counts")


def test_a_kernel_in_a_named_fits_hdu_is_read_from_python(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    from rimkit.degrade import degrade
    from rimkit.operators import kernel_from_spec

    psf = kernel_from_spec("gaussian:1.6").numpy()
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(psf.astype(np.float32), name="PSF")]
    fits.HDUList(hdus).writeto(tmp_path / "psf.fits")
    image = np.random.default_rng(0).random((24, 24))
    from_file = degrade(image, "blur", kernel=f"{tmp_path / 'psf.fits'}[PSF]").measurement
    named = degrade(image, "blur", kernel="gaussian:1.6").measurement
    assert np.allclose(from_file, named, atol=1e-6)


def test_a_boolean_colour_mask_and_a_0_255_mask_are_read_as_the_cli_reads_them(holes, inpainter):
    y, mask = holes
    observed = mask > 0
    expected = restore(y, "inpaint", inpainter, mask=mask).image
    as_bool = restore(y, "inpaint", inpainter, mask=np.dstack([observed] * 3)).image
    assert np.array_equal(as_bool, expected)
    grey = (observed * 255).astype(np.uint8)
    grey[0, :4] = 128
    with pytest.warns(UserWarning, match=r"the mask is not 0 / 255: 0.694% of its pixels"):
        restore(y, "inpaint", inpainter, mask=grey)


def test_inpainting_with_nothing_missing_gets_a_note(holes, inpainter):
    y, _ = holes
    with pytest.warns(UserWarning, match="the mask marks every pixel as measured"):
        restore(y, "inpaint", inpainter, mask=np.ones_like(y))


def test_the_new_api_audits_bad_inputs_get_messages(tmp_path):
    import torch

    from rimkit.compare import compare
    from rimkit.degrade import degrade
    from rimkit.evaluate.metrics import psnr_per_sample
    from rimkit.evaluate.report import csv_text
    from rimkit.operators import Identity
    from rimkit.solvers.selection import baseline_run
    from rimkit.zoo import alternative_models

    image = np.random.default_rng(0).random((16, 16))
    with pytest.raises(ValueError, match=r"kernel file '.*missing.npy' does not exist"):
        degrade(image, "blur", kernel=str(tmp_path / "missing.npy"))
    with pytest.raises(ValueError, match=r"kernel file .* does not exist"):
        degrade(image, "blur", kernel=tmp_path / "missing")
    holed = image.copy()
    holed[3, 3] = np.nan
    with pytest.raises(ValueError, match="the image holds NaN or Inf values"):
        degrade(holed, "blur")
    with pytest.raises(ValueError, match="the clean image holds values up to 25"):
        compare(image, "denoise", ["tv"], sigma=25, truth=image * 255)
    with pytest.raises(ValueError, match=r"the estimate is \(2, 1, 4, 4\) but the target"):
        psnr_per_sample(torch.zeros(2, 1, 4, 4), torch.zeros(1, 1, 4, 4))
    assert csv_text(["a", "b"], [{"b": 2, "a": 1}]) == "a,b\n1,2\n"
    with pytest.raises(ValueError, match="a row of 1 cells under a header of 2"):
        csv_text(["a", "b"], [[1]])
    with pytest.raises(ValueError, match="unknown baseline 'nope'"):
        baseline_run("nope", Identity(), 0.1, (16, 16))
    with pytest.raises(ValueError, match="unknown task 'bogus'"):
        alternative_models("bogus")
    np.save(tmp_path / "complex.npy", np.ones((4, 4), complex))
    from rimkit.masks import read_mask

    with pytest.raises(ValueError, match="holds complex128 values"):
        read_mask(tmp_path / "complex.npy")
