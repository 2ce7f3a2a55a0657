"""Noise, simulation and likelihoods: values, reproducibility, gradients and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from rimkit.likelihood import AutogradLikelihood, GaussianLikelihood, Likelihood, NoiseFloor
from rimkit.noise import GaussianNoise, quantize_8bit, simulate
from rimkit.operators import (
    BicubicDownsample,
    CartesianMRI,
    ComplexAsChannels,
    Identity,
    variable_density_mask,
)


def test_noise_has_the_requested_per_sample_std():
    x = torch.zeros(3, 1, 128, 128, dtype=torch.float64)
    sigma = torch.tensor([0.0, 0.1, 0.3])
    y = simulate(x, Identity(), GaussianNoise(sigma), torch.Generator().manual_seed(0))
    measured = y.flatten(1).std(dim=1)
    assert measured[0] == 0
    torch.testing.assert_close(measured[1:], sigma[1:].double(), rtol=0.03, atol=0)


def test_complex_noise_has_std_sigma_in_each_part():
    k = torch.zeros(1, 1, 128, 128, dtype=torch.complex128)
    y = GaussianNoise(0.2)(k, torch.Generator().manual_seed(1))
    assert abs(y.real.std().item() - 0.2) < 0.005
    assert abs(y.imag.std().item() - 0.2) < 0.005


def test_simulation_is_reproducible_from_a_seed_and_differs_between_seeds():
    x = torch.rand(2, 3, 16, 16)
    op, noise = BicubicDownsample(2), GaussianNoise(0.05)
    a = simulate(x, op, noise, torch.Generator().manual_seed(7))
    b = simulate(x, op, noise, torch.Generator().manual_seed(7))
    c = simulate(x, op, noise, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_quantisation_rounds_to_8_bits_and_clips():
    y = torch.tensor([-0.2, 0.0, 0.5, 0.99, 1.3]).reshape(1, 1, 1, 5)
    q = quantize_8bit(y)
    assert torch.equal(q * 255, torch.round(q * 255))
    assert q.min() == 0 and q.max() == 1
    assert abs(q[0, 0, 0, 2].item() - 128 / 255) < 1e-7
    noisy = GaussianNoise(0.1, quantize=True)(torch.full((1, 1, 8, 8), 0.5))
    assert torch.equal(noisy * 255, torch.round(noisy * 255))


@pytest.mark.parametrize("sigma", [-0.1, float("nan"), float("inf"), [[0.1]]])
def test_bad_sigma_is_named(sigma):
    with pytest.raises(ValueError, match="sigma"):
        GaussianNoise(sigma)


def test_per_sample_sigma_of_wrong_length_is_named():
    with pytest.raises(ValueError, match="3 values for a batch of 2"):
        GaussianNoise(torch.tensor([0.1, 0.2, 0.3]))(torch.zeros(2, 1, 4, 4))


def test_gaussian_likelihood_value_and_gradient_in_closed_form():
    x = torch.zeros(2, 1, 2, 2, dtype=torch.float64)
    y = torch.ones(2, 1, 2, 2, dtype=torch.float64)
    sigma = torch.tensor([1.0, 0.5], dtype=torch.float64)
    lik = GaussianLikelihood(Identity(), y, sigma)
    eps = 0.25
    var = sigma**2 + eps
    torch.testing.assert_close(lik.log_prob(x, eps), -4 / (2 * var))
    torch.testing.assert_close(lik.grad(x, eps)[:, 0, 0, 0], 1 / var)


def test_a_noise_floor_per_sample_is_taken_and_none_at_zero_noise_is_refused():
    x = torch.zeros(2, 1, 2, 2, dtype=torch.float64)
    sigma, eps = torch.tensor([[0.0, 0.5], [0.25, 0.75]], dtype=x.dtype)
    lik = GaussianLikelihood(Identity(), torch.ones_like(x), sigma)
    torch.testing.assert_close(lik.grad(x, eps)[:, 0, 0, 0], 1 / (sigma**2 + eps))
    with pytest.raises(ValueError, match="needs eps > 0"):
        lik.grad(x)  # sigma 0 for the first sample, no floor: an infinite gradient


def test_trainable_noise_floor_keeps_the_gradient_finite_at_zero_noise():
    floor = NoiseFloor(1e-3)
    lik = GaussianLikelihood(Identity(), torch.ones(1, 1, 4, 4), sigma=0.0)
    g = lik.grad(torch.zeros(1, 1, 4, 4), floor())
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g, torch.full_like(g, 1000.0), rtol=1e-4, atol=0)
    g.sum().backward()
    assert floor.raw.grad is not None and floor.raw.grad.item() != 0


def test_likelihoods_satisfy_the_protocol():
    y = torch.zeros(1, 1, 2, 2)
    assert isinstance(GaussianLikelihood(Identity(), y, 0.1), Likelihood)
    assert isinstance(AutogradLikelihood(lambda x: x, y, 0.1), Likelihood)


def test_autograd_likelihood_handles_a_non_linear_model_and_keeps_the_graph():
    y = torch.full((1, 1, 3, 3), 0.25, dtype=torch.float64)
    lik = AutogradLikelihood(torch.square, y, sigma=0.5)
    x = torch.full((1, 1, 3, 3), 0.4, dtype=torch.float64, requires_grad=True)
    g = lik.grad(x)
    expected = (0.25 - 0.16) * 2 * 0.4 / 0.25  # (y - x^2) * 2x / sigma^2
    torch.testing.assert_close(g, torch.full_like(g, expected))
    assert g.requires_grad  # training can back-propagate through the gradient
    (second,) = torch.autograd.grad(g.sum(), x)
    assert torch.isfinite(second).all()


def test_complex_likelihood_gradient_matches_autograd_and_the_channel_view():
    g = torch.Generator().manual_seed(0)
    mri = CartesianMRI(variable_density_mask((8, 8), 2.0, generator=g)).double()
    x = torch.randn(1, 1, 8, 8, dtype=torch.complex128, generator=g)
    y = mri(torch.randn(1, 1, 8, 8, dtype=torch.complex128, generator=g))
    analytic = GaussianLikelihood(mri, y, 0.1).grad(x)
    auto = AutogradLikelihood(mri, y, 0.1).grad(x)
    torch.testing.assert_close(analytic, auto)
    as_channels = GaussianLikelihood(ComplexAsChannels(mri), y, 0.1)
    xc = torch.cat([x.real, x.imag], dim=1)
    torch.testing.assert_close(as_channels.grad(xc), torch.cat([analytic.real, analytic.imag], 1))


def test_gradient_ascent_on_the_likelihood_recovers_a_denoising_measurement():
    y = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    lik = GaussianLikelihood(Identity(), y, sigma=1.0)
    x = torch.zeros_like(y)
    for _ in range(60):
        x = x + 0.5 * lik.grad(x)
    torch.testing.assert_close(x, y)


def test_likelihood_rejects_mismatched_shapes_and_bad_values():
    lik = GaussianLikelihood(BicubicDownsample(2), torch.zeros(1, 1, 4, 4), 0.1)
    with pytest.raises(ValueError, match="do not belong together"):
        lik.grad(torch.zeros(1, 1, 10, 10))
    with pytest.raises(ValueError, match="sigma"):
        GaussianLikelihood(Identity(), torch.zeros(1, 1, 2, 2), -1.0)
    with pytest.raises(ValueError, match="NaN or Inf"):
        GaussianLikelihood(Identity(), torch.full((1, 1, 2, 2), math.nan), 0.1)
    with pytest.raises(ValueError, match="AutogradLikelihood"):
        GaussianLikelihood(torch.square, torch.zeros(1, 1, 2, 2), 0.1)
    with pytest.raises(ValueError, match="> 0"):
        NoiseFloor(0.0)
