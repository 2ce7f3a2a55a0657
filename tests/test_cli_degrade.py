"""`rimkit degrade` end to end, the reader/writer, and the CLI's bad-input contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rimkit import io
from rimkit.cli import main
from rimkit.degrade import degrade
from rimkit.operators import BicubicDownsample


@pytest.fixture
def gray_png(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (26, 31), dtype=np.uint8)
    path = tmp_path / "hr.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_sr_output_is_the_bicubic_downsample_of_the_cropped_image(tmp_path, gray_png, capsys):
    path, pixels = gray_png
    status, out, err = run(
        capsys, "degrade", path, tmp_path / "lr.png", "--task", "sr", "--scale", 3
    )
    assert status == 0 and "lr.png" in out
    assert "note: the image is cropped from 26x31 to 24x30, a multiple of scale 3" in err
    lr = np.asarray(Image.open(tmp_path / "lr.png"))
    cropped = torch.from_numpy(pixels[:24, :30] / 255.0)[None, None]
    expected = BicubicDownsample(3)(cropped)[0, 0].numpy()
    assert lr.shape == (8, 10)
    np.testing.assert_array_equal(lr, np.round(np.clip(expected, 0, 1) * 255).astype(np.uint8))


def test_npy_output_is_exact_and_noise_is_seeded(tmp_path, gray_png, capsys):
    path, pixels = gray_png
    for name in ("a.npy", "b.npy"):
        assert (
            run(capsys, "degrade", path, tmp_path / name, "--task", "denoise", "--sigma", 25)[0]
            == 0
        )
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    np.testing.assert_array_equal(a, b)
    assert abs((a - pixels / 255.0).std() - 25 / 255) < 0.01


def test_inpaint_writes_the_mask_with_the_requested_fraction(tmp_path, gray_png, capsys):
    path, pixels = gray_png
    out = tmp_path / "holes.npy"
    assert run(capsys, "degrade", path, out, "--task", "inpaint", "--fraction", 0.75)[0] == 0
    mask = np.asarray(Image.open(tmp_path / "holes-mask.png")) / 255
    assert abs(mask.mean() - 0.25) < 1 / mask.size
    np.testing.assert_allclose(np.load(out), pixels / 255.0 * mask)


def test_mri_writes_complex_kspace_and_mask(tmp_path, gray_png, capsys):
    path, _ = gray_png
    out = tmp_path / "k.npy"
    assert run(capsys, "degrade", path, out, "--task", "mri", "--acceleration", 2)[0] == 0
    k = np.load(out)
    assert np.iscomplexobj(k) and k.shape == (26, 31)
    mask = np.asarray(Image.open(tmp_path / "k-mask.png")) > 0
    assert np.all(k[~mask] == 0)
    assert abs(mask[0].sum() - 31 / 2) <= 0.5


def test_lensing_writes_the_lensed_image_of_the_given_lens(tmp_path, gray_png, capsys):
    from rimkit.operators import SIE, LensingSetup

    path, pixels = gray_png
    out = tmp_path / "lensed.npy"
    lens_flags = ["--einstein-radius", 0.4, "--axis-ratio", 0.6, "--angle", 90, "--psf", 0.8]
    assert run(capsys, "degrade", path, out, "--task", "lensing", *lens_flags)[0] == 0
    setup = LensingSetup(SIE(0.4, 0.6, np.pi / 2), psf=0.8)
    expected = setup.operator((26, 31)).double()(torch.from_numpy(pixels / 255.0)[None, None])
    np.testing.assert_allclose(np.load(out), expected[0, 0].numpy(), atol=1e-12)
    assert not (tmp_path / "lensed-mask.png").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "lensing"], "lensing needs the lens: give --einstein-radius"),
        (["--task", "lensing", "--einstein-radius", -1], "einstein_radius must be a finite"),
        (["--task", "lensing", "--einstein-radius", 0.4, "--axis-ratio", 0], "axis_ratio"),
        (["--task", "lensing", "--einstein-radius", 0.4, "--image-fov", 0], "image_fov must be"),
        (["--task", "lensing", "--einstein-radius", 0.4, "--psf", -2], "psf must be"),
        (["--task", "blur", "--einstein-radius", 0.4], "applies to --task lensing only"),
    ],
)
def test_bad_lens_flags_are_refused_before_any_output(tmp_path, gray_png, capsys, extra, message):
    status, _, err = run(capsys, "degrade", gray_png[0], tmp_path / "o.png", *extra)
    assert status == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_rgb_blur_keeps_channels(tmp_path, capsys):
    out = tmp_path / "blurred.png"
    assert run(capsys, "degrade", "example:astronaut", out, "--task", "blur", "-q")[0] == 0
    assert capsys.readouterr().out == ""
    assert np.asarray(Image.open(out)).shape == (512, 512, 3)


def test_library_degrade_rejects_small_images_for_the_scale():
    with pytest.raises(ValueError, match="too small for scale 4"):
        degrade(np.zeros((3, 9)), "sr", scale=4)


BAD_INPUTS = [
    (["degrade", "{missing}", "{out}", "--task", "denoise", "--sigma", "5"], "does not exist"),
    (["degrade", "{fake}", "{out}", "--task", "denoise", "--sigma", "5"], "not a readable image"),
    (["degrade", "{png}", "{png}", "--task", "denoise", "--sigma", "5"], "is the INPUT"),
    (["degrade", "{png}", "{out}", "--task", "denoise"], "needs a noise level"),
    (["degrade", "{png}", "{out}", "--task", "denoise", "--sigma", "-1"], r"\[0, 255\]"),
    (["degrade", "{png}", "{out}", "--task", "denoise", "--sigma", "nan"], r"\[0, 255\]"),
    (["degrade", "{png}", "{out}", "--task", "sr", "--scale", "2.5"], "integer >= 2"),
    (["degrade", "{png}", "{out}", "--task", "sr", "--scale", "1"], "integer >= 2"),
    (["degrade", "{png}", "{out}", "--task", "sr", "--scale", "40"], "too small"),
    (["degrade", "{png}", "{out}", "--task", "inpaint", "--fraction", "1"], r"\[0, 1\)"),
    (["degrade", "{png}", "{npy}", "--task", "mri", "--acceleration", "0.5"], ">= 1"),
    (["degrade", "{png}", "{out}", "--task", "mri"], "ending in .npy"),
    (["degrade", "{nan}", "{out}", "--task", "denoise", "--sigma", "5"], "NaN or Inf"),
    (["degrade", "{png}", "{txt}", "--task", "denoise", "--sigma", "5"], "unsupported output"),
    (["degrade", "example:nope", "{out}", "--task", "denoise", "--sigma", "5"], "known: camera"),
]


def test_library_degrade_checks_its_image_sigma_and_seed_as_restore_does():
    gray = np.random.default_rng(0).random((16, 16))
    cases = [
        ((gray * 255).astype(np.uint8), {}, ValueError, r"uint8 values; degrade takes float"),
        (gray * 255, {}, ValueError, r"0-255"),
        (np.stack([gray] * 3), {}, ValueError, r"channels first: np\.moveaxis"),
        (np.stack([gray] * 4, -1), {}, ValueError, r"RGBA: drop the alpha"),
        (torch.from_numpy(gray), {}, TypeError, r"degrade takes one image as a numpy array"),
        (gray.tolist(), {}, TypeError, r"got list"),
        (gray, {"sigma": "25"}, ValueError, r"sigma must lie in \[0, 255\].*'25'"),
        (gray, {"seed": None}, ValueError, r"seed is a whole number"),
    ]
    for image, options, error, message in cases:
        with pytest.raises(error, match=message):
            degrade(image, "denoise", **{"sigma": 25, **options})
    with pytest.warns(UserWarning, match=r"degrade takes sigma on the 0-255 scale"):
        degrade(gray, "denoise", sigma=0.1)


def test_library_degrade_takes_a_mask_array_for_inpaint_and_mri():
    gray = np.random.default_rng(0).random((16, 16))
    mine = np.zeros((16, 16))
    mine[:, ::2] = 1
    out = degrade(gray, "inpaint", mask=mine)
    np.testing.assert_array_equal(out.mask, mine)
    np.testing.assert_array_equal(out.measurement, gray * mine)
    columns = np.zeros(16)
    columns[[0, 7, 8, 9]] = 1
    mri = degrade(gray, "mri", mask=columns)
    np.testing.assert_array_equal(mri.mask, np.broadcast_to(columns, (16, 16)))
    assert np.all(mri.measurement[:, columns == 0] == 0)
    assert degrade(gray, "mri", mask="random", acceleration=4).mask.shape == (16, 16)
    with pytest.raises(ValueError, match=r"an inpainting mask is an array"):
        degrade(gray, "inpaint", mask="random")
    with pytest.raises(ValueError, match=r"mask applies to inpaint and mri"):
        degrade(gray, "denoise", sigma=5, mask="nonsense")
    with pytest.raises(ValueError, match=r"unknown MRI mask 'nonsense'"):
        degrade(gray, "mri", mask="nonsense")
    with pytest.raises(ValueError, match=r"the mask has shape \(8, 8\)"):
        degrade(gray, "inpaint", mask=np.ones((8, 8)))


@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS)
def test_bad_input_gets_one_line_and_status_2_and_no_output(
    tmp_path, gray_png, capsys, argv, message
):
    (tmp_path / "fake.png").write_text("not an image")
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan]]))
    names = {
        "missing": tmp_path / "missing.png",
        "fake": tmp_path / "fake.png",
        "png": gray_png[0],
        "out": tmp_path / "out.png",
        "npy": tmp_path / "out.npy",
        "nan": tmp_path / "nan.npy",
        "txt": tmp_path / "out.txt",
    }
    before = gray_png[0].read_bytes()
    status, _, err = run(capsys, *[a.format(**names) for a in argv])
    assert status == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert __import__("re").search(message, err), err
    assert not names["out"].exists() and not names["npy"].exists()
    assert gray_png[0].read_bytes() == before


def test_existing_output_needs_force(tmp_path, gray_png, capsys):
    out = tmp_path / "y.png"
    out.write_bytes(b"keep me")
    status, _, err = run(capsys, "degrade", gray_png[0], out, "--task", "denoise", "--sigma", 5)
    assert status == 2 and "--force" in err and out.read_bytes() == b"keep me"
    argv = ("degrade", gray_png[0], out, "--task", "denoise", "--sigma", 5, "--force")
    assert run(capsys, *argv)[0] == 0
    assert np.asarray(Image.open(out)).shape == (26, 31)


def test_unknown_task_is_a_usage_error(tmp_path, gray_png, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["degrade", str(gray_png[0]), str(tmp_path / "o.png"), "--task", "paint"])
    assert exit_info.value.code == 2


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        io.write_image(tmp_path / "y.npy", np.zeros((2, 2)))
    assert list(tmp_path.iterdir()) == []


def test_internal_errors_exit_1_with_a_hint(tmp_path, gray_png, capsys, monkeypatch):
    import rimkit.degrade

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(rimkit.degrade, "degrade", explode)
    argv = ("degrade", gray_png[0], tmp_path / "o.png", "--task", "denoise", "--sigma", 5)
    status, _, err = run(capsys, *argv)
    assert status == 1 and "--debug" in err and "Traceback" not in err


def test_reader_handles_16_bit_rgba_and_gray_conversion(tmp_path):
    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "red.png")
    with pytest.warns(UserWarning, match="alpha channel is dropped"):
        red = io.read_image(tmp_path / "red.png")
        gray = io.read_image(tmp_path / "red.png", gray=True)
    assert red.shape == (4, 5, 3) and red[..., 0].min() == 1.0
    np.testing.assert_allclose(gray, 0.299)
    Image.fromarray(np.full((3, 3), 65535, dtype=np.uint16)).save(tmp_path / "white16.png")
    assert io.read_image(tmp_path / "white16.png").min() == 1.0


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and "rimkit" in capsys.readouterr().out


def test_blur_kernels_are_named_or_read_from_a_file(tmp_path, gray_png, capsys):
    from rimkit.operators import Blur, motion_kernel

    path, pixels = gray_png
    named, saved = tmp_path / "named.npy", tmp_path / "saved.npy"
    kernel_file = tmp_path / "k.npy"
    np.save(kernel_file, motion_kernel(7, 45).numpy())
    assert run(capsys, "degrade", path, named, "--task", "blur", "--kernel", "motion:7:45")[0] == 0
    assert run(capsys, "degrade", path, saved, "--task", "blur", "--kernel", kernel_file)[0] == 0
    expected = Blur(motion_kernel(7, 45).double())(torch.from_numpy(pixels / 255.0)[None, None])
    np.testing.assert_allclose(np.load(named), expected[0, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(np.load(saved), np.load(named), atol=1e-6)


@pytest.mark.parametrize("command", ["degrade", "reconstruct"])
def test_a_bad_kernel_is_named_in_one_line(tmp_path, gray_png, capsys, command):
    out = tmp_path / "o.png"
    status, _, err = run(capsys, command, gray_png[0], out, "--task", "blur", "--kernel", "disk:3")
    assert status == 2 and "neither a file nor a named kernel" in err and "disk:3" in err
    assert "Traceback" not in err and not out.exists()
    status, _, err = run(capsys, command, gray_png[0], out, "--task", "sr", "--kernel", "box:3")
    assert status == 2 and "--kernel applies to --task blur only" in err


def test_library_degrade_takes_numpy_seeds_and_keeps_a_channel_axis():
    gray = np.random.default_rng(0).random((16, 16))
    same = degrade(gray, "denoise", sigma=25, seed=np.int64(3)).measurement
    np.testing.assert_array_equal(same, degrade(gray, "denoise", sigma=25, seed=3).measurement)
    assert degrade(gray[..., None], "sr", scale=2).measurement.shape == (8, 8, 1)
    with pytest.raises(ValueError, match=r"divide it by 255 \(or by its maximum\)$"):
        degrade(gray * 255, "denoise", sigma=25)  # no units= in degrade to point at
