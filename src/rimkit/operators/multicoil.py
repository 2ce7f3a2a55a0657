"""Multi-coil Cartesian MRI (SENSE): ``y_c = M F (S_c x)`` for coils ``c = 1 .. N``.

Each receive coil sees the image weighted by its complex sensitivity map ``S_c``; ``F`` is the
orthonormal centred 2-D FFT and ``M`` the sampling mask, shared by the coils. The adjoint
combines the coils: ``A^H y = sum_c conj(S_c) F^H (M y_c)``. With maps normalised to
``sum_c |S_c|^2 = 1`` (as :func:`coil_sensitivities` gives them) a fully sampled ``A^H A`` is the
identity wherever the coils see signal, so a model trained on single-coil MRI runs on multi-coil
k-space by its likelihood gradient alone.

:func:`coil_sensitivities` estimates the maps from the fully sampled centre of k-space (the
calibration region, :func:`calibration_size`): each coil's low-resolution image (the centre
under a Hann taper) divided by their root sum of squares. The maps then carry the image's
low-resolution phase, so the combined image is close to real and non-negative, the kind of
image the magnitude-trained MRI RIMs know. :func:`~rimkit.operators.espirit_maps` estimates
ESPIRiT maps from the same region (what ``rimkit reconstruct`` uses by default); maps from
elsewhere (BART, SigPy) can be given instead.

Example:
    >>> import torch
    >>> from rimkit.operators import fft2c
    >>> x = torch.rand(1, 1, 16, 16, dtype=torch.complex64)
    >>> true_maps = torch.rand(1, 4, 16, 16, dtype=torch.complex64)
    >>> kspace = fft2c(true_maps * x)                         # (1, 4, 16, 16), fully sampled
    >>> maps = coil_sensitivities(kspace)
    >>> op = MultiCoilMRI(torch.ones(1, 1, 16, 16), maps)
    >>> op(x).shape, op.adjoint(kspace).shape
    (torch.Size([1, 4, 16, 16]), torch.Size([1, 1, 16, 16]))
"""

from __future__ import annotations

import torch
from torch import Tensor

from rimkit.operators.base import LinearOperator, check_image
from rimkit.operators.mri import check_mask, fft2c, ifft2c

MIN_CALIBRATION = 4
"""The smallest calibration region (pixels a side) that :func:`coil_sensitivities` accepts."""


def _check_kspace(kspace: Tensor, name: str = "kspace") -> Tensor:
    check_image(kspace, name, allow_complex=True)
    if not kspace.is_complex():
        raise ValueError(f"{name} must be complex (B, coils, H, W), got {kspace.dtype}")
    return kspace


class MultiCoilMRI(LinearOperator):
    """Multi-coil Cartesian MRI: ``A x = M fft2c(S x)`` per coil, ``A^H y = sum_c conj(S_c)
    ifft2c(M y_c)``.

    ``mask`` is 0/1 ``(B or 1, 1, H, W)``; ``maps`` complex ``(B or 1, coils, H, W)``. Images are
    ``(B, 1, H, W)`` (real ones are taken as complex), k-space ``(B, coils, H, W)``. Wrap it in
    :class:`~rimkit.operators.ComplexAsChannels` or :class:`~rimkit.operators.RealImages` for
    networks, as :class:`~rimkit.operators.CartesianMRI`.

    Example:
        >>> import torch
        >>> maps = torch.full((1, 2, 4, 4), 0.5**0.5, dtype=torch.complex128)   # sum |S|^2 = 1
        >>> op = MultiCoilMRI(torch.ones(1, 1, 4, 4), maps)
        >>> x = torch.rand(1, 1, 4, 4, dtype=torch.complex128)
        >>> torch.allclose(op.adjoint(op(x)), x)   # fully sampled: A^H A = I
        True
    """

    def __init__(self, mask: Tensor, maps: Tensor) -> None:
        super().__init__()
        mask = check_mask(mask)
        maps = _check_kspace(torch.as_tensor(maps), "maps")
        if tuple(maps.shape[-2:]) != tuple(mask.shape[-2:]):
            raise ValueError(
                f"the maps are {maps.shape[-2]}x{maps.shape[-1]} but the mask is "
                f"{mask.shape[-2]}x{mask.shape[-1]}"
            )
        if not bool(torch.isfinite(torch.view_as_real(maps)).all()):
            raise ValueError("the coil sensitivity maps contain NaN or Inf values")
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("maps", maps, persistent=False)

    @property
    def coils(self) -> int:
        """The number of receive coils."""
        return int(self.maps.shape[1])

    def _check(self, t: Tensor, name: str, channels: int) -> Tensor:
        check_image(t, name, channels=channels, allow_complex=True)
        if tuple(t.shape[-2:]) != tuple(self.mask.shape[-2:]):
            raise ValueError(
                f"{name} is {t.shape[-2]}x{t.shape[-1]} but the mask is "
                f"{self.mask.shape[-2]}x{self.mask.shape[-1]}"
            )
        for held, what in ((self.mask, "masks"), (self.maps, "sets of maps")):
            if held.shape[0] not in (1, t.shape[0]):
                raise ValueError(f"the operator holds {held.shape[0]} {what} for {t.shape[0]}")
        return t if t.is_complex() else torch.complex(t, torch.zeros_like(t))

    def forward(self, x: Tensor) -> Tensor:
        x = self._check(x, "x", 1)  # (B, 1, H, W)
        maps = self.maps.to(x.dtype)
        return fft2c(maps * x) * self.mask.to(x.real.dtype)  # (B, coils, H, W)

    def adjoint(self, y: Tensor) -> Tensor:
        y = self._check(y, "y", self.coils)  # (B, coils, H, W)
        coil_images = ifft2c(y * self.mask.to(y.real.dtype))
        return (self.maps.to(y.dtype).conj() * coil_images).sum(dim=1, keepdim=True)


