"""Data of any scale: FITS files, ``restore(units="data")`` and ``--units data`` in the CLI."""

from __future__ import annotations

import builtins
import warnings

import numpy as np
import pytest

from rimkit import __version__, io
from rimkit.cli import main
from rimkit.compare import compare
from rimkit.models import build_rim
from rimkit.operators import SIE, LensingSetup
from rimkit.pipeline import data_peak, restore

fits = pytest.importorskip("astropy.io.fits")

SETUP = LensingSetup(SIE(einstein_radius=0.45))


def smooth(shape=(24, 24), seed=0) -> np.ndarray:
    """A smooth image whose maximum is exactly 1."""
    from scipy import ndimage

    field = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 2)
    field = (field - field.min()) / (field.max() - field.min())
    return 0.1 + 0.9 * field


@pytest.fixture(scope="module")
def model():
    import torch

    torch.manual_seed(0)
    return build_rim(features=4, hidden=4, train_steps=3)


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_fits_files_keep_their_values_and_one_plane(tmp_path):
    counts = 1000.0 * smooth()
    io.write_image(tmp_path / "a.fits.gz", counts)
    back = io.read_image(tmp_path / "a.fits.gz")
    assert back.dtype == np.float64 and np.allclose(back, counts, rtol=1e-6)
    assert io.file_suffix("deep.FITS.gz") == ".fits.gz" and io.is_fits("x.fts")
    with pytest.raises(ValueError, match=r"one 2-D image to a FITS file.*write colour as \.npy"):
        io.write_image(tmp_path / "c.fits", np.stack([counts] * 3, axis=-1))
    fits.PrimaryHDU(np.ones((3, 24, 24))).writeto(tmp_path / "bands.fits")
    with pytest.raises(ValueError, match=r"cube of shape \(3, 24, 24\).*one 2-D image at a time"):
        io.read_image(tmp_path / "bands.fits")


def test_fits_image_in_an_extension_and_a_cube_of_one_plane_are_read(tmp_path):
    image = smooth().astype(np.float32)
    empty = fits.PrimaryHDU()
    fits.HDUList([empty, fits.ImageHDU(image[None, None])]).writeto(tmp_path / "mef.fits")
    assert io.read_image(tmp_path / "mef.fits").shape == (24, 24)


@pytest.mark.parametrize(
    "data, message",
    [
        (
            np.where(np.eye(24) > 0, np.nan, 1.0),
            "24 blank (NaN) pixel(s) of 576; fill them first",
        ),
        (np.ones((2, 24, 24)), "holds a cube of shape (2, 24, 24); rimkit restores one 2-D"),
        (np.ones(24), "holds no image (no HDU with 2-D data)"),
    ],
)
def test_unusable_fits_images_are_named(tmp_path, data, message):
    fits.PrimaryHDU(data).writeto(tmp_path / "bad.fits")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        io.read_image(tmp_path / "bad.fits")


