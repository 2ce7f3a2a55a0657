"""Bicubic down-sampling as MATLAB ``imresize`` does it: the super-resolution forward model.

Published super-resolution numbers (Set5, Set14, B100) use low-resolution images made with
MATLAB ``imresize(HR, 1/s, 'bicubic')``. Along one axis that resize is a fixed matrix ``W``
of shape ``(out, in)`` built by MATLAB's ``contributions()``:

* the Keys cubic with ``a = -0.5``::

      cubic(t) = 1.5|t|^3 - 2.5|t|^2 + 1               for |t| <= 1
                 -0.5|t|^3 + 2.5|t|^2 - 4|t| + 2       for 1 < |t| <= 2
                 0                                     otherwise

* ``scale = out / in`` (``1/s`` when shrinking by ``s``). When shrinking, the kernel is
  stretched to antialias: ``h(t) = scale * cubic(scale * t)`` with width ``4 / scale``;
  otherwise ``h = cubic`` with width 4;
* output pixel ``x`` (1-based) sits at input coordinate ``u = x / scale + 0.5 (1 - 1/scale)``;
  it takes the ``P = ceil(width) + 2`` input pixels ``left + 0 .. P-1`` with
  ``left = floor(u - width / 2)`` and weights ``h(u - index)``, normalised to sum 1;
* indices outside ``1 .. in`` are folded back with the symmetric border
  ``[1 .. in, in .. 1]``, so a pixel near the border collects the weights of its mirror images.

A 2-D image is resized by ``W_h @ x @ W_w^T``, so :class:`BicubicDownsample` is the linear
operator ``A x = W_h x W_w^T`` with the exact adjoint ``A^T y = W_h^T y W_w``.
:func:`bicubic_upsample` is ``imresize(y, s, 'bicubic')``: the usual baseline and initial guess.

Example:
    >>> import torch
    >>> op = BicubicDownsample(2)
    >>> x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    >>> y = op(x)
    >>> y.shape, op.adjoint(y).shape, bicubic_upsample(y, 2).shape
    (torch.Size([1, 1, 4, 4]), torch.Size([1, 1, 8, 8]), torch.Size([1, 1, 8, 8]))
    >>> imresize_matrix(8, 0.5)[0, :5]  # row 1: symmetric border folded in
    array([ 0.546875  ,  0.3984375 ,  0.1015625 , -0.03515625, -0.01171875])
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from rimkit.operators.base import LinearOperator, check_image

__all__ = ["BicubicDownsample", "bicubic_upsample", "imresize_matrix"]


def _cubic(t: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with ``a = -0.5``, as MATLAB's ``cubic``."""
    a = np.abs(t)
    a2 = a * a
    a3 = a2 * a
    return (1.5 * a3 - 2.5 * a2 + 1) * (a <= 1) + (-0.5 * a3 + 2.5 * a2 - 4 * a + 2) * (
        (a > 1) & (a <= 2)
    )


@functools.lru_cache(maxsize=128)
def imresize_matrix(
    in_len: int, scale: float, out_len: int | None = None, antialias: bool = True
) -> np.ndarray:
    """The 1-D MATLAB ``imresize`` bicubic matrix of shape ``(out_len, in_len)``, float64.

    ``scale`` is MATLAB's scale factor (``0.5`` to halve, ``3`` to triple); ``out_len``
    defaults to ``ceil(in_len * scale)``. Antialiasing applies only when ``scale < 1``. The
    result is cached and read-only; copy it before changing it.

    Example:
        >>> imresize_matrix(4, 2.0)[0]  # first output pixel of a 2x enlargement
        array([ 1.09375, -0.09375,  0.     ,  0.     ])
    """
    if isinstance(in_len, bool) or not isinstance(in_len, int) or in_len < 1:
        raise ValueError(f"in_len must be a positive int, got {in_len!r}")
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    if out_len is None:
        out_len = math.ceil(in_len * scale)
    if isinstance(out_len, bool) or not isinstance(out_len, int) or out_len < 1:
        raise ValueError(f"out_len must be a positive int, got {out_len!r}")

    if scale < 1 and antialias:
        width = 4.0 / scale

        def h(t: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * t)
    else:
        width = 4.0
        h = _cubic

    x = np.arange(1, out_len + 1, dtype=np.float64)[:, None]  # (out, 1), 1-based
    u = x / scale + 0.5 * (1 - 1 / scale)  # (out, 1) input coordinates
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    index = left + np.arange(taps)  # (out, P), 1-based, may leave 1 .. in_len
    weights = h(u - index)
    weights = weights / weights.sum(axis=1, keepdims=True)

    aux = np.concatenate([np.arange(1, in_len + 1), np.arange(in_len, 0, -1)])
    folded = aux[np.mod(index.astype(np.int64) - 1, 2 * in_len)] - 1  # (out, P), 0-based
    matrix = np.zeros((out_len, in_len))
    rows = np.broadcast_to(np.arange(out_len)[:, None], folded.shape)
    np.add.at(matrix, (rows, folded), weights)  # repeated indices accumulate
    matrix.setflags(write=False)
    return matrix


