"""Direct (one-shot) baselines: the zero-filled / adjoint reconstruction and bicubic up-sampling.

Example:
    >>> import torch
    >>> from rimkit.operators import BicubicDownsample
    >>> y = torch.rand(1, 3, 8, 8)
    >>> BicubicUpsampling()(y, BicubicDownsample(2)).final.shape
    torch.Size([1, 3, 16, 16])
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from rimkit.operators.base import ComplexAsChannels, LinearOperator, magnitude
from rimkit.operators.bicubic import BicubicDownsample, bicubic_upsample
from rimkit.solvers.base import Reconstructor, SolverResult

__all__ = ["BicubicUpsampling", "ZeroFilled"]


@dataclass(frozen=True)
class ZeroFilled(Reconstructor):
    """``x = A^H y``: for MRI the zero-filled reconstruction (unsampled k-space set to zero).

    The result keeps the adjoint's dtype, so it is complex for MRI; ``magnitude=True``
    returns ``|A^H y|`` (real), the usual zero-filled magnitude image. Works for any operator
    (for others it is the plain adjoint back-projection). ``objective`` is empty.

    Example:
        >>> import torch
        >>> from rimkit.operators import CartesianMRI
        >>> op = CartesianMRI(torch.ones(1, 1, 8, 8))
        >>> x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
        >>> r = ZeroFilled(magnitude=True)(op(x), op)
        >>> torch.allclose(r.final, x), r.final.dtype
        (True, torch.float64)
    """

    magnitude: bool = False
    name = "zero-filled"

    def _solve(
        self, y: Tensor, operator: LinearOperator, sigma: Tensor, x0: Tensor | None
    ) -> SolverResult:
        x = operator.adjoint(y)  # (B, C, H, W), complex for MRI
        if self.magnitude:  # a complex image held as two real channels: one magnitude channel
            x = magnitude(x) if isinstance(operator, ComplexAsChannels) else x.abs()
        return SolverResult([x])


@dataclass(frozen=True)
class BicubicUpsampling(Reconstructor):
    """The super-resolution baseline: MATLAB-style bicubic up-sampling of ``y``.

    Accepts only a :class:`~rimkit.operators.BicubicDownsample` operator, whose ``scale`` (and
    ``in_size``, when set) give the output size. ``objective`` is empty.

    Example:
        >>> import torch
        >>> from rimkit.operators import BicubicDownsample
        >>> op = BicubicDownsample(3, in_size=(10, 11))
        >>> BicubicUpsampling()(op(torch.rand(1, 1, 10, 11)), op).final.shape
        torch.Size([1, 1, 10, 11])
    """

    name = "bicubic"

    def _solve(
        self, y: Tensor, operator: LinearOperator, sigma: Tensor, x0: Tensor | None
    ) -> SolverResult:
        if not isinstance(operator, BicubicDownsample):
            raise ValueError(
                "bicubic up-sampling is the super-resolution baseline: it accepts only a "
                f"BicubicDownsample operator, got {type(operator).__name__}"
            )
        return SolverResult([bicubic_upsample(y, operator.scale, operator.in_size)])
