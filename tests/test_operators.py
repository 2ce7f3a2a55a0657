"""The shared operator suite: every operator is listed once in OPERATORS and inherits every check.

Checks: a normalised adjoint test in float64, ``op.H.H is op``, ``normal == adjoint o forward``,
the analytic likelihood gradient equal to autograd's, ``gradcheck`` on tiny inputs.
Operator-specific tests (FFT operators against numpy, kernels, masks) follow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy import ndimage

from rimkit.likelihood import AutogradLikelihood, GaussianLikelihood
from rimkit.operators import (
    SIE,
    BicubicDownsample,
    Blur,
    CartesianMRI,
    ComplexAsChannels,
    FourierProjection,
    Identity,
    Inpainting,
    Lensing,
    LinearOperator,
    RealImages,
    adjoint_mismatch,
    box_kernel,
    equispaced_columns_mask,
    fft2c,
    gaussian_2d_mask,
    gaussian_kernel,
    motion_kernel,
    random_columns_mask,
    random_mask,
    random_projection,
    rms_row_norm,
    variable_density_mask,
)
from rimkit.operators.base import inner


@dataclass
class Case:
    """An operator and the shape and dtype kind of its input images."""

    make: Callable[[torch.Generator], LinearOperator]
    shape: tuple[int, int, int, int]
    complex_input: bool = False


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


OPERATORS: dict[str, Case] = {
    "identity": Case(lambda g: Identity(), (2, 3, 7, 9)),
    "blur-circular": Case(lambda g: Blur(gaussian_kernel(1.2)), (2, 1, 12, 11)),
    "blur-zero": Case(lambda g: Blur(motion_kernel(5, 30.0), boundary="zero"), (2, 3, 10, 9)),
    "blur-per-sample": Case(
        lambda g: Blur(torch.stack([box_kernel(3), gaussian_kernel(0.8, size=3)])),
        (2, 1, 8, 8),
    ),
    "bicubic-x2": Case(lambda g: BicubicDownsample(2), (2, 1, 12, 10)),
    "bicubic-x3-odd": Case(lambda g: BicubicDownsample(3, in_size=(11, 13)), (1, 3, 11, 13)),
    "inpaint": Case(lambda g: Inpainting(random_mask((2, 1, 9, 8), 0.4, g)), (2, 3, 9, 8)),
    "gaussian-projection": Case(
        lambda g: random_projection("gaussian", (1, 6, 6), 0.5, batch=2, generator=g),
        (2, 1, 6, 6),
    ),
    "bernoulli-projection": Case(
        lambda g: random_projection("bernoulli", (2, 4, 5), 0.3, generator=g), (3, 2, 4, 5)
    ),
    "fourier-projection": Case(
        lambda g: random_projection("fourier", (1, 6, 7), 0.4, batch=2, generator=g),
        (2, 1, 6, 7),
    ),
    "mri-columns": Case(
        lambda g: CartesianMRI(variable_density_mask((8, 10), 2.5, batch=2, generator=g)),
        (2, 1, 8, 10),
        complex_input=True,
    ),
    "mri-points": Case(
        lambda g: CartesianMRI(gaussian_2d_mask((9, 8), 3.0, generator=g)),
        (1, 2, 9, 8),
        complex_input=True,
    ),
    "mri-as-channels": Case(
        lambda g: ComplexAsChannels(CartesianMRI(variable_density_mask((8, 8), 2.0, generator=g))),
        (2, 2, 8, 8),
    ),
    "mri-real-images": Case(
        lambda g: RealImages(CartesianMRI(variable_density_mask((8, 9), 2.0, generator=g))),
        (2, 1, 8, 9),
    ),
    "lensing-sie": Case(
        lambda g: Lensing.from_lens(
            SIE(torch.tensor([0.9, 1.2]), torch.tensor([0.6, 1.0]), 0.4, (0.1, -0.2), (0.05, 0.02)),
            image_size=(9, 10),
            image_fov=3.0,
            source_size=(7, 6),
            source_fov=(1.6, 1.4),
        ),
        (2, 1, 7, 6),
    ),
    "lensing-psf": Case(
        lambda g: Blur(gaussian_kernel(0.8)) @ Lensing.from_lens(SIE(1.0, 0.7), 8, 3.0, 6, 2.0),
        (1, 2, 6, 6),
    ),
    "composition": Case(
        lambda g: Inpainting(random_mask((1, 1, 8, 8), 0.3, g)) @ Blur(box_kernel(3)),
        (1, 1, 8, 8),
    ),
    "adjoint-of-adjoint-composed": Case(
        lambda g: Blur(gaussian_kernel(1.0)).H @ Inpainting(random_mask((1, 1, 9, 9), 0.5, g)),
        (1, 1, 9, 9),
    ),
}


def _image(case: Case, gen: torch.Generator) -> torch.Tensor:
    x = torch.randn(case.shape, generator=gen, dtype=torch.float64)
    if case.complex_input:
        x = torch.complex(x, torch.randn(case.shape, generator=gen, dtype=torch.float64))
    return x


def _measurement_like(y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    z = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    if y.is_complex():
        z = torch.complex(z, torch.randn(y.shape, generator=gen, dtype=torch.float64))
    return z


def _norm(t: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(inner(t, t))


@pytest.fixture(params=sorted(OPERATORS), ids=sorted(OPERATORS))
def case(request) -> Case:
    return OPERATORS[request.param]


def test_adjoint_is_exact_in_float64(case: Case):
    gen = _gen()
    op = case.make(gen).double()
    mismatch = adjoint_mismatch(op, _image(case, gen))
    assert torch.all(mismatch < 1e-13), mismatch


def test_adjoint_mismatch_finds_a_wrong_adjoint_and_a_missing_one_is_named():
    class Shift(LinearOperator):
        def forward(self, x):
            return torch.roll(x, 1, dims=-1)

        def adjoint(self, y):  # wrong: the adjoint rolls back
            return torch.roll(y, 1, dims=-1)

    class NoAdjoint(LinearOperator):
        def forward(self, x):
            return x

    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    assert torch.all(adjoint_mismatch(Shift(), x) > 1e-3)
    with pytest.raises(NotImplementedError, match="NoAdjoint must implement adjoint"):
        NoAdjoint().adjoint(x)


def test_adjoint_of_adjoint_is_the_operator(case: Case):
    op = case.make(_gen())
    assert op.H.H is op


def test_normal_equals_adjoint_after_forward(case: Case):
    gen = _gen()
    op = case.make(gen).double()
    x = _image(case, gen)
    torch.testing.assert_close(op.normal(x), op.adjoint(op(x)), rtol=1e-12, atol=1e-12)


def test_adjoint_operator_swaps_forward_and_adjoint(case: Case):
    gen = _gen()
    op = case.make(gen).double()
    x = _image(case, gen)
    y = _measurement_like(op(x), gen)
    torch.testing.assert_close(op.H(y), op.adjoint(y), rtol=0, atol=0)
    torch.testing.assert_close(op.H.adjoint(x), op(x), rtol=0, atol=0)


def test_analytic_likelihood_gradient_equals_autograd(case: Case):
    gen = _gen()
    op = case.make(gen).double()
    x, truth = _image(case, gen), _image(case, gen)
    y = op(truth) + 0.1 * _measurement_like(op(truth), gen)
    sigma = torch.rand(x.shape[0], generator=gen, dtype=torch.float64) + 0.05
    eps = torch.tensor(1e-2, dtype=torch.float64)
    analytic = GaussianLikelihood(op, y, sigma).grad(x, eps)
    auto = AutogradLikelihood(op, y, sigma).grad(x, eps)
    torch.testing.assert_close(analytic, auto, rtol=1e-10, atol=1e-10)
    assert analytic.shape == x.shape and analytic.dtype == x.dtype


def test_gradcheck_on_tiny_inputs(case: Case):
    gen = _gen()
    op = case.make(gen).double()
    x = _image(case, gen).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: op(t), (x,), eps=1e-6, atol=1e-6)
    y = _measurement_like(op(x.detach()), gen).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: op.adjoint(t), (y,), eps=1e-6, atol=1e-6)


def test_float32_forward_matches_float64(case: Case):
    gen = _gen()
    op = case.make(gen)
    x = _image(case, gen)
    x32 = x.to(torch.complex64 if x.is_complex() else torch.float32)
    y32, y64 = op(x32), op.double()(x)
    assert y32.dtype in (torch.float32, torch.complex64)
    torch.testing.assert_close(y32.to(y64.dtype), y64, rtol=1e-4, atol=1e-5)


def test_operators_reject_wrong_rank_and_dtype(case: Case):
    op = case.make(_gen())
    with pytest.raises(ValueError, match="4 dimensions"):
        op(torch.zeros(case.shape[1:]))
    with pytest.raises(ValueError, match="dtype"):
        op(torch.zeros(case.shape, dtype=torch.int64))


# --- FFT operators against numpy and scipy ------------------------------------------------


def test_circular_blur_matches_scipy_wrap_convolution():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, 13, 16))
    k = motion_kernel(7, 20.0).double().numpy()
    ours = Blur(torch.from_numpy(k), "circular")(torch.from_numpy(x))[0, 0].numpy()
    ref = ndimage.convolve(x[0, 0], k, mode="wrap")
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_zero_boundary_blur_matches_scipy_constant_convolution():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 1, 9, 12))
    k = rng.random((5, 3))
    ours = Blur(torch.from_numpy(k), "zero")(torch.from_numpy(x))[0, 0].numpy()
    ref = ndimage.convolve(x[0, 0], k, mode="constant", cval=0.0)
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_centred_fft_matches_numpy():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 1, 7, 10)) + 1j * rng.standard_normal((1, 1, 7, 10))
    ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), (-2, -1))
    np.testing.assert_allclose(fft2c(torch.from_numpy(x)).numpy(), ref, atol=1e-12)


def test_fourier_projection_matches_numpy_dft_rows():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 5, 6))
    rows = torch.tensor([0, 7, 31, 59, 44])
    y = FourierProjection(rows, (2, 5, 6))(torch.from_numpy(x))[0].numpy()
    coeffs = np.fft.fft2(x[0], norm="ortho").reshape(-1)[rows.numpy()]
    np.testing.assert_allclose(y, np.concatenate([coeffs.real, coeffs.imag]), atol=1e-12)


def test_mri_fully_sampled_is_unitary():
    x = torch.randn(1, 1, 6, 8, dtype=torch.complex128)
    op = CartesianMRI(torch.ones(1, 1, 6, 8))
    torch.testing.assert_close(op.adjoint(op(x)), x)
    torch.testing.assert_close(_norm(op(x)), _norm(x))


# --- kernels and masks ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kernel", [gaussian_kernel(2.0), box_kernel(4), motion_kernel(9, 45.0), motion_kernel(2.5)]
)
def test_kernels_are_normalised_and_non_negative(kernel):
    assert torch.isclose(kernel.sum(), torch.tensor(1.0))
    assert (kernel >= 0).all()


def test_gaussian_kernel_has_requested_spread():
    k = gaussian_kernel(2.0, size=41).double()
    r = torch.arange(41, dtype=torch.float64) - 20
    variance_along_rows = (k.sum(dim=1) * r**2).sum()
    assert torch.isclose(variance_along_rows, torch.tensor(4.0, dtype=torch.float64), atol=1e-6)


@pytest.mark.parametrize("angle", [0.0, 30.0, 45.0, 90.0, 120.0])
def test_motion_kernel_lies_along_its_angle(angle):
    k = motion_kernel(9, angle).double()
    c = (k.shape[0] - 1) / 2
    rows, cols = torch.meshgrid(torch.arange(k.shape[0]), torch.arange(k.shape[1]), indexing="ij")
    dx, dy = cols - c, c - rows  # y points up, as the angle is measured
    cov = torch.tensor(
        [[(k * dx * dx).sum(), (k * dx * dy).sum()], [(k * dx * dy).sum(), (k * dy * dy).sum()]]
    )
    _, vectors = torch.linalg.eigh(cov)
    principal = vectors[:, -1]
    measured = torch.rad2deg(torch.atan2(principal[1], principal[0])).item() % 180
    assert min(abs(measured - angle % 180), 180 - abs(measured - angle % 180)) < 1.0


@pytest.mark.parametrize("acceleration", [1.0, 1.5, 2.0, 3.7, 4.0, 5.2, 8.0])
def test_column_masks_hit_the_requested_acceleration(acceleration):
    g = torch.Generator().manual_seed(0)
    mask = variable_density_mask((64, 96), acceleration, batch=3, generator=g)
    columns = mask[:, 0, 0, :]
    assert torch.equal(mask, columns[:, None, None, :].expand_as(mask))
    sampled = columns.sum(dim=1)
    assert torch.all((sampled - 96 / acceleration).abs() <= 0.5)
    centre = round(0.08 * 96)
    assert columns[:, 48 - centre // 2 : 48 - centre // 2 + centre].all()


def test_column_masks_favour_the_centre():
    g = torch.Generator().manual_seed(1)
    masks = variable_density_mask((8, 128), 4.0, batch=200, generator=g)[:, 0, 0, :]
    rate = masks.mean(dim=0)
    assert rate[40:88].mean() > 2 * torch.cat([rate[:20], rate[108:]]).mean()


@pytest.mark.parametrize("acceleration", [1.0, 2.0, 5.2, 10.0])
def test_point_masks_hit_the_requested_acceleration(acceleration):
    g = torch.Generator().manual_seed(0)
    mask = gaussian_2d_mask((40, 50), acceleration, generator=g)
    assert abs(mask.sum().item() - 2000 / acceleration) <= 0.5
    assert mask[0, 0, 20, 25] == 1  # the centre is sampled
    assert abs(CartesianMRI(mask).acceleration.item() - acceleration) < 0.01


@pytest.mark.parametrize(("width", "acceleration"), [(368, 4.0), (368, 8.0), (320, 4.0), (97, 3.0)])
def test_fastmri_column_masks_sample_a_centre_and_w_over_r_columns(width, acceleration):
    centre = round(0.32 / acceleration * width)  # fastMRI's 0.08 at R = 4, 0.04 at R = 8
    start = width // 2 - centre // 2
    g = torch.Generator().manual_seed(0)
    draws = random_columns_mask((4, width), acceleration, batch=400, generator=g)[:, 0, 0]
    assert draws[:, start : start + centre].all()
    assert abs(float(draws.sum(dim=1).mean()) - width / acceleration) < 1.0  # on average
    outside = torch.cat([draws[:, :start], draws[:, start + centre :]], dim=1)
    rate = outside.mean(dim=0)  # uniform: no column favoured
    assert float(rate.max() - rate.min()) < 0.2
    spacing = acceleration * (width - centre) / (width - centre * acceleration)
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        columns = equispaced_columns_mask((4, width), acceleration, generator=g)[0, 0, 0]
        assert columns[start : start + centre].all()
        assert abs(float(columns.sum()) - width / acceleration) <= 1.5
        left = columns[:start].nonzero().flatten()  # the equispaced ones left of the centre
        assert set(torch.diff(left).tolist()) <= {math.floor(spacing), math.ceil(spacing)}
    g = torch.Generator()
    assert random_columns_mask((4, width), 1.0, generator=g).all()
    assert equispaced_columns_mask((4, width), 1.0, generator=g).all()


def test_masks_are_reproducible_from_a_seed():
    a = variable_density_mask((16, 32), 3.0, generator=torch.Generator().manual_seed(5))
    b = variable_density_mask((16, 32), 3.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_random_mask_has_exact_missing_fraction_per_sample():
    mask = random_mask((4, 3, 10, 10), 0.37, torch.Generator().manual_seed(0))
    assert torch.all(mask.sum(dim=(2, 3)) == 63)
    assert torch.equal(mask[:, 0], mask[:, 2])  # the same pixels in every channel
    assert not torch.equal(mask[0], mask[1])


@pytest.mark.parametrize("kind", ["gaussian", "bernoulli"])
def test_matrix_projections_preserve_energy_on_average(kind):
    op = random_projection(kind, (1, 16, 16), 0.5, batch=1, generator=torch.Generator())
    x = torch.randn(64, 1, 16, 16)
    ratio = (op(x) ** 2).sum() / (x**2).sum()
    assert 0.9 < ratio.item() < 1.1


def test_fourier_projection_rows_are_orthonormal():
    op = random_projection("fourier", (1, 8, 8), 0.25, generator=torch.Generator()).double()
    eye = torch.eye(64, dtype=torch.float64).reshape(64, 1, 8, 8)
    rows = op(eye)  # (64, 2m): column j of A
    gram = rows.T @ rows
    m = gram.shape[0] // 2
    # each drawn complex row has unit norm: |Re|^2 + |Im|^2 = 1
    norms = gram.diagonal()[:m] + gram.diagonal()[m:]
    torch.testing.assert_close(norms, torch.ones(m, dtype=torch.float64))


@pytest.mark.parametrize("kind", ["gaussian", "bernoulli", "fourier"])
def test_rms_row_norm_is_that_of_the_dense_matrix(kind):
    op = random_projection(
        kind, (1, 6, 6), 0.3, batch=2, generator=torch.Generator().manual_seed(1)
    )
    eye = torch.eye(36).reshape(36, 1, 6, 6)
    for b in range(2):
        columns = torch.stack([op(eye[j : j + 1].expand(2, -1, -1, -1))[b] for j in range(36)])
        expected = (columns.pow(2).sum() / columns.shape[1]).sqrt()  # ||A||_F^2 / rows
        torch.testing.assert_close(rms_row_norm(op, 2)[b], expected)
    if kind == "bernoulli":
        torch.testing.assert_close(rms_row_norm(op, 2), torch.full((2,), (36 / 11) ** 0.5))


def test_rms_row_norm_refuses_other_operators():
    with pytest.raises(TypeError, match="random projection"):
        rms_row_norm(Identity())


def test_projections_are_seeded():
    a = random_projection("gaussian", (1, 4, 4), 0.5, generator=torch.Generator().manual_seed(9))
    b = random_projection("gaussian", (1, 4, 4), 0.5, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a.matrix, b.matrix)


def test_complex_as_channels_round_trip():
    from rimkit.operators import channels_to_complex, complex_to_channels

    z = torch.randn(2, 3, 4, 5, dtype=torch.complex64)
    assert torch.equal(channels_to_complex(complex_to_channels(z)), z)


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: random_mask((1, 1, 4, 4), 1.0), r"\[0, 1\)"),
        (lambda: random_mask((1, 1, 4, 4), -0.1), r"\[0, 1\)"),
        (lambda: variable_density_mask((8, 8), 0.5), ">= 1"),
        (lambda: gaussian_2d_mask((8, 8), float("nan")), ">= 1"),
        (lambda: random_projection("uniform", (1, 4, 4), 0.5), "known: gaussian"),
        (lambda: random_projection("gaussian", (1, 4, 4), 0.0), r"\(0, 1\]"),
        (lambda: gaussian_kernel(0.0), "> 0"),
        (lambda: box_kernel(0), "positive integer"),
        (lambda: motion_kernel(0.5), ">= 1"),
        (lambda: Blur(torch.ones(3, 3), boundary="mirror"), "known: circular, zero"),
        (lambda: Inpainting(torch.full((1, 1, 2, 2), 0.5)), "0 .missing. or 1"),
        (lambda: CartesianMRI(torch.ones(1, 2, 4, 4)), r"\(B, 1, H, W\)"),
    ],
)
def test_bad_parameters_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_mask_of_wrong_size_is_named():
    with pytest.raises(ValueError, match="mask is 4x4"):
        Inpainting(torch.ones(1, 1, 4, 4))(torch.zeros(1, 1, 5, 5))


def test_kernel_larger_than_circular_image_is_named():
    with pytest.raises(ValueError, match="larger than"):
        Blur(box_kernel(9))(torch.zeros(1, 1, 5, 5))


def test_wrong_channel_count_for_projection_is_named():
    op = random_projection("gaussian", (1, 4, 4), 0.5)
    with pytest.raises(ValueError, match="the operator"):
        op(torch.zeros(1, 3, 4, 4))