def test_fits_without_astropy_asks_for_the_extra(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_astropy(name, *args, **kwargs):
        if name.startswith("astropy"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    fits.PrimaryHDU(np.ones((4, 4))).writeto(tmp_path / "a.fits")
    monkeypatch.setattr(builtins, "__import__", no_astropy)
    with pytest.raises(ValueError, match=r"FITS files need astropy.*rimkit\[fits\]"):
        io.read_image(tmp_path / "a.fits")
    with pytest.raises(ValueError, match=r"rimkit\[fits\]"):
        io.write_image(tmp_path / "b.fits", np.ones((4, 4)))
    assert not (tmp_path / "b.fits").exists()


def test_restore_in_data_units_is_the_image_restore_scaled_by_the_peak(model):
    image = smooth()  # maximum 1, so 1000 * image has its peak at 1000
    sigma255 = 10.0
    in_image = restore(image, "lensing", model, sigma=sigma255, lensing=SETUP)
    in_data = restore(
        1000 * image, "lensing", model, sigma=1000 * sigma255 / 255, lensing=SETUP, units="data"
    )
    assert np.allclose(in_data.image, 1000 * in_image.image, rtol=1e-5, atol=1e-6)
    assert len(in_data.frames) == 3 and in_data.sigma == pytest.approx(1000 * sigma255 / 255)
    counts = np.round(1000 * image).astype(np.int64)  # integer counts are data too
    assert restore(counts, "denoise", model, sigma=5.0, units="data").image.max() <= 1000


def test_an_estimated_noise_level_comes_back_in_the_data_units(model):
    noisy = smooth((48, 48)) + np.random.default_rng(1).normal(0, 0.05, (48, 48))
    peak = data_peak(noisy, "denoise")
    in_image = restore(noisy / peak, "denoise", model)  # sigma "auto", 0-255 scale
    in_data = restore(500 * noisy, "denoise", model, units="data")
    assert in_data.sigma == pytest.approx(in_image.sigma / 255 * 500 * peak, rel=1e-6)


def test_mri_in_data_units_takes_sigma_in_the_kspace_units(model):
    kspace = np.fft.fftshift(np.fft.fft2(smooth((16, 16)), norm="ortho")) * 1e4
    kspace[:, 1::2] = 0
    plain = restore(kspace, "mri", model, sigma=255 * 0.5)  # 255 times the k-space's units
    in_data = restore(kspace, "mri", model, sigma=0.5, units="data")
    assert np.allclose(in_data.image, plain.image) and in_data.sigma == pytest.approx(0.5)
    assert restore(kspace, "mri", model, sigma=30.0, units="data").sigma == 30  # any scale


@pytest.mark.parametrize(
    "data, options, message",
    [
        (np.ones((8, 8)), {"sigma": 2.0}, "sigma 2 exceeds the measurement's peak 1"),
        (np.ones((8, 8)), {"sigma": -1.0}, r"sigma \(in the data's units\) must be a number >= 0"),
        (-np.ones((8, 8)), {}, "largest value is -1; units='data' divides it by its peak"),
        (np.full((8, 8), np.nan), {}, "holds NaN or Inf values"),
        (np.ones((8, 8), complex), {}, "complex k-space is --task mri"),
        (np.ones((8, 8)), {"units": "counts"}, "units must be one of image, data"),
    ],
)
def test_bad_data_or_units_are_refused(model, data, options, message):
    options = {"units": "data", "sigma": 0.0, **options}
    with pytest.raises(ValueError, match=message):
        restore(data, "denoise", model, **options)


def test_inpainting_takes_the_peak_of_the_observed_pixels_only():
    image = np.ones((4, 4))
    image[0, 0] = 50.0  # a hole holding garbage
    mask = np.ones((4, 4))
    mask[0, 0] = 0
    assert data_peak(image, "inpaint", mask) == 1.0 and data_peak(image, "denoise") == 50.0


def test_compare_in_data_units_scores_against_the_truth_in_those_units():
    truth = smooth((32, 32))
    noisy = truth + np.random.default_rng(2).normal(0, 10 / 255, truth.shape)
    scaled = compare(
        700 * noisy, "denoise", ["tv"], truth=700 * truth, sigma=700 * 10 / 255, units="data"
    )[0]
    plain = compare(
        noisy / noisy.max(), "denoise", ["tv"], truth=truth / noisy.max(), sigma=10 / noisy.max()
    )[0]
    assert scaled.sigma == pytest.approx(700 * 10 / 255)
    # the same restoration: PSNR differs by the peaks (the truth's maximum against 1) only
    peaks = 20 * np.log10(1 / noisy.max())
    assert abs(scaled.psnr - plain.psnr - peaks) < 0.05 and scaled.psnr > 20


def test_cli_lensing_of_counts_from_fits_to_fits_and_png(tmp_path, capsys):
    source = 1200.0 * smooth((32, 32))
    io.write_image(tmp_path / "galaxy.fits", source)
    lens = ["--task", "lensing", "--einstein-radius", "0.45", "--sigma", "6"]
    assert run(capsys, "degrade", tmp_path / "galaxy.fits", tmp_path / "lensed.fits", *lens)[0] == 0
    lensed = io.read_image(tmp_path / "lensed.fits")
    assert 900 < lensed.max() < 1400  # in counts: the lens keeps surface brightness
    status, out, _ = run(
        capsys, "reconstruct", tmp_path / "lensed.fits", tmp_path / "s.fits", *lens
    )
    restored = io.read_image(tmp_path / "s.fits")
    assert status == 0 and restored.max() > 500
    psnr = 10 * np.log10(source.max() ** 2 / np.mean((restored - source) ** 2))
    assert psnr > 20
    status, out, _ = run(capsys, "reconstruct", tmp_path / "lensed.fits", tmp_path / "s.png", *lens)
    assert status == 0 and "(values / their maximum, " in out and "keep the values" in out
    png = io.read_image(tmp_path / "s.png")
    assert np.abs(png - restored / restored.max()).max() <= 0.5 / 255 + 1e-6


def test_cli_units_data_for_npy_and_the_scale_of_an_estimated_sigma(tmp_path, capsys):
    noisy = 3000 * (smooth((40, 40)) + np.random.default_rng(3).normal(0, 0.04, (40, 40)))
    np.save(tmp_path / "noisy.npy", noisy)
    status, _, err = run(
        capsys, "reconstruct", tmp_path / "noisy.npy", tmp_path / "o.npy", "--task", "denoise"
    )
    assert status == 2 and "holds values up to" in err  # image units by default for .npy
    status, out, _ = run(
        capsys,
        "reconstruct",
        tmp_path / "noisy.npy",
        tmp_path / "o.npy",
        "--task",
        "denoise",
        "--units",
        "data",
    )
    assert status == 0 and "(the data's units)" in out
    estimated = float(out.split("sigma ")[1].split(" ")[0])
    assert 60 < estimated < 180  # 3000 * 0.04 = 120
    assert 1000 < np.load(tmp_path / "o.npy").max() <= noisy.max()


def test_cli_refuses_quantising_data_and_sigma_beyond_the_peak(tmp_path, capsys):
    io.write_image(tmp_path / "g.fits", 100 * smooth())
    argv = ["degrade", tmp_path / "g.fits", tmp_path / "n.fits", "--task", "denoise"]
    status, _, err = run(capsys, *argv, "--sigma", "5", "--quantize")
    assert status == 2 and "--quantize rounds an image in [0, 1] to 8 bits" in err
    status, _, err = run(capsys, *argv, "--sigma", "500")
    assert status == 2 and "sigma 500 exceeds the measurement's peak 100" in err


def test_hubble_deep_field_is_an_example_image():
    assert io.read_image("example:hubble_deep_field", gray=True).shape == (872, 1000)


def test_fits_outputs_keep_the_header_and_the_wcs_where_the_grid_stays(tmp_path, capsys):
    hdu = fits.PrimaryHDU((800 * smooth((32, 32))).astype(np.float32))
    hdu.header["BUNIT"], hdu.header["EXPTIME"], hdu.header["CRPIX1"] = "electron", 600.0, 16.0
    hdu.header["LTV1"] = -5.0  # IRAF's physical pixels: kept where the grid stays
    hdu.header["HISTORY"] = f"written by rimkit {__version__}"  # by rimkit degrade, say
    hdu.writeto(tmp_path / "obs.fits")
    lens = ["--einstein-radius", "0.45", "--sigma", "4"]
    for task, extra, wcs in (("denoise", ["--sigma", "4"], True), ("lensing", lens, False)):
        out = tmp_path / f"{task}.fits"
        assert (
            run(capsys, "reconstruct", tmp_path / "obs.fits", out, "--task", task, *extra)[0] == 0
        )
        header = fits.getheader(out)
        assert header["BUNIT"] == "electron" and header["EXPTIME"] == 600.0
        assert ("CRPIX1" in header) == wcs and ("LTV1" in header) == wcs
        assert [str(h) for h in header["HISTORY"]] == [f"written by rimkit {__version__}"]


def test_a_trajectory_of_data_shows_the_image_not_white(tmp_path, capsys):
    from PIL import Image

    io.write_image(tmp_path / "obs.fits", 900 * smooth((32, 32)))
    argv = ["reconstruct", tmp_path / "obs.fits", tmp_path / "o.fits", "--task", "denoise"]
    assert run(capsys, *argv, "--sigma", "9", "--trajectory", tmp_path / "t.gif")[0] == 0
    with Image.open(tmp_path / "t.gif") as gif:
        gif.seek(gif.n_frames - 1)
        last = np.asarray(gif.convert("L"), dtype=float)
    assert 20 < last.mean() < 235 and last.std() > 10


def test_compare_keeps_the_values_and_refuses_a_picture_as_the_truth(tmp_path, capsys):
    truth = 700 * smooth((32, 32))
    io.write_image(tmp_path / "truth.fits", truth)
    noisy = truth + np.random.default_rng(4).normal(0, 10, truth.shape)
    io.write_image(tmp_path / "noisy.fits", noisy)
    argv = ["compare", tmp_path / "noisy.fits", "--task", "denoise", "--sigma", "10"]
    argv += ["--methods", "tv", "--out", tmp_path / "cmp", "-q"]
    assert run(capsys, *argv, "--truth", tmp_path / "truth.fits")[0] == 0
    values = io.read_image(tmp_path / "cmp" / "tv-values.fits")
    assert 400 < values.max() < 800
    io.write_image(tmp_path / "truth.png", truth / truth.max())
    status, _, err = run(
        capsys, *argv[:-3], "--out", tmp_path / "cmp2", "--truth", tmp_path / "truth.png"
    )
    assert status == 2 and "holds 8-bit integers but the measurement values" in err


def test_folders_take_fits_images_scaled_by_their_peak_and_refuse_counts_in_npy(tmp_path):
    from rimkit.data import ImageFolder, list_images

    (tmp_path / "sky").mkdir()
    io.write_image(tmp_path / "sky" / "a.fits.gz", 5000 * smooth((16, 16)) - 600)
    folder = ImageFolder(tmp_path / "sky")
    assert list_images(tmp_path / "sky")[0].name == "a.fits.gz"
    assert folder[0].max() == 1.0 and folder[0].min() == 0.0  # the sky's negatives clipped
    np.save(tmp_path / "sky" / "b.npy", 5000 * smooth((16, 16)))
    with pytest.raises(ValueError, match=r"b\.npy' holds values up to 5000; images in a folder"):
        ImageFolder(tmp_path / "sky")


def test_a_lone_hot_pixel_that_sets_the_peak_gets_a_note(model):
    image = 500 * smooth((32, 32))
    arc = image.copy()
    arc[10, 2:30] = 5000  # a thin, bright line is no lone pixel
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "the measurement's peak", UserWarning)
        restore(image, "denoise", model, sigma=20.0, units="data")
        restore(arc, "denoise", model, sigma=20.0, units="data")
    image[0, 0] = 20000
    with pytest.warns(UserWarning, match=r"peak, 20000, .* a lone pixel far above its neighbours"):
        restore(image, "denoise", model, sigma=20.0, units="data")


def test_denoising_far_below_the_noise_floor_gets_a_note(model):
    from rimkit.zoo import load_model

    gray = load_model("denoise-gray").model
    with pytest.warns(UserWarning, match=r"sigma 1 on the 0-255 scale .* noise floor \(10"):
        restore(smooth(), "denoise", gray, sigma=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        restore(smooth(), "denoise", gray, sigma=15.0)


def test_data_far_below_zero_ask_for_the_sky_to_be_subtracted(model):
    data = 10 * smooth()
    data[3, 3] = -300
    with pytest.raises(ValueError, match=r"reaches down to -300, .* subtract its background"):
        restore(data, "denoise", model, sigma=1.0, units="data")


def test_inpainting_data_ignores_what_the_holes_hold():
    observed = 10 + 100 * smooth()
    mask = np.ones_like(observed)
    mask[5:9, 5:9] = 0
    holes = observed.copy()
    holes[mask == 0] = 5000  # garbage where nothing was measured
    clean = restore(observed * mask, "inpaint", None, baseline="tv", mask=mask, units="data")
    given = restore(holes, "inpaint", None, baseline="tv", mask=mask, units="data")
    assert np.allclose(given.image, clean.image)


def test_deblurred_data_meeting_the_peak_get_a_note_and_a_larger_peak_lifts_it():
    from scipy import ndimage

    from rimkit.operators import gaussian_kernel

    x = np.zeros((32, 32))
    x[16, 16], x[8, 4:28] = 300.0, 60.0
    kernel = gaussian_kernel(2.0).numpy()
    y = ndimage.convolve(x, kernel, mode="wrap")
    options = {"baseline": "tv", "kernel": kernel, "units": "data", "sigma": 0.5}
    with pytest.warns(UserWarning, match=r"meets the data's peak, .* give a larger peak"):
        capped = restore(y, "blur", None, **options)
    assert capped.image.max() <= y.max() + 1e-9
    with pytest.warns(UserWarning, match=r"meets the data's peak, \S+ above the background"):
        restore(y + 100, "blur", None, background=100.0, **options)  # the peak less the sky
    lifted = restore(y, "blur", None, peak=8 * y.max(), **options)
    assert lifted.image.max() > 1.5 * y.max()  # TV: 20.4 against the blurred 12.0
    with pytest.raises(ValueError, match="peak sets the white of data in their own units"):
        restore(y / y.max(), "blur", None, baseline="tv", kernel=kernel, peak=2.0)


def test_degrade_of_an_mri_slice_takes_sigma_in_its_units(tmp_path, capsys):
    np.save(tmp_path / "slice.npy", 1000 * smooth((16, 16)))
    argv = ["degrade", tmp_path / "slice.npy", tmp_path / "k.npy", "--task", "mri"]
    assert run(capsys, *argv, "--sigma", "2", "--units", "data")[0] == 0
    kspace = np.load(tmp_path / "k.npy")
    sampled = kspace != 0
    clean = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(1000 * smooth((16, 16))), norm="ortho"))
    noise = (kspace - clean)[sampled]
    assert 1.5 < float(np.std(noise.real)) < 2.5  # sigma 2, in the slice's units


