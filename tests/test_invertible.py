"""The invertible RIM: exact inverses, the invert-to-learn backward, memory, config and zoo."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from blobs import denoising, smooth_images
from rimkit.likelihood import GaussianLikelihood
from rimkit.models import InvertibleRIM, RIMConfig, build_invertible, trajectory_loss
from rimkit.operators import (
    CartesianMRI,
    ComplexAsChannels,
    Identity,
    Inpainting,
    random_mask,
    random_projection,
    variable_density_mask,
)
from rimkit.train import train
from rimkit.zoo import load_model
from test_train import tiny_config

TINY = {"state_channels": 8, "features": 6}


def perturbed(irim: InvertibleRIM, scale: float = 0.1, seed: int = 0) -> InvertibleRIM:
    """Random orthogonal mixes and non-zero ``h`` outputs, so no part of a step is identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in irim.blocks:
            for p in (block.mix.generator, *block.h[-1].parameters()):
                p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return irim


def saved_bytes(fn) -> int:
    """Bytes of the tensors autograd keeps for the backward pass while ``fn()`` runs."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def test_an_untrained_irim_leaves_the_estimate_where_it_started(image):
    irim = InvertibleRIM(1, train_steps=5, **TINY)
    likelihood, y = denoising(image)
    trajectory = irim(likelihood, x0=y, steps=7)
    start = irim.link(irim.link.inverse(y))
    for estimate in trajectory.estimates:  # W = I, h = 0: unchanged up to rounding
        torch.testing.assert_close(estimate, start, rtol=0, atol=1e-6)


def test_each_step_and_a_whole_run_are_undone_by_the_inverse(image):
    irim = perturbed(InvertibleRIM(1, train_steps=6, **TINY)).double()
    likelihood, y = denoising(image.double())
    z0 = irim.initial_state(likelihood, y, None)
    z, states = z0, []
    with torch.no_grad():
        for _ in range(6):
            states.append(z)
            z = irim.step(z, likelihood)
        assert not torch.allclose(z[:, :1], z0[:, :1], atol=1e-3)  # the estimate moved
        for before in reversed(states):
            z = irim.inverse_step(z, likelihood)
            torch.testing.assert_close(z, before, rtol=0, atol=1e-10)


def mri_likelihood(image: torch.Tensor) -> tuple[GaussianLikelihood, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    mask = variable_density_mask(tuple(image.shape[-2:]), 3.0, batch=2, generator=g)
    op = ComplexAsChannels(CartesianMRI(mask))
    x = torch.cat([image, 0.3 * image.flip(-1)], dim=1)  # (B, 2, H, W): a complex image
    return GaussianLikelihood(op, op(x), 0.2), op.adjoint(op(x))


@pytest.mark.parametrize("problem", ["denoise", "inpaint", "mri"])
def test_invert_to_learn_gives_the_gradients_of_back_propagation(problem, image):
    image = image.double()
    target, channels, link = image, 1, "sigmoid"
    if problem == "denoise":
        likelihood, x0 = denoising(image)
    elif problem == "inpaint":
        op = Inpainting(random_mask(tuple(image.shape), 0.5, torch.Generator().manual_seed(1)))
        likelihood, x0 = GaussianLikelihood(op, op(image), 0.05), op(image)
    else:
        likelihood, x0 = mri_likelihood(image)
        target, channels, link = torch.cat([image, 0.3 * image.flip(-1)], 1), 2, "identity"
    grads = []
    for checkpoint in (False, True):
        cfg = RIMConfig(variant="invertible", channels=channels, link=link, features=6, hidden=8)
        torch.manual_seed(0)
        irim = perturbed(RIMConfig(**{**cfg.to_dict(), "checkpoint": checkpoint}).build())
        irim = irim.double()
        trajectory = irim(likelihood, x0=x0, steps=5)
        trajectory_loss(trajectory, target, weights="linear").backward()
        grads.append({name: p.grad for name, p in irim.named_parameters()})
    plain, inverted = grads
    assert set(plain) == set(inverted) and "noise_floor.raw" in plain
    for name in plain:
        assert plain[name] is not None and (plain[name] != 0).any(), name
        error = torch.linalg.norm(inverted[name] - plain[name]) / torch.linalg.norm(plain[name])
        assert error < 1e-9, (name, float(error))


def test_invert_to_learn_in_float32_stays_close(image):
    grads = []
    for checkpoint in (False, True):
        torch.manual_seed(0)
        irim = perturbed(InvertibleRIM(1, train_steps=8, checkpoint=checkpoint, **TINY))
        likelihood, y = denoising(image)
        trajectory_loss(irim(likelihood, x0=y), image).backward()
        grads.append(torch.cat([p.grad.flatten() for p in irim.parameters()]))
    assert torch.linalg.norm(grads[1] - grads[0]) < 1e-3 * torch.linalg.norm(grads[0])


def test_loss_on_some_steps_only_and_gradient_to_the_start(image):
    image = image.double()
    grads = []
    for checkpoint in (False, True):
        torch.manual_seed(0)
        irim = perturbed(InvertibleRIM(1, train_steps=4, checkpoint=checkpoint, **TINY)).double()
        likelihood, y = denoising(image)
        x0 = y.clamp(0.05, 0.95).clone().requires_grad_(True)
        trajectory = irim(likelihood, x0=x0)
        (trajectory.estimates[1] - image).square().mean().backward()  # step 2 only
        grads.append([x0.grad, *(p.grad for p in irim.parameters())])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-8, atol=1e-12)


def test_training_memory_does_not_grow_with_the_steps(image):
    def run(steps: int, checkpoint: bool) -> int:
        irim = InvertibleRIM(1, train_steps=steps, checkpoint=checkpoint, **TINY)
        likelihood, y = denoising(image)
        return saved_bytes(lambda: irim(likelihood, x0=y))

    assert run(4, True) == run(16, True)
    assert run(16, False) > 3.5 * run(4, False) > 10 * run(4, True)


def test_first_steps_equal_a_shorter_run_and_it_runs_past_its_steps(image):
    irim = perturbed(InvertibleRIM(1, train_steps=3, **TINY))
    likelihood, y = denoising(image)
    with torch.no_grad():
        full = irim(likelihood, x0=y, steps=6)
        short = irim(likelihood, x0=y, steps=2)
    assert len(full) == 6 and len(short) == 2
    for a, b in zip(short.estimates, full.estimates, strict=False):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        irim(likelihood, x0=y, steps=0)


def test_the_same_weights_run_on_other_likelihoods(image):
    irim = perturbed(InvertibleRIM(1, train_steps=3, **TINY))
    g = torch.Generator().manual_seed(3)
    finals = []
    for op in (
        Inpainting(random_mask(tuple(image.shape), 0.5, g)),
        random_projection("gaussian", (1, 16, 16), ratio=0.3, batch=2, generator=g),
    ):
        with torch.no_grad():
            trajectory = irim(GaussianLikelihood(op, op(image), 0.05), x0=op.adjoint(op(image)))
        assert torch.isfinite(trajectory.final).all() and trajectory.final.shape == image.shape
        finals.append(trajectory.final)
    assert not torch.allclose(finals[0], finals[1])


class NaNAtCall(GaussianLikelihood):
    """Denoising whose gradient turns NaN at the ``n``-th call."""

    def __init__(self, y: torch.Tensor, n: int) -> None:
        super().__init__(Identity(), y, 0.1)
        self.calls, self.n = 0, n

    def grad(self, x: torch.Tensor, eps: torch.Tensor | float = 0.0) -> torch.Tensor:
        self.calls += 1
        g = super().grad(x, eps)
        return g * float("nan") if self.calls == self.n else g


@pytest.mark.parametrize("checkpoint", [False, True])
def test_a_non_finite_gradient_names_its_step(checkpoint, image):
    irim = InvertibleRIM(1, train_steps=3, checkpoint=checkpoint, **TINY)
    with pytest.raises(ValueError, match=r"not finite \(NaN or Inf\) at step 2 of 3"):
        irim(NaNAtCall(image, 2), x0=image)


def test_a_short_training_run_with_invert_to_learn_lowers_the_loss():
    torch.manual_seed(0)
    irim = InvertibleRIM(1, train_steps=3, checkpoint=True, **TINY)
    optimizer = torch.optim.Adam(irim.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(5)
    x_val = smooth_images(8, 16, g)
    val_likelihood, y_val = denoising(x_val, 0.1, seed=6)

    def val_loss() -> float:
        with torch.no_grad():
            return float(trajectory_loss(irim(val_likelihood, x0=y_val), x_val))

    before = val_loss()
    for _ in range(40):
        x = smooth_images(8, 16, g)
        likelihood, y = denoising(x, 0.1, seed=int(torch.randint(10**6, (1,), generator=g)))
        loss = trajectory_loss(irim(likelihood, x0=y), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert val_loss() < 0.6 * before


def test_config_builds_it_and_names_bad_widths():
    irim = RIMConfig.from_dict({"variant": "invertible", "features": 8, "hidden": 12}).build()
    assert isinstance(irim, InvertibleRIM)
    assert (irim.state_channels, irim.features, irim.train_steps) == (12, 8, 20)
    mri = build_invertible(2, features=4, hidden=8)
    assert (mri.channels, mri.state_channels) == (2, 8)
    assert type(RIMConfig(variant="invertible", cell="mri", channels=2).build().link).__name__ == (
        "IdentityLink"
    )
    with pytest.raises(
        ValueError, match=r"hidden \(the state channels\) must be an int >= 8, got 6"
    ):
        build_invertible(2, hidden=6)
    with pytest.raises(ValueError, match=r"hidden \(the state channels\) must be even, got 9"):
        build_invertible(1, hidden=9)
    with pytest.raises(ValueError, match="color 'opponent' is for RIMs of RGB images"):
        RIMConfig(variant="invertible", channels=3, color="opponent").build()
    with pytest.raises(ValueError, match=r"unknown variant 'irim'; known: .*invertible"):
        RIMConfig(variant="irim").build()


def test_bfloat16_invert_to_learn_is_refused(image):
    irim = InvertibleRIM(1, train_steps=2, checkpoint=True, **TINY).to(torch.bfloat16)
    likelihood, y = denoising(image.to(torch.bfloat16))
    with pytest.raises(ValueError, match=r"float32 or float64, not torch\.bfloat16"):
        irim(likelihood, x0=y)


def test_trains_through_the_trainer_and_loads_from_the_run(image_folder, tmp_path):
    irim = RIMConfig(variant="invertible", features=4, hidden=4, train_steps=2, checkpoint=True)
    cfg = tiny_config(image_folder, iterations=2, val_every=1, checkpoint_every=2)
    cfg = dataclasses.replace(cfg, model=irim)
    meta = train(cfg, tmp_path / "run", progress=False)
    assert meta["iteration"] == 2 and len(meta["val_psnr_per_step"]) == 2
    loaded = load_model(tmp_path / "run")
    assert isinstance(loaded.model, InvertibleRIM) and loaded.model.state_channels == 4
    from rimkit.train.loop import weights_digest

    assert weights_digest(loaded.model) == meta["weights_sha256"]
