"""Blur: convolution of each channel with a kernel, ``y = k * x``, computed with the FFT.

Three boundary conditions:

- ``circular``: the image wraps around (periodic); ``A`` is diagonal in the Fourier domain,
  ``A = F^H diag(K) F``, and ``A^H = F^H diag(conj K) F``.
- ``zero``: pixels outside the image are zero; the output has the size of the input. It is
  computed as a circular convolution of the zero-padded image, cropped back.
- ``valid``: the measurement holds only the pixels whose whole kernel footprint lies inside
  ``x``, ``(H - kh + 1, W - kw + 1)``: a camera's blurred photo, whose scene goes on past its
  edges. ``A = C F^H diag(K) F`` with ``C`` the crop, ``A^H = F^H diag(conj K) F C^T`` (``C^T``
  pads with zeros). Reconstructing ``x`` then means reconstructing about ``kh / 2`` (``kw / 2``)
  pixels beyond each edge of ``y`` too (:func:`valid_margins`), with no assumption on them.

The kernel's centre is its pixel ``(kh // 2, kw // 2)``.

Example:
    >>> import torch
    >>> op = Blur(gaussian_kernel(1.6), boundary="circular")
    >>> x = torch.ones(1, 1, 16, 16)
    >>> torch.allclose(op(x), x)    # a normalised kernel keeps a constant image
    True
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from rimkit.operators.base import LinearOperator, check_image

BOUNDARIES = ("circular", "zero", "valid")


def gaussian_kernel(std: float, size: int | None = None) -> Tensor:
    """Isotropic Gaussian kernel of standard deviation ``std`` pixels, summing to one.

    ``size`` defaults to the odd integer ``2 * ceil(3 * std) + 1``.

    Example:
        >>> gaussian_kernel(1.0).shape
        torch.Size([7, 7])
    """
    if not (math.isfinite(std) and std > 0):
        raise ValueError(f"the Gaussian kernel's std must be finite and > 0, got {std}")
    if size is None and 3 * std > MAX_KERNEL_SIZE:
        raise ValueError(
            f"a Gaussian of std {std:g} px needs a kernel wider than rimkit makes (at most "
            f"{MAX_KERNEL_SIZE} px): give a smaller std"
        )
    size = _check_size(2 * math.ceil(3 * std) + 1 if size is None else size)
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * std**2))
    k = g[:, None] * g[None, :]
    return (k / k.sum()).float()


def box_kernel(size: int) -> Tensor:
    """Uniform ``size x size`` kernel summing to one. An even ``size`` has no centre pixel:
    its blur shifts the image by half a pixel (:func:`checked_kernel` notes it).

    Example:
        >>> round(box_kernel(3)[0, 0].item(), 6)
        0.111111
    """
    size = _check_size(size)
    return torch.full((size, size), 1.0 / size**2)


def motion_kernel(length: float, angle: float = 0.0, size: int | None = None) -> Tensor:
    """Linear motion blur: a line segment of ``length`` pixels at ``angle`` degrees.

    The segment, centred on the kernel's centre, is rasterised by sampling it densely and
    splatting each sample bilinearly; the kernel sums to one.

    Example:
        >>> k = motion_kernel(5, angle=0.0)
        >>> k.shape, k.sum(dim=1).argmax().item()   # horizontal: all weight in the middle row
        (torch.Size([5, 5]), 2)
    """
    if not (math.isfinite(length) and length >= 1):
        raise ValueError(f"the motion length must be finite and >= 1 pixel, got {length}")
    if not math.isfinite(angle):
        raise ValueError(f"the motion angle must be finite, got {angle}")
    if size is None and length > MAX_KERNEL_SIZE:
        raise ValueError(
            f"a motion of {length:g} px needs a kernel wider than rimkit makes (at most "
            f"{MAX_KERNEL_SIZE} px): give a shorter one"
        )
    size = _check_size(2 * math.ceil((length - 1) / 2) + 1 if size is None else size)
    c = (size - 1) / 2
    t = torch.linspace(-(length - 1) / 2, (length - 1) / 2, max(2, int(8 * length)))
    theta = math.radians(angle)
    cols = c + t * math.cos(theta)
    rows = c - t * math.sin(theta)
    k = torch.zeros(size, size, dtype=torch.float64)
    r0, c0 = rows.floor().long(), cols.floor().long()
    fr, fc = (rows - r0).double(), (cols - c0).double()
    corners = [
        (0, 0, (1 - fr) * (1 - fc)),
        (0, 1, (1 - fr) * fc),
        (1, 0, fr * (1 - fc)),
        (1, 1, fr * fc),
    ]
    for dr, dc, w in corners:
        rr, cc = r0 + dr, c0 + dc
        ok = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
        k.index_put_((rr[ok], cc[ok]), w[ok], accumulate=True)
    return (k / k.sum()).float()


KERNEL_SPECS = ("gaussian:STD", "motion:LENGTH:ANGLE", "box:SIZE")
"""The forms :func:`kernel_from_spec` reads (pixels; the motion angle in degrees)."""

DEFAULT_KERNEL = "gaussian:1.6"
"""The blur of ``rimkit degrade / reconstruct / eval --task blur`` without ``--kernel``: IRCNN's
Gaussian of std 1.6 px."""


def kernel_from_spec(spec: str) -> Tensor:
    """A kernel named by a short text: ``gaussian:1.6`` (std in pixels), ``motion:15:45``
    (length in pixels, angle in degrees) or ``box:5`` (side in pixels).

    Example:
        >>> kernel_from_spec("gaussian:1.6").shape, kernel_from_spec("motion:9:30").shape
        (torch.Size([11, 11]), torch.Size([9, 9]))
        >>> kernel_from_spec("disk:3")
        Traceback (most recent call last):
        ...
        ValueError: unknown kernel 'disk:3'; give gaussian:STD, motion:LENGTH:ANGLE or box:SIZE
    """
    family, *fields = str(spec).strip().split(":")
    arity = {"gaussian": 1, "motion": 2, "box": 1}.get(family)
    if arity is None or len(fields) != arity:
        known = f"{', '.join(KERNEL_SPECS[:-1])} or {KERNEL_SPECS[-1]}"
        raise ValueError(f"unknown kernel {spec!r}; give {known}")
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise ValueError(f"kernel {spec!r}: {':'.join(fields)!r} is not a number") from None
    if family == "gaussian":
        return gaussian_kernel(values[0])
    if family == "motion":
        return motion_kernel(values[0], values[1])
    return box_kernel(values[0])


def checked_kernel(kernel: Any, name: str = "the kernel") -> Tensor:
    """A blur's point-spread function given as an array, checked and normalised (float64):
    real, 2-D, finite and non-negative with a positive sum, divided by that sum (with a note
    where it is not 1); a note too where its centre of mass lies over half a pixel from its
    centre pixel ``(kh // 2, kw // 2)``, where :class:`Blur` puts it. ``name`` names it in
    messages.

    Example:
        >>> checked_kernel([[0.0, 1.0, 0.0]]).tolist()
        [[0.0, 1.0, 0.0]]
        >>> checked_kernel([[1.0, -1.0]])
        Traceback (most recent call last):
        ...
        ValueError: the kernel must be non-negative with a positive sum (a blur's ...
    """
    if isinstance(kernel, Tensor):
        kernel = kernel.detach().cpu()
        kernel = kernel.double() if kernel.is_floating_point() else kernel  # bfloat16 too
    values = np.asarray(kernel)
    if values.ndim != 2 or values.dtype.kind not in "biuf":
        hint = ""
        if values.ndim == 1:
            hint = "; a 1-D profile k blurs along rows as k[None, :], both ways as np.outer(k, k)"
        raise ValueError(
            f"{name} must be a real 2-D array, got {values.dtype} {values.shape}{hint}"
        )
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{name} holds NaN or Inf values")
    _check_size(max(values.shape))
    values = np.where(np.abs(values) <= 1e-9 * np.abs(values).max(), 0.0, values)  # round-off
    if values.min() < 0 or values.sum() <= 0:
        raise ValueError(
            f"{name} must be non-negative with a positive sum (a blur's point-spread function)"
        )
    total = float(values.sum())
    if abs(total - 1) > 1e-6:
        warnings.warn(
            f"{name} sums to {total:.6g}; it is normalised to sum 1", UserWarning, stacklevel=2
        )
    values = values / total
    rows, cols = np.indices(values.shape)
    mass = (float((rows * values).sum()), float((cols * values).sum()))
    centre = (values.shape[0] // 2, values.shape[1] // 2)
    offset = (mass[0] - centre[0], mass[1] - centre[1])
    if max(abs(offset[0]), abs(offset[1])) > 0.5 - 1e-6:  # half a pixel: an even-sized PSF
        warnings.warn(
            f"{name} has its centre of mass at pixel ({mass[0]:.1f}, {mass[1]:.1f}), "
            f"{offset[0]:+.1f} rows and {offset[1]:+.1f} columns from its centre pixel {centre}: "
            "the result shifts by as much; centre the PSF there (np.roll) if that is not meant",
            UserWarning,
            stacklevel=2,
        )
    return torch.from_numpy(values)  # float64


def blur_kernel(kernel: Any = None) -> Tensor:
    """The kernel of a blur task: :data:`DEFAULT_KERNEL` for ``None``, :func:`kernel_from_spec`
    of a name (``"gaussian:2"``, as ``--kernel`` takes), the kernel in a file of that path
    (:func:`rimkit.io.read_kernel`), else :func:`checked_kernel` of the array given.

    Example:
        >>> blur_kernel("box:3").sum().item()
        1.0
    """
    if isinstance(kernel, str | os.PathLike):
        from rimkit.io import FILE_SUFFIXES, file_suffix, names_file, read_kernel

        if names_file(kernel):
            return checked_kernel(read_kernel(kernel), f"the kernel in {str(kernel)!r}")
        if not isinstance(kernel, str) or file_suffix(kernel) in FILE_SUFFIXES:
            raise ValueError(f"kernel file {str(kernel)!r} does not exist")
    if kernel is None or isinstance(kernel, str):
        name = DEFAULT_KERNEL if kernel is None else kernel
        return checked_kernel(kernel_from_spec(name), f"the kernel {name}")
    return checked_kernel(kernel)


def valid_margins(kernel_shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)``: the pixels of ``x`` past each edge of a ``valid`` blur's
    measurement, for a ``(kh, kw)`` kernel centred at ``(kh // 2, kw // 2)``.

    Example:
        >>> valid_margins((9, 4))
        (4, 4, 1, 2)
    """
    kh, kw = kernel_shape  # y[i] = sum_j k[j] x[i + kh // 2 - j]: x from i - (kh - 1 - kh // 2)
    return (kh - 1 - kh // 2, kh // 2, kw - 1 - kw // 2, kw // 2)


MAX_KERNEL_SIZE = 4097
"""The widest kernel made (px), so that a mistyped size (``box:1e9``) is refused before it
takes the memory."""


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not math.isfinite(size) or int(size) != size or size < 1:
        raise ValueError(f"kernel size must be a positive integer, got {size}")
    if size > MAX_KERNEL_SIZE:
        raise ValueError(
            f"a kernel of {int(size)} px is larger than rimkit makes (at most {MAX_KERNEL_SIZE} "
            "px): give a smaller one"
        )
    return int(size)


class Blur(LinearOperator):
    """Convolve every channel with ``kernel`` (``(kh, kw)``, or ``(B, kh, kw)`` per sample).

    Example:
        >>> import torch
        >>> op = Blur(box_kernel(3), boundary="zero")
        >>> op(torch.ones(1, 1, 4, 4))[0, 0, 0, 0].item()   # a corner sees 4 of 9 pixels
        0.4444444477558136
    """

    def __init__(self, kernel: Tensor, boundary: str = "circular") -> None:
        super().__init__()
        kernel = torch.as_tensor(kernel)
        if kernel.ndim not in (2, 3) or kernel.numel() == 0:
            raise ValueError(f"kernel must be (kh, kw) or (B, kh, kw), got {tuple(kernel.shape)}")
        if not torch.isfinite(kernel).all():
            raise ValueError("kernel contains NaN or Inf")
        if boundary not in BOUNDARIES:
            raise ValueError(f"unknown boundary {boundary!r}; known: {', '.join(BOUNDARIES)}")
        self.boundary = boundary
        self.register_buffer("kernel", kernel if kernel.ndim == 3 else kernel[None], False)

    def margins(self) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)``: how many pixels ``x`` extends past ``y`` on each side
        (all zero unless the boundary is ``valid``)."""
        if self.boundary != "valid":
            return (0, 0, 0, 0)
        return valid_margins(tuple(self.kernel.shape[-2:]))

    def _pad(self) -> tuple[int, int]:
        kh, kw = self.kernel.shape[-2:]
        return (kh // 2, kw // 2) if self.boundary == "zero" else (0, 0)

    def _transfer(self, x: Tensor) -> Tensor:
        """The kernel's FFT on the grid of ``x``: ``(B or 1, 1, H, W)``, centre at (0, 0)."""
        kb, kh, kw = self.kernel.shape
        h, w = x.shape[-2:]
        if kb not in (1, x.shape[0]):
            raise ValueError(f"the operator holds {kb} kernels for a batch of {x.shape[0]}")
        if kh > h or kw > w:
            raise ValueError(f"the {kh}x{kw} kernel is larger than the {h}x{w} image")
        k = self.kernel.to(x.real.dtype)
        padded = F.pad(k, (0, w - kw, 0, h - kh))  # (kb, H, W)
        padded = torch.roll(padded, shifts=(-(kh // 2), -(kw // 2)), dims=(-2, -1))
        return torch.fft.fft2(padded)[:, None]  # (kb, 1, H, W)

    def _convolve(self, x: Tensor, conjugate: bool) -> Tensor:
        otf = self._transfer(x)
        otf = otf.conj() if conjugate else otf
        out = torch.fft.ifft2(torch.fft.fft2(x) * otf)
        return out if x.is_complex() else out.real

    def _blur(self, x: Tensor, name: str, conjugate: bool) -> Tensor:
        check_image(x, name, allow_complex=True)
        ph, pw = self._pad()
        if ph == pw == 0:
            return self._convolve(x, conjugate)
        padded = F.pad(x, (pw, pw, ph, ph))  # (B, C, H + 2ph, W + 2pw)
        return self._convolve(padded, conjugate)[..., ph : ph + x.shape[-2], pw : pw + x.shape[-1]]

    def forward(self, x: Tensor) -> Tensor:
        if self.boundary != "valid":
            return self._blur(x, "x", conjugate=False)
        check_image(x, "x", allow_complex=True)
        top, bottom, left, right = self.margins()
        h, w = x.shape[-2:]
        return self._convolve(x, conjugate=False)[..., top : h - bottom, left : w - right]

    def adjoint(self, y: Tensor) -> Tensor:
        if self.boundary != "valid":
            return self._blur(y, "y", conjugate=True)
        check_image(y, "y", allow_complex=True)
        top, bottom, left, right = self.margins()
        return self._convolve(F.pad(y, (left, right, top, bottom)), conjugate=True)