def test_a_header_of_a_one_plane_cube_or_blank_integers_read_right(tmp_path):
    cube = fits.PrimaryHDU(np.ones((1, 8, 8), np.float32))
    cube.header["WCSAXES"], cube.header["CTYPE3"], cube.header["CRPIX1"] = 3, "FREQ", 4.0
    cube.writeto(tmp_path / "cube.fits")
    header = io.read_fits_header(tmp_path / "cube.fits")
    assert header["WCSAXES"] == 2 and "CTYPE3" not in header and header["CRPIX1"] == 4.0
    ints = fits.PrimaryHDU(np.array([[1, -32768], [3, 4]], np.int16))
    ints.header["BLANK"] = -32768
    ints.writeto(tmp_path / "ints.fits")
    with pytest.raises(ValueError, match=r"1 blank \(NaN\) pixel\(s\) of 4"):
        io.read_image(tmp_path / "ints.fits")


def test_degrade_names_side_files_of_a_compressed_fits_by_its_stem(tmp_path, capsys):
    io.write_image(tmp_path / "g.fits", 100 * smooth())
    argv = ["degrade", tmp_path / "g.fits", tmp_path / "h.fits.gz", "--task", "inpaint"]
    assert run(capsys, *argv)[0] == 0
    assert (tmp_path / "h-mask.png").is_file()


