"""Losses over a trajectory: step weights, trajectory_loss and SSIM against scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity
from torch.nn import functional as F

from rimkit.models import Trajectory, ssim, step_weights, trajectory_loss
from rimkit.models.losses import measurement_fit_loss, psnr_loss
from rimkit.operators import Identity, MatrixProjection, random_projection


def _estimates(steps: int = 4, seed: int = 0) -> tuple[Trajectory, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(2, 1, 16, 16, generator=g)
    estimates = [target + torch.randn(target.shape, generator=g) / (t + 1) for t in range(steps)]
    return Trajectory(estimates), target


def test_step_weights_for_four_steps():
    expected = {
        "uniform": [0.25, 0.25, 0.25, 0.25],
        "final": [0.0, 0.0, 0.0, 1.0],
        "linear": [0.1, 0.2, 0.3, 0.4],
    }
    for name, values in expected.items():
        torch.testing.assert_close(step_weights(name, 4), torch.tensor(values, dtype=torch.float64))
    raw = [10 ** (-1.0), 10 ** (-2 / 3), 10 ** (-1 / 3), 1.0]
    log = torch.tensor([v / sum(raw) for v in raw], dtype=torch.float64)
    torch.testing.assert_close(step_weights("log", 4), log)
    torch.testing.assert_close(
        step_weights("log", 4, normalize=False), torch.tensor(raw, dtype=torch.float64)
    )
    torch.testing.assert_close(step_weights("uniform", 4, normalize=False), torch.ones(4).double())
    torch.testing.assert_close(
        step_weights("linear", 4, normalize=False), torch.tensor([0.25, 0.5, 0.75, 1.0]).double()
    )


@pytest.mark.parametrize("name", ["uniform", "final", "linear", "log"])
def test_step_weights_single_step_and_sum(name: str):
    assert step_weights(name, 1).tolist() == [1.0]
    assert math.isclose(step_weights(name, 20).sum().item(), 1.0)


def test_step_weights_bad_input():
    with pytest.raises(ValueError, match="unknown weight scheme"):
        step_weights("cosine", 4)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        step_weights("uniform", 0)


def test_final_weights_equal_mse_of_last_estimate():
    trajectory, target = _estimates()
    loss = trajectory_loss(trajectory, target, weights="final", loss="mse")
    torch.testing.assert_close(loss, F.mse_loss(trajectory.final, target))


@pytest.mark.parametrize("loss", ["mse", "l1"])
def test_uniform_weights_are_the_mean_over_steps(loss: str):
    trajectory, target = _estimates()
    fn = F.mse_loss if loss == "mse" else F.l1_loss
    per_step = torch.stack([fn(x, target) for x in trajectory.estimates])
    torch.testing.assert_close(trajectory_loss(trajectory, target, loss=loss), per_step.mean())
    summed = trajectory_loss(trajectory, target, loss=loss, normalize=False)  # the paper's sum
    torch.testing.assert_close(summed, per_step.sum())
    torch.testing.assert_close(trajectory_loss(trajectory, target, "sum", loss), per_step.sum())
    explicit = trajectory_loss(trajectory.estimates, target, weights=[0, 1, 0, 2], loss=loss)
    torch.testing.assert_close(explicit, per_step[1] + 2 * per_step[3])


def test_trajectory_loss_bad_input():
    trajectory, target = _estimates()
    with pytest.raises(ValueError, match="unknown loss"):
        trajectory_loss(trajectory, target, loss="huber")
    with pytest.raises(ValueError, match="give 4 finite weights"):
        trajectory_loss(trajectory, target, weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="target"):
        trajectory_loss(trajectory, target[:, :, :8])


def test_ssim_loss_of_identical_images_is_zero():
    _, target = _estimates()
    loss = trajectory_loss(Trajectory([target.clone()]), target, loss="ssim")
    assert abs(loss.item()) < 1e-6


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_scikit_image(channels: int):
    rng = np.random.default_rng(0)
    a = rng.random((channels, 24, 19))
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1)
    expected = structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1,
        channel_axis=0,
    )
    got = ssim(torch.from_numpy(a)[None], torch.from_numpy(b)[None]).item()
    assert abs(got - expected) < 1e-4
    got32 = ssim(torch.from_numpy(a)[None].float(), torch.from_numpy(b)[None].float()).item()
    assert abs(got32 - expected) < 1e-4


def test_ssim_is_differentiable_and_checks_size():
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    (1 - ssim(x, y)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_psnr_loss_is_minus_the_mean_psnr_of_the_samples():
    target = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    errors = torch.tensor([0.01, 0.05, 0.2]).view(3, 1, 1, 1)
    x = target + errors
    psnr = [10 * math.log10(1 / (e * e + 1e-4)) for e in errors.flatten().tolist()]
    torch.testing.assert_close(psnr_loss(x, target), torch.tensor(-sum(psnr) / 3))
    assert trajectory_loss([x, x], target, loss="psnr").item() == pytest.approx(-sum(psnr) / 3)


def test_psnr_loss_weighs_every_sample_s_decibels_alike():
    """The MSE's gradient grows with a sample's error; the PSNR loss's is inversely scaled."""
    target = torch.zeros(2, 1, 8, 8)
    x = (target + torch.tensor([0.02, 0.2]).view(2, 1, 1, 1)).requires_grad_()
    psnr_loss(x, target).backward()
    small, large = x.grad[0].abs().mean().item(), x.grad[1].abs().mean().item()
    assert small > 5 * large
    x.grad = None
    F.mse_loss(x, target).backward()
    assert x.grad[1].abs().mean().item() > 5 * x.grad[0].abs().mean().item()


def test_measurement_fit_is_the_mse_for_the_identity_and_for_an_orthonormal_fourier_transform():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 8, 8, generator=g)
    estimates = [x + 0.1 * torch.randn(x.shape, generator=g) for _ in range(3)]
    expected = trajectory_loss(estimates, x, "linear")
    assert torch.allclose(measurement_fit_loss(estimates, Identity(), x, "linear"), expected)

    def dft(image):  # complex, unitary: Parseval keeps the squared error
        return torch.fft.fft2(image, norm="ortho")

    assert torch.allclose(measurement_fit_loss(estimates, dft, x, "linear"), expected, atol=1e-7)


def test_measurement_fit_of_a_projection_sums_the_measured_error_per_pixel():
    g = torch.Generator().manual_seed(1)
    op = random_projection("gaussian", (1, 8, 8), ratio=0.25, batch=2, generator=g)
    x = torch.rand(2, 1, 8, 8, generator=g)
    estimates = [x + 0.2, x - 0.1 * torch.rand(x.shape, generator=g)]
    matrix = op.matrix  # (2, 16, 64)
    by_hand = [
        (matrix @ (e - x).reshape(2, 64, 1)).pow(2).sum(dim=(1, 2)).mean() / 64 for e in estimates
    ]
    fit = measurement_fit_loss(estimates, op, x, [0.25, 0.75])
    assert fit.item() == pytest.approx(0.25 * by_hand[0].item() + 0.75 * by_hand[1].item())
    unmeasured = torch.linalg.svd(matrix[0])[2][-1].reshape(1, 1, 8, 8)  # in the null space
    first = MatrixProjection(matrix[:1], (1, 8, 8))
    assert measurement_fit_loss([x[:1] + unmeasured], first, x[:1]) < 1e-10
