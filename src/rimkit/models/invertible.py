"""The invertible RIM (i-RIM; Putzky & Welling, 2019, "Invert to Learn to Invert").

A RIM whose training memory does not grow with the number of steps. Its state
``z`` ``(B, S, H, W)`` carries the estimate in its first ``C`` channels, ``eta = z[:, :C]``,
``x = link(eta)``; the other channels are its memory. Every part of a step is invertible:

    g = link'(eta) * grad_x log p(y | link(eta))      (the likelihood gradient, as in the RIM)
    z[:, C:2C] += g                                     (gradient in: eta is untouched, so
                                                         z[:, C:2C] -= g undoes it)
    for each of the step's blocks:
        z = W z                                         (1x1 convolution, W = exp(P - P^T)
                                                         orthogonal, so W^-1 = W^T)
        b += f(a);  a += h(b)                           ((a, b) the halves of z's channels;
                                                         additive couplings: a -= h(b), b -= f(a))

Since the state before a step can be computed from the state after it, training with
``checkpoint=True`` keeps only the last state and the estimates and, in the backward pass,
walks the steps back from the end, recomputing each from the state it reconstructs
("invert to learn"): the memory of the cell's activations is that of one step, whatever ``T``.
The reconstructed states are exact up to float rounding, which grows with the state's
magnitude (the likelihood gradient is large where ``sigma`` is small); in float32 the
gradients agree with plain back-propagation to a few 1e-4 relative, in float64 to 1e-13
(a denoising batch, T = 8). This backward reaches the model's parameters and the initial
state (``x0``) only, not the tensors a likelihood holds (``y``, ``sigma``, a learnable
operator's parameters): a run whose likelihood gradient depends on a tensor that requires
grad is refused with a ``ValueError`` (set ``model.checkpoint = False`` to train through it).

The weights are shared over the steps, so like the RIM it runs any number of steps (whether it
holds past its training length is the training's doing: the shipped ``irim-denoise-gray``,
trained for 8, does not); the i-RIM paper's reference code gives each step its own network
instead, T times the parameters for a run of fixed length. ``P`` starts at zero (``W = I``) and
the last convolution of every ``h`` at zero, so an untrained i-RIM leaves the estimate where it
started.

Example:
    >>> import torch
    >>> from rimkit.likelihood import GaussianLikelihood
    >>> from rimkit.operators import Identity
    >>> irim = InvertibleRIM(channels=1, state_channels=8, features=8, train_steps=4)
    >>> y = torch.rand(2, 1, 16, 16)
    >>> trajectory = irim(GaussianLikelihood(Identity(), y, sigma=0.1), x0=y)
    >>> len(trajectory), torch.allclose(trajectory.final, y, atol=1e-4)
    (4, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rimkit.likelihood import Likelihood, NoiseFloor
from rimkit.models.links import Link, SigmoidLink
from rimkit.models.rim import GradientGuard, Trajectory, _check_steps, check_run, check_start
from rimkit.models.utils import check_int, count_parameters, to_cell_layout

__all__ = ["AdditiveCoupling", "InvertibleRIM", "OrthogonalMix", "build_invertible"]


class OrthogonalMix(nn.Module):
    """A 1x1 convolution by an orthogonal matrix ``W = exp(P - P^T)`` (``P`` starts at zero).

    Example:
        >>> import torch
        >>> mix = OrthogonalMix(4)
        >>> _ = nn.init.normal_(mix.generator)
        >>> z = torch.randn(2, 4, 5, 3)
        >>> torch.allclose(mix.inverse(mix(z)), z, atol=1e-5)
        True
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.generator = nn.Parameter(torch.zeros(channels, channels))  # P, (S, S)

    def matrix(self) -> Tensor:
        """``W = exp(P - P^T)``, ``(S, S)``."""
        p = self.generator
        return torch.linalg.matrix_exp(p - p.T)

    def forward(self, z: Tensor) -> Tensor:
        return F.conv2d(z, self.matrix()[:, :, None, None])  # (B, S, H, W)

    def inverse(self, z: Tensor) -> Tensor:
        return F.conv2d(z, self.matrix().T[:, :, None, None])  # W^T z, (B, S, H, W)