def test_a_background_is_subtracted_and_added_back_but_not_to_a_lensed_source(model):
    counts = 400 * smooth((32, 32))
    plain = restore(counts, "denoise", None, baseline="tv", sigma=8.0, units="data")
    lifted = restore(
        counts + 100, "denoise", None, baseline="tv", sigma=8.0, units="data", background=100.0
    )  # lowered by 100 - 3 sigma: the sky 24 counts above 0
    assert np.abs(lifted.image - (plain.image + 100)).max() < 2 and lifted.background == 100
    source = restore(counts, "lensing", model, sigma=8.0, lensing=SETUP, units="data")
    behind = restore(
        counts + 100, "lensing", model, sigma=8.0, lensing=SETUP, units="data", background=100.0
    )
    assert np.allclose(behind.image, source.image)  # the sky is not in the source
    with pytest.raises(ValueError, match="belongs to images, not to MRI k-space"):
        restore(np.ones((8, 8), complex), "mri", model, background="auto")
    with pytest.raises(ValueError, match="background is a level in the image's units or 'auto'"):
        restore(counts, "denoise", model, sigma=8.0, background="sky")


def test_the_sky_of_a_lensed_galaxy_is_found_and_taken_off():
    from rimkit.degrade import degrade
    from rimkit.zoo import load_model

    lensing = load_model("lensing").model
    field = io.read_image("example:hubble_deep_field", gray=True)[400:432, 600:632]
    source = np.clip(field - np.median(field), 0, 1)  # its own sky (the JPEG's dark) taken off
    lensed = degrade(source, "lensing", sigma=5.0, lensing=SETUP, seed=1).measurement
    counts = 2000 * lensed
    options = {"lensing": SETUP, "units": "data", "sigma": 2000 * 5 / 255}

    def psnr(sky, background):
        x = restore(counts + sky, "lensing", lensing, background=background, **options).image
        return 10 * np.log10((2000 * source.max()) ** 2 / np.mean((x - 2000 * source) ** 2))

    reference = psnr(0.0, None)
    assert psnr(300.0, "auto") > psnr(300.0, None) + 10  # measured: 32.16 against 13.29 dB
    assert abs(psnr(300.0, "auto") - reference) < 1.0


def test_cli_background_auto_prints_the_level(tmp_path, capsys):
    io.write_image(tmp_path / "obs.fits", 300 * smooth((32, 32)) + 50)
    argv = ["reconstruct", tmp_path / "obs.fits", tmp_path / "o.fits", "--task", "denoise"]
    status, out, _ = run(capsys, *argv, "--sigma", "3", "--background", "auto")
    assert status == 0 and "background (sky) level " in out and "subtracted and added back" in out
    with pytest.raises(SystemExit):
        run(capsys, *argv, "--sigma", "3", "--background", "sky", "--force")
    assert "a level in the input's units or auto, got 'sky'" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["blur", "lensing", "sr", "denoise"])
def test_bad_pixels_of_any_image_task_are_left_out(task):
    from rimkit.degrade import degrade
    from rimkit.zoo import load_model

    names = {"blur": "deblur", "lensing": "lensing", "sr": "sr", "denoise": "denoise-gray"}
    model = load_model(names[task]).model
    source = smooth((32, 32), seed=3)
    options = {"lensing": SETUP} if task == "lensing" else {"scale": 2} if task == "sr" else {}
    measured = degrade(source, task, sigma=2.0, seed=0, **options).measurement
    mask = np.ones(measured.shape)
    k = measured.shape[0] // 16  # the same share of pixels for sr's smaller measurement
    mask[k : 3 * k, k : 4 * k] = 0  # a detector's bad pixels, a satellite trail
    broken = np.where(mask > 0, measured, 1.0)  # saturated: the brightest value
    clean = restore(measured, task, model, sigma=2.0, **options).image
    ignored = restore(broken, task, model, sigma=2.0, mask=mask, **options).image
    trusted = restore(broken, task, model, sigma=2.0, **options).image

    def error(x):
        return float(np.mean((x - source) ** 2))

    assert error(ignored) < error(trusted)
    assert error(ignored) < 2 * error(clean)


def test_cli_leaves_out_the_bad_pixels_of_a_lensed_fits(tmp_path, capsys):
    from PIL import Image

    io.write_image(tmp_path / "galaxy.fits", 800 * smooth((32, 32)))
    lens = ["--task", "lensing", "--einstein-radius", "0.45", "--sigma", "4"]
    run(capsys, "degrade", tmp_path / "galaxy.fits", tmp_path / "lensed.fits", *lens)
    good = np.full((32, 32), 255, np.uint8)
    good[10:12, :] = 0  # a bad row, saturated
    Image.fromarray(good).save(tmp_path / "good.png")
    lensed = io.read_image(tmp_path / "lensed.fits")
    lensed[10:12, :] = 5 * lensed.max()
    io.write_image(tmp_path / "broken.fits", lensed)
    argv = ["reconstruct", tmp_path / "broken.fits", tmp_path / "s.fits", *lens]
    assert run(capsys, *argv, "--mask", tmp_path / "good.png")[0] == 0
    assert run(capsys, *argv[:2], tmp_path / "t.fits", *lens)[0] == 0  # the row trusted

    def error(name):
        return np.mean((io.read_image(tmp_path / name) - 800 * smooth((32, 32))) ** 2)

    assert error("s.fits") < 0.5 * error("t.fits")


