"""Edge inputs an audit met (session 31): each gets a rimkit message, not a deep traceback, a
hang, a crash or a silently wrong result. Everything runs on generated images."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from rimkit.degrade import degrade
from rimkit.io import to_tensor
from rimkit.noise_level import estimate_noise_level
from rimkit.operators import SIE, Identity, LensingSetup, checked_kernel, kernel_from_spec
from rimkit.pipeline import restore
from rimkit.reconstruct import RIMReconstructor
from rimkit.zoo import load_model


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).random((24, 24)) * 0.5 + 0.25


@pytest.fixture(scope="module")
def denoiser():
    return load_model("denoise-gray").model


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (np.zeros((24, 24)), "marks no pixel as measured"),
        (np.full((24, 24), 0.4), "marks no pixel as measured"),
        (np.full((24, 24), np.nan), "NaN or Inf"),
        (np.ones((24, 24), complex), "complex128 values"),
        (np.ones((5, 5)), "give the mask written with this measurement"),
    ],
)
@pytest.mark.parametrize("task", ["denoise", "inpaint"])
def test_a_mask_that_measures_nothing_or_is_no_mask_is_refused(
    image, denoiser, mask, message, task
):
    with pytest.raises(ValueError, match=message):
        restore(image, task, denoiser, sigma=5.0, mask=mask)


def test_a_mask_given_as_a_path_is_told_to_be_read(image, denoiser):
    with pytest.raises(TypeError, match=r"not a path \('m.png'\).*read_mask"):
        restore(image, "denoise", denoiser, sigma=5.0, mask="m.png")


def test_estimating_sigma_from_a_handful_of_pixels_is_refused_at_once(image, denoiser):
    one = np.zeros((64, 64))
    one[30, 30] = 1
    with pytest.raises(ValueError, match=r"only 1 observed pixel\(s\).*give the noise level"):
        restore(np.full((64, 64), 0.5), "denoise", denoiser, mask=one)  # before any window
    with pytest.raises(ValueError, match=r"only 0 observed pixel\(s\)"):
        estimate_noise_level(np.full((64, 64), 0.5), mask=np.zeros((64, 64), bool))
    isolated = np.zeros((96, 96), bool)
    isolated[::3, ::3] = True  # 1024 observed pixels, none with observed neighbours near
    noisy = np.random.default_rng(1).normal(0.5, 0.1, (96, 96))
    with pytest.raises(ValueError, match="have enough observed neighbours"):
        estimate_noise_level(noisy, mask=isolated)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gaussian:1e6", "std 1e\\+06 px needs a kernel wider than rimkit makes"),
        ("box:1e9", "1000000000 px is larger than rimkit makes"),
        ("motion:1e7:30", "motion of 1e\\+07 px needs a kernel wider"),
    ],
)
def test_huge_named_kernels_are_refused_before_any_memory_is_taken(spec, message):
    with pytest.raises(ValueError, match=message):
        kernel_from_spec(spec)


def test_a_lensing_psf_too_wide_is_refused(image):
    with pytest.raises(ValueError, match="needs a kernel wider than rimkit makes"):
        degrade(image, "lensing", lensing=LensingSetup(SIE(0.4), psf=1e6))


@pytest.mark.parametrize(
    ("kernel", "message"),
    [
        (np.zeros((3, 3)), "non-negative with a positive sum"),
        (-np.ones((3, 3)) / 9, "non-negative with a positive sum"),
        (np.ones((3, 3), complex) / 9, "real 2-D array"),
        (np.full((3, 3), np.nan), "NaN or Inf"),
        (np.ones(3), "real 2-D array"),
    ],
)
def test_python_restore_and_degrade_check_a_kernel_as_the_cli_does(image, kernel, message):
    deblur = load_model("deblur").model
    with pytest.raises(ValueError, match=message):
        restore(image, "blur", deblur, sigma=2.0, kernel=kernel)
    with pytest.raises(ValueError, match=message):
        degrade(image, "blur", kernel=kernel, sigma=2.0)


def test_an_unnormalised_kernel_is_normalised_with_a_note(image):
    with pytest.warns(UserWarning, match="sums to 9; it is normalised to sum 1"):
        nine = degrade(image, "blur", kernel=np.ones((3, 3)), seed=0).measurement
    one = degrade(image, "blur", kernel=np.ones((3, 3)) / 9, seed=0).measurement
    np.testing.assert_allclose(nine, one)
    with pytest.warns(UserWarning, match="centre of mass"):
        checked_kernel(np.eye(1, 5, 4))  # all weight 2 px right of the centre


def test_an_integer_einstein_radius_works_and_an_sie_alone_is_named(image):
    lensing = load_model("lensing").model
    setup = LensingSetup(SIE(einstein_radius=1))
    assert restore(image, "lensing", lensing, sigma=2.0, lensing=setup).image.shape == (24, 24)
    with pytest.raises(TypeError, match=r"takes a LensingSetup, e.g. LensingSetup\(SIE"):
        restore(image, "lensing", lensing, sigma=2.0, lensing=SIE(0.45))


@pytest.mark.parametrize("dtype", [">f8", ">f4", np.longdouble, ">u2"])
def test_big_endian_and_extended_precision_arrays_are_taken(dtype):
    values = np.arange(6).reshape(2, 3).astype(dtype)
    np.testing.assert_array_equal(to_tensor(values)[0, 0].numpy(), np.arange(6).reshape(2, 3))


def test_a_big_endian_image_restores_as_its_native_twin(image, denoiser):
    ours = restore(image.astype(">f8"), "denoise", denoiser, sigma=25.0).image
    np.testing.assert_array_equal(ours, restore(image, "denoise", denoiser, sigma=25.0).image)


def test_complex_y_with_a_real_operator_is_told_what_to_wrap(denoiser):
    y = torch.rand(2, 1, 16, 16).to(torch.complex64)
    with pytest.raises(ValueError, match=r"x0 is complex.*ComplexAsChannels"):
        RIMReconstructor(denoiser)(y, Identity(), 0.1)


def test_bm3d_refuses_an_image_smaller_than_its_blocks_instead_of_crashing():
    pytest.importorskip("bm3d")
    from rimkit.solvers import BM3D

    for shape in ((8, 8), (7, 30)):
        with pytest.raises(ValueError, match=r"at least 8x9 pixels, got \d+x\d+.*such as tv"):
            BM3D()(torch.rand(1, 1, *shape), Identity(), 0.1)
    assert BM3D()(torch.rand(1, 1, 8, 9), Identity(), 0.1).final.shape == (1, 1, 8, 9)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda img, m: restore(img, "sr", m, scale="2"), r"integer >= 2, got '2'"),
        (lambda img, m: degrade(img, "sr", scale="2"), r"integer >= 2 .*got '2'"),
        (lambda img, m: restore(img, "denoise", m, sigma=True), "got True"),
        (lambda img, m: restore(img, "denoise", m, sigma=1j), r"got 1j"),
        (lambda img, m: restore(img[:3, :3], "sr", m, scale=2), "must reach 8 pixels"),
    ],
)
def test_parameters_of_the_wrong_type_are_named(image, denoiser, call, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=message):
            call(image, denoiser)


def test_boundary_for_a_task_other_than_blur_is_refused(tmp_path, image, capsys):
    from PIL import Image

    from rimkit.cli import main

    Image.fromarray((image * 255).astype(np.uint8)).save(tmp_path / "in.png")
    for command in ("degrade", "reconstruct"):
        argv = [command, str(tmp_path / "in.png"), str(tmp_path / f"{command}.png")]
        assert main([*argv, "--task", "denoise", "--sigma", "5", "--boundary", "valid"]) == 2
        assert "--boundary applies to --task blur only, not denoise" in capsys.readouterr().err


def test_small_leftovers_of_the_edge_audit():
    from rimkit.operators import random_mask, random_projection

    assert random_mask((2, 1, 4, 4), 0.999).sum(dim=(1, 2, 3)).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="whole sizes"):
        random_projection("gaussian", (1, 4.5, 4), 0.5)
    frozen = np.linspace(0, 1, 12).reshape(3, 4)
    frozen.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's read-only warning is no note of ours
        assert to_tensor(frozen).shape == (1, 1, 3, 4)


@pytest.mark.parametrize(
    ("shape", "hint"),
    [((8, 8, 4), r"drop the alpha, a\[..., :3\]"), ((8, 8, 2), r"a\[..., 0\]"),
     ((3, 8, 8), "np.moveaxis")],
)  # fmt: skip
def test_an_image_of_other_channels_gets_the_hint_that_fits(denoiser, shape, hint):
    with pytest.raises(ValueError, match=hint):
        restore(np.full(shape, 0.5), "denoise", denoiser, sigma=5.0)


@pytest.mark.parametrize("kind", ["gaussian", "bernoulli", "fourier"])
def test_a_projection_drawn_for_a_device_is_the_cpu_draw_on_the_cpu(kind):
    from rimkit.operators import random_projection

    def draw(device):
        op = random_projection(
            kind, (1, 8, 8), 0.3, 2, torch.Generator().manual_seed(3), device=device
        )
        return [t.clone() for t in op.buffers()]

    assert all(torch.equal(a, b) for a, b in zip(draw(None), draw("cpu"), strict=True))
    fallback = draw("meta")  # a device without a generator of its own: drawn on the CPU
    assert fallback[0].device.type == "cpu" and not torch.equal(fallback[0], draw(None)[0])


def test_a_camera_jpeg_with_extra_pictures_reads_its_photo(tmp_path):
    from PIL import Image

    from rimkit.io import read_image

    photo = np.random.default_rng(2).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    preview = Image.fromarray(np.zeros((10, 12, 3), np.uint8))
    Image.fromarray(photo).save(tmp_path / "phone.jpg", "MPO", save_all=True,
                                append_images=[preview], quality=100)  # fmt: skip
    with Image.open(tmp_path / "phone.jpg") as opened:
        assert opened.format == "MPO" and opened.n_frames == 2
    assert read_image(tmp_path / "phone.jpg").shape == (20, 24, 3)


def test_a_note_is_printed_once_however_many_methods_meet_it(tmp_path, image, capsys):
    from PIL import Image

    from rimkit.cli import main

    Image.fromarray((image * 255).astype(np.uint8)).save(tmp_path / "in.png")
    np.save(tmp_path / "k9.npy", np.ones((3, 3)))
    argv = ["compare", str(tmp_path / "in.png"), "--task", "blur", "--kernel"]
    argv += [str(tmp_path / "k9.npy"), "--sigma", "2", "--methods", "tv", "cg-tikhonov"]
    assert main([*argv, "--out", str(tmp_path / "cmp"), "--threads", "1"]) == 0
    assert capsys.readouterr().err.count("sums to 9; it is normalised to sum 1") == 1


def test_netpbm_outputs_hold_their_kind(tmp_path):
    from rimkit.io import write_image

    with pytest.raises(ValueError, match=r"\.pgm file holds gray images: write this one as \.ppm"):
        write_image(tmp_path / "c.pgm", np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match=r"\.ppm file holds colour images"):
        write_image(tmp_path / "g.ppm", np.zeros((4, 4)))