def _check_scale(scale: object) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an int >= 1 (e.g. 2, 3, 4), got {scale!r}")
    return scale


def _check_size(size: object, name: str, at_least: int = 1) -> tuple[int, int]:
    ok = (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) for n in size)
    )
    if not ok or min(size) < at_least:  # type: ignore[arg-type]
        raise ValueError(f"{name} must be a pair of ints (H, W), each >= {at_least}; got {size!r}")
    return int(size[0]), int(size[1])  # type: ignore[index]


def _as(matrix: np.ndarray, like: Tensor) -> Tensor:
    return torch.tensor(matrix, dtype=like.dtype, device=like.device)


class BicubicDownsample(LinearOperator):
    """``A x = imresize(x, 1/scale, 'bicubic')`` of MATLAB, with its exact adjoint.

    ``forward`` maps ``(B, C, H, W)`` to ``(B, C, ceil(H/scale), ceil(W/scale))``. The adjoint
    needs the high-resolution size: ``in_size`` when given (then ``forward`` accepts only
    that size), otherwise ``(h * scale, w * scale)``. Give ``in_size`` when ``H`` or ``W`` is
    not a multiple of ``scale``.

    Example:
        >>> import torch
        >>> op = BicubicDownsample(3, in_size=(10, 12))
        >>> y = op(torch.rand(2, 3, 10, 12))
        >>> y.shape, op.adjoint(y).shape
        (torch.Size([2, 3, 4, 4]), torch.Size([2, 3, 10, 12]))
    """

    def __init__(self, scale: int, in_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.scale = _check_scale(scale)
        self.in_size = None if in_size is None else _check_size(in_size, "in_size", self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, in_size={self.in_size}"

    def _out_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return -(-size[0] // self.scale), -(-size[1] // self.scale)

    def _matrices(self, size: tuple[int, int], like: Tensor) -> tuple[Tensor, Tensor]:
        wh = imresize_matrix(size[0], 1 / self.scale, self._out_size(size)[0])
        ww = imresize_matrix(size[1], 1 / self.scale, self._out_size(size)[1])
        return _as(wh, like), _as(ww, like)  # (h, H), (w, W)

    def forward(self, x: Tensor) -> Tensor:
        check_image(x, min_size=(self.scale, self.scale))
        size = (x.shape[-2], x.shape[-1])
        if self.in_size is not None and size != self.in_size:
            raise ValueError(
                f"x is {size[0]}x{size[1]} pixels; this operator was built for in_size "
                f"{self.in_size[0]}x{self.in_size[1]}"
            )
        wh, ww = self._matrices(size, x)
        return wh @ x @ ww.T  # (h, H) @ (B, C, H, W) @ (W, w) -> (B, C, h, w)

    def adjoint(self, y: Tensor) -> Tensor:
        check_image(y, "y")
        if self.in_size is None:
            size = (y.shape[-2] * self.scale, y.shape[-1] * self.scale)
        else:
            size = self.in_size
            expected = self._out_size(size)
            if (y.shape[-2], y.shape[-1]) != expected:
                raise ValueError(
                    f"y is {y.shape[-2]}x{y.shape[-1]} pixels; for in_size {size[0]}x{size[1]} "
                    f"and scale {self.scale} it must be {expected[0]}x{expected[1]}"
                )
        wh, ww = self._matrices(size, y)
        return wh.T @ y @ ww  # (H, h) @ (B, C, h, w) @ (w, W) -> (B, C, H, W)


def bicubic_upsample(y: Tensor, scale: int, out_size: tuple[int, int] | None = None) -> Tensor:
    """MATLAB ``imresize(y, scale, 'bicubic')``: ``(B, C, h, w)`` to ``(B, C, h*s, w*s)``.

    ``out_size`` crops or extends the output (e.g. to a high-resolution size that is not a
    multiple of ``scale``) with the same pixel grid: output pixel ``x`` still sits at
    ``u = x/s + 0.5 (1 - 1/s)``. This differs from MATLAB ``imresize(y, out_size)``, which
    would use ``scale = out/in`` per axis; the two agree when ``out_size == (h*s, w*s)``.

    Example:
        >>> import torch
        >>> bicubic_upsample(torch.ones(1, 1, 3, 4), 2)[0, 0, :2]
        tensor([[1., 1., 1., 1., 1., 1., 1., 1.],
                [1., 1., 1., 1., 1., 1., 1., 1.]])
    """
    s = _check_scale(scale)
    check_image(y, "y")
    h, w = y.shape[-2], y.shape[-1]
    out_h, out_w = (h * s, w * s) if out_size is None else _check_size(out_size, "out_size")
    wh = _as(imresize_matrix(h, float(s), out_h), y)  # (H, h)
    ww = _as(imresize_matrix(w, float(s), out_w), y)  # (W, w)
    return wh @ y @ ww.T  # (H, h) @ (B, C, h, w) @ (w, W) -> (B, C, H, W)