def test_blank_pixels_of_a_fits_measurement_are_left_out(tmp_path, capsys):
    truth = 600 * smooth((32, 32))
    noisy = truth + np.random.default_rng(5).normal(0, 6, truth.shape)
    noisy[4:8, 10:20] = np.nan  # blank: a chip gap
    fits.PrimaryHDU(noisy).writeto(tmp_path / "obs.fits")
    argv = ["reconstruct", tmp_path / "obs.fits", tmp_path / "o.fits", "--task", "denoise"]
    status, out, _ = run(capsys, *argv, "--sigma", "6")
    assert status == 0 and "40 blank (NaN) pixel(s) left out of the measurement" in out
    restored = io.read_image(tmp_path / "o.fits")
    gap = np.abs(restored[4:8, 10:20] - truth[4:8, 10:20]).mean()
    assert gap < 0.5 * truth[4:8, 10:20].mean()  # filled from around (measured 0.25), not 0
    with pytest.raises(ValueError, match=r"40 blank .* reconstruct and compare leave them out"):
        io.read_image(tmp_path / "obs.fits")


def test_bad_pixels_keep_the_baselines_weights_the_shape_and_the_colour():
    from rimkit.operators import gaussian_kernel

    rng = np.random.default_rng(6)
    truth = smooth((64, 64))
    noisy = truth + rng.normal(0, 40 / 255, truth.shape)
    one = np.ones(truth.shape)
    one[5, 5] = 0

    def psnr(x):
        return 10 * np.log10(1 / np.mean((x - truth) ** 2))

    plain = psnr(restore(noisy, "denoise", None, baseline="tv", sigma=40.0).image)
    masked = psnr(restore(noisy, "denoise", None, baseline="tv", sigma=40.0, mask=one).image)
    assert abs(plain - masked) < 0.3  # the denoising weight, not inpainting's
    kernel = gaussian_kernel(1.0).numpy()
    valid = restore(truth[:50, :50], "blur", None, baseline="tv", kernel=kernel, boundary="valid",
                    mask=one[:50, :50])  # fmt: skip
    assert valid.image.shape == (50, 50)
    with pytest.raises(ValueError, match="'bicubic' takes no mask of bad pixels"):
        restore(truth[:32, :32], "sr", None, baseline="bicubic", mask=one[:32, :32])
    colour = np.stack([truth[:32, :32]] * 3, axis=-1) * 0.5 + 0.2  # gray, in RGB
    trail = np.ones((32, 32))
    trail[10, :] = 0
    red = colour.copy()
    red[10, :] = (1.0, 0.0, 0.0)  # a red satellite trail
    up = restore(red, "sr", None, baseline="tv", scale=2, mask=trail).image
    assert np.abs(up[20:22, :, 0] - up[20:22, :, 1]).max() < 0.05  # gray there, not red


def test_a_background_of_a_picture_is_on_the_0_255_scale(model):
    image = smooth() * 0.5
    plain = restore(image, "denoise", model, sigma=10.0)
    lifted = restore(image + 40 / 255, "denoise", model, sigma=10.0, background=40.0)
    assert lifted.background == 40.0
    assert np.allclose(lifted.image, np.clip(plain.image, 0, 1) + 40 / 255, atol=1e-6)


def test_compare_leaves_maskless_baselines_out_of_its_defaults(tmp_path, capsys):
    io.write_image(tmp_path / "lr.png", smooth((16, 16)))
    from PIL import Image

    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(tmp_path / "m.png")
    argv = ["compare", tmp_path / "lr.png", "--task", "sr", "--mask", tmp_path / "m.png"]
    status, out, err = run(capsys, *argv, "--out", tmp_path / "cmp")
    assert status == 0, err
    assert "bicubic" not in out and "| sr |" in out


def test_a_noise_map_weighs_each_pixel_by_its_variance():
    from rimkit.likelihood import GaussianLikelihood
    from rimkit.operators import BicubicDownsample

    torch = pytest.importorskip("torch")
    op = BicubicDownsample(2)
    x, y = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 4, 4)
    flat = GaussianLikelihood(op, y, 0.1).grad(x, 0.01)
    mapped = GaussianLikelihood(op, y, torch.full((1, 1, 4, 4), 0.1)).grad(x, 0.01)
    assert torch.allclose(flat, mapped)  # a constant map is the number
    varying = torch.full((1, 1, 4, 4), 0.1)
    varying[..., 0, 0] = 10.0  # one measurement is not to be trusted
    weighted = GaussianLikelihood(op, y, varying).grad(x, 0.0)
    expected = op.adjoint((y - op(x)) / varying**2)
    assert torch.allclose(weighted, expected)
    with pytest.raises(ValueError, match=r"noise map .* must have y's shape"):
        GaussianLikelihood(op, y, torch.ones(1, 1, 8, 8))


def test_restore_with_a_noise_map_trusts_the_quiet_pixels(model):
    from rimkit.zoo import load_model

    gray = load_model("denoise-gray").model
    rng = np.random.default_rng(7)
    truth = 0.2 + 0.6 * smooth((48, 48))
    noise = np.full(truth.shape, 5.0)
    noise[:, 24:] = 40.0  # the right half much noisier (0-255 scale)
    noisy = truth + rng.normal(0, 1, truth.shape) * noise / 255

    def error(x):
        return float(np.mean((x - truth) ** 2))

    mapped = restore(noisy, "denoise", gray, sigma=noise)
    single = restore(noisy, "denoise", gray, sigma=float(np.sqrt(np.mean(noise**2))))
    assert error(mapped.image) < 0.8 * error(single.image)
    assert mapped.sigma is noise
    in_counts = 1000 * noise / 255
    counts = restore(1000 * noisy, "denoise", gray, sigma=in_counts, units="data")
    assert counts.sigma is in_counts and error(counts.image / 1000) < error(single.image)
    with pytest.raises(ValueError, match="the noise map is \\(4, 4\\) but the measurement"):
        restore(noisy, "denoise", gray, sigma=np.ones((4, 4)))


