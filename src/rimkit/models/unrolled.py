"""A learned unrolled baseline: proximal gradient descent with learned steps and proximal maps.

The "unrolling inference" generation: ``K`` iterations of proximal gradient ascent on the
log-likelihood, each with its own learned step size ``alpha_k > 0`` and its own learned
proximal map ``prox_k`` (a small residual CNN):

    grad_k = grad_x log p(y | x_k) = A^H (y - A x_k) / (sigma^2 + eps)
    x_{k+1} = prox_k(x_k + alpha_k grad_k),      prox_k(z) = z + cnn_k(z)
    alpha_k = softplus(a_k)

Like the RIM it sees the physics only through ``likelihood.grad(x, eps)`` (``eps`` is a trained
:class:`~rimkit.likelihood.NoiseFloor`), so the same weights run on denoising, inpainting or
random projections. Unlike the RIM it has no memory, works in image space (no link) and has
weights for exactly ``K`` iterations: it runs ``steps <= K`` and refuses more.

The last convolution of every ``cnn_k`` starts at zero, so an untrained network is plain
gradient ascent on the log-likelihood with the initial steps ``alpha_k = step_size``. The
default ``step_size = 1e-3`` equals the default noise floor: at ``sigma = 0`` with a unit-norm
operator (denoising, inpainting) one untrained step lands on the data-consistent point, and
for ``sigma > 0`` it moves the fraction ``1e-3 / (sigma^2 + eps)`` of the way (stable, since it
is below ``2 / L`` for ``L = ||A||^2 / (sigma^2 + eps)`` whenever ``||A|| <= 1``). For operators
with a larger norm (random projections at low ratios) pass a smaller ``step_size``.
In the softplus's negative range ``alpha ~ exp(a)``, so the optimiser changes the step on a
log scale.

Example:
    >>> import torch
    >>> from rimkit.likelihood import GaussianLikelihood
    >>> from rimkit.operators import Identity
    >>> net = UnrolledProximalGradient(channels=1, train_steps=4, features=8, layers=3)
    >>> y = torch.rand(2, 1, 16, 16)
    >>> trajectory = net(GaussianLikelihood(Identity(), y, sigma=0.1), x0=torch.zeros_like(y))
    >>> len(trajectory), trajectory.final.shape
    (4, torch.Size([2, 1, 16, 16]))
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint as _checkpoint

from rimkit.likelihood import Likelihood, NoiseFloor
from rimkit.models.rim import (
    GradientGuard,
    Trajectory,
    _check_steps,
    check_run,
    check_start,
)
from rimkit.models.utils import check_int, count_parameters

__all__ = [
    "UNROLLED_VARIANTS",
    "ProximalCNN",
    "UnrolledProximalGradient",
    "build_unrolled",
]

MAX_LAYERS = 16


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


class ProximalCNN(nn.Module):
    """A learned proximal map ``prox(z) = z + cnn(z)`` with a plain conv + ReLU stack.

    ``cnn`` has ``layers`` 3x3 convolutions (``channels -> features -> ... -> channels``) with a
    ReLU after each but the last. The last convolution starts at zero, so an untrained
    ``ProximalCNN`` is the identity.

    Example:
        >>> import torch
        >>> prox = ProximalCNN(channels=1, features=8, layers=3)
        >>> z = torch.rand(2, 1, 9, 7)
        >>> torch.equal(prox(z), z)
        True
    """

    def __init__(self, channels: int = 1, features: int = 32, layers: int = 4) -> None:
        super().__init__()
        check_int(channels, "channels")
        check_int(features, "features")
        check_int(layers, "layers", 2, MAX_LAYERS)
        widths = [channels] + [features] * (layers - 1) + [channels]
        modules: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(itertools.pairwise(widths)):
            modules.append(nn.Conv2d(c_in, c_out, 3, padding=1))
            if i < layers - 1:
                modules.append(nn.ReLU(inplace=True))
        last = modules[-1]
        assert isinstance(last, nn.Conv2d)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*modules)
        self.channels = channels
        self.features = features
        self.layers = layers

    @property
    def out(self) -> nn.Conv2d:
        """The last (zero-initialised) convolution."""
        return self.net[-1]  # type: ignore[return-value]

    def forward(self, z: Tensor) -> Tensor:
        return z + self.net(z)  # (B, C, H, W)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, features={self.features}, layers={self.layers}"


class UnrolledProximalGradient(nn.Module):
    """Unrolled proximal gradient with learned steps ``alpha_k`` and learned ``prox_k``.

    ``x_{k+1} = prox_k(x_k + alpha_k grad_x log p(y | x_k))`` for ``k = 0 .. K-1`` with
    ``K = train_steps``. It has the RIM's interface: ``forward(likelihood, x0=None,
    steps=None, *, shape=None)`` returns the :class:`~rimkit.models.rim.Trajectory`
    ``x_1 .. x_steps``, ``steps`` defaults to ``K`` and may be smaller (the first ``steps``
    iterations, the same as the first ``steps`` estimates of a full run) but not larger.

    - ``x0`` (``(B, C, H, W)``, real) is the initial estimate (e.g. ``A^T y``); without it the
      run starts at zero with ``shape``, or the shape of ``likelihood.y`` where that is an
      image with ``C`` channels.
    - ``shared=False`` (default): one :class:`ProximalCNN` per iteration; ``shared=True``: one
      for all iterations (the step sizes stay per iteration).
    - ``step_size``: the initial ``alpha_k`` (see the module docstring).
    - ``checkpoint=True`` recomputes each proximal CNN's activations in the backward pass.
    - ``check_finite=True`` raises a ``ValueError`` naming the step at which the likelihood
      gradient turned NaN or Inf (on an accelerator, checked once after the loop).

    Example:
        >>> import torch
        >>> from rimkit.likelihood import GaussianLikelihood
        >>> from rimkit.operators import Inpainting, random_mask
        >>> net = UnrolledProximalGradient(1, train_steps=5, features=8, layers=3, shared=True)
        >>> x = torch.rand(1, 1, 16, 16)
        >>> op = Inpainting(random_mask(x.shape, 0.5, torch.Generator().manual_seed(0)))
        >>> out = net(GaussianLikelihood(op, op(x), sigma=0.05), x0=op(x), steps=3)
        >>> len(out), len(net.prox)
        (3, 1)
        >>> net(GaussianLikelihood(op, op(x), sigma=0.05), x0=op(x), steps=6)
        Traceback (most recent call last):
        ...
        ValueError: steps=6 but this unrolled network has weights for 5 iterations; ...
    """

    def __init__(
        self,
        channels: int = 1,
        train_steps: int = 10,
        *,
        features: int = 32,
        layers: int = 4,
        shared: bool = False,
        step_size: float = 1e-3,
        noise_floor: float = 1e-3,
        checkpoint: bool = False,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        check_int(channels, "channels")
        self.train_steps = _check_steps(train_steps, "train_steps")
        if not (isinstance(step_size, (int, float)) and 0 < step_size < math.inf):
            raise ValueError(f"step_size must be a finite number > 0, got {step_size!r}")
        count = 1 if shared else train_steps
        self.prox = nn.ModuleList(ProximalCNN(channels, features, layers) for _ in range(count))
        raw = torch.full((train_steps,), _inverse_softplus(float(step_size)))
        self.raw_step = nn.Parameter(raw)  # (K,)
        self.noise_floor = NoiseFloor(noise_floor)
        self.channels = channels
        self.features = features
        self.layers = layers
        self.shared = bool(shared)
        self.checkpoint = checkpoint
        self.check_finite = check_finite

    def step_sizes(self) -> Tensor:
        """The learned steps ``alpha_1 .. alpha_K = softplus(a)``, shape ``(K,)``."""
        return F.softplus(self.raw_step)

    def prox_at(self, k: int) -> ProximalCNN:
        """The proximal map of iteration ``k`` (0-based)."""
        return self.prox[0 if self.shared else k]  # type: ignore[return-value]

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, train_steps={self.train_steps}, shared={self.shared}, "
            f"checkpoint={self.checkpoint}, parameters={count_parameters(self):,}"
        )

    def _initial_estimate(
        self, likelihood: Likelihood, x0: Tensor | None, shape: tuple[int, ...] | None
    ) -> Tensor:
        return check_start(likelihood, x0, shape, self.channels, self.raw_step)

    def forward(
        self,
        likelihood: Likelihood,
        x0: Tensor | None = None,
        steps: int | None = None,
        *,
        shape: tuple[int, int, int, int] | None = None,
    ) -> Trajectory:
        steps = check_run(likelihood, steps, self.train_steps, "unrolled network")
        if steps > self.train_steps:
            raise ValueError(
                f"steps={steps} but this unrolled network has weights for {self.train_steps} "
                f"iterations; run it with steps <= {self.train_steps} (unlike a RIM it cannot "
                "iterate past its training length)"
            )
        x = self._initial_estimate(likelihood, x0, shape)  # (B, C, H, W)
        eps = self.noise_floor()
        alphas = self.step_sizes()  # (K,)
        guard = GradientGuard(x, steps, self.check_finite)
        estimates: list[Tensor] = []
        for k in range(steps):
            grad = guard(likelihood.grad(x, eps), k + 1)  # (B, C, H, W)
            z = x + alphas[k] * grad  # (B, C, H, W)
            prox = self.prox_at(k)
            if self.checkpoint and torch.is_grad_enabled():
                x = _checkpoint(prox, z, use_reentrant=False)
            else:
                x = prox(z)  # (B, C, H, W)
            estimates.append(x)
        guard.finish()
        return Trajectory(estimates)


UNROLLED_VARIANTS: dict[str, bool] = {
    "unrolled": False,
    "unrolled-shared": True,
}
"""name -> shared: the ``variant`` names of :class:`~rimkit.models.RIMConfig` that build an
:class:`UnrolledProximalGradient` (per-iteration or shared proximal CNNs)."""


def build_unrolled(
    channels: int = 1,
    *,
    variant: str = "unrolled",
    features: int | None = None,
    hidden: int | None = None,
    train_steps: int = 10,
    noise_floor: float = 1e-3,
    checkpoint: bool = False,
    check_finite: bool = True,
    step_size: float = 1e-3,
) -> UnrolledProximalGradient:
    """An :class:`UnrolledProximalGradient` from the fields of a RIM config.

    ``features`` is the proximal CNNs' width (default 32) and ``hidden`` their number of
    convolution layers (default 4, at most 16); ``variant`` is a key of
    :data:`UNROLLED_VARIANTS`.

    Example:
        >>> net = build_unrolled(variant="unrolled-shared", features=8, hidden=3, train_steps=6)
        >>> net.train_steps, len(net.prox), net.prox[0].layers
        (6, 1, 3)
    """
    if variant not in UNROLLED_VARIANTS:
        known = ", ".join(UNROLLED_VARIANTS)
        raise ValueError(f"unknown unrolled variant {variant!r}; known: {known}")
    if hidden is not None and not (
        isinstance(hidden, int) and not isinstance(hidden, bool) and 2 <= hidden <= MAX_LAYERS
    ):
        raise ValueError(
            f"for the unrolled variants 'hidden' is the number of convolution layers of each "
            f"proximal CNN, an int in [2, {MAX_LAYERS}], got {hidden!r}"
        )
    return UnrolledProximalGradient(
        channels,
        train_steps,
        features=32 if features is None else features,
        layers=4 if hidden is None else hidden,
        shared=UNROLLED_VARIANTS[variant],
        step_size=step_size,
        noise_floor=noise_floor,
        checkpoint=checkpoint,
        check_finite=check_finite,
    )