def coupling_net(channels: int, features: int, *, zero_last: bool) -> nn.Sequential:
    """``channels -> features -> features -> channels``: 3x3 convolutions (the middle one
    dilated by 2) with ReLUs between; the last convolution optionally starts at zero."""
    net = nn.Sequential(
        nn.Conv2d(channels, features, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(features, features, 3, padding=2, dilation=2),
        nn.ReLU(inplace=True),
        nn.Conv2d(features, channels, 3, padding=1),
    )
    if zero_last:
        nn.init.zeros_(net[-1].weight)
        nn.init.zeros_(net[-1].bias)
    return net


class AdditiveCoupling(nn.Module):
    """One invertible block: an orthogonal channel mix, then ``b += f(a)`` and ``a += h(b)``.

    ``h`` starts at zero, so an untrained block changes only the second half of the channels.

    Example:
        >>> import torch
        >>> block = AdditiveCoupling(channels=6, features=8)
        >>> _ = nn.init.normal_(block.h[-1].weight, std=0.1)
        >>> z = torch.randn(1, 6, 7, 9)
        >>> torch.allclose(block.inverse(block(z)), z, atol=1e-5)
        True
    """

    def __init__(self, channels: int, features: int) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"an additive coupling splits its channels in halves; got {channels}")
        half = channels // 2
        self.mix = OrthogonalMix(channels)
        self.f = coupling_net(half, features, zero_last=False)
        self.h = coupling_net(half, features, zero_last=True)

    def forward(self, z: Tensor) -> Tensor:
        a, b = _halves(self.mix(z))  # (B, S/2, H, W) each
        b = b + self.f(a)
        a = a + self.h(b)
        return torch.cat([a, b], dim=1)  # (B, S, H, W)

    def inverse(self, z: Tensor) -> Tensor:
        a, b = _halves(z)  # (B, S/2, H, W) each
        a = a - self.h(b)
        b = b - self.f(a)
        return self.mix.inverse(torch.cat([a, b], dim=1))  # (B, S, H, W)


def _halves(z: Tensor) -> tuple[Tensor, Tensor]:
    """The two halves of ``z``'s channels, each in the cells' memory layout."""
    a, b = z.chunk(2, dim=1)
    return to_cell_layout(a), to_cell_layout(b)


