"""Likelihoods: the only thing a RIM ever sees of the physics.

For a measurement ``y = A(x) + n`` with ``n ~ N(0, sigma^2 I)`` (per real component), ``sigma``
in the units of ``y`` (the 0-1 scale for images in [0, 1]: ``25 / 255`` for 8-bit sigma 25):

    log p(y | x) = -||y - A(x)||^2 / (2 (sigma^2 + eps))
    grad_x log p(y | x) = A^H (y - A x) / (sigma^2 + eps)        (A linear)

``eps`` is a positive noise floor that keeps the gradient finite as ``sigma -> 0``. In a RIM it
is trained (the paper's choice) and lives in the model as a :class:`NoiseFloor`; the model
passes its value when it calls :meth:`Likelihood.grad`.

Every likelihood has the same small interface, so swapping a denoising likelihood for an
inpainting or random-projection one is one line and the model weights stay the same:

Example:
    >>> import torch
    >>> from rimkit.operators import Inpainting, random_mask
    >>> x = torch.rand(2, 1, 16, 16)
    >>> op = Inpainting(random_mask((2, 1, 16, 16), 0.5, torch.Generator().manual_seed(0)))
    >>> lik = GaussianLikelihood(op, op(x), sigma=0.1)
    >>> lik.grad(x).abs().max().item()   # the truth is a stationary point without noise
    0.0
"""

from __future__ import annotations

import contextlib
import math
import numbers
import warnings
from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rimkit.noise import warn_if_255_scale
from rimkit.operators.base import LinearOperator, per_sample


@runtime_checkable
class Likelihood(Protocol):
    """``grad(x, eps)`` returns ``grad_x log p(y | x)`` with the shape and dtype of ``x``."""

    def grad(self, x: Tensor, eps: Tensor | float = 0.0) -> Tensor: ...

    def log_prob(self, x: Tensor, eps: Tensor | float = 0.0) -> Tensor: ...


def is_noise_map(sigma: Tensor | float) -> bool:
    """Whether ``sigma`` is a noise map, a value per measured pixel: a tensor of 2-D or more
    with a trailing size above 1 (``(B, 1, 1, 1)`` is one level per sample).

    Example:
        >>> [is_noise_map(s) for s in (torch.ones(1, 1, 4, 4), torch.ones(3, 1, 1, 1), 0.1)]
        [True, False, False]
    """
    return isinstance(sigma, Tensor) and sigma.ndim >= 2 and any(d != 1 for d in sigma.shape[1:])


def _check_sigma(sigma: Tensor | float) -> Tensor:
    """``sigma`` as a tensor after checking it is a real number (or real numbers) >= 0."""
    wrong = "sigma must be a number or a tensor, on the 0-1 scale here (e.g. 0.1, or 25 / 255 "
    wrong += f"for sigma 25 on 8-bit images), got {type(sigma).__name__} {sigma!r}"
    if isinstance(sigma, (str, bytes, bool)) or not isinstance(
        sigma, (Tensor, numbers.Real, list, tuple, np.ndarray)
    ):
        raise ValueError(wrong)
    try:
        s = torch.as_tensor(sigma)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(wrong) from err
    if s.is_complex() or s.dtype == torch.bool:
        raise ValueError(wrong)
    if not (torch.isfinite(s).all() and (s >= 0).all()):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
    return s


class _GaussianBase:
    """Shared parts: the measurement, the per-sample noise variance and the log-density."""

    def __init__(self, y: Tensor, sigma: Tensor | float) -> None:
        if not isinstance(y, Tensor):
            raise ValueError(f"y must be a torch.Tensor, got {type(y)}")
        if not (y.is_floating_point() or y.is_complex()):
            raise ValueError(
                f"y is {y.dtype}; the measurement must be a float tensor, images in [0, 1] "
                "(8-bit data: y.float() / 255), or a complex one (k-space)"
            )
        if not torch.isfinite(y).all():
            raise ValueError("y contains NaN or Inf; a measurement must be finite")
        self.y = y
        self.sigma = _check_sigma(sigma)
        if self.is_map:
            try:
                fits = torch.broadcast_shapes(self.sigma.shape, y.shape) == y.shape
            except RuntimeError:
                fits = False
            if not fits:
                raise ValueError(
                    f"a noise map (sigma per pixel) must have y's shape {tuple(y.shape)} or "
                    f"broadcast to it, got {tuple(self.sigma.shape)}"
                )
        warn_if_255_scale(y, self.sigma, stacklevel=4)  # the line that made the likelihood

    @property
    def is_map(self) -> bool:
        """Whether ``sigma`` is a noise map, one value per pixel of ``y`` (:func:`is_noise_map`)."""
        return is_noise_map(self.sigma)

    def variance(self, like: Tensor, eps: Tensor | float) -> Tensor:
        """``sigma^2 + eps`` broadcast to ``(B, 1, ...)`` for a tensor shaped like ``like``."""
        if self.is_map:
            raise ValueError("a noise map has a variance per pixel of y: use measured_variance")
        batch = like.shape[0]
        s = per_sample(self.sigma, batch, like, "sigma")  # (B, 1, 1, 1)
        e = torch.as_tensor(eps, dtype=s.dtype, device=s.device)
        e = e.reshape(-1, *([1] * (s.ndim - 1))) if e.ndim == 1 else e  # (B,) eps
        return _positive((s**2 + e).reshape((batch,) + (1,) * (like.ndim - 1)))

    def measured_variance(self, residual: Tensor, eps: Tensor | float) -> Tensor:
        """``sigma^2 + eps`` for each value of a residual shaped like ``y``: per pixel for a
        noise map, else per sample (``(B, 1, ...)``)."""
        if not self.is_map:
            return self.variance(residual, eps)
        s = self.sigma.to(device=residual.device, dtype=residual.real.dtype)
        e = torch.as_tensor(eps, dtype=s.dtype, device=s.device)
        e = e.reshape(-1, *([1] * (residual.ndim - 1))) if e.ndim == 1 else e  # (B,) eps
        return _positive(s**2 + e)

    def _residual(self, ax: Tensor) -> Tensor:
        if ax.shape != self.y.shape:
            raise ValueError(
                f"the forward model gives shape {tuple(ax.shape)} but the measurement y has "
                f"shape {tuple(self.y.shape)}; estimate and measurement do not belong together"
            )
        return self.y - ax

    def _log_prob_from(self, residual: Tensor, eps: Tensor | float) -> Tensor:
        var = self.measured_variance(residual, eps)
        sq = (residual.abs() ** 2) / (2 * var)
        return -sq.reshape(sq.shape[0], -1).sum(dim=1)


