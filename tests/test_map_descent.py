"""MAP by gradient descent for any likelihood (rimkit.solvers.MAPDescent): the Tikhonov
solution of a linear model equals conjugate gradients', a non-linear model's objective falls
monotonically to a better estimate, and bad settings are named."""

from __future__ import annotations

import pytest
import torch

from rimkit.evaluate import psnr
from rimkit.io import read_image
from rimkit.likelihood import AutogradLikelihood, GaussianLikelihood
from rimkit.operators import Blur, gaussian_kernel
from rimkit.solvers import MAPDescent, baseline

F64 = torch.float64


def _camera() -> torch.Tensor:
    return torch.tensor(read_image("example:camera")[100:148, 200:248], dtype=F64)[None, None]


def _noise(shape, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_tikhonov_map_of_a_linear_model_is_the_conjugate_gradient_solution():
    x, blur = _camera(), Blur(gaussian_kernel(1.6)).double()
    y = blur(x) + 5 / 255 * _noise(x.shape, 0)
    cg = baseline("cg-tikhonov", weight=0.01, iterations=200)(y, blur, 5 / 255, x0=y)
    descent = MAPDescent(weight=0.01, prior="tikhonov", bounds=None, iterations=300)
    result = descent(GaussianLikelihood(blur, y, 5 / 255), y)
    assert float((result.final - cg.final).abs().max()) < 1e-4


def test_a_non_linear_model_descends_monotonically_to_a_better_estimate():
    x, blur = _camera(), Blur(gaussian_kernel(1.6)).double()

    def absorb(v):  # y = exp(-3 B x): light through an absorbing, blurred medium
        return torch.exp(-3 * blur(v))

    y = absorb(x) + 0.01 * _noise(x.shape, 1)
    start = (-torch.log(y.clamp_min(1e-3)) / 3).clamp(0, 1)  # the inverse, ignoring the blur
    result = MAPDescent(weight=0.01, iterations=100)(AutogradLikelihood(absorb, y, 0.01), start)
    objective = result.objective_stacked()[:, 0]
    assert bool((objective[1:] <= objective[:-1]).all())
    assert objective[0] <= result.initial_objective
    assert float(psnr(result.final, x)) > float(psnr(start, x)) + 1.5
    assert 0 <= float(result.final.min()) and float(result.final.max()) <= 1  # the bounds


def test_bad_settings_and_inputs_are_named():
    with pytest.raises(ValueError, match=r"unknown prior 'l1'; known: tikhonov, tv"):
        MAPDescent(prior="l1")
    with pytest.raises(ValueError, match=r"bounds must be \(low, high\) with low < high"):
        MAPDescent(bounds=(1.0, 0.0))
    with pytest.raises(ValueError, match=r"weight \(the regularisation weight lambda\)"):
        MAPDescent(weight=0)
    with pytest.raises(ValueError, match=r"takes a likelihood .* got Tensor"):
        MAPDescent()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
    y = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"x0 must be a real tensor \(B, C, H, W\)"):
        MAPDescent()(AutogradLikelihood(lambda v: v, y, 0.1), torch.zeros(4, 4))


def test_a_noise_map_of_the_image_shape_weighs_the_data_term():
    x = _camera()
    sigma = torch.full(x.shape[-2:], 0.02, dtype=F64)  # (H, W): broadcasts to y (1, 1, H, W)
    likelihood = GaussianLikelihood(Blur(gaussian_kernel(1.0)).double(), x, sigma)
    result = MAPDescent(weight=1e-3, iterations=5)(likelihood, torch.full_like(x, 0.5))
    assert result.final.shape == x.shape and bool(torch.isfinite(result.final).all())
