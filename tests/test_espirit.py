"""ESPIRiT coil maps: they recover simulated sensitivities, crop where no coil sees signal,
keep the combined image real, refuse bad settings, and serve `restore` / `rimkit reconstruct`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rimkit.cli import main
from rimkit.compare import compare
from rimkit.models import RIMConfig
from rimkit.operators import (
    coil_sensitivities,
    espirit_maps,
    fft2c,
    gaussian_2d_mask,
    ifft2c,
    synthetic_coil_maps,
)
from rimkit.operators.espirit import _image_domain_gram
from rimkit.pipeline import estimate_coil_maps, restore


def _scan(size: int = 64, coils: int = 6, background: float = 0.0, seed: int = 0):
    """Fully sampled k-space ``(1, coils, size, size)`` of a textured disc, its true maps and
    the image ``(size, size)``."""
    g = torch.Generator().manual_seed(seed)
    maps = synthetic_coil_maps(coils, (size, size), generator=g, dtype=torch.complex128)
    grid = torch.linspace(-1, 1, size, dtype=torch.float64)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    disc = (yy**2 + xx**2 < 0.6).double()
    texture = 0.5 + 0.5 * torch.rand(size, size, generator=g, dtype=torch.float64)
    image = disc * texture + background * (1 - disc)
    return fft2c(maps * image), maps, image


def _agreement(estimated: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """``|<S_est(r), S_true(r)>|`` per pixel ``(H, W)``: 1 where they agree up to a phase."""
    return (estimated.conj() * true).sum(dim=1).abs()[0]


def test_espirit_recovers_simulated_maps_closer_than_the_low_resolution_ratio():
    kspace, maps, _ = _scan(background=1.0)
    espirit = _agreement(espirit_maps(kspace, calibration=24), maps)
    lowres = _agreement(coil_sensitivities(kspace, calibration=24), maps)
    assert espirit.mean() > 0.995
    assert espirit.mean() > lowres.mean() + 0.003  # measured: 0.996 against 0.989


def test_espirit_maps_are_unit_norm_on_the_object_zero_off_it_and_the_combination_real():
    kspace, _, image = _scan()
    estimated = espirit_maps(kspace, calibration=24)  # (1, coils, H, W)
    energy = estimated.abs().square().sum(dim=1)[0]
    seen = energy > 0
    np.testing.assert_allclose(energy[seen].numpy(), 1.0, atol=1e-6)
    grid = torch.linspace(-1, 1, 64, dtype=torch.float64)
    radius2 = grid[:, None] ** 2 + grid[None, :] ** 2
    inside, outside = image > 0.25, radius2 > 1.2  # the disc: radius^2 < 0.6
    assert bool(seen[inside].all()) and not bool(seen[outside].any())
    combined = (estimated.conj() * ifft2c(kspace)).sum(dim=1)[0]  # sum_c conj(S_c) I_c
    assert float(combined.real[inside].min()) > 0
    leak = (combined.imag.abs() / combined.abs())[inside]  # measured: mean 0.0095, max 0.094
    assert float(leak.mean()) < 0.02 and float(leak.max()) < 0.15
    # the combined magnitude is the image (measured error 4e-5; the low-resolution maps: 7e-4)
    np.testing.assert_allclose(combined.abs()[inside].numpy(), image[inside].numpy(), atol=1e-4)


def test_the_image_domain_gram_equals_the_padded_inverse_fft():
    kernels = torch.randn(5, 3, 4, 4, dtype=torch.complex128)
    h, w = 13, 10
    padded = torch.zeros(5, 3, h, w, dtype=torch.complex128)
    padded[..., h // 2 - 2 : h // 2 + 2, w // 2 - 2 : w // 2 + 2] = kernels
    images = ifft2c(padded)  # (n, coils, H, W)
    expected = torch.einsum("jchw,jdhw->hwcd", images, images.conj()) * (h * w / 16)
    gram = _image_domain_gram(kernels, (h, w))
    assert gram.shape == (h, w, 3, 3)
    torch.testing.assert_close(gram, expected.to(gram.dtype), rtol=1e-5, atol=1e-5)


def test_espirit_refuses_bad_settings_with_messages_that_name_them():
    kspace, _, _ = _scan(size=32, coils=3)
    with pytest.raises(ValueError, match="kernel must be an int from 2 to 15"):
        espirit_maps(kspace, calibration=16, kernel=16)
    with pytest.raises(ValueError, match="threshold must be in"):
        espirit_maps(kspace, calibration=16, threshold=1.5)
    with pytest.raises(ValueError, match="crop must be in"):
        espirit_maps(kspace, calibration=16, crop=1.0)
    with pytest.raises(ValueError, match="too few 12x12 patches"):
        espirit_maps(kspace, calibration=16, kernel=12)
    undersampled = kspace * gaussian_2d_mask((32, 32), 4, center_fraction=0.0)
    undersampled[..., 16, 16] = 0
    with pytest.raises(ValueError, match="no fully sampled centre"):
        espirit_maps(undersampled)
    with pytest.raises(ValueError, match="must be complex"):
        espirit_maps(kspace.abs())


def test_restore_estimates_espirit_maps_by_default_and_lowres_on_request():
    kspace, _, _ = _scan(size=48, coils=4, background=0.1)
    g = torch.Generator().manual_seed(3)
    mask = gaussian_2d_mask((48, 48), 3, center_fraction=0.4, generator=g)
    measured = (kspace * mask)[0].numpy()
    binary = mask[0, 0].numpy()
    model = RIMConfig(cell="mri", channels=2, link="identity", features=4, hidden=4).build()
    default = restore(measured, "mri", model, mask=binary).image
    for method, estimate in (("espirit", espirit_maps), ("lowres", coil_sensitivities)):
        given = estimate(torch.from_numpy(measured)[None], mask)[0].numpy()
        explicit = restore(measured, "mri", model, mask=binary, maps=given).image
        named = restore(measured, "mri", model, mask=binary, maps=method).image
        np.testing.assert_allclose(named, explicit, rtol=1e-5, atol=1e-6)
        if method == "espirit":
            np.testing.assert_allclose(default, explicit, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown coil map method 'sense'"):
        restore(measured, "mri", model, maps="sense")
    for maps in (None, "lowres"):  # compare estimates the maps once, as restore would
        once = estimate_coil_maps(measured, binary, maps)
        given = restore(measured, "mri", model, mask=binary, maps=once).image
        named = restore(measured, "mri", model, mask=binary, maps=maps).image
        np.testing.assert_allclose(given, named, rtol=1e-5, atol=1e-6)
        compared = compare(measured, "mri", ["zero-filled"], mask=binary, maps=maps)[0].image
        alone = restore(measured, "mri", None, baseline="zero-filled", mask=binary, maps=maps)
        np.testing.assert_allclose(compared, alone.image, rtol=1e-5, atol=1e-6)
    assert estimate_coil_maps(measured[:1], binary) is None  # one coil: the phase, per method


def test_reconstruct_takes_a_map_method_or_a_file_and_names_a_missing_one(tmp_path, capsys):
    kspace, _, _ = _scan(size=32, coils=3)
    mask = gaussian_2d_mask((32, 32), 2.5, center_fraction=0.4)
    np.save(tmp_path / "k.npy", (kspace * mask)[0].numpy().astype(np.complex64))
    for method, said in (("espirit", "ESPIRiT maps"), ("lowres", "low-resolution maps")):
        out = tmp_path / f"{method}.png"
        assert main(["reconstruct", str(tmp_path / "k.npy"), str(out), "--task", "mri",
                     "--maps", method]) == 0  # fmt: skip
        assert (
            out.exists()
            and f"(3 coils, {said}, magnitude / its maximum)" in capsys.readouterr().out
        )
    code = main(["reconstruct", str(tmp_path / "k.npy"), str(tmp_path / "x.png"), "--task", "mri",
                 "--maps", "missing"])  # fmt: skip
    assert code == 2
    assert "--maps missing: no such file" in capsys.readouterr().err