def test_cli_noise_map(tmp_path, capsys):
    truth = 0.2 + 0.6 * smooth((48, 48))
    error_image = np.full(truth.shape, 5.0)
    error_image[:, 24:] = 40.0
    noisy = truth + np.random.default_rng(8).normal(0, 1, truth.shape) * error_image / 255
    io.write_image(tmp_path / "sci.npy", noisy)
    np.save(tmp_path / "err.npy", error_image)
    argv = ["reconstruct", tmp_path / "sci.npy", "--task", "denoise"]
    assert (
        run(capsys, *argv[:2], tmp_path / "m.npy", *argv[2:], "--noise-map", tmp_path / "err.npy")[
            0
        ]
        == 0
    )
    rms = str(float(np.sqrt(np.mean(error_image**2))))
    assert run(capsys, *argv[:2], tmp_path / "r.npy", *argv[2:], "--sigma", rms)[0] == 0

    def error(name):
        return float(np.mean((np.load(tmp_path / name) - truth) ** 2))

    assert error("m.npy") < 0.8 * error("r.npy")
    both = ["--noise-map", tmp_path / "err.npy", "--sigma", "5"]
    status, _, err = run(capsys, *argv[:2], tmp_path / "b.npy", *argv[2:], *both)
    assert status == 2 and "give --sigma or --noise-map, not both" in err
    cmp = [
        "compare",
        tmp_path / "sci.npy",
        "--task",
        "denoise",
        "--noise-map",
        tmp_path / "err.npy",
    ]
    status, out, err = run(capsys, *cmp, "--methods", "tv", "cg-tikhonov", "--out", tmp_path / "c")
    assert status == 0 and "| cg-tikhonov |" in out, err


def test_a_noise_map_is_refused_by_self_ensembles_and_cut_into_tiles():
    import torch

    from rimkit.likelihood import GaussianLikelihood, is_noise_map
    from rimkit.operators import Identity
    from rimkit.reconstruct import RIMReconstructor
    from rimkit.self_ensemble import SelfEnsemble

    torch.manual_seed(0)
    model = build_rim(features=4, hidden=4, train_steps=2)
    y, noise = torch.rand(1, 1, 24, 24), torch.full((1, 1, 24, 24), 0.1)
    with pytest.raises(ValueError, match="one noise level per sample, not a noise map"):
        SelfEnsemble(RIMReconstructor(model), 2)(y, Identity(), noise)
    tiled = RIMReconstructor(model, tile=16, overlap=4)(y, Identity(), noise).final
    assert tiled.shape == y.shape
    per_row = torch.tensor([0.1, 0.2, 0.5, 1.0]).reshape(4, 1)  # per sample, B == H
    assert not is_noise_map(per_row)
    x = torch.rand(4, 1, 4, 4)
    rows = GaussianLikelihood(Identity(), x, per_row).grad(torch.zeros_like(x))
    assert torch.allclose(rows[1], x[1] / 0.2**2)


def test_an_hdu_named_in_brackets_is_read(tmp_path, capsys):
    sci = 400 + 300 * smooth((32, 32))
    err = np.full(sci.shape, 6.0)
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(sci, name="SCI"), fits.ImageHDU(err, name="ERR")]
    fits.HDUList(hdus).writeto(tmp_path / "mef.fits")
    assert np.allclose(io.read_image(f"{tmp_path / 'mef.fits'}[err]"), err)
    assert np.allclose(io.read_image(f"{tmp_path / 'mef.fits'}[1]"), sci)
    with pytest.raises(ValueError, match=r"no image HDU 'DQ'; its HDUs: 0 PRIMARY, 1 SCI, 2 ERR"):
        io.read_image(f"{tmp_path / 'mef.fits'}[DQ]")
    argv = [
        "reconstruct",
        f"{tmp_path / 'mef.fits'}[SCI]",
        tmp_path / "o.fits",
        "--task",
        "denoise",
    ]
    assert run(capsys, *argv, "--noise-map", f"{tmp_path / 'mef.fits'}[ERR]")[0] == 0
    assert io.is_fits("obs.fits[SCI]") and not (tmp_path / "o.fits[SCI]").exists()


def test_a_subtracted_sky_comes_back_without_its_noise_cut_off_at_zero():
    """Estimates lie in [0, peak]: noise about a sky lowered to 0 would be clipped there and
    the sky come back lifted. Image-plane tasks lower the image only to its darkest pixels."""
    sky = np.full((48, 48), 100.0)
    sky[20:28, 20:28] += 400  # one bright object
    noisy = sky + np.random.default_rng(5).normal(0, 5, sky.shape)
    from rimkit.zoo import load_model

    model = load_model("denoise-gray").model
    out = restore(noisy, "denoise", model, sigma=5.0, units="data", background="auto")
    dark = np.ones(sky.shape, bool)
    dark[16:32, 16:32] = False
    assert abs(float(out.image[dark].mean()) - 100) < 0.5
    assert out.background == pytest.approx(100, abs=1)


def test_with_a_background_the_noise_is_estimated_once_and_per_channel(monkeypatch):
    """An unknown noise level and a sky: one estimate lowers the image (to three of the
    channels' noise sigmas above 0, not of their mean's) and is the sigma used."""
    import rimkit.pipeline as pipeline

    rng = np.random.default_rng(3)
    image = 200.0 + rng.normal(0, 10, (40, 40, 3))
    calls, seen = [], {}
    estimate, inner = pipeline.estimate_noise_level, pipeline._restore

    def counted(*args, **kwargs):
        calls.append(1)
        return estimate(*args, **kwargs)

    def spied(image, *args, **kwargs):
        seen["mean"] = float(image.mean())
        return inner(image, *args, **kwargs)

    monkeypatch.setattr(pipeline, "estimate_noise_level", counted)
    monkeypatch.setattr(pipeline, "_restore", spied)
    out = restore(image, "denoise", None, baseline="tv", units="data", peak=100.0,
                  background="auto")  # fmt: skip
    assert len(calls) == 1
    assert out.background == pytest.approx(200, abs=2) and out.sigma == pytest.approx(10, rel=0.1)
    assert 100 * seen["mean"] == pytest.approx(3 * 10, abs=3)  # 3 sigma above 0, not 3 / sqrt 3


def test_a_coloured_sky_is_read_per_channel(tmp_path, capsys):
    """Light pollution tints the sky: each channel's own level comes off and goes back."""
    sky = np.array([120.0, 100.0, 60.0])
    rng = np.random.default_rng(4)
    image = sky + rng.normal(0, 4, (48, 48, 3))
    image[20:28, 20:28] += 300  # a star cluster
    out = restore(image, "denoise", None, baseline="tv", units="data", sigma=4.0,
                  background="auto")  # fmt: skip
    assert np.allclose(out.background, sky, atol=1.5)
    dark = np.ones(image.shape[:2], bool)
    dark[16:32, 16:32] = False
    assert np.allclose(out.image[dark].mean(axis=0), sky, atol=1.0)
    path = tmp_path / "sky.npy"
    np.save(path, image)
    argv = ["reconstruct", path, tmp_path / "out.npy", "--task", "denoise", "--sigma", "4",
            "--units", "data", "--background", "auto", "--baseline", "tv"]  # fmt: skip
    status, out_text, err = run(capsys, *argv)
    assert status == 0, err
    assert "background (sky) level 12" in out_text and "(R / G / B)" in out_text