class GaussianLikelihood(_GaussianBase):
    """Gaussian likelihood of a linear forward model, with its analytic gradient.

    ``sigma`` is the noise standard deviation in the units of ``y``: on the 0-1 scale for
    images in [0, 1] (``25 / 255`` for sigma 25 on 8-bit images), not the 0-255 scale of
    :func:`rimkit.degrade.degrade` and :func:`rimkit.pipeline.restore`. It is a number, a
    per-sample ``(B,)`` tensor, or a noise map of ``y``'s shape (one value per measured value,
    e.g. an astronomer's error image); ``y`` is a float (or complex) tensor of ``A(x)``'s shape.

    ``grad(x) = A^H (y - A x) / (sigma^2 + eps)``, with ``eps`` the model's noise floor; for a
    noise map ``A^H ((y - A x) / (sigma^2 + eps))``, each residual weighted by its variance. The
    result carries an autograd graph to every tensor involved that requires grad (``x``,
    ``eps``, ``y``, ``sigma``, the operator's parameters).

    Example:
        >>> import torch
        >>> from rimkit.operators import Identity
        >>> y = torch.full((1, 1, 4, 4), 0.5)
        >>> lik = GaussianLikelihood(Identity(), y, sigma=0.5)
        >>> lik.grad(torch.zeros(1, 1, 4, 4))[0, 0, 0, 0].item()
        2.0
    """

    def __init__(self, operator: LinearOperator, y: Tensor, sigma: Tensor | float) -> None:
        if not isinstance(operator, LinearOperator):
            raise ValueError(
                f"operator must be a rimkit LinearOperator, got {type(operator).__name__}; "
                "use AutogradLikelihood for any other differentiable forward model"
            )
        super().__init__(y, sigma)
        self.operator = operator

    def grad(self, x: Tensor, eps: Tensor | float = 0.0) -> Tensor:
        residual = self._residual(self.operator(x))
        if self.is_map:  # weighted per pixel of y: A^H ((y - A x) / (sigma^2 + eps))
            residual = residual / self.measured_variance(residual, eps)
        grad = self.operator.adjoint(residual)
        if grad.shape != x.shape:
            raise ValueError(
                f"{type(self.operator).__name__}'s adjoint maps y back to {tuple(grad.shape)}, "
                f"not to x's {tuple(x.shape)}: the operator was made for another size (a "
                "BicubicDownsample of a size that is no multiple of its scale needs in_size)"
            )
        if grad.is_complex() and not x.is_complex():  # a real image: the real part is its gradient
            grad = grad.real
        return grad if self.is_map else grad / self.variance(x, eps)

    def log_prob(self, x: Tensor, eps: Tensor | float = 0.0) -> Tensor:
        return self._log_prob_from(self._residual(self.operator(x)), eps)


def _positive(variance: Tensor) -> Tensor:
    """``variance`` (``sigma^2 + eps``), refused where it is 0 and would make the gradient
    infinite. Checked on the CPU only: on a GPU the check would wait for the device at every
    step, and the models' learned ``eps`` is positive."""
    if variance.device.type == "cpu" and not bool((variance > 0).all()):
        raise ValueError(
            "sigma^2 + eps is 0: a noiseless measurement needs eps > 0 (the RIMs learn one; "
            "pass eps=1e-6 or so when taking the gradient by hand)"
        )
    return variance


