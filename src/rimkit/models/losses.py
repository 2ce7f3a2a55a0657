"""Losses over a RIM trajectory: ``sum_t w_t L(x_t, x)``.

The paper trains on the sum over all steps of the MSE with weights 1. Here the weights of a
named scheme are normalised to sum to 1 by default: the uniform loss is then the mean over
steps, a constant factor ``1/T`` from the paper's sum that keeps the loss scale (and learning
rate) independent of ``T``; the scheme ``sum`` (or ``normalize=False``) gives the paper's
weights of 1, whose gradient is ``T`` times larger (which matters where it is clipped, as
``optim.clip_grad`` does). Explicit weights are used as given unless ``normalize=True`` (see
:func:`trajectory_loss`).

==========  ====================================  =============================
weights     ``w_t`` before normalising (t=1..T)   T=4, normalised
==========  ====================================  =============================
uniform     1                                     .25 .25 .25 .25
sum         1, never normalised (the paper's)     1 1 1 1
final       1 if t == T else 0                    0 0 0 1
linear      t / T                                 .1 .2 .3 .4
log         10 ** ((t - T) / (T - 1)), 0.1 .. 1   log-spaced, last 10x first
==========  ====================================  =============================

Losses ``L``: ``mse``, ``l1`` (means over all pixels), ``ssim`` (``1 - SSIM`` with an
11 x 11 Gaussian window, sigma 1.5, as :func:`skimage.metrics.structural_similarity` with
``gaussian_weights=True, use_sample_covariance=False``) and ``psnr`` (minus the mean PSNR over
the batch, see :func:`psnr_loss`).

Example:
    >>> import torch
    >>> from rimkit.models.rim import Trajectory
    >>> x = torch.zeros(1, 1, 16, 16)
    >>> trajectory = Trajectory([x + 1.0, x + 0.5])
    >>> trajectory_loss(trajectory, x, weights="final").item()
    0.25
    >>> trajectory_loss(trajectory, x, weights="uniform").item()
    0.625
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from rimkit.models.rim import Trajectory

WEIGHT_SCHEMES = ("uniform", "final", "linear", "log", "sum")


def step_weights(name: str, steps: int, normalize: bool = True) -> Tensor:
    """The weights ``w_1 .. w_T`` of scheme ``name`` as a float64 tensor ``(T,)``.

    Example:
        >>> step_weights("linear", 4).tolist()
        [0.1, 0.2, 0.3, 0.4]
        >>> step_weights("uniform", 3, normalize=False).tolist()
        [1.0, 1.0, 1.0]
        >>> step_weights("sum", 3).tolist()
        [1.0, 1.0, 1.0]
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    t = torch.arange(1, steps + 1, dtype=torch.float64)
    if name == "sum":
        return torch.ones(steps, dtype=torch.float64)
    if name == "uniform":
        w = torch.ones(steps, dtype=torch.float64)
    elif name == "final":
        w = (t == steps).to(torch.float64)
    elif name == "linear":
        w = t / steps
    elif name == "log":
        w = 10.0 ** ((t - steps) / (steps - 1)) if steps > 1 else torch.ones(1, dtype=torch.float64)
    else:
        raise ValueError(f"unknown weight scheme {name!r}; known: {', '.join(WEIGHT_SCHEMES)}")
    return w / w.sum() if normalize else w