def test_a_dq_extension_is_read_as_flags_and_other_flags_are_refused(tmp_path, capsys):
    """HST's and JWST's DQ extensions flag bad pixels with nonzero bits: the opposite of a
    mask's 1 = measured. Read any other way, the good pixels would be left out."""
    rng = np.random.default_rng(0)
    sci = 100 + 50 * smooth((32, 32)) + rng.normal(0, 2, (32, 32))
    dq = np.zeros((32, 32), np.int16)
    dq[10, 10], dq[20, 5:9] = 4, 512
    sci[10, 10], sci[20, 5:9] = 1e5, 0.0  # a hot pixel and a dead column piece
    path = tmp_path / "obs.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci, name="SCI"),
                  fits.ImageHDU(dq, name="DQ")]).writeto(path)  # fmt: skip
    with pytest.warns(UserWarning, match=r"data-quality flags: its 5 flagged"):
        mask = io.read_mask(f"{path}[DQ]")
    assert mask.sum() == 32 * 32 - 5 and mask[10, 10] == 0 and mask[0, 0] == 1
    argv = ["reconstruct", f"{path}[SCI]", tmp_path / "out.fits", "--task", "denoise",
            "--sigma", "2", "--baseline", "tv"]  # fmt: skip
    status, _, err = run(capsys, *argv, "--mask", f"{path}[DQ]")
    assert status == 0 and "5 flagged (nonzero) pixels" in err and "lone pixel" not in err
    out = fits.getdata(tmp_path / "out.fits")
    assert abs(float(out[10, 10]) - 100 - 50 * smooth((32, 32))[10, 10]) < 10  # filled in
    fits.writeto(tmp_path / "flags.fits", dq)
    status, _, err = run(capsys, *argv, "--force", "--mask", tmp_path / "flags.fits")
    assert status == 2 and "holds values from 0 to 512" in err and "obs.fits[DQ]" in err
    fits.writeto(tmp_path / "good.fits", (dq == 0).astype(np.float32))
    assert np.array_equal(io.read_mask(tmp_path / "good.fits"), mask)
    np.save(tmp_path / "m.npy", dq.astype(np.float64))
    with pytest.raises(ValueError, match="holds values from 0 to 512"):
        io.read_mask(tmp_path / "m.npy")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(dq, name="BPM")]).writeto(tmp_path / "b.fits")
    with pytest.warns(UserWarning, match=r"data-quality flags: its 5 flagged"):
        assert np.array_equal(io.read_mask(tmp_path / "b.fits"), mask)
    for white in (255, 65535):  # 0 / white masks, as pictures store them, read as 0 / 1
        np.save(tmp_path / "w.npy", white * mask)
        assert np.array_equal(io.read_mask(tmp_path / "w.npy"), mask)
    fits.writeto(tmp_path / "w.fits", (255 * mask).astype(np.uint8))
    assert np.array_equal(io.read_mask(tmp_path / "w.fits"), mask)
    np.save(tmp_path / "o.npy", 1.004 * mask - 0.003)  # a resampled mask's overshoot
    assert np.array_equal(io.read_mask(tmp_path / "o.npy") > 0.5, mask > 0.5)


def test_dq_bits_can_be_ignored(tmp_path, capsys):
    """JWST flags a detected cosmic-ray jump with bit 4 on pixels whose ramp fit is kept: an
    astronomer may keep them (--dq-ignore 4) or count only some bits (~512)."""
    dq = np.zeros((32, 32), np.int16)
    dq[10, 10], dq[20, 5:9], dq[3, 3] = 4, 512, 4 + 512
    path = tmp_path / "obs.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(100 + 50 * smooth((32, 32)), name="SCI"),
                  fits.ImageHDU(dq, name="DQ")]).writeto(path)  # fmt: skip
    with pytest.warns(UserWarning, match=r"its 5 flagged pixels \(bits 4 ignored\)"):
        kept = io.read_mask(f"{path}[DQ]", "4")
    assert kept[10, 10] == 1 and kept[20, 5] == 0 and kept[3, 3] == 0
    with pytest.warns(UserWarning, match=r"its 2 flagged pixels \(bits 4\)"):
        only = io.read_mask(f"{path}[DQ]", "~4")
    assert only[10, 10] == 0 and only[3, 3] == 0 and only[20, 5] == 1
    with pytest.warns(UserWarning, match=r"its 0 flagged"):
        assert io.read_mask(f"{path}[DQ]", "4,512").all()
    for bad in ("JUMP_DET", "-4", "4,x", "4,6"):  # 6: not a power of 2 in a list
        with pytest.raises(ValueError, match=r"bits to ignore .*give bit values such as 4 or 4,8"):
            io.read_mask(f"{path}[DQ]", bad)
    with pytest.warns(UserWarning, match=r"its 0 flagged"):
        assert io.read_mask(f"{path}[DQ]", "(4,512)").all()  # astropy's parenthesised list
    with pytest.raises(ValueError, match=r"not an HDU named DQ or BPM"):
        io.read_mask(f"{path}[SCI]", "4")
    argv = ["reconstruct", f"{path}[SCI]", tmp_path / "out.fits", "--task", "denoise",
            "--sigma", "2", "--baseline", "tv"]  # fmt: skip
    status, _, err = run(capsys, *argv, "--mask", f"{path}[DQ]", "--dq-ignore", "4")
    assert status == 0 and "its 5 flagged pixels (bits 4 ignored)" in err, err
    status, _, err = run(capsys, *argv, "--force", "--dq-ignore", "4")
    assert status == 2 and "--dq-ignore names bits of a --mask" in err
    status, _, err = run(capsys, *argv, "--force", "--mask", f"{path}[DQ]", "--dq-ignore", "x")
    assert status == 2 and "bits to ignore 'x'" in err


