"""An orthonormal multi-level 2-D wavelet transform in torch, batched, with periodic boundary.

With the analysis filters ``h_lo, h_hi`` of an orthogonal wavelet (``pywt.Wavelet(name).dec_lo``,
``.dec_hi``, length ``F``), one level along an axis of even length ``N`` is the circular
convolution followed by down-sampling by two,

    a[k] = sum_j h_lo[j] x[(2k + F/2 - j) mod N]       d[k] = sum_j h_hi[j] x[(2k + F/2 - j) mod N]

for ``k = 0 .. N/2 - 1``: exactly PyWavelets' ``mode='periodization'``. The map
``x -> (a, d)`` is orthogonal, so the inverse is the adjoint (the transposed convolution folded
back onto the circle). In 2-D each level transforms the rows, then the columns, of the current
approximation, and the coefficients are packed in place into one ``(B, C, H, W)`` tensor with
PyWavelets' ``coeffs_to_array`` layout: the coarsest approximation top-left and, per level,
``cV`` (``'ad'``) top-right, ``cH`` (``'da'``) bottom-left and ``cD`` (``'dd'``) bottom-right.

``H`` and ``W`` must be multiples of ``2^levels`` (then the transform is orthonormal); for other
sizes see :func:`padded_size`.

Example:
    >>> import torch
    >>> W = WaveletTransform("db2", levels=2)
    >>> x = torch.rand(2, 3, 16, 24, dtype=torch.float64)
    >>> c = W(x)
    >>> torch.allclose(W.adjoint(c), x), torch.allclose(c.norm(), x.norm())
    (True, True)
"""

from __future__ import annotations

import math

import pywt
import torch
from torch import Tensor
from torch.nn import functional as F

from rimkit.operators.base import LinearOperator, check_image

__all__ = ["WaveletTransform", "padded_size"]