class InvertibleRIM(nn.Module):
    """An i-RIM: invertible steps on a state whose first ``channels`` channels are the estimate.

    It has the RIM's interface: ``forward(likelihood, x0=None, steps=None, *, shape=None)``
    returns the :class:`~rimkit.models.rim.Trajectory` ``x_1 .. x_steps`` (``steps`` defaults
    to ``train_steps``; any ``steps >= 1`` runs). ``x0`` enters as ``eta_0 = link.inverse(x0)``
    with the memory channels at zero; without ``x0``, ``eta_0 = 0`` with ``shape`` (or the
    shape of ``likelihood.y`` where that is an image).

    - ``state_channels`` ``S``: even and at least ``4 * channels`` (the estimate and the
      gradient then lie in the first half, which every block's ``f`` reads).
    - ``features``: the width of the coupling networks; ``blocks``: couplings per step.
    - ``checkpoint=True``: the invert-to-learn backward (module docstring); memory constant in
      the number of steps at the cost of about one more forward pass, and gradients for the
      model's parameters and ``x0`` equal to plain back-propagation up to float rounding. It
      runs in float32 or float64 only, and does not reach the likelihood's tensors: when
      gradients are enabled and the likelihood gradient depends on a tensor that requires
      grad (``y``, ``sigma``, a learnable operator), it raises a ``ValueError``; train through
      those with ``checkpoint=False``.
    - ``check_finite=True``: a ``ValueError`` naming the step whose likelihood gradient is NaN
      or Inf.

    Example:
        >>> import torch
        >>> from rimkit.likelihood import GaussianLikelihood
        >>> from rimkit.models import trajectory_loss
        >>> from rimkit.operators import Identity
        >>> irim = InvertibleRIM(1, state_channels=8, features=8, train_steps=3, checkpoint=True)
        >>> x = torch.rand(2, 1, 12, 12)
        >>> y = x + 0.1 * torch.randn_like(x)
        >>> trajectory_loss(irim(GaussianLikelihood(Identity(), y, 0.1), x0=y), x).backward()
        >>> irim.blocks[0].h[-1].weight.grad.abs().sum() > 0
        tensor(True)
    """

    def __init__(
        self,
        channels: int = 1,
        link: Link | None = None,
        *,
        state_channels: int = 16,
        features: int = 32,
        blocks: int = 2,
        train_steps: int = 8,
        noise_floor: float = 1e-3,
        checkpoint: bool = False,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        channels = check_int(channels, "channels", 1)
        state_channels = check_int(state_channels, "state_channels", 4 * channels)
        if state_channels % 2:
            raise ValueError(f"state_channels must be even, got {state_channels}")
        link = SigmoidLink() if link is None else link
        if not isinstance(link, Link):
            raise ValueError(f"link must be a rimkit Link (see LINKS), got {type(link).__name__}")
        self.blocks = nn.ModuleList(
            AdditiveCoupling(state_channels, check_int(features, "features", 1))
            for _ in range(check_int(blocks, "blocks", 1))
        )
        self.link = link
        self.noise_floor = NoiseFloor(noise_floor)
        self.channels = channels
        self.state_channels = state_channels
        self.features = features
        self.train_steps = _check_steps(train_steps, "train_steps")
        self.checkpoint = checkpoint
        self.check_finite = check_finite

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, state_channels={self.state_channels}, "
            f"train_steps={self.train_steps}, checkpoint={self.checkpoint}, "
            f"parameters={count_parameters(self):,}"
        )

    def estimate(self, z: Tensor) -> Tensor:
        """The image ``link(z[:, :C])``, ``(B, C, H, W)``."""
        return self.link(z[:, : self.channels])

    def _gradient(
        self,
        z: Tensor,
        likelihood: Likelihood,
        guard: GradientGuard | None,
        t: int,
        probe: bool = False,
    ) -> Tensor:
        eta = z[:, : self.channels]  # (B, C, H, W)
        if probe:  # does the gradient depend on the likelihood's own tensors? (no extra call)
            with torch.enable_grad():
                grad_x = likelihood.grad(self.link(eta).detach(), self.noise_floor().detach())
            _refuse_learnable_likelihood(grad_x, likelihood)
        else:
            grad_x = likelihood.grad(self.link(eta), self.noise_floor())
        if guard is not None:
            grad_x = guard(grad_x, t)
        return self.link.chain(grad_x, eta)  # (B, C, H, W)

    def step(
        self,
        z: Tensor,
        likelihood: Likelihood,
        guard: GradientGuard | None = None,
        t: int = 0,
        *,
        probe: bool = False,
    ) -> Tensor:
        """One invertible step ``z_{t-1} -> z_t`` (``(B, S, H, W)``).

        ``probe=True`` (the first step of the invert-to-learn forward) computes the likelihood
        gradient at a detached estimate and noise floor with gradients enabled and raises a
        ``ValueError`` if it still carries a graph: then it depends on a tensor of the
        likelihood that requires grad, which the invert-to-learn backward would not reach.
        """
        c = self.channels
        g = self._gradient(z, likelihood, guard, t, probe)
        z = torch.cat([z[:, :c], z[:, c : 2 * c] + g, z[:, 2 * c :]], dim=1)
        for block in self.blocks:
            z = block(z)
        return z

    def inverse_step(self, z: Tensor, likelihood: Likelihood) -> Tensor:
        """The state before :meth:`step` from the state after it."""
        c = self.channels
        for block in reversed(self.blocks):
            z = block.inverse(z)
        g = self._gradient(z, likelihood, None, 0)
        return torch.cat([z[:, :c], z[:, c : 2 * c] - g, z[:, 2 * c :]], dim=1)

    def initial_state(
        self, likelihood: Likelihood, x0: Tensor | None, shape: tuple[int, ...] | None
    ) -> Tensor:
        """``z_0 = concat(eta_0, 0)``, ``(B, S, H, W)``."""
        start = check_start(likelihood, x0, shape, self.channels, self.noise_floor.raw)
        if x0 is not None:
            self.link.warn_if_far_outside(start)
        eta = self.link.inverse(start) if x0 is not None else start  # (B, C, H, W)
        memory = eta.new_zeros(eta.shape[0], self.state_channels - self.channels, *eta.shape[2:])
        return torch.cat([eta, memory], dim=1)

    def forward(
        self,
        likelihood: Likelihood,
        x0: Tensor | None = None,
        steps: int | None = None,
        *,
        shape: tuple[int, int, int, int] | None = None,
    ) -> Trajectory:
        steps = check_run(likelihood, steps, self.train_steps, "i-RIM")
        z = self.initial_state(likelihood, x0, shape)  # (B, S, H, W)
        guard = GradientGuard(z[:, : self.channels], steps, self.check_finite)
        if self.checkpoint and torch.is_grad_enabled():
            if z.dtype not in (torch.float32, torch.float64):
                raise ValueError(
                    f"the invert-to-learn backward runs in float32 or float64, not {z.dtype}"
                )
            params = [p for p in self.parameters() if p.requires_grad]
            estimates = list(_InvertToLearn.apply(self, likelihood, steps, guard, z, *params))
        else:
            estimates = []
            for t in range(1, steps + 1):
                z = self.step(z, likelihood, guard, t)
                estimates.append(self.estimate(z))
        guard.finish()
        return Trajectory(estimates)