def synthetic_coil_maps(
    coils: int,
    shape: tuple[int, int],
    batch: int = 1,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.complex64,
) -> Tensor:
    """Smooth simulated receive-coil sensitivities ``(batch, coils, H, W)``, ``sum_c |S_c|^2 = 1``.

    On the field of view ``[-1, 1]^2``, coil ``c`` of a sample sits at angle ``theta + 2 pi c /
    coils`` (``theta`` uniform per sample) and distance ``U(1.1, 1.8)`` from the centre; its
    magnitude falls off as ``exp(-d^2 / (2 w^2))``, ``w ~ U(0.7, 1.4)``, and it carries a phase
    ``U(0, 2 pi)`` plus a linear ramp of up to ``pi / 2`` across the field (a birdcage-like
    array; for simulating multi-coil data and training, not a model of a particular coil).

    Example:
        >>> maps = synthetic_coil_maps(4, (16, 16), generator=torch.Generator().manual_seed(0))
        >>> maps.shape, bool(torch.allclose(maps.abs().square().sum(1), torch.ones(1, 16, 16)))
        (torch.Size([1, 4, 16, 16]), True)
    """
    if isinstance(coils, bool) or not isinstance(coils, int) or coils < 1:
        raise ValueError(f"coils must be an int >= 1, got {coils!r}")
    h, w = (int(s) for s in shape)
    if h < 1 or w < 1:
        raise ValueError(f"shape must be two sizes >= 1 (H, W), got {tuple(shape)}")
    real = torch.float64

    def uniform(low: float, high: float, *size: int) -> Tensor:
        return low + (high - low) * torch.rand(*size, generator=generator, dtype=real)

    yy, xx = torch.meshgrid(
        torch.linspace(-1, 1, h, dtype=real), torch.linspace(-1, 1, w, dtype=real), indexing="ij"
    )
    theta = uniform(0, 2 * torch.pi, batch, 1) + 2 * torch.pi * torch.arange(coils) / coils
    radius, width = uniform(1.1, 1.8, batch, coils), uniform(0.7, 1.4, batch, coils)
    cy, cx = (
        (radius * torch.sin(theta))[..., None, None],
        (radius * torch.cos(theta))[..., None, None],
    )
    distance2 = (yy - cy) ** 2 + (xx - cx) ** 2  # (batch, coils, H, W)
    ramp = uniform(-torch.pi / 4, torch.pi / 4, 2, batch, coils)[..., None, None]
    phase = uniform(0, 2 * torch.pi, batch, coils)[..., None, None] + ramp[0] * yy + ramp[1] * xx
    maps = torch.exp(-distance2 / (2 * width[..., None, None] ** 2)) * torch.exp(1j * phase)
    maps = maps / maps.abs().square().sum(dim=1, keepdim=True).sqrt()
    return maps.to(dtype)


def sampled_mask(kspace: Tensor) -> Tensor:
    """The 0/1 mask ``(B, 1, H, W)`` of the points sampled in ``kspace`` ``(B, coils, H, W)``:
    those nonzero in any coil (unsampled points of acquired k-space are stored as zeros).

    Example:
        >>> k = torch.zeros(1, 2, 3, 3, dtype=torch.complex64)
        >>> k[0, 1, 1, 2] = 1j
        >>> sampled_mask(k)[0, 0].tolist()
        [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    """
    kspace = _check_kspace(kspace)
    return (kspace != 0).any(dim=1, keepdim=True).float()


