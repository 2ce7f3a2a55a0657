"""The learned unrolled proximal-gradient baseline: invariants, training, config and zoo."""

from __future__ import annotations

import pytest
import torch

from blobs import denoising, smooth_images
from rimkit.likelihood import GaussianLikelihood
from rimkit.models import (
    UNROLLED_VARIANTS,
    RIMConfig,
    UnrolledProximalGradient,
    build_rim,
    trajectory_loss,
)
from rimkit.operators import Identity, Inpainting, random_mask, random_projection
from rimkit.train import ExperimentConfig, train
from rimkit.zoo import load_model

TINY = {"features": 6, "layers": 3}


def perturb_prox(net: UnrolledProximalGradient, scale: float = 0.05, seed: int = 0):
    """Give every zero-initialised last convolution random weights, so prox is not identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for prox in net.prox:
            for p in prox.out.parameters():
                p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return net


@pytest.mark.parametrize("shared", [False, True])
def test_zero_initialised_prox_is_gradient_descent_with_the_learned_steps(shared, image):
    net = UnrolledProximalGradient(1, train_steps=4, shared=shared, **TINY)
    with torch.no_grad():  # distinct steps, so a wrong index would show
        net.raw_step.copy_(torch.tensor([-7.0, -6.0, -6.5, -5.5]))
    g = torch.Generator().manual_seed(2)
    op = Inpainting(random_mask(tuple(image.shape), 0.4, g))
    likelihood = GaussianLikelihood(op, op(image), sigma=0.05)
    x0 = torch.full_like(image, 0.5)
    trajectory = net(likelihood, x0=x0)
    alphas = torch.nn.functional.softplus(net.raw_step)
    eps = net.noise_floor()
    x = x0
    for k, estimate in enumerate(trajectory.estimates):
        closed_form = x + alphas[k] * op.adjoint(op(image) - op(x)) / (0.05**2 + eps)
        torch.testing.assert_close(estimate, closed_form, rtol=1e-6, atol=1e-6)
        x = x + alphas[k] * likelihood.grad(x, eps)
        torch.testing.assert_close(estimate, x, rtol=0, atol=0)
    assert not torch.allclose(trajectory.final, x0)


def test_initial_steps_are_the_given_step_size():
    net = UnrolledProximalGradient(1, train_steps=3, step_size=2e-4, **TINY)
    torch.testing.assert_close(net.step_sizes(), torch.full((3,), 2e-4))


@pytest.mark.parametrize("variant", list(UNROLLED_VARIANTS))
def test_first_steps_equal_a_run_with_fewer_steps(variant, image):
    net = perturb_prox(build_rim(variant=variant, train_steps=5, features=6, hidden=3))
    likelihood, y = denoising(image)
    full = net(likelihood, x0=y)
    short = net(likelihood, x0=y, steps=3)
    assert len(full) == 5 and len(short) == 3
    assert not torch.allclose(full.final, y, atol=1e-3)
    for a, b in zip(short.estimates, full.estimates[:3], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_more_steps_than_trained_iterations_is_an_error(image):
    net = UnrolledProximalGradient(1, train_steps=3, **TINY)
    likelihood, y = denoising(image)
    with pytest.raises(ValueError, match=r"steps=4 .* weights for 3 iterations"):
        net(likelihood, x0=y, steps=4)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        net(likelihood, x0=y, steps=0)


def test_same_weights_run_on_denoising_inpainting_and_projections(image):
    net = perturb_prox(UnrolledProximalGradient(1, train_steps=4, step_size=1e-4, **TINY))
    g = torch.Generator().manual_seed(3)
    inpaint = Inpainting(random_mask(tuple(image.shape), 0.5, g))
    gaussian = random_projection("gaussian", (1, 16, 16), ratio=0.3, batch=2, generator=g)
    fourier = random_projection("fourier", (1, 16, 16), ratio=0.3, batch=2, generator=g)
    finals = []
    for op in (Identity(), inpaint, gaussian, fourier):
        likelihood = GaussianLikelihood(op, op(image), sigma=0.05)
        with torch.no_grad():
            trajectory = net(likelihood, x0=op.adjoint(op(image)))
        assert trajectory.final.shape == image.shape
        assert torch.isfinite(trajectory.stacked()).all()
        finals.append(trajectory.final)
    for i in range(len(finals)):
        for j in range(i):
            assert not torch.allclose(finals[i], finals[j])
    # no x0: starts at zero with the shape of y (denoising, inpainting)
    likelihood, _ = denoising(image)
    assert net(likelihood).final.shape == image.shape


@pytest.mark.parametrize("shared", [False, True])
def test_gradients_reach_every_parameter(shared, image):
    net = perturb_prox(UnrolledProximalGradient(1, train_steps=3, shared=shared, **TINY))
    likelihood, _ = denoising(image)
    trajectory_loss(net(likelihood, x0=torch.full_like(image, 0.5)), image).backward()
    names = [name for name, _ in net.named_parameters()]
    assert "raw_step" in names and "noise_floor.raw" in names
    assert len(net.prox) == (1 if shared else 3)
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert (p.grad != 0).any(), name
    assert (net.raw_step.grad != 0).all()  # every iteration's step


def test_checkpointing_gives_the_same_gradients(image):
    grads = []
    for checkpoint in (False, True):
        torch.manual_seed(0)
        net = perturb_prox(UnrolledProximalGradient(1, train_steps=3, checkpoint=checkpoint))
        likelihood, y = denoising(image)
        trajectory_loss(net(likelihood, x0=y), image).backward()
        grads.append([p.grad for p in net.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_a_short_training_run_lowers_the_loss():
    torch.manual_seed(0)
    net = UnrolledProximalGradient(1, train_steps=3, features=8, layers=3)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(5)
    x_val = smooth_images(8, 16, g)
    val_likelihood, y_val = denoising(x_val, 0.1, seed=6)

    def val_loss() -> float:
        with torch.no_grad():
            return float(trajectory_loss(net(val_likelihood, x0=y_val), x_val))

    before = val_loss()
    for _ in range(40):
        x = smooth_images(8, 16, g)
        likelihood, y = denoising(x, 0.1, seed=int(torch.randint(10**6, (1,), generator=g)))
        loss = trajectory_loss(net(likelihood, x0=y), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = val_loss()
    assert after < 0.6 * before, (before, after)


def test_config_builds_it_and_checks_its_widths():
    cfg = RIMConfig.from_dict({"variant": "unrolled", "features": 8, "hidden": 3, "train_steps": 4})
    net = cfg.build()
    assert isinstance(net, UnrolledProximalGradient)
    assert (net.train_steps, len(net.prox), net.prox[0].layers, net.channels) == (4, 4, 3, 1)
    shared = RIMConfig(variant="unrolled-shared", channels=3, features=8, train_steps=6).build()
    assert (len(shared.prox), shared.prox[0].features, shared.channels) == (1, 8, 3)
    with pytest.raises(ValueError, match="number of convolution layers"):
        RIMConfig(variant="unrolled", hidden=64).build()
    with pytest.raises(ValueError, match=r"unknown variant 'unroled'; known: .*unrolled"):
        RIMConfig(variant="unroled").build()


def test_a_config_sets_the_initial_step_for_an_operator_of_larger_norm():
    cfg = RIMConfig.from_dict({"variant": "unrolled", "features": 4, "hidden": 2,
                               "train_steps": 3, "step_size": 1e-4})  # fmt: skip
    steps = cfg.build().step_sizes().detach()
    assert torch.allclose(steps, torch.full((3,), 1e-4), rtol=1e-4)
    default = RIMConfig(variant="unrolled", train_steps=2).build().step_sizes()
    assert float(default[0].detach()) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="step_size is the unrolled variants' initial step"):
        RIMConfig(step_size=0.1).build()


def test_trains_through_the_trainer_and_loads_from_the_run(image_folder, tmp_path):
    cfg = ExperimentConfig.from_dict(
        {
            "model": {"variant": "unrolled", "features": 4, "hidden": 3, "train_steps": 2},
            "data": {
                "train": str(image_folder),
                "val_images": 2,
                "val_patches": 8,
                "patch_size": 16,
                "stride": 8,
            },
            "tasks": [{"name": "denoise", "sigma": [5, 50]}, {"name": "inpaint"}],
            "optim": {"iterations": 2, "batch_size": 4, "val_every": 1, "checkpoint_every": 2},
        }
    )
    meta = train(cfg, tmp_path / "run", progress=False)
    assert meta["iteration"] == 2 and len(meta["val_psnr_per_step"]) == 2
    assert all(10 < v < 60 for v in meta["val_psnr_per_step"])
    loaded = load_model(tmp_path / "run")
    assert isinstance(loaded.model, UnrolledProximalGradient)
    assert loaded.model.train_steps == 2
    from rimkit.train.loop import weights_digest

    assert weights_digest(loaded.model) == meta["weights_sha256"]
