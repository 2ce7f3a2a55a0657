"""Random projections of the flattened image: ``y = A vec(x)`` with ``m = ratio * n`` rows.

Three ensembles, as in the RIM paper's compressed-sensing experiment:

- ``gaussian``: entries ``N(0, 1/m)``,
- ``bernoulli``: entries ``+-1/sqrt(m)`` with equal probability,
- ``fourier``: ``m`` random rows of the orthonormal 2-D DFT of each channel; the output is real,
  the real parts of the ``m`` coefficients followed by their imaginary parts (``2m`` values).

With these scalings ``E ||A x||^2 = ||x||^2`` for the matrix ensembles, and the Fourier rows
are orthonormal. For a real image the DFT is conjugate-symmetric, so two drawn rows may carry
the same information; the rows are drawn uniformly, as the paper describes. So at one ``ratio``
r the Fourier ensemble measures more than the matrix ones: ``2m`` real values, of which about
``(2r - r^2) n`` are independent (about 520 of 1024 at r = 0.3, against the matrix ensembles' 307);
it still restores images worse, since uniformly drawn frequencies seldom include the low ones
where an image's energy lies (the mean is measured in a fraction r of the draws).

The paper (its section 4.4) draws unscaled entries, ``N(0, 1)`` and ``+-1``, and rows of the
unnormalised DFT: ``c A`` with ``c = sqrt(m)`` (``sqrt(n)`` for the DFT). Dividing its ``y`` by
``c`` gives this operator's problem with the noise ``sigma / c``, so its figure's ``sigma = 1``
(images in [0, 1]) is rimkit's ``sigma = 255 / sqrt(m)`` on the 0-255 scale for the matrix
ensembles (about 25 at m/n 0.1 and 11 at 0.5 of a 32x32 patch) and ``255 / 32 ~ 8`` for the
Fourier one.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> op = random_projection("bernoulli", (1, 8, 8), ratio=0.5, generator=g)
    >>> op(torch.rand(1, 1, 8, 8)).shape
    torch.Size([1, 32])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rimkit.operators.base import LinearOperator, check_image

PROJECTION_KINDS = ("gaussian", "bernoulli", "fourier")


def _check_image_shape(image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    whole = all(float(d).is_integer() for d in image_shape)
    if len(image_shape) != 3 or not whole or any(int(d) < 1 for d in image_shape):
        raise ValueError(f"image_shape must be (C, H, W) of whole sizes >= 1, got {image_shape}")
    return tuple(int(d) for d in image_shape)  # type: ignore[return-value]


def _check_measurement(y: Tensor, width: int) -> None:
    if not isinstance(y, Tensor) or y.ndim != 2 or y.shape[1] != width:
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y)
        raise ValueError(f"y must have shape (B, {width}), got {shape}")


class MatrixProjection(LinearOperator):
    """``y = M vec(x)`` for a matrix ``(m, n)`` shared by the batch or ``(B, m, n)`` per sample.

    Example:
        >>> import torch
        >>> op = MatrixProjection(torch.eye(4), (1, 2, 2))
        >>> op.adjoint(op(torch.ones(1, 1, 2, 2))).shape
        torch.Size([1, 1, 2, 2])
    """

    def __init__(self, matrix: Tensor, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.image_shape = _check_image_shape(image_shape)
        n = math.prod(self.image_shape)
        if matrix.ndim not in (2, 3) or matrix.shape[-1] != n:
            raise ValueError(
                f"matrix must be (m, {n}) or (B, m, {n}) for images of shape {self.image_shape}, "
                f"got {tuple(matrix.shape)}"
            )
        self.register_buffer("matrix", matrix, persistent=False)

    def _batched(self, batch: int, dtype: torch.dtype) -> Tensor:
        m = self.matrix.to(dtype)
        m = m if m.ndim == 3 else m.unsqueeze(0)
        if m.shape[0] not in (1, batch):
            raise ValueError(f"the operator holds {m.shape[0]} matrices for a batch of {batch}")
        return m.expand(batch, -1, -1)  # (B, m, n)

    def forward(self, x: Tensor) -> Tensor:
        check_image(x)
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"x has shape {tuple(x.shape[1:])}, the operator {self.image_shape}")
        flat = x.reshape(x.shape[0], -1, 1)  # (B, n, 1)
        return torch.bmm(self._batched(x.shape[0], x.dtype), flat).squeeze(-1)  # (B, m)

    def adjoint(self, y: Tensor) -> Tensor:
        _check_measurement(y, self.matrix.shape[-2])
        mat = self._batched(y.shape[0], y.dtype)
        flat = torch.bmm(y.unsqueeze(1), mat)  # (B, 1, n): row vector times M, no transpose copy
        return flat.reshape(y.shape[0], *self.image_shape)


class FourierProjection(LinearOperator):
    """``m`` rows of the orthonormal 2-D DFT; output ``[Re F x[rows], Im F x[rows]]``.

    ``rows`` holds indices into the flattened ``(C, H, W)`` array of per-channel DFT
    coefficients, shape ``(m,)`` shared or ``(B, m)`` per sample.

    Example:
        >>> import torch
        >>> op = FourierProjection(torch.tensor([0]), (1, 2, 2))
        >>> op(torch.ones(1, 1, 2, 2)).tolist()   # the DC coefficient, 4 / sqrt(4)
        [[2.0, 0.0]]
    """

    def __init__(self, rows: Tensor, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.image_shape = _check_image_shape(image_shape)
        n = math.prod(self.image_shape)
        rows = torch.as_tensor(rows, dtype=torch.long)
        if rows.ndim not in (1, 2) or rows.numel() == 0:
            raise ValueError(f"rows must be (m,) or (B, m), got {tuple(rows.shape)}")
        if rows.min() < 0 or rows.max() >= n:
            raise ValueError(f"row indices must lie in [0, {n}) for images {self.image_shape}")
        self.register_buffer("rows", rows if rows.ndim == 2 else rows[None], persistent=False)

    def _rows(self, batch: int) -> Tensor:
        if self.rows.shape[0] not in (1, batch):
            raise ValueError(
                f"the operator holds {self.rows.shape[0]} row sets for {batch} samples"
            )
        return self.rows.expand(batch, -1)  # (B, m)

    def forward(self, x: Tensor) -> Tensor:
        check_image(x)
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"x has shape {tuple(x.shape[1:])}, the operator {self.image_shape}")
        coeffs = torch.fft.fft2(x, norm="ortho").reshape(x.shape[0], -1)  # (B, n) complex
        picked = torch.gather(coeffs, 1, self._rows(x.shape[0]))  # (B, m)
        return torch.cat([picked.real, picked.imag], dim=1)  # (B, 2m)

    def adjoint(self, y: Tensor) -> Tensor:
        m = self.rows.shape[1]
        _check_measurement(y, 2 * m)
        b = y.shape[0]
        picked = torch.complex(y[:, :m], y[:, m:])  # (B, m)
        coeffs = torch.zeros(b, math.prod(self.image_shape), dtype=picked.dtype, device=y.device)
        coeffs = coeffs.scatter_add(1, self._rows(b), picked)
        image = torch.fft.ifft2(coeffs.reshape(b, *self.image_shape), norm="ortho")
        return image.real


def rms_row_norm(operator: MatrixProjection | FourierProjection, batch: int = 1) -> Tensor:
    """Root-mean-square norm of the rows of ``A``, one per sample: ``sqrt(||A||_F^2 / len(y))``.

    ``sqrt(n / m)`` for the matrix ensembles (exactly for Bernoulli); ``1 / sqrt 2`` for the
    Fourier rows, each complex row of norm 1 giving a real and an imaginary measurement. Noise of
    std ``sigma * rms_row_norm`` on every measurement is noise ``sigma`` in image units along each
    measured direction, as in denoising.

    Example:
        >>> import torch
        >>> op = random_projection("bernoulli", (1, 8, 8), ratio=0.25, batch=2)
        >>> rms_row_norm(op, 2).tolist()   # sqrt(64 / 16)
        [2.0, 2.0]
    """
    if isinstance(operator, MatrixProjection):
        matrix = operator._batched(batch, operator.matrix.dtype)  # (B, m, n)
        return matrix.pow(2).mean(dim=1).sum(dim=1).sqrt()
    if isinstance(operator, FourierProjection):
        return torch.full((batch,), 0.5**0.5)
    raise TypeError(f"rms_row_norm takes a random projection, got {type(operator).__name__}")


def random_projection(
    kind: str,
    image_shape: tuple[int, int, int],
    ratio: float,
    batch: int = 1,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> LinearOperator:
    """Draw a random projection of ``kind`` (gaussian, bernoulli, fourier) for ``batch`` samples.

    ``m = max(1, round(ratio * n))`` rows for ``n = C * H * W`` and ``0 < ratio <= 1``; with
    ``batch > 1`` each sample gets its own draw. Deterministic for a seeded ``generator``. On a
    ``device`` other than the CPU the draw is made there, by a generator of that device seeded
    from ``generator`` (a batch of matrices is up to ``B x n x n`` numbers: drawn on one CPU
    thread it would keep a GPU waiting); on the CPU it is the same draw as without ``device``.
    """
    if kind not in PROJECTION_KINDS:
        raise ValueError(f"unknown projection {kind!r}; known: {', '.join(PROJECTION_KINDS)}")
    if not 0.0 < float(ratio) <= 1.0:
        raise ValueError(f"ratio must lie in (0, 1], got {ratio}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    image_shape = _check_image_shape(image_shape)
    n = math.prod(image_shape)
    m = max(1, round(float(ratio) * n))
    generator, device = _generator_on(generator, device)
    if kind == "fourier":
        rows = torch.rand(batch, n, generator=generator, device=device).argsort(dim=1)[:, :m]
        return FourierProjection(rows, image_shape)
    if kind == "gaussian":
        draw = torch.randn(batch, m, n, generator=generator, dtype=dtype, device=device)
        matrix = draw / math.sqrt(m)
    else:
        bits = torch.randint(0, 2, (batch, m, n), generator=generator, device=device)
        matrix = (bits.to(dtype) * 2 - 1) / math.sqrt(m)
    return MatrixProjection(matrix, image_shape)


def _generator_on(
    generator: torch.Generator | None, device: torch.device | str | None
) -> tuple[torch.Generator | None, torch.device | None]:
    """The generator and device a draw is made with: ``generator`` on the CPU; elsewhere a
    generator of ``device`` seeded by one number drawn from ``generator`` (if any), or the CPU
    where that device has no generator of its own."""
    device = torch.device(device) if device is not None else None
    if device is None or device.type == "cpu":
        return generator, device
    seed = int(torch.randint(2**62, (1,), generator=generator))
    try:
        return torch.Generator(device=device).manual_seed(seed), device
    except RuntimeError:  # no generator there: draw on the CPU (the caller moves the operator)
        return torch.Generator().manual_seed(seed), None
