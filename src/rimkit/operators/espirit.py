"""ESPIRiT coil sensitivity maps (Uecker et al., "ESPIRiT - an eigenvalue approach to
autocalibrating parallel MRI", MRM 2014), the maps BART ``ecalib`` and SigPy ``EspiritCalib`` give.

The fully sampled centre of k-space (``c x c`` points a side) holds every ``k x k`` patch of all
coils as a row of the calibration matrix ``C`` (``(c - k + 1)^2 x coils k^2``). Its leading right
singular vectors (singular values above ``threshold`` times the largest) span the signal
subspace: the kernels ``v_j``. Zero-padded to the image and taken to the image domain,
``g_j = F^H v_j``, they give at every pixel ``r`` the ``coils x coils`` matrix

    G(r) = (H W / k^2) sum_j g_j(r) g_j(r)^H,

whose eigenvector of eigenvalue 1 is the coils' sensitivity ``S(r)``. Where the largest
eigenvalue is below ``crop`` no coil sees signal and the maps are 0. An eigenvector's phase is
arbitrary at every pixel; :func:`espirit_maps` fixes it by the low-resolution image's phase, as
:func:`~rimkit.operators.coil_sensitivities` does, so the combined image ``sum_c conj(S_c) I_c``
is nearly real and non-negative (what the magnitude-trained MRI RIMs know).

Example:
    >>> import torch
    >>> from rimkit.operators import fft2c, synthetic_coil_maps
    >>> true_maps = synthetic_coil_maps(4, (32, 32), generator=torch.Generator().manual_seed(0))
    >>> kspace = fft2c(true_maps * torch.ones(1, 1, 32, 32))      # a flat image, 4 coils
    >>> maps = espirit_maps(kspace, calibration=16)
    >>> agree = (maps.conj() * true_maps).sum(1).abs()            # |<S, S_true>| per pixel
    >>> bool(agree[0, 8:24, 8:24].min() > 0.99)
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

from rimkit.operators.mri import check_mask
from rimkit.operators.multicoil import (
    _check_kspace,
    calibration_side,
    low_resolution_images,
    sampled_mask,
)


def espirit_maps(
    kspace: Tensor,
    mask: Tensor | None = None,
    calibration: int | None = None,
    kernel: int | None = None,
    threshold: float = 0.02,
    crop: float = 0.95,
) -> Tensor:
    """ESPIRiT coil sensitivity maps ``(B, coils, H, W)`` from k-space ``(B, coils, H, W)``.

    ``calibration`` is the side of the centred square read (default: the largest one ``mask``
    samples fully, at most 24 as in BART; ``mask`` defaults to the nonzero points), ``kernel``
    the patch side ``k`` (default 6, or a third of a smaller calibration side: a kernel over
    half the side leaves too few patches to span the signal subspace and every eigenvalue low),
    ``threshold`` the singular-value cut relative to the largest and ``crop`` the eigenvalue
    below which a pixel's maps are 0 (SigPy's defaults). The maps have ``sum_c |S_c|^2 = 1``
    where the coils see signal and 0 elsewhere.

    Example:
        >>> from rimkit.operators import fft2c, synthetic_coil_maps
        >>> true_maps = synthetic_coil_maps(3, (24, 24), generator=torch.Generator().manual_seed(1))
        >>> maps = espirit_maps(fft2c(true_maps * torch.ones(1, 1, 24, 24)), calibration=12)
        >>> round(float(maps[0, :, 12, 12].abs().square().sum()), 4)
        1.0
    """
    kspace = _check_kspace(kspace)
    mask = sampled_mask(kspace) if mask is None else check_mask(mask)
    side = calibration_side(kspace, mask, calibration, limit=24)
    kernel = min(6, max(2, side // 3)) if kernel is None else kernel
    if isinstance(kernel, bool) or not isinstance(kernel, int) or not 2 <= kernel <= side - 1:
        raise ValueError(
            f"kernel must be an int from 2 to {side - 1} (below the {side}-point calibration "
            f"region), got {kernel!r}"
        )
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if not 0 <= crop < 1:
        raise ValueError(f"crop must be in [0, 1), got {crop}")
    h, w = kspace.shape[-2:]
    top, left = h // 2 - side // 2, w // 2 - side // 2
    maps = []
    for sample in kspace:  # (coils, H, W)
        centre = sample[:, top : top + side, left : left + side].to(torch.complex128)
        kernels = _signal_kernels(centre, kernel, threshold)  # (n, coils, k, k)
        gram = _image_domain_gram(kernels, (h, w))  # (H, W, coils, coils)
        values, vectors = torch.linalg.eigh(gram)
        leading = vectors[..., -1].permute(2, 0, 1)  # (coils, H, W)
        maps.append(leading * (values[..., -1] >= crop))
    maps = torch.stack(maps)  # (B, coils, H, W)
    if not bool((maps != 0).flatten(1).any(dim=1).all()):
        raise ValueError(
            f"ESPIRiT found no pixel whose leading eigenvalue reaches crop {crop}: the "
            f"{side}-point calibration region has too few {kernel}x{kernel} patches; use a "
            "smaller kernel or crop, or the low-resolution maps (coil_sensitivities)"
        )
    return with_image_phase(maps, kspace, side)


def with_image_phase(maps: Tensor, kspace: Tensor, side: int) -> Tensor:
    """``maps`` ``(B, coils, H, W)`` times the phase of the image they combine from the
    low-resolution images of ``kspace``'s centred ``side`` square, ``sum_c conj(S_c) x_c``: the
    image seen through them is then close to real and non-negative, whatever phase the maps
    came with (an eigenvector's arbitrary one, or BART's or SigPy's normalisation).

    Example:
        >>> from rimkit.operators import fft2c
        >>> maps = torch.full((1, 2, 8, 8), 0.5**0.5, dtype=torch.complex128)
        >>> turned = with_image_phase(maps * 1j, fft2c(maps * torch.ones(8, 8)), 4)
        >>> torch.allclose(turned, maps)
        True
    """
    low = low_resolution_images(kspace, side).to(maps.dtype)  # (B, coils, H, W)
    combined = (maps.conj() * low).sum(dim=1, keepdim=True)  # (B, 1, H, W)
    phase = torch.where(combined.abs() > 0, combined / combined.abs(), torch.ones_like(combined))
    return (maps * phase).to(kspace.dtype)


def _signal_kernels(centre: Tensor, kernel: int, threshold: float) -> Tensor:
    """The right singular vectors of the calibration matrix of ``centre`` ``(coils, c, c)``
    with singular values above ``threshold`` times the largest, as ``(n, coils, k, k)``."""
    coils = centre.shape[0]
    patches = centre.unfold(1, kernel, 1).unfold(2, kernel, 1)  # (coils, P, P, k, k)
    matrix = patches.permute(1, 2, 0, 3, 4).reshape(-1, coils * kernel * kernel)
    _, singular, vh = torch.linalg.svd(matrix, full_matrices=False)
    if not bool(singular[0] > 0):
        raise ValueError("the calibration region of the k-space is zero; no maps to estimate")
    kept = vh[singular > threshold * singular[0]]
    return kept.reshape(-1, coils, kernel, kernel)


def _image_domain_gram(kernels: Tensor, shape: tuple[int, int]) -> Tensor:
    """``G(r) = (H W / k^2) sum_j g_j(r) g_j(r)^H`` with ``g_j = F^H`` (the kernel zero-padded to
    ``shape``, centred), ``(H, W, coils, coils)`` in single precision (the eigenvectors need no
    more, and large scans' matrices take half the memory).

    With ``L`` the ``k`` columns of the centred inverse DFT that a kernel covers, ``g_j(r) =
    sum_p v_j[p] L(r, p)`` and ``L(r, p) conj(L(r, q))`` depends on ``r`` and ``p - q`` only, so
    ``G(r) = (H W / k^2) sum_d A[d] E(r, d)``: ``A[d]`` sums the projector ``V^T conj(V)`` of
    the kernels over the tap pairs ``p - q = d`` (``(2k - 1)^2`` offsets), and ``E(r, d)`` is
    separable in rows and columns, two small matrix products per coil pair rather than one
    image per kernel."""
    n, coils, k, _ = kernels.shape
    h, w = shape
    flat = kernels.reshape(n, coils * k * k)
    projector = (flat.T @ flat.conj()).reshape(coils, k, k, coils, k, k)  # P[c, p; c', q]
    offsets = 2 * k - 1
    autocorrelation = torch.zeros(coils, coils, offsets, offsets, dtype=flat.dtype)
    for dy in range(-(k - 1), k):
        ys = slice(max(0, -dy), k - max(0, dy))  # the q rows with q + dy inside the kernel
        for dx in range(-(k - 1), k):
            xs = slice(max(0, -dx), k - max(0, dx))
            pairs = projector[:, _shift(ys, dy), _shift(xs, dx), :, ys, xs]  # (c, qy, qx, c', ...)
            diagonal = pairs.diagonal(dim1=1, dim2=4).diagonal(dim1=1, dim2=3)
            autocorrelation[:, :, dy + k - 1, dx + k - 1] = diagonal.sum(dim=(-1, -2))
    rows = _offset_phases(h, k, kernels.dtype)  # (H, 2k - 1)
    cols = _offset_phases(w, k, kernels.dtype)  # (W, 2k - 1)
    a = autocorrelation.to(torch.complex64).reshape(coils * coils, offsets, offsets)
    gram = rows.to(torch.complex64) @ a @ cols.to(torch.complex64).T  # (coils^2, H, W)
    gram = gram.reshape(coils, coils, h, w).permute(2, 3, 0, 1).contiguous()
    return gram * (h * w / k**2)


def _shift(index: slice, by: int) -> slice:
    return slice(index.start + by, index.stop + by)


def _offset_phases(size: int, k: int, dtype: torch.dtype) -> Tensor:
    """``E[r, d] = L[r, q + d] conj(L[r, q])`` for the ``k`` inverse DFT columns ``L`` a
    kernel covers, ``(size, 2k - 1)`` for ``d = -(k - 1) .. k - 1`` (any valid ``q``)."""
    basis = _inverse_dft_columns(size, size // 2 - k // 2, k, dtype)  # (size, k)
    phases = [basis[:, max(0, -d) + d] * basis[:, max(0, -d)].conj() for d in range(1 - k, k)]
    return torch.stack(phases, dim=1)


def _inverse_dft_columns(size: int, start: int, count: int, dtype: torch.dtype) -> Tensor:
    """Columns ``start .. start + count`` of the centred orthonormal inverse DFT matrix of
    ``size`` points (the 1-D :func:`~rimkit.operators.ifft2c`), ``(size, count)``."""
    basis = torch.zeros(size, count, dtype=dtype)
    basis[start + torch.arange(count), torch.arange(count)] = 1
    shifted = torch.fft.ifftshift(basis, dim=0)
    return torch.fft.fftshift(torch.fft.ifft(shifted, dim=0, norm="ortho"), dim=0)


__all__ = ["espirit_maps"]
