"""Geometric self-ensemble: restore flipped and rotated copies of a measurement and average.

For an operator that commutes with a symmetry ``g`` of the pixel grid (``A g x = g A x``:
denoising, inpainting with the mask moved alike, super-resolution), a restoration of
``g y`` is one of ``g x``, so the ``K`` transforms give ``K`` estimates of ``x``:

    x_hat = 1/K  sum_k  g_k^{-1} R(g_k y),

whose errors are partly independent (Timofte et al., "Seven ways to improve example-based
single image super resolution", 2016). ``K`` is 1, 2, 4 or 8: the first ``K`` of identity,
left-right flip, up-down flip, half turn, and the four transposed versions. It costs ``K``
restorations; the whole trajectory ``x_1 .. x_T`` is averaged, step by step.

Example:
    >>> import torch
    >>> from rimkit.operators import Identity
    >>> from rimkit.models import Trajectory
    >>> def tilt(y, operator, sigma, *, x0=None):   # not flip-equivariant: adds a left-right ramp
    ...     return Trajectory([y + torch.linspace(0, 1, y.shape[-1])])
    >>> out = SelfEnsemble(tilt, 2)(torch.zeros(1, 1, 2, 3), Identity(), 0.1).final
    >>> out[0, 0, 0].tolist()   # the ramp and its flip average to a constant
    [0.5, 0.5, 0.5]
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from rimkit.likelihood import is_noise_map
from rimkit.models import Trajectory
from rimkit.operators import BicubicDownsample, Identity, Inpainting, LinearOperator

SIZES = (1, 2, 4, 8)
"""How many transforms a self-ensemble may average."""

ENSEMBLE_TASKS = ("denoise", "sr", "inpaint")
"""Tasks whose operators commute with flips and rotations (see :func:`transform_operator`)."""


def transform(x: Tensor, k: int) -> Tensor:
    """The ``k``-th symmetry of the pixel grid (0 identity, 1-3 flips, 4-7 transposed ones)."""
    if k >= 4:
        x = x.transpose(-1, -2)
    flips = [(), (-1,), (-2,), (-1, -2)][k % 4]
    return x.flip(flips) if flips else x


def inverse(x: Tensor, k: int) -> Tensor:
    """Undo :func:`transform` ``k``: ``inverse(transform(x, k), k) == x``."""
    flips = [(), (-1,), (-2,), (-1, -2)][k % 4]
    x = x.flip(flips) if flips else x
    return x.transpose(-1, -2) if k >= 4 else x


def transform_operator(operator: LinearOperator, k: int) -> LinearOperator:
    """The operator seen from transform ``k``: ``A_k`` with ``A_k g_k x = g_k A x``.

    Raises a ``ValueError`` naming the operator when it does not commute with the pixel grid's
    symmetries (blur kernels, MRI masks, random projections)."""
    if isinstance(operator, Identity):
        return operator
    if isinstance(operator, Inpainting):
        return Inpainting(transform(operator.mask, k))
    if isinstance(operator, BicubicDownsample):
        size = operator.in_size
        if size is not None and (size[0] % operator.scale or size[1] % operator.scale):
            raise ValueError(
                f"self-ensemble needs a super-resolution size that is a multiple of the scale "
                f"({operator.scale}); got {size[0]}x{size[1]}: crop the image or use ensemble 1"
            )
        swapped = size if size is None or k < 4 else (size[1], size[0])
        return BicubicDownsample(operator.scale, in_size=swapped)
    raise ValueError(
        f"self-ensemble works for denoising, inpainting and super-resolution, whose operators "
        f"commute with flips and rotations; not for {type(operator).__name__}: use ensemble 1"
    )


def check_size(size: object) -> int:
    """``size`` as an int in :data:`SIZES`, else a ``ValueError`` that lists them."""
    if not isinstance(size, int) or isinstance(size, bool) or size not in SIZES:
        raise ValueError(f"the self-ensemble size must be one of {SIZES}, got {size!r}")
    return int(size)


class SelfEnsemble:
    """A reconstruction method ``method(y, operator, sigma) -> Trajectory`` run on ``size``
    flipped or rotated copies of ``y``, its trajectories moved back and averaged."""

    def __init__(self, method: Callable[..., Trajectory], size: int = 8) -> None:
        self.method = method
        self.size = check_size(size)

    def __call__(
        self,
        y: Tensor,
        operator: LinearOperator,
        sigma: Tensor | float = 0.0,
        *,
        x0: Tensor | None = None,
    ) -> Trajectory:
        if is_noise_map(sigma):
            raise ValueError("a self-ensemble takes one noise level per sample, not a noise map")
        operators = [transform_operator(operator, k) for k in range(self.size)]
        total: list[Tensor] | None = None
        for k, op in enumerate(operators):
            start = None if x0 is None else transform(x0, k)
            run = self.method(transform(y, k), op, sigma, x0=start)
            back = [inverse(x, k) for x in run.estimates]  # each (B, C, H, W)
            total = back if total is None else [a + b for a, b in zip(total, back, strict=True)]
        return Trajectory([x / self.size for x in total])