def padded_size(size: tuple[int, int], levels: int) -> tuple[int, int]:
    """The smallest ``(H', W') >= size`` with both sides multiples of ``2^levels``.

    Example:
        >>> padded_size((17, 32), 3)
        (24, 32)
    """
    m = 2**levels
    return -(-size[0] // m) * m, -(-size[1] // m) * m


class WaveletTransform(LinearOperator):
    """Orthonormal ``levels``-level 2-D DWT with periodic boundary; ``adjoint`` is the inverse.

    ``wavelet`` is any orthogonal PyWavelets name (``'haar'``/``'db1'``, ``'db2'`` .. ``'db38'``,
    ``'sym2'`` .., ``'coif1'`` ..). ``forward`` maps ``(B, C, H, W)`` to the packed coefficients
    of the same shape, ``adjoint`` back; :meth:`wavedec2` gives PyWavelets' list layout.

    Example:
        >>> import torch
        >>> W = WaveletTransform("haar", levels=1)
        >>> W(torch.ones(1, 1, 2, 2, dtype=torch.float64))[0, 0].round(decimals=12).tolist()
        [[2.0, 0.0], [0.0, 0.0]]
    """

    def __init__(self, wavelet: str = "db4", levels: int = 3) -> None:
        super().__init__()
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels must be an int >= 1, got {levels!r}")
        try:
            w = pywt.Wavelet(wavelet)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"unknown wavelet {wavelet!r}; accepted: orthogonal PyWavelets names such as "
                "'haar', 'db1'..'db38', 'sym2'..'sym20', 'coif1'..'coif17'"
            ) from err
        if not w.orthogonal:
            raise ValueError(
                f"wavelet {wavelet!r} is not orthogonal; accepted: 'haar', 'dbN', 'symN', 'coifN'"
            )
        self.wavelet = wavelet
        self.levels = levels
        taps = torch.tensor([w.dec_lo[::-1], w.dec_hi[::-1]], dtype=torch.float64)  # (2, F)
        self.register_buffer("filters", taps[:, None], persistent=False)  # (2, 1, F)

    def extra_repr(self) -> str:
        return f"wavelet={self.wavelet!r}, levels={self.levels}"

    def _check(self, x: Tensor, name: str) -> None:
        check_image(x, name)
        h, w = x.shape[-2:]
        m = 2**self.levels
        if h % m or w % m:
            ph, pw = padded_size((h, w), self.levels)
            raise ValueError(
                f"{name} is {h}x{w} pixels; a {self.levels}-level transform needs sides that are "
                f"multiples of {m}: pad to {ph}x{pw} (see padded_size) or use fewer levels"
            )

    def _taps(self, x: Tensor) -> Tensor:
        return self.filters.to(dtype=x.dtype, device=x.device)  # (2, 1, F)

    def _offset(self) -> int:
        """Left padding ``P = F - 1 - F/2`` of the periodic extension."""
        f = self.filters.shape[-1]
        return f - 1 - f // 2

    def _analysis_1d(self, x: Tensor) -> Tensor:
        """One level along the last axis: ``(..., N)`` to ``(..., N)`` as ``[a | d]``."""
        n = x.shape[-1]
        f = self.filters.shape[-1]
        index = (torch.arange(n + f - 2, device=x.device) - self._offset()) % n
        ext = x[..., index].reshape(-1, 1, n + f - 2)  # (M, 1, N + F - 2) periodic extension
        out = F.conv1d(ext, self._taps(x), stride=2)  # (M, 2, N/2)
        return out.reshape(x.shape)  # (..., N): lows then highs

    def _synthesis_1d(self, c: Tensor) -> Tensor:
        """The adjoint (and inverse) of :meth:`_analysis_1d`."""
        n = c.shape[-1]
        f = self.filters.shape[-1]
        pairs = c.reshape(-1, 2, n // 2)  # (M, 2, N/2)
        ext = F.conv_transpose1d(pairs, self._taps(c), stride=2)[:, 0]  # (M, N + F - 2)
        folds = -(-(n + f - 2) // n)
        ext = F.pad(ext, (0, folds * n - ext.shape[-1]))  # (M, folds * N)
        circle = ext.reshape(-1, folds, n).sum(dim=1)  # (M, N): sum of all periodic images
        return torch.roll(circle, -self._offset(), dims=-1).reshape(c.shape)

    def _analysis_2d(self, x: Tensor) -> Tensor:
        rows = self._analysis_1d(x)  # along W
        return self._analysis_1d(rows.transpose(-1, -2)).transpose(-1, -2)  # along H

    def _synthesis_2d(self, c: Tensor) -> Tensor:
        cols = self._synthesis_1d(c.transpose(-1, -2)).transpose(-1, -2)
        return self._synthesis_1d(cols)

    def _pack(self, x: Tensor, levels: int) -> Tensor:
        if levels == 0:
            return x
        y = self._analysis_2d(x)  # (..., h, w) four quadrants
        h2, w2 = x.shape[-2] // 2, x.shape[-1] // 2
        top = torch.cat([self._pack(y[..., :h2, :w2], levels - 1), y[..., :h2, w2:]], dim=-1)
        return torch.cat([top, y[..., h2:, :]], dim=-2)

    def _unpack(self, c: Tensor, levels: int) -> Tensor:
        if levels == 0:
            return c
        h2, w2 = c.shape[-2] // 2, c.shape[-1] // 2
        top = torch.cat([self._unpack(c[..., :h2, :w2], levels - 1), c[..., :h2, w2:]], dim=-1)
        return self._synthesis_2d(torch.cat([top, c[..., h2:, :]], dim=-2))

    def forward(self, x: Tensor) -> Tensor:
        """Packed coefficients ``W x``, shape ``(B, C, H, W)``."""
        self._check(x, "x")
        return self._pack(x, self.levels)

    def adjoint(self, c: Tensor) -> Tensor:
        """``W^T c = W^{-1} c``: the image of packed coefficients."""
        self._check(c, "coefficients")
        return self._unpack(c, self.levels)

    def normal(self, x: Tensor) -> Tensor:
        return x

    def detail_mask(self, size: tuple[int, int], device: torch.device | None = None) -> Tensor:
        """Boolean ``(H, W)``: ``True`` on detail coefficients, ``False`` on the approximation."""
        h, w = size
        m = 2**self.levels
        mask = torch.ones(h, w, dtype=torch.bool, device=device)
        mask[: h // m, : w // m] = False
        return mask

    def wavedec2(self, x: Tensor) -> list[Tensor | tuple[Tensor, Tensor, Tensor]]:
        """Coefficients in PyWavelets' ``wavedec2`` order: ``[cA_n, (cH_n, cV_n, cD_n), ...,
        (cH_1, cV_1, cD_1)]``, each ``(B, C, h, w)``."""
        c = self(x)
        h, w = c.shape[-2:]
        out: list[Tensor | tuple[Tensor, Tensor, Tensor]] = []
        for level in range(self.levels, 0, -1):
            h2, w2 = h >> level, w >> level
            details = (
                c[..., h2 : 2 * h2, :w2],  # cH: high-pass along H ('da')
                c[..., :h2, w2 : 2 * w2],  # cV: high-pass along W ('ad')
                c[..., h2 : 2 * h2, w2 : 2 * w2],  # cD
            )
            if not out:
                out.append(c[..., :h2, :w2])
            out.append(details)
        return out


def max_levels(size: tuple[int, int], levels: int) -> int:
    """``levels`` limited to ``floor(log2(min(H, W)))`` and at least 1."""
    return max(1, min(levels, math.floor(math.log2(max(1, min(size))))))
