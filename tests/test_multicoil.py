"""Multi-coil MRI: the SENSE operator, coil maps from the calibration region and simulated ones,
reading k-space, multi-coil training tasks and protocols, `rimkit degrade / reconstruct`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rimkit.cli import main
from rimkit.degrade import degrade
from rimkit.evaluate.protocols import MRIProtocol
from rimkit.io import read_image, read_kspace
from rimkit.models import RIMConfig
from rimkit.operators import (
    MultiCoilMRI,
    calibration_size,
    channels_to_complex,
    coil_sensitivities,
    fft2c,
    gaussian_2d_mask,
    sampled_mask,
    synthetic_coil_maps,
)
from rimkit.pipeline import restore
from rimkit.tasks import MRITask
from rimkit.train.checkpoint import export_weights


def _coil_maps(coils: int, size: int) -> torch.Tensor:
    """Smooth complex coil sensitivities ``(1, coils, size, size)`` around the field of view,
    normalised to ``sum_c |S_c|^2 = 1``."""
    grid = torch.linspace(-1, 1, size, dtype=torch.float64)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    maps = []
    for c in range(coils):
        angle = 2 * np.pi * c / coils
        cy, cx = 1.5 * np.sin(angle), 1.5 * np.cos(angle)
        weight = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0)
        maps.append(weight * torch.exp(1j * (angle + 0.5 * xx)))
    maps = torch.stack(maps)[None]  # (1, coils, H, W)
    return maps / maps.abs().square().sum(dim=1, keepdim=True).sqrt()


def _phantom(size: int) -> torch.Tensor:
    """A positive 'head': an ellipse of tissue with two darker discs, ``(1, 1, size, size)``."""
    grid = torch.linspace(-1, 1, size, dtype=torch.float64)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    head = ((xx / 0.8) ** 2 + (yy / 0.9) ** 2 < 1).double()
    spots = ((xx - 0.3) ** 2 + yy**2 < 0.05).double() + ((xx + 0.3) ** 2 + yy**2 < 0.03).double()
    return (0.1 + head * (0.8 - 0.4 * spots))[None, None]


def test_the_multicoil_adjoint_matches_its_forward_model():
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(2, 3, 8, 10, dtype=torch.complex128, generator=g)
    mask = (torch.rand(2, 1, 8, 10, generator=g) < 0.5).double()
    op = MultiCoilMRI(mask, maps)
    x = torch.randn(2, 1, 8, 10, dtype=torch.complex128, generator=g)
    y = torch.randn(2, 3, 8, 10, dtype=torch.complex128, generator=g)
    lhs = torch.vdot(op(x).flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), op.adjoint(y).flatten())
    assert torch.allclose(lhs, rhs)
    assert op.coils == 3
    assert not torch.allclose(op.adjoint(op(x)), x)  # undersampled: A^H A is not the identity


def test_the_multicoil_operator_names_bad_shapes():
    maps = _coil_maps(4, 16)
    with pytest.raises(ValueError, match="must be complex"):
        MultiCoilMRI(torch.ones(1, 1, 16, 16), maps.real)
    with pytest.raises(ValueError, match="maps are 16x16 but the mask is 8x8"):
        MultiCoilMRI(torch.ones(1, 1, 8, 8), maps)
    op = MultiCoilMRI(torch.ones(1, 1, 16, 16), maps)
    with pytest.raises(ValueError, match="built for 4"):
        op.adjoint(torch.zeros(1, 3, 16, 16, dtype=torch.complex128))
    with pytest.raises(ValueError, match="built for 1"):
        op(torch.zeros(1, 2, 16, 16))


def test_calibration_size_is_the_fully_sampled_centre():
    mask = torch.zeros(1, 1, 40, 48)
    mask[..., 16:24, 20:28] = 1  # an 8x8 block about the centre (20, 24)
    mask[..., 10, :] = 1  # a whole row beside it does not widen the square
    assert calibration_size(mask) == 8
    assert calibration_size(torch.cat([mask, torch.ones_like(mask)])) == 8  # every mask samples it
    mask[..., 20, 24] = 0
    assert calibration_size(mask) == 0
    assert calibration_size(torch.ones(1, 1, 6, 9)) == 6


def test_coil_maps_from_the_calibration_region_recover_smooth_sensitivities():
    size, coils = 48, 4
    truth = _coil_maps(coils, size)
    x = _phantom(size).to(torch.complex128)
    mask = gaussian_2d_mask((size, size), 3.0, center_fraction=0.3, generator=torch.Generator())
    kspace = fft2c(truth * x) * mask
    maps = coil_sensitivities(kspace)
    assert calibration_size(sampled_mask(kspace)) >= 10
    assert torch.allclose(
        maps.abs().square().sum(1), torch.ones(1, size, size, dtype=maps.real.dtype)
    )
    inside = (_phantom(size) > 0.5).expand_as(maps)  # the head; outside it the data say little
    error = (maps - truth).abs()[inside].mean()
    assert error < 0.05, error  # a positive image: the maps up to its (zero) phase


def test_coil_maps_need_a_calibration_region():
    kspace = torch.zeros(1, 2, 16, 16, dtype=torch.complex64)
    kspace[..., ::2, :] = 1  # every other row: no fully sampled centre
    with pytest.raises(ValueError, match=r"no fully sampled centre .* give the maps"):
        coil_sensitivities(kspace)


def _multicoil_kspace(size=32, coils=4, acceleration=2.5):
    maps = _coil_maps(coils, size)
    x = _phantom(size)
    gen = torch.Generator().manual_seed(1)
    mask = gaussian_2d_mask((size, size), acceleration, center_fraction=0.3, generator=gen)
    kspace = MultiCoilMRI(mask, maps)(x.to(torch.complex128))
    return kspace[0].numpy(), mask[0, 0].numpy(), maps[0].numpy(), x[0, 0].numpy()


def test_an_untrained_model_restores_multicoil_kspace_to_its_coil_combined_start():
    kspace, mask, maps, x = _multicoil_kspace()
    model = RIMConfig(cell="mri", channels=2, link="identity", features=4, hidden=4, train_steps=2)
    given = restore(kspace * 1e6, "mri", model.build(), maps=maps)  # mask: the nonzero points
    op = MultiCoilMRI(torch.from_numpy(mask)[None, None], torch.from_numpy(maps)[None])
    zero_filled = op.adjoint(torch.from_numpy(kspace)[None]).abs()[0, 0].numpy()
    np.testing.assert_allclose(given.image, 1e6 * zero_filled, rtol=1e-4)
    estimated = restore(kspace, "mri", model.build(), mask=mask)  # maps from the centre
    inside = x > 0.5
    assert np.abs(estimated.image - zero_filled)[inside].mean() < 0.02
    with pytest.raises(ValueError, match="give one map per coil"):
        restore(kspace, "mri", model.build(), maps=maps[:3])
    with pytest.raises(ValueError, match="got a real image"):
        restore(np.abs(kspace), "mri", model.build())


def test_kspace_files_are_read_from_npy_and_bart_and_bad_ones_are_named(tmp_path):
    kspace = (np.arange(24) + 1j * np.arange(24)).reshape(2, 3, 4).astype(np.complex64)
    np.save(tmp_path / "k.npy", kspace)
    np.testing.assert_array_equal(read_kspace(tmp_path / "k.npy"), kspace)
    np.save(tmp_path / "one.npy", kspace[0])
    assert read_kspace(tmp_path / "one.npy").shape == (1, 3, 4)
    # BART: dims 0-2 space, 3 coils, in Fortran order
    bart = np.moveaxis(kspace, 0, -1)[None]  # (1, 3, 4, 2)
    (tmp_path / "b.hdr").write_text("# Dimensions\n1 3 4 2 1\n")
    bart.flatten(order="F").tofile(tmp_path / "b.cfl")
    np.testing.assert_array_equal(read_kspace(tmp_path / "b.cfl"), kspace)
    np.testing.assert_array_equal(read_kspace(tmp_path / "b"), kspace)
    np.save(tmp_path / "real.npy", kspace.real)
    with pytest.raises(ValueError, match="must be complex"):
        read_kspace(tmp_path / "real.npy")
    np.save(tmp_path / "4d.npy", kspace[None, None])
    with pytest.raises(ValueError, match=r"\(coils, H, W\)"):
        read_kspace(tmp_path / "4d.npy")
    (tmp_path / "v.hdr").write_text("# Dimensions\n2 3 4 1\n")
    np.zeros(24, np.complex64).tofile(tmp_path / "v.cfl")
    with pytest.raises(ValueError, match="3-D volume"):
        read_kspace(tmp_path / "v.cfl")
    with pytest.raises(ValueError, match="does not exist"):
        read_kspace(tmp_path / "missing.npy")


@pytest.fixture
def mri_model(tmp_path) -> str:
    model = RIMConfig(cell="mri", channels=2, link="identity", features=4, hidden=4, train_steps=2)
    path = tmp_path / "mri.safetensors"
    export_weights(path, model.build(), {"config": {"model": model.to_dict()}})
    return str(path)


def test_reconstruct_takes_multicoil_kspace_and_writes_its_magnitude(tmp_path, mri_model, capsys):
    kspace, _, maps, x = _multicoil_kspace()
    np.save(tmp_path / "k.npy", kspace * 1e8)  # any scale, as scanners write it
    np.save(tmp_path / "maps.npy", maps)
    out = tmp_path / "head.png"
    base = ["reconstruct", str(tmp_path / "k.npy"), str(out), "--task", "mri"]
    assert main([*base, "--model", mri_model, "--maps", str(tmp_path / "maps.npy")]) == 0
    assert "(4 coils, maps from maps.npy, magnitude / its maximum)" in capsys.readouterr().out
    image = read_image(out)
    assert image.max() == 1.0  # scaled to its maximum, not clipped white
    assert np.corrcoef(image.ravel(), x.ravel())[0, 1] > 0.9
    assert main([*base, "--model", mri_model, "--force"]) == 0  # maps from the centre
    capsys.readouterr()
    np.save(tmp_path / "bad-maps.npy", maps[:2])
    assert (
        main([*base, "--model", mri_model, "--force", "--maps", str(tmp_path / "bad-maps.npy")])
        == 2
    )
    assert "give one map per coil" in capsys.readouterr().err
    noisy = tmp_path / "n.png"
    noisy_args = ["reconstruct", str(out), str(noisy), "--task", "denoise", "--sigma", "5"]
    assert main([*noisy_args, "--maps", str(tmp_path / "maps.npy")]) == 2
    assert "--maps applies to --task mri only" in capsys.readouterr().err


def test_the_shipped_mri_model_beats_zero_filled_on_generated_multicoil_kspace():
    from rimkit.zoo import load_model

    kspace, mask, maps, x = _multicoil_kspace(size=64, coils=6, acceleration=5.0)
    op = MultiCoilMRI(torch.from_numpy(mask)[None, None], torch.from_numpy(maps)[None])
    zero_filled = op.adjoint(torch.from_numpy(kspace)[None]).abs()[0, 0].numpy()
    restored = restore(kspace, "mri", load_model("mri").model).image  # mask and maps estimated
    error = lambda estimate: np.mean((estimate - x) ** 2)  # noqa: E731
    assert error(restored) < 0.5 * error(zero_filled)  # measured: 0.28 (0.52 single-coil mri)


def test_a_gray_model_takes_multicoil_kspace_as_a_real_image():
    kspace, mask, maps, _ = _multicoil_kspace()
    model = RIMConfig(features=4, hidden=4, train_steps=2).build()  # untrained: |zero-filled|
    out = restore(kspace, "mri", model, maps=maps)
    op = MultiCoilMRI(torch.from_numpy(mask)[None, None], torch.from_numpy(maps)[None])
    zero_filled = op.adjoint(torch.from_numpy(kspace)[None]).abs()[0, 0].numpy()
    np.testing.assert_allclose(out.image, zero_filled, atol=1e-3 * zero_filled.max())


def test_synthetic_coil_maps_are_smooth_normalised_and_seeded():
    maps = synthetic_coil_maps(6, (32, 40), 3, torch.Generator().manual_seed(0))
    assert maps.shape == (3, 6, 32, 40) and maps.dtype == torch.complex64
    ones = torch.ones(3, 32, 40)
    assert torch.allclose(maps.abs().square().sum(1), ones, atol=1e-5)
    again = synthetic_coil_maps(6, (32, 40), 3, torch.Generator().manual_seed(0))
    assert torch.equal(maps, again)
    assert not torch.allclose(maps[0], maps[1])  # each sample its own coil array
    step = (maps[..., 1:, :] - maps[..., :-1, :]).abs().max()
    assert step < 0.15  # smooth: neighbours differ little (the maps span [0, 1])
    with pytest.raises(ValueError, match="coils must be an int >= 1"):
        synthetic_coil_maps(0, (8, 8))


def test_the_mri_task_draws_coil_counts_and_measures_through_their_maps():
    x = torch.rand(4, 1, 32, 32, dtype=torch.float64)
    task = MRITask(acceleration=(2.0, 2.0), coils=(2, 6), mask="points")
    counts = set()
    for seed in range(6):
        m = task.sample(x, torch.Generator().manual_seed(seed))
        op = m.operator.op
        counts.add(op.coils)
        assert m.y.shape == (4, op.coils, 32, 32)
        assert torch.allclose(m.y, m.operator(m.target))  # noiseless: sigma range (0, 0)
        assert torch.allclose(m.x0, m.operator.adjoint(m.y))  # the coil-combined zero-filled
    assert len(counts) > 1 and counts <= set(range(2, 7))
    single = MRITask(coils=(1, 1)).sample(x, torch.Generator().manual_seed(0))
    assert type(single.operator.op).__name__ == "CartesianMRI"
    with pytest.raises(ValueError, match="coils must be a range"):
        MRITask(coils=(0, 4))
    with pytest.raises(ValueError, match="whole numbers"):
        MRITask(coils=(1.5, 4))


def test_the_mri_protocol_and_degrade_simulate_multicoil_kspace():
    image = _phantom(40)[0, 0].numpy()
    case = MRIProtocol(4.0, coils=8).cases(image, 0, "head")[0]
    assert case.setting == "R=4,8 coils"
    assert case.y.shape == (1, 8, 40, 40)
    assert torch.allclose(case.y, case.operator(case.truth))
    out = degrade(image, "mri", acceleration=4.0, coils=8, seed=3)
    assert out.measurement.shape == (8, 40, 40) and out.maps.shape == (8, 40, 40)
    assert np.all(out.measurement[:, out.mask == 0] == 0)
    op = MultiCoilMRI(torch.from_numpy(out.mask)[None, None], torch.from_numpy(out.maps)[None])
    expected = op(torch.from_numpy(image)[None, None])[0].numpy()
    np.testing.assert_allclose(out.measurement, expected, atol=1e-12)
    with pytest.raises(ValueError, match="coils apply to mri only"):
        degrade(image, "denoise", sigma=5, coils=2)


def test_degrade_writes_multicoil_kspace_with_its_maps_for_reconstruct(tmp_path, mri_model, capsys):
    np.save(tmp_path / "slice.npy", _phantom(48)[0, 0].numpy())
    k = tmp_path / "k.npy"
    argv = ["degrade", str(tmp_path / "slice.npy"), str(k), "--task", "mri", "--coils", "4"]
    assert main(argv) == 0
    assert "coil maps to" in capsys.readouterr().out
    assert read_kspace(k).shape == (4, 48, 48)
    assert np.load(tmp_path / "k-maps.npy").shape == (4, 48, 48)
    assert main(argv) == 2  # the outputs exist
    assert "exists" in capsys.readouterr().err
    maps = ["--maps", str(tmp_path / "k-maps.npy"), "--mask", str(tmp_path / "k-mask.png")]
    out = tmp_path / "r.npy"
    assert (
        main(["reconstruct", str(k), str(out), "--task", "mri", "--model", mri_model, *maps]) == 0
    )
    assert np.load(out).shape == (48, 48)
    denoise = ["degrade", str(tmp_path / "slice.npy"), str(tmp_path / "n.npy"), "--task", "denoise"]
    assert main([*denoise, "--sigma", "5", "--coils", "2"]) == 2
    assert "--coils applies to --task mri only" in capsys.readouterr().err


def test_single_coil_kspace_of_a_complex_image_is_demodulated_by_its_low_resolution_phase():
    from rimkit.operators import CartesianMRI, variable_density_mask
    from rimkit.zoo import load_model

    head = _phantom(96)
    grid = torch.linspace(-1, 1, 96, dtype=torch.float64)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    phase = 1.5 * xx + 1.0 * yy**2  # smooth, as B0 and receive phase are: 2.5 rad across
    image = head * torch.exp(1j * phase)  # (1, 1, 96, 96) complex
    mask = variable_density_mask((96, 96), 4.0, generator=torch.Generator().manual_seed(0))
    kspace = CartesianMRI(mask)(image)[0, 0].numpy()
    truth = head[0, 0].numpy()
    model = load_model("mri").model
    restored = restore(kspace, "mri", model, mask=mask[0, 0].numpy()).image
    ignored = restore(kspace, "mri", model, mask=mask[0, 0].numpy(), maps="none").image
    k = torch.from_numpy(kspace)[None, None].to(torch.complex64)
    zero_filled = CartesianMRI(mask).adjoint(k).abs()[0, 0]
    error = lambda estimate: np.mean((estimate - truth) ** 2)  # noqa: E731
    assert error(restored) < 0.6 * error(zero_filled.numpy())  # measured: 0.34
    assert error(restored) < 0.3 * error(ignored)  # the phase left in: measured 0.08
    with pytest.raises(ValueError, match="'none' is for single-coil k-space, not 2 coils"):
        restore(np.stack([kspace, kspace]), "mri", model, maps="none")


def test_the_mri_task_can_give_its_images_a_smooth_random_phase():
    x = torch.rand(3, 1, 32, 32, dtype=torch.float64)
    plain = MRITask(acceleration=(2.0, 2.0)).sample(x, torch.Generator().manual_seed(0))
    assert torch.equal(plain.target[:, 1], torch.zeros_like(x[:, 0]))  # real images
    m = MRITask(acceleration=(2.0, 2.0), phase=3.0).sample(x, torch.Generator().manual_seed(0))
    magnitude = m.target.square().sum(dim=1).sqrt()
    assert torch.allclose(magnitude, x[:, 0])  # only the phase changes
    phi = torch.atan2(m.target[:, 1], m.target[:, 0])
    assert float(phi[0].std()) > 0.1 and not torch.allclose(phi[0], phi[1])  # varies, per sample
    step = (torch.exp(1j * phi[..., 1:]) - torch.exp(1j * phi[..., :-1])).abs().max()
    assert step < 0.5  # smooth: neighbouring pixels' phases differ by under 0.5 rad
    assert torch.allclose(m.y, m.operator(m.target))
    with pytest.raises(ValueError, match="phase must lie in"):
        MRITask(phase=-1.0)
    residual = MRITask(acceleration=(2.0, 2.0), phase=0.5, phase_offset=0.25)
    phi = torch.angle(channels_to_complex(residual.sample(x, torch.Generator()).target))
    assert float(phi.abs().max()) <= 0.25 + 5 * 0.25 + 1e-9  # offset + five terms of 0.25
    assert float(phi.abs().max()) > 0.05
    with pytest.raises(ValueError, match="phase_offset must lie in"):
        MRITask(phase=0.5, phase_offset=4.0)


def test_validation_scores_complex_images_by_their_magnitude():
    from rimkit.train.loop import psnr_per_step

    x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    phase = torch.linspace(0, 3, 16, dtype=torch.float64)  # parts of both signs
    target = torch.cat([x * torch.cos(phase), x * torch.sin(phase)], dim=1)
    noisy = target + 0.01 * torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    complex_scores = psnr_per_step([noisy], target, complex_images=True)  # (1, 2)
    assert complex_scores.shape == (1, 2) and bool((complex_scores > 38).all())
    clipped = psnr_per_step([noisy], target)  # negative parts clipped away: a wrong score
    assert bool((clipped < 25).all())


def _write_bart(stem, array: np.ndarray) -> None:
    """``array`` (BART's dimensions) as ``stem.hdr`` / ``stem.cfl``."""
    dims = " ".join(str(d) for d in array.shape)
    stem.with_suffix(".hdr").write_text(f"# Dimensions\n{dims}\n")
    array.astype(np.complex64).flatten(order="F").tofile(stem.with_suffix(".cfl"))


def test_compare_scores_against_a_bart_reference_image(tmp_path, capsys):
    """BART's pics writes its reference as an image with one ESPIRiT map per dimension 4:
    the first map's image is the reference; coil images are refused."""
    from rimkit.io import read_bart_image

    kspace, _, _, x = _multicoil_kspace()
    _write_bart(tmp_path / "ksp", np.moveaxis(kspace, 0, -1)[None])  # (1, H, W, coils)
    image = np.stack([x * np.exp(0.3j), 0.01 * x], axis=-1)  # two maps' images
    _write_bart(tmp_path / "img", image[None, :, :, None, :])  # (1, H, W, 1, 2)
    with pytest.warns(UserWarning, match="2 ESPIRiT maps' images; the first"):
        np.testing.assert_allclose(read_bart_image(tmp_path / "img"), x, atol=1e-6)
    argv = ["compare", tmp_path / "ksp.cfl", "--task", "mri", "--methods", "zero-filled",
            "--out", tmp_path / "cmp"]  # fmt: skip
    assert main([str(a) for a in [*argv, "--truth", tmp_path / "img.cfl"]]) == 0
    out = capsys.readouterr()
    row = next(line for line in out.out.splitlines() if line.startswith("| zero-filled"))
    assert float(row.split("|")[3]) > 15 and "the first, which holds the image" in out.err
    _write_bart(tmp_path / "coils", np.moveaxis(kspace, 0, -1)[None])
    assert main([str(a) for a in [*argv, "--force", "--truth", tmp_path / "coils.cfl"]]) == 2
    assert "4 coil images; a reference is one image" in capsys.readouterr().err
    np.save(tmp_path / "noisy.npy", x)
    argv[1:4] = [tmp_path / "noisy.npy", "--task", "denoise"]
    assert main([str(a) for a in [*argv, "--force", "--truth", tmp_path / "img.cfl"]]) == 2
    assert "is a BART file; it scores --task mri only" in capsys.readouterr().err


def test_reconstruct_runs_mri_measured_on_a_scanners_kspace_and_mri_on_simulated(tmp_path, capsys):
    kspace, _, _, _ = _multicoil_kspace()
    _write_bart(tmp_path / "ksp", np.moveaxis(kspace, 0, -1)[None])  # (1, H, W, coils)
    np.save(tmp_path / "ksp.npy", kspace)
    for source, model in (("ksp.cfl", "mri-measured"), ("ksp.npy", "mri")):
        argv = ["reconstruct", tmp_path / source, tmp_path / f"{source}.png", "--task", "mri"]
        assert main([str(a) for a in argv]) == 0
        assert f"steps of {model}" in capsys.readouterr().out