class _InvertToLearn(torch.autograd.Function):
    """``steps`` i-RIM steps that keep only the last state for the backward pass."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        model: InvertibleRIM,
        likelihood: Likelihood,
        steps: int,
        guard: GradientGuard,
        z: Tensor,
        *params: Tensor,
    ) -> tuple[Tensor, ...]:
        estimates = []
        with torch.no_grad():
            for t in range(1, steps + 1):
                z = model.step(z, likelihood, guard, t, probe=t == 1)
                estimates.append(model.estimate(z).clone())  # (B, C, H, W)
        ctx.model, ctx.likelihood, ctx.steps = model, likelihood, steps
        ctx.save_for_backward(z)
        ctx.set_materialize_grads(False)
        return tuple(estimates)

    @staticmethod
    def backward(ctx: Any, *grad_estimates: Tensor | None) -> tuple[Tensor | None, ...]:
        model, likelihood = ctx.model, ctx.likelihood
        params = [p for p in model.parameters() if p.requires_grad]
        (z,) = ctx.saved_tensors  # z_T, (B, S, H, W)
        grad_z: Tensor | None = None
        grad_params: list[Tensor | None] = [None] * len(params)
        for t in range(ctx.steps, 0, -1):
            with torch.no_grad():
                z = model.inverse_step(z, likelihood)  # z_{t-1}
            grad_x = grad_estimates[t - 1]
            if grad_z is None and grad_x is None:
                continue
            with torch.enable_grad():
                z_in = z.detach().requires_grad_(True)
                z_out = model.step(z_in, likelihood)
                outputs, seeds = _pairs([(z_out, grad_z), (model.estimate(z_out), grad_x)])
                grads = torch.autograd.grad(outputs, [z_in, *params], seeds, allow_unused=True)
            grad_z = grads[0]
            grad_params = [_add(a, b) for a, b in zip(grad_params, grads[1:], strict=True)]
        return (None, None, None, None, grad_z, *grad_params)


def _refuse_learnable_likelihood(grad: Tensor, likelihood: Likelihood) -> None:
    """A ``ValueError`` if ``grad`` (taken at a detached estimate and noise floor) carries a
    graph, i.e. depends on tensors of the likelihood that require grad."""
    if not (isinstance(grad, Tensor) and grad.requires_grad):
        return
    named = [
        name
        for name in ("y", "sigma")
        if isinstance(getattr(likelihood, name, None), Tensor)
        and getattr(likelihood, name).requires_grad
    ]
    which = f" (here: {', '.join(named)})" if named else ""
    raise ValueError(
        "the likelihood holds tensors that require grad (y, sigma or the forward model's "
        f"parameters){which}, but the invert-to-learn backward (checkpoint=True) does not "
        "reach the likelihood's tensors: they would get no gradient. Set "
        "model.checkpoint = False to train through them, or detach them (e.g. y.detach()) if "
        "they are not to be trained"
    )


def _pairs(pairs: Sequence[tuple[Tensor, Tensor | None]]) -> tuple[list[Tensor], list[Tensor]]:
    kept = [(out, seed) for out, seed in pairs if seed is not None]
    return [out for out, _ in kept], [seed for _, seed in kept]


def _add(total: Tensor | None, part: Tensor | None) -> Tensor | None:
    if part is None:
        return total
    return part if total is None else total + part


def build_invertible(
    channels: int = 1,
    link: Link | None = None,
    *,
    features: int | None = None,
    hidden: int | None = None,
    train_steps: int = 8,
    noise_floor: float = 1e-3,
    checkpoint: bool = False,
    check_finite: bool = True,
) -> InvertibleRIM:
    """An :class:`InvertibleRIM` from the fields of a RIM config (``variant: invertible``):
    ``features`` is the coupling networks' width (default 32) and ``hidden`` the state
    channels (default 16, even, at least ``4 * channels``).

    Example:
        >>> irim = build_invertible(2, features=8, hidden=8, train_steps=5)
        >>> irim.state_channels, irim.train_steps
        (8, 5)
    """
    try:
        return InvertibleRIM(
            channels,
            link,
            state_channels=16 if hidden is None else hidden,
            features=32 if features is None else features,
            train_steps=train_steps,
            noise_floor=noise_floor,
            checkpoint=checkpoint,
            check_finite=check_finite,
        )
    except ValueError as err:  # named as the config names it: hidden is the state channels
        named = str(err).replace("state_channels", "hidden (the state channels)")
        raise ValueError(named) from None