def calibration_size(mask: Tensor) -> int:
    """The side of the largest square about the k-space centre ``(H // 2, W // 2)`` that every
    mask in ``mask`` ``(B, 1, H, W)`` samples fully (0 when the centre itself is missing).

    Example:
        >>> mask = torch.zeros(1, 1, 32, 32)
        >>> mask[..., 10:22, 8:24] = 1                     # 12 rows x 16 columns about (16, 16)
        >>> calibration_size(mask)
        12
    """
    mask = check_mask(mask)
    sampled = mask.bool().all(dim=0)[0]  # (H, W): sampled in every mask
    h, w = sampled.shape
    cy, cx = h // 2, w // 2
    side = 0
    while side < min(h, w):
        grown = side + 1
        top, left = cy - grown // 2, cx - grown // 2
        if top < 0 or left < 0 or top + grown > h or left + grown > w:
            break
        if not bool(sampled[top : top + grown, left : left + grown].all()):
            break
        side = grown
    return side


def coil_sensitivities(
    kspace: Tensor, mask: Tensor | None = None, calibration: int | None = None
) -> Tensor:
    """Coil sensitivity maps ``(B, coils, H, W)`` from the calibration region of ``kspace``.

    ``S_c = I_c / sqrt(sum_c |I_c|^2)`` with ``I_c = F^H (w * k_c)``: ``w`` a separable Hann
    taper over the centred ``calibration`` x ``calibration`` square (default: the largest one that
    ``mask`` samples fully, :func:`calibration_size`; ``mask`` defaults to the nonzero points,
    :func:`sampled_mask`). The maps have ``sum_c |S_c|^2 = 1`` wherever the coils see signal.

    Example:
        >>> from rimkit.operators import fft2c
        >>> coils = torch.tensor([1.0, 2.0j]).view(1, 2, 1, 1) * torch.ones(1, 1, 8, 8)
        >>> maps = coil_sensitivities(fft2c(coils), torch.ones(1, 1, 8, 8))  # flat image, 2 coils
        >>> [round(abs(complex(v)), 3) for v in maps[0, :, 4, 4]]
        [0.447, 0.894]
    """
    kspace = _check_kspace(kspace)
    mask = sampled_mask(kspace) if mask is None else check_mask(mask)
    low = low_resolution_images(kspace, calibration_side(kspace, mask, calibration))
    rss = low.abs().square().sum(dim=1, keepdim=True).sqrt()  # (B, 1, H, W)
    floor = rss.flatten(1).amax(dim=1).view(-1, 1, 1, 1) * 1e-6
    return low / torch.maximum(rss, floor).clamp_min(torch.finfo(rss.dtype).tiny)


def calibration_side(
    kspace: Tensor, mask: Tensor, calibration: int | None = None, limit: int | None = None
) -> int:
    """The side of the calibration square to read from ``kspace``: ``calibration`` if given,
    else the largest square ``mask`` samples fully (:func:`calibration_size`), at most ``limit``.
    Refused when below :data:`MIN_CALIBRATION` or larger than the k-space."""
    side = calibration_size(mask) if calibration is None else int(calibration)
    if calibration is None and limit is not None:
        side = min(side, limit)
    h, w = kspace.shape[-2:]
    if side < MIN_CALIBRATION:
        raise ValueError(
            f"the k-space has no fully sampled centre of at least {MIN_CALIBRATION}x"
            f"{MIN_CALIBRATION} points (calibration region: {side}) to estimate the coil "
            "sensitivities from; give the maps (e.g. ESPIRiT maps from BART or SigPy)"
        )
    if side > min(h, w):
        raise ValueError(f"calibration {side} exceeds the k-space size {h}x{w}")
    return side


def low_resolution_images(kspace: Tensor, side: int) -> Tensor:
    """Each coil's low-resolution image ``F^H (w * k_c)`` ``(B, coils, H, W)``: ``w`` a separable
    Hann taper over the centred ``side`` x ``side`` square of ``kspace`` ``(B, coils, H, W)``."""
    h, w = kspace.shape[-2:]
    taper = torch.hann_window(side + 2, periodic=False, dtype=torch.float64)[1:-1]
    window = torch.zeros(h, w, dtype=torch.float64)
    top, left = h // 2 - side // 2, w // 2 - side // 2
    window[top : top + side, left : left + side] = torch.outer(taper, taper)
    return ifft2c(kspace * window.to(kspace.real.dtype))