def _sky_header():
    """A TAN-SIP WCS, rotated, with distortion, as HST's headers hold."""
    header = fits.Header()
    header.update({
        "CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP", "CRPIX1": 17.3, "CRPIX2": 15.2,
        "CRVAL1": 150.1, "CRVAL2": 2.2, "CD1_1": -1e-5, "CD1_2": 2e-6, "CD2_1": 3e-6,
        "CD2_2": 1e-5, "A_ORDER": 2, "B_ORDER": 2, "A_2_0": 2e-4, "A_1_1": -1e-4,
        "B_0_2": 3e-4, "B_1_1": 1e-4, "LTV1": 5.0,
        "WCSNAMEO": "OLD", "CTYPE1O": "RA---TAN", "CTYPE2O": "DEC--TAN", "CRPIX1O": 16.0,
        "CRPIX2O": 14.0, "CRVAL1O": 150.0, "CRVAL2O": 2.1, "CD1_1O": -1e-4, "CD2_2O": 1e-4,
        "CTYPE1A": "LINEAR", "CTYPE2A": "LINEAR", "CRPIX1A": 1.0, "CRPIX2A": 1.0,
        "CDELT1A": 0.5, "CDELT2A": 0.5,
    })  # fmt: skip
    return header


@pytest.mark.parametrize(
    "factor, origin", [(2.0, (0, 0)), (3.0, (0, 0)), (0.5, (0, 0)), (1.0, (4, 2))]
)
def test_a_resampled_grid_keeps_the_sky_of_every_pixel(factor, origin):
    from astropy.wcs import WCS

    before = WCS(_sky_header())
    header = io.regrid_wcs(_sky_header(), factor, origin)
    after = WCS(header)
    rows, cols = np.meshgrid(np.arange(0, 30, 3.0), np.arange(0, 30, 4.0), indexing="ij")
    out_rows = factor * (rows + 0.5) - 0.5 - origin[0]  # MATLAB's pixel centres
    out_cols = factor * (cols + 0.5) - 0.5 - origin[1]
    for key in (" ", "O", "A"):  # the primary WCS and two alternate ones
        before, after = WCS(_sky_header(), key=key), WCS(header, key=key)
        sky = before.pixel_to_world_values(cols, rows)  # astropy: x (column) first, 0-based
        moved = after.pixel_to_world_values(out_cols, out_rows)
        np.testing.assert_allclose(moved, sky, atol=1e-10)
    assert "LTV1" not in header
    assert io.regrid_wcs(_sky_header(), 1.0, (0, 0)) == _sky_header()  # the same grid


def test_super_resolved_and_down_sampled_fits_keep_their_sky(tmp_path, capsys):
    """degrade --task sr writes the measurement's grid, reconstruct the super-resolved one:
    a pixel of the result lies where the same pixel of the clean image did."""
    from astropy.wcs import WCS

    header = _sky_header()
    fits.PrimaryHDU((800 * smooth((32, 32))).astype(np.float32), header=header).writeto(
        tmp_path / "clean.fits"
    )
    small, large = tmp_path / "small.fits", tmp_path / "large.fits"
    assert run(capsys, "degrade", tmp_path / "clean.fits", small, "--task", "sr")[0] == 0
    argv = ["reconstruct", small, large, "--task", "sr", "--baseline", "bicubic"]
    assert run(capsys, *argv)[0] == 0
    assert fits.getdata(small).shape == (16, 16) and fits.getdata(large).shape == (32, 32)
    cols, rows = np.meshgrid(np.arange(32.0), np.arange(32.0))
    sky = WCS(header).pixel_to_world_values(cols, rows)
    got = WCS(fits.getheader(large)).pixel_to_world_values(cols, rows)
    np.testing.assert_allclose(got, sky, atol=1e-10)
    blurred = tmp_path / "blurred.fits"
    argv = ["degrade", tmp_path / "clean.fits", blurred, "--task", "blur", "--boundary", "valid",
            "--kernel", "gaussian:1.6", "--sigma", "1"]  # fmt: skip
    assert run(capsys, *argv)[0] == 0
    h, w = fits.getdata(blurred).shape
    top, left = (32 - h) // 2, (32 - w) // 2  # a symmetric kernel's margins
    got = WCS(fits.getheader(blurred)).pixel_to_world_values(cols[:h, :w], rows[:h, :w])
    sky = WCS(header).pixel_to_world_values(cols[:h, :w] + left, rows[:h, :w] + top)
    np.testing.assert_allclose(got, sky, atol=1e-10)


def test_a_background_on_an_image_too_small_for_a_noise_estimate_asks_for_sigma(tmp_path, capsys):
    np.save(tmp_path / "tiny.npy", 100 + np.random.default_rng(0).normal(0, 5, (8, 8)))
    argv = ["reconstruct", tmp_path / "tiny.npy", tmp_path / "o.npy", "--task", "denoise",
            "--units", "data", "--background", "auto", "--baseline", "tv"]  # fmt: skip
    status, _, err = run(capsys, *argv)
    assert status == 2 and "9x9" in err and "--sigma" in err


def test_a_fits_file_degrade_wrote_on_the_image_scale_reads_back_in_image_units(tmp_path, capsys):
    """The README's lensing lines: degrade a picture to FITS, reconstruct that FITS with the
    same sigma; the FITS holds the 0-1 scale, marked so, not counts."""
    lensed, source = tmp_path / "lensed.fits", tmp_path / "source.fits"
    lens = ["--task", "lensing", "--einstein-radius", "0.45", "--sigma", "3"]
    status, _, err = run(capsys, "degrade", "example:camera", lensed, *lens)
    assert status == 0, err
    assert fits.getheader(lensed)["RIMUNITS"] == "image"
    status, _, err = run(capsys, "reconstruct", lensed, source, *lens, "--steps", "2")
    assert status == 0, err  # before: "sigma 3 exceeds the measurement's peak 1.03"
    assert 0 <= float(fits.getdata(source).min()) and float(fits.getdata(source).max()) <= 1.5
    counts = tmp_path / "counts.fits"
    fits.writeto(counts, 400 * fits.getdata(lensed))  # no mark: the data's own units
    status, _, err = run(capsys, "reconstruct", counts, tmp_path / "c.fits", *lens, "--steps", "2")
    assert status == 0, err