class AutogradLikelihood(_GaussianBase):
    """Gaussian likelihood of any differentiable forward model, linear or not.

    ``sigma`` is the noise standard deviation in the units of ``y``: on the 0-1 scale for
    images in [0, 1] (``25 / 255`` for sigma 25 on 8-bit images), not the 0-255 scale of
    :func:`rimkit.degrade.degrade` and :func:`rimkit.pipeline.restore`. It is a number, a
    per-sample ``(B,)`` tensor or a noise map of ``y``'s shape; ``y`` is a float (or complex)
    tensor of ``forward(x)``'s shape.

    ``grad(x) = grad_x log p(y | x)`` comes from ``torch.autograd``. When gradients are enabled
    and anything involved requires grad (``x``, ``eps``, ``y``, ``sigma``, or a tensor the
    forward model uses, such as its parameters) the graph is kept (``create_graph``), so a loss
    back-propagates through it to all of them, as through :class:`GaussianLikelihood`.

    Example:
        >>> import torch
        >>> forward = lambda x: x**2          # a non-linear forward model
        >>> y = torch.full((1, 1, 2, 2), 0.25)
        >>> lik = AutogradLikelihood(forward, y, sigma=1.0)
        >>> lik.grad(torch.full((1, 1, 2, 2), 0.5)).abs().max().item()
        0.0
    """

    def __init__(self, forward: Callable[[Tensor], Tensor], y: Tensor, sigma: Tensor | float):
        if not callable(forward):
            raise ValueError(f"forward must be callable, got {type(forward).__name__}")
        super().__init__(y, sigma)
        self.forward = forward
        self._checked_zero = False

    def log_prob(self, x: Tensor, eps: Tensor | float = 0.0) -> Tensor:
        return self._log_prob_from(self._residual(self.forward(x)), eps)

    def grad(self, x: Tensor, eps: Tensor | float = 0.0) -> Tensor:
        grad_enabled = torch.is_grad_enabled()
        with torch.enable_grad(), _differentiable_forward():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            log_prob = self.log_prob(xg, eps).sum()
            keep_graph = grad_enabled and (
                x.requires_grad or _requires_grad(eps) or _reaches_other_leaf(log_prob, xg)
            )
            (g,) = torch.autograd.grad(log_prob, xg, create_graph=keep_graph)
        if not self._checked_zero:  # once: a sync, and a forward without gradient stays so
            self._checked_zero = True
            _warn_if_zero_gradient(g, log_prob)
        return g


NOT_DIFFERENTIABLE = (
    "does not require grad",  # the forward model's output is cut off from x
    "not have been used in the graph",  # ... while something else (eps, y) requires grad
    "in-place operation",
    "numpy() on Tensor that requires grad",
)
"""What torch says when a forward model is not differentiable in torch."""


@contextlib.contextmanager
def _differentiable_forward() -> Iterator[None]:
    """Turn torch's errors about a forward model cut off from autograd into one that says so."""
    try:
        yield
    except RuntimeError as err:
        if not any(words in str(err) for words in NOT_DIFFERENTIABLE):
            raise
        raise ValueError(
            "AutogradLikelihood needs a forward model that is differentiable in torch: "
            "compute A(x) from x with torch operations only (no .detach(), .numpy() or "
            f"in-place operations on the input); torch says: {err}"
        ) from None


def _warn_if_zero_gradient(grad: Tensor, log_prob: Tensor) -> None:
    """A note when the gradient is exactly zero everywhere but the forward model misses ``y``:
    the RIM then cannot move its estimate."""
    if bool((grad == 0).all()) and bool(log_prob.detach() != 0):
        warnings.warn(
            "the likelihood gradient is exactly zero everywhere although the forward model does "
            "not fit y: the RIM will not move its estimate; is the forward model differentiable "
            "(torch.round, argmax, comparisons and integer casts have zero gradient)?",
            UserWarning,
            stacklevel=3,
        )


def _requires_grad(value: Tensor | float) -> bool:
    return isinstance(value, Tensor) and value.requires_grad


def _reaches_other_leaf(output: Tensor, leaf: Tensor) -> bool:
    """Whether ``output``'s autograd graph reaches a tensor that requires grad besides ``leaf``
    (``y``, ``sigma``, a parameter of the forward model, ...)."""
    stack = [output.grad_fn]
    seen: set[object] = set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)  # an AccumulateGrad node: a leaf
        if variable is not None and variable is not leaf:
            return True
        stack.extend(next_node for next_node, _ in node.next_functions)
    return False


class NoiseFloor(nn.Module):
    """A trainable positive scalar ``eps = softplus(raw)``: the likelihood's noise floor.

    Example:
        >>> round(NoiseFloor(1e-3)().item(), 6)
        0.001
    """

    def __init__(self, initial: float = 1e-3) -> None:
        super().__init__()
        if not (initial > 0 and math.isfinite(initial)):
            raise ValueError(f"the initial noise floor must be finite and > 0, got {initial}")
        raw = initial + math.log(-math.expm1(-initial))  # inverse softplus
        self.raw = nn.Parameter(torch.tensor(raw, dtype=torch.float32))

    def forward(self) -> Tensor:
        return F.softplus(self.raw)
