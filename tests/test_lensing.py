"""Strong lensing: the SIE deflection against its mass model, the lensing operator, a lens fit.

The operator's adjoint, gradients and dtypes are checked in the shared operator suite
(``tests/test_operators.py``, cases ``lensing-sie`` and ``lensing-psf``).
"""

from __future__ import annotations

import math

import pytest
import torch

from rimkit.operators import SIE, Lensing, angular_grid


def _points(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    xy = (torch.rand(2, n, generator=gen, dtype=torch.float64) - 0.5) * 4
    return xy[0].requires_grad_(True), xy[1].requires_grad_(True)


def _derivatives(f: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple:
    dx, dy = torch.autograd.grad(f.sum(), (x, y), retain_graph=True)
    return dx, dy


def test_isothermal_sphere_deflects_by_the_einstein_radius_everywhere():
    x, y = _points()
    ax, ay = SIE(einstein_radius=1.3).deflection(x, y)
    torch.testing.assert_close(torch.hypot(ax, ay), torch.full_like(ax, 1.3))
    ring = torch.linspace(0, 2 * math.pi, 13, dtype=torch.float64)
    beta = SIE(1.3).source_positions(1.3 * torch.cos(ring), 1.3 * torch.sin(ring))
    assert beta.abs().max() < 1e-9  # the Einstein ring sees the point behind the lens


@pytest.mark.parametrize("q, angle", [(0.5, 0.0), (0.8, 0.7), (0.3, -2.0)])
def test_ellipsoid_deflection_has_the_sie_convergence_and_no_curl(q, angle):
    """kappa = div(alpha) / 2 must be the SIE's surface density, and alpha a gradient field."""
    x, y = _points(seed=1)
    lens = SIE(1.1, q, angle, center=(0.2, -0.3), shear=(0.07, -0.04))
    ax, ay = lens.deflection(x, y)
    dax_dx, dax_dy = _derivatives(ax, x, y)
    day_dx, day_dy = _derivatives(ay, x, y)
    dx, dy = x - 0.2, y + 0.3
    xr = math.cos(angle) * dx + math.sin(angle) * dy
    yr = -math.sin(angle) * dx + math.cos(angle) * dy
    kappa = 1.1 / (2 * torch.sqrt(q * xr**2 + yr**2 / q))
    torch.testing.assert_close(0.5 * (dax_dx + day_dy), kappa.detach())
    torch.testing.assert_close(dax_dy, day_dx)


def test_ellipsoid_tends_to_the_sphere():
    x, y = _points(seed=2)
    near = torch.stack(SIE(0.9, 1 - 1e-6, 0.5).deflection(x, y))
    torch.testing.assert_close(near, torch.stack(SIE(0.9).deflection(x, y)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("q0", [1.0, 1 - 1e-5, 0.9995, 0.99, 0.7])
def test_the_gradient_in_the_axis_ratio_is_right_up_to_a_round_lens(q0):
    """The SIS (q = 1) is where a lens fit starts; the derivative in q must be the one-sided
    finite difference there and continuous across the series' threshold."""
    x, y = (t.detach() for t in _points(8, seed=3))

    def spread(q: torch.Tensor) -> torch.Tensor:
        ax, ay = SIE(1.0, q, 0.4, shear=(0.05, 0.02)).deflection(x, y)
        return (ax**2 + ay**2).sum()

    q = torch.tensor(q0, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(spread(q), q)
    h = 1e-6
    finite = (spread(torch.tensor(q0 - h, dtype=torch.float64)) - spread(q.detach() - 2 * h)) / h
    assert float(grad) == pytest.approx(float(finite), rel=1e-3, abs=1e-6)


def test_deflection_is_finite_at_the_lens_centre():
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    ax, ay = SIE(1.0, 0.6).deflection(x, x)
    (g,) = torch.autograd.grad((ax + ay).sum(), x)
    assert all(bool(torch.isfinite(t).all()) for t in (ax, ay, g))


def test_per_sample_lenses_give_one_operator_per_sample():
    lens = SIE(torch.tensor([0.5, 1.0]), axis_ratio=torch.tensor([1.0, 0.6]))
    op = Lensing.from_lens(lens, 16, 3.0, 12, 2.0)
    source = torch.rand(1, 1, 12, 12).expand(2, 1, 12, 12)
    images = op(source)
    for i, te in enumerate((0.5, 1.0)):
        single = Lensing.from_lens(SIE(te, (1.0, 0.6)[i]), 16, 3.0, 12, 2.0)
        torch.testing.assert_close(images[i : i + 1], single(source[:1]))
    assert not torch.allclose(images[0], images[1])


def test_half_pixel_shift_averages_neighbours_and_outside_is_dark():
    x, y = angular_grid((1, 3), (1.0, 3.0))
    source = torch.tensor([[[[1.0, 3.0, 5.0]]]])
    shifted = Lensing(torch.stack([x + 0.5, y], -1)[None], (1, 3), (1.0, 3.0))
    assert shifted(source).flatten().tolist() == [2.0, 4.0, 2.5]  # the last reads 5 and dark
    far = Lensing(torch.stack([x + 10, y], -1)[None], (1, 3), (1.0, 3.0))
    assert far(source).abs().max() == 0


def test_a_compact_source_behind_a_sphere_makes_an_einstein_ring():
    xs, ys = angular_grid(41, 2.0, dtype=torch.float64)
    source = torch.exp(-(xs**2 + ys**2) / (2 * 0.05**2))[None, None]
    image = Lensing.from_lens(SIE(1.2), 81, 4.0, 41, 2.0).double()(source)
    x, y = angular_grid(81, 4.0, dtype=torch.float64)
    radius = (torch.hypot(x, y) * image[0, 0]).sum() / image.sum()
    assert abs(float(radius) - 1.2) < 0.02
    angles = torch.atan2(y, x)[image[0, 0] > 0.5 * image.max()]
    assert angles.min() < -3 and angles.max() > 3  # a full ring, not an arc


def test_lens_parameters_are_recovered_by_gradient_descent():
    """The forward model is non-linear in the lens; autograd through the weights fits it."""
    xs, ys = angular_grid(32, 2.0, dtype=torch.float64)
    source = torch.exp(-((xs - 0.1) ** 2 + (ys + 0.05) ** 2) / (2 * 0.15**2))[None, None]

    def observe(einstein_radius, axis_ratio):
        lens = SIE(einstein_radius, axis_ratio, angle=0.4)
        return Lensing.from_lens(lens, 48, 3.0, 32, 2.0)(source)

    target = observe(torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64))
    params = torch.tensor([0.85, 0.85], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.Adam([params], lr=0.02)
    for _ in range(300):
        optimiser.zero_grad()
        loss = ((observe(params[0], params[1].clamp(0.1, 1.0)) - target) ** 2).sum()
        loss.backward()
        optimiser.step()
    torch.testing.assert_close(
        params.detach(), torch.tensor([1.0, 0.7]).double(), atol=0.01, rtol=0
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SIE(-1.0), "einstein_radius must be a finite number >= 0"),
        (lambda: SIE(1.0, axis_ratio=0.0), "axis_ratio must be a finite number in"),
        (lambda: SIE(1.0, axis_ratio=1.5), "axis_ratio must be a finite number in"),
        (lambda: SIE(float("nan")), "einstein_radius must be a finite number >= 0"),
        (lambda: SIE(1.0, angle=math.nan), "angle must be finite, got nan"),
        (lambda: SIE(1.0, shear=(0.0, math.inf)), r"shear must be finite, got \(0.0, inf\)"),
        (lambda: SIE(1.0, center=(math.nan, 0.0)), "center must be finite"),
        (lambda: Lensing(torch.zeros(1, 4, 4), 4, 1.0), r"shape \(B, H, W, 2\)"),
        (lambda: Lensing(torch.full((1, 4, 4, 2), math.inf), 4, 1.0), "finite"),
        (lambda: Lensing(torch.zeros(1, 4, 4, 2), 0, 1.0), "source_size must be a positive"),
        (lambda: Lensing(torch.zeros(1, 4, 4, 2), 2.5, 1.0), "whole pixels"),
        (lambda: Lensing(torch.zeros(1, 4, 4, 2), 4, -1.0), "source_fov must be a positive"),
    ],
)
def test_bad_lens_or_grid_is_refused_with_a_clear_message(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_source_and_image_of_the_wrong_size_or_batch_are_refused():
    op = Lensing.from_lens(SIE(torch.tensor([1.0, 0.8])), 8, 2.0, 6, 1.5)
    built = "this operator was built for"
    with pytest.raises(ValueError, match=f"the source is 5x6 pixels; {built} 6x6-pixel sources"):
        op(torch.rand(2, 1, 5, 6))
    with pytest.raises(ValueError, match=f"the image is 6x6 pixels; {built} 8x8-pixel images"):
        op.adjoint(torch.rand(2, 1, 6, 6))
    with pytest.raises(ValueError, match="holds 2 lenses for a batch of 3"):
        op(torch.rand(3, 1, 6, 6))


def test_a_setup_may_read_a_source_grid_coarser_than_the_image():
    from rimkit.operators import LensingSetup

    op = LensingSetup(SIE(0.45, 0.7), psf=1.0).operator((24, 20), source_size=(12, 10))
    flat = torch.full((1, 1, 12, 10), 0.5)
    image = op(flat)
    assert image.shape == (1, 1, 24, 20) and op.adjoint(image).shape == (1, 1, 12, 10)
    assert image.max() <= 0.5 + 1e-6 and image.max() > 0.49  # a flat source stays flat where seen