def gaussian_window(
    size: int = 11,
    sigma: float = 1.5,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
) -> Tensor:
    """A normalised 1-D Gaussian ``(size,)``, centred, ``exp(-d^2 / (2 sigma^2))``."""
    d = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(d**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def ssim(
    x: Tensor,
    y: Tensor,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """Mean structural similarity per sample, ``(B,)``; differentiable.

    Local statistics under a Gaussian window (population covariances), averaged over the
    channels and the pixels whose window lies inside the image, as scikit-image does.

    Example:
        >>> import torch
        >>> x = torch.rand(2, 1, 16, 16)
        >>> ssim(x, x).tolist()
        [1.0, 1.0]
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(
            f"ssim needs two tensors (B, C, H, W) of one shape, got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if min(x.shape[-2:]) < window_size:
        raise ValueError(
            f"ssim needs images of at least {window_size}x{window_size} pixels, got "
            f"{x.shape[-2]}x{x.shape[-1]}"
        )
    c = x.shape[1]
    g = gaussian_window(window_size, sigma, x.dtype, x.device)
    stats = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (B, 5C, H, W)
    stats = F.conv2d(stats, g.view(1, 1, 1, -1).expand(5 * c, 1, 1, -1), groups=5 * c)
    stats = F.conv2d(stats, g.view(1, 1, -1, 1).expand(5 * c, 1, -1, 1), groups=5 * c)
    mx, my, mxx, myy, mxy = stats.chunk(5, dim=1)  # (B, C, H', W') each
    vx, vy, cxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(dim=1)


def ssim_loss(x: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """``1 - SSIM``, averaged over the batch."""
    return 1.0 - ssim(x, target, data_range).mean()


PSNR_LOSS_OFFSET = 1e-4
"""The MSE added in :func:`psnr_loss`: a sample's PSNR term saturates near 40 dB (peak 1)."""


def psnr_loss(x: Tensor, target: Tensor) -> Tensor:
    """Minus the mean PSNR over the batch (peak 1), in dB.

    ``L = mean_b 10 log10(MSE_b + 1e-4)``. The MSE loss weighs each sample by its error, so a
    model trained on many noise levels serves the noisiest most; this loss weighs every
    sample's dB alike (its gradient is the MSE's divided by ``MSE_b + 1e-4``), as the mean
    PSNR of an evaluation does. The ``1e-4`` keeps near-noiseless samples (PSNR above ~40 dB)
    from dominating.

    Example:
        >>> import torch
        >>> x = torch.zeros(2, 1, 4, 4)
        >>> round(psnr_loss(x + 0.1, x).item(), 2)  # 10 log10(0.01 + 1e-4)
        -19.96
    """
    mse = (x - target).pow(2).flatten(1).mean(dim=1)  # (B,)
    return 10.0 * torch.log10(mse + PSNR_LOSS_OFFSET).mean()


LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": F.mse_loss,
    "l1": F.l1_loss,
    "ssim": ssim_loss,
    "psnr": psnr_loss,
}


def trajectory_loss(
    trajectory: Trajectory | Sequence[Tensor],
    target: Tensor,
    weights: str | Sequence[float] | Tensor = "uniform",
    loss: str = "mse",
    normalize: bool | None = None,
) -> Tensor:
    """``sum_t w_t L(x_t, target)`` over the estimates of a trajectory.

    ``weights`` is a scheme name (see :func:`step_weights`) or explicit ``T`` weights;
    ``loss`` is a name in :data:`LOSSES`. Steps with weight 0 are not evaluated.

    ``normalize``: ``True`` divides the weights by their sum (which must then be > 0), named
    or explicit; ``False`` uses them as they are (a scheme's unnormalised weights, e.g. the
    paper's 1s); ``None`` (default) normalises a named scheme and uses explicit weights as
    given.

    Example:
        >>> import torch
        >>> x = torch.zeros(1, 1, 4, 4)
        >>> trajectory = Trajectory([x + 1.0, x + 0.5])   # per-step MSE 1.0 and 0.25
        >>> trajectory_loss(trajectory, x, weights=[1.0, 1.0]).item()
        1.25
        >>> trajectory_loss(trajectory, x, weights=[1.0, 1.0], normalize=True).item()
        0.625
    """
    estimates = trajectory.estimates if isinstance(trajectory, Trajectory) else list(trajectory)
    if not estimates:
        raise ValueError("the trajectory has no estimates")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor like the estimates, got {type(target)}")
    if estimates[0].shape != target.shape:
        raise ValueError(
            f"the estimates have shape {tuple(estimates[0].shape)} but the target "
            f"{tuple(target.shape)}"
        )
    if isinstance(weights, str):
        w = step_weights(weights, len(estimates), normalize is not False).tolist()
    else:
        w = [float(v) for v in weights]
        if len(w) != len(estimates) or not all(math.isfinite(v) for v in w):
            raise ValueError(
                f"give {len(estimates)} finite weights, one per step, got {len(w)}: {w}"
            )
        if normalize:
            total = math.fsum(w)
            if total <= 0:
                raise ValueError(
                    f"normalize=True divides the weights by their sum, but {w} sum to {total}; "
                    "give weights with a positive sum, or normalize=False to use them as given"
                )
            w = [v / total for v in w]
    fn = LOSSES[loss]
    terms = [wt * fn(xt, target) for wt, xt in zip(w, estimates, strict=True) if wt != 0.0]
    return torch.stack(terms).sum() if terms else target.new_zeros(())


def measurement_fit_loss(
    trajectory: Trajectory | Sequence[Tensor],
    operator: Callable[[Tensor], Tensor],
    target: Tensor,
    weights: str | Sequence[float] | Tensor = "uniform",
) -> Tensor:
    """``sum_t w_t ||A(x_t) - A(x)||^2 / (B n)``: the error in what ``A`` measures, per pixel.

    The fit of each estimate to the *clean* measurement ``A(x)`` of the target (not to the noisy
    ``y``), summed over the measurement and divided by the batch and the pixels of one image
    (``n``), so that for ``A = I`` it is the MSE. For a projection with ``A A^T ~ (n/m) I`` it is
    ``n/m`` times the MSE of the error's part in the row space of ``A``. Added to the image loss
    (``optim.fit_weight``) it weighs the measured part of the error more: a model trained on
    underdetermined problems, where most of the error lies in the null space, then learns to
    follow the measurements where they are informative, as denoising by transfer needs.
    Complex measurements (MRI) count ``|.|^2``. Steps are weighed as :func:`trajectory_loss`
    weighs them.

    Example:
        >>> import torch
        >>> x = torch.zeros(1, 1, 2, 2)
        >>> double = lambda image: 2 * image.flatten(1)   # A = 2 I: four times the MSE
        >>> measurement_fit_loss([x + 0.5], double, x).item()
        1.0
    """
    estimates = trajectory.estimates if isinstance(trajectory, Trajectory) else list(trajectory)
    clean = _real_view(operator(target))
    per_pixel = clean[0].numel() / target[0].numel()  # mse's mean -> sum over A(x) / n
    measured = [_real_view(operator(x)) for x in estimates]
    return per_pixel * trajectory_loss(measured, clean, weights, "mse")


def _real_view(values: Tensor) -> Tensor:
    """Real values as they are; complex ones as (..., 2) real and imaginary parts."""
    return torch.view_as_real(values) if values.is_complex() else values
