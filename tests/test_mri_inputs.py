"""An MRI researcher's own k-space: noise only where sampled, masks in the forms people keep
them, maps of other phase conventions, layouts and conventions that would be misread."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from kspace_files import fft2c, ifft2c, phantom, write_file
from rimkit.cli import main
from rimkit.degrade import degrade
from rimkit.models import build_rim
from rimkit.operators import synthetic_coil_maps
from rimkit.pipeline import restore


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_rim(features=4, hidden=4, train_steps=2)


def slice_image() -> np.ndarray:
    return phantom(24, 32)[12:36]  # (24, 32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(b.max() ** 2 / (np.mean((a - b) ** 2) + 1e-30)))


def test_noisy_kspace_is_zero_where_not_sampled_so_the_default_mask_is_the_sampled_one(
    tmp_path, capsys
):
    np.save(tmp_path / "x.npy", slice_image())
    argv = ["degrade", tmp_path / "x.npy", tmp_path / "k.npy", "--task", "mri", "--sigma", "5"]
    assert run(capsys, *argv)[0] == 0
    kspace = np.load(tmp_path / "k.npy")
    sampled = np.asarray(Image.open(tmp_path / "k-mask.png")) > 127
    assert np.all(kspace[..., ~sampled] == 0) and np.all(kspace[..., sampled] != 0)
    common = ["--task", "mri", "--sigma", "5", "--baseline", "zero-filled"]
    run(capsys, "reconstruct", tmp_path / "k.npy", tmp_path / "a.npy", *common)
    run(
        capsys,
        "reconstruct",
        tmp_path / "k.npy",
        tmp_path / "b.npy",
        *common,
        "--mask",
        tmp_path / "k-mask.png",
    )
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_given_maps_of_another_phase_convention_give_the_same_image():
    from rimkit.zoo import load_model

    model = load_model("mri").model  # a trained model: it sees the image's phase
    image = slice_image()
    maps = synthetic_coil_maps(4, image.shape, generator=torch.Generator().manual_seed(2))
    maps = (maps / maps.abs().square().sum(dim=1, keepdim=True).sqrt())[0].numpy()  # sum 1
    kspace = fft2c(maps * image)
    kspace[..., 1:12:3] = kspace[..., 21::3] = 0  # the centre's 9 columns sampled
    plain = restore(kspace, "mri", model, maps=maps).image
    assert psnr(plain, image) > 25
    turned = maps * np.exp(-1j * np.angle(maps[:1]))  # SigPy's: coil 0 made real
    assert psnr(restore(kspace, "mri", model, maps=turned).image, plain) > 40
    assert psnr(restore(kspace, "mri", model, maps=1j * maps).image, plain) > 40
    with pytest.warns(UserWarning, match=r"sum_c \|S_c\|\^2 = 4 where they see signal"):
        restore(kspace, "mri", model, maps=2 * maps)


def test_kspace_of_the_dc_at_the_corner_gets_a_note(model):
    kspace = np.fft.fft2(slice_image(), norm="ortho")  # no fftshift
    with pytest.warns(UserWarning, match=r"peaks at \(0, 0\), far from its centre \(12, 16\)"):
        restore(kspace, "mri", model)
    columns = np.zeros(32, dtype=bool)
    columns[:3] = columns[-3:] = columns[9:24:4] = True  # low frequencies at the edges: R 3.2
    with pytest.warns(UserWarning, match=r"peaks at \(0, 0\)"):  # the centre is not sampled
        restore(kspace * columns, "mri", model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        restore(fft2c(slice_image()), "mri", model)


def test_masks_as_people_keep_them(tmp_path, capsys, model):
    image = slice_image()
    kspace = fft2c(image)
    columns = np.zeros(32, dtype=bool)
    columns[::2] = columns[14:19] = True
    kspace[:, ~columns] = 0
    expected = restore(kspace, "mri", model, mask=np.broadcast_to(columns, (24, 32)) * 1.0).image
    for mask in (columns, torch.from_numpy(np.broadcast_to(columns, (24, 32)).copy())):
        assert np.allclose(restore(kspace, "mri", model, mask=mask).image, expected)
    np.save(tmp_path / "k.npy", kspace)
    masks = {
        "cols.npy": columns.astype(np.int64),
        "ints.npy": np.broadcast_to(columns, (24, 32)).astype(np.int64),
    }
    for name, mask in masks.items():
        np.save(tmp_path / name, mask)
    Image.fromarray(np.broadcast_to(columns, (24, 32)).astype(np.uint8)).save(tmp_path / "01.png")
    for name in (*masks, "01.png"):
        out = tmp_path / f"out-{name}.npy"
        argv = [
            "reconstruct",
            tmp_path / "k.npy",
            out,
            "--task",
            "mri",
            "--baseline",
            "zero-filled",
        ]
        status, _, err = run(capsys, *argv, "--mask", tmp_path / name)
        assert status == 0, err
        assert np.allclose(np.load(out), np.abs(ifft2c(kspace)), atol=1e-5)
    with pytest.raises(ValueError, match=r"the mask has shape \(24,\) .* or \(32,\) columns"):
        restore(kspace, "mri", model, mask=np.ones(24))


def test_coils_last_kspace_is_refused_with_the_axis_to_move(tmp_path, capsys):
    np.save(tmp_path / "k.npy", np.ones((32, 32, 4), complex))
    status, _, err = run(
        capsys, "reconstruct", tmp_path / "k.npy", tmp_path / "o.npy", "--task", "mri"
    )
    assert status == 2 and "looks like (H, W, coils)" in err and "np.moveaxis(k, -1, 0)" in err


def test_degrade_under_samples_multi_coil_kspace_of_a_npy(tmp_path, capsys):
    maps = synthetic_coil_maps(3, (24, 32), generator=torch.Generator().manual_seed(0))[0]
    kspace = fft2c(maps.numpy() * slice_image())
    np.save(tmp_path / "full.npy", kspace)
    argv = ["degrade", tmp_path / "full.npy", tmp_path / "u.npy", "--task", "mri"]
    status, out, err = run(capsys, *argv, "--acceleration", "4")
    under = np.load(tmp_path / "u.npy")
    sampled = under[0] != 0
    assert status == 0 and f"(3x24x32, {100 * sampled.mean():.1f} % of its points)" in out
    assert np.array_equal(under[:, sampled], kspace[:, sampled]) and 0.1 < sampled.mean() < 0.5
    assert "already under-sampled" not in err
    argv = ["degrade", tmp_path / "u.npy", tmp_path / "uu.npy", "--task", "mri"]
    status, out, err = run(capsys, *argv, "--acceleration", "2")  # under-sampled once more
    assert status == 0 and f"holds {100 * sampled.mean():.1f} % of its k-space" in err
    assert "R about" in err


def test_outputs_never_overwrite_the_maps_file(tmp_path, capsys):
    np.save(tmp_path / "k.npy", fft2c(np.ones((2, 16, 16))))
    np.save(tmp_path / "m.npy", np.full((2, 16, 16), 0.5**0.5, complex))
    argv = ["reconstruct", tmp_path / "k.npy", tmp_path / "m.npy", "--task", "mri", "--force"]
    status, _, err = run(capsys, *argv, "--maps", tmp_path / "m.npy")
    assert status == 2 and "is the --maps file" in err
    assert np.load(tmp_path / "m.npy").shape == (2, 16, 16)


def test_mri_sigma_beyond_255_points_to_data_units(model):
    kspace = fft2c(slice_image()) * 1e4
    with pytest.raises(ValueError, match=r"got 3000.0; data of another scale: units='data'"):
        restore(kspace, "mri", model, sigma=3000.0)


def test_compare_against_a_fastmri_volume_needs_the_slice(tmp_path, capsys):
    pytest.importorskip("h5py")
    images = np.stack([phantom(seed=s) for s in range(3)])
    write_file(
        tmp_path / "f.h5",
        fft2c(images).astype(np.complex64),
        reconstruction_esc=images[:, :32, :32],
    )
    np.save(tmp_path / "k.npy", fft2c(images[0]))
    argv = ["compare", tmp_path / "k.npy", "--task", "mri", "--truth", tmp_path / "f.h5"]
    status, _, err = run(capsys, *argv, "--out", tmp_path / "cmp")
    assert status == 2 and "holds 3 slices: give --slice N" in err


def test_slice_all_names_the_slice_that_fails(tmp_path, capsys):
    pytest.importorskip("h5py")
    images = np.stack([phantom(seed=s) for s in range(3)])
    kspace = fft2c(images).astype(np.complex64)
    kspace[2] = 0
    write_file(tmp_path / "f.h5", kspace)
    argv = ["reconstruct", tmp_path / "f.h5", tmp_path / "v.npy", "--task", "mri", "--slice", "all"]
    status, _, err = run(capsys, *argv, "--baseline", "zero-filled", "-q")
    assert status == 2 and "slice 2 of" in err and "nothing written" in err
    assert not (tmp_path / "v.npy").exists()


def test_degrade_with_noise_keeps_the_simulated_sampling(tmp_path):
    result = degrade(slice_image(), "mri", sigma=10.0, acceleration=4.0)
    assert np.array_equal(result.measurement != 0, np.broadcast_to(result.mask > 0.5, (24, 32)))
