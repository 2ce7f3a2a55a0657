"""MRI k-space restored by :func:`rimkit.pipeline.restore`: single- or multi-coil Cartesian
k-space with its sampling mask, coil maps estimated from the fully sampled centre (ESPIRiT, or
each coil's low-resolution image) or given, a RIM or a baseline run on the complex image, the
magnitude returned in the k-space's units.

Example:
    >>> sorted(COIL_MAP_METHODS), NO_MAPS
    (['espirit', 'lowres'], 'none')
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from rimkit.bart import refuse_coils_last
from rimkit.inputs import mask_tensor
from rimkit.operators import (
    MIN_CALIBRATION,
    CartesianMRI,
    ComplexAsChannels,
    MultiCoilMRI,
    RealImages,
    calibration_side,
    calibration_size,
    coil_sensitivities,
    espirit_maps,
    magnitude,
    sampled_mask,
    with_image_phase,
)
from rimkit.pipeline import Restored
from rimkit.reconstruct import RIMReconstructor
from rimkit.solvers.selection import baseline_run

COIL_MAP_METHODS = {"espirit": espirit_maps, "lowres": coil_sensitivities}
"""How :func:`rimkit.pipeline.restore` estimates multi-coil maps from the fully sampled k-space
centre when it is not given them: ESPIRiT (the default; :func:`rimkit.operators.espirit_maps`) or
each coil's low-resolution image over their root sum of squares
(:func:`rimkit.operators.coil_sensitivities`). Single-coil k-space is demodulated by its
low-resolution phase (``lowres``) unless ``maps`` is :data:`NO_MAPS`."""


NO_MAPS = "none"
"""``maps`` for single-coil k-space taken as it is: no phase demodulation."""


def _coil_map_method(maps: np.ndarray | str | None) -> str | None:
    """The :data:`COIL_MAP_METHODS` name ``maps`` asks for, or :data:`NO_MAPS` (``None``:
    given maps)."""
    if maps is None:
        return "espirit"
    if isinstance(maps, str):
        if maps not in (*COIL_MAP_METHODS, NO_MAPS):
            known = ", ".join((*COIL_MAP_METHODS, NO_MAPS))
            raise ValueError(f"unknown coil map method {maps!r}; known: {known}, or give maps")
        return maps
    return None


def _kspace_and_mask(
    image: np.ndarray, mask: np.ndarray | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """K-space ``(1, coils, H, W)`` (complex64) of an MRI measurement, checked, and its
    sampling mask: ``mask``, else the nonzero points."""
    kspace = np.asarray(image)
    if not np.iscomplexobj(kspace):
        raise ValueError(
            "MRI input is complex k-space, got a real image (rimkit degrade makes k-space)"
        )
    if kspace.ndim == 2:
        kspace = kspace[None]
    if kspace.ndim != 3:
        raise ValueError(f"MRI k-space must be (H, W) or (coils, H, W), got shape {kspace.shape}")
    refuse_coils_last(kspace.shape, "MRI k-space of shape")
    k = torch.from_numpy(kspace.astype(np.complex64))[None]  # (1, coils, H, W)
    binary = sampled_mask(k) if mask is None else mask_tensor(mask, kspace.shape[-2:], True)
    _warn_if_uncentred(k, binary)
    return k, binary


def _warn_if_uncentred(k: torch.Tensor, mask: torch.Tensor) -> None:
    """A note when k-space ``(1, coils, H, W)`` peaks sharply far from its centre: the DC at
    (0, 0) (``np.fft.fft2`` without ``fftshift``) rather than at ``(H // 2, W // 2)``, sampled
    or not (an uncentred mask keeps the corners, where such k-space's low frequencies lie)."""
    h, w = k.shape[-2:]
    energy = (k.abs().square() * mask).sum(dim=(0, 1))  # (H, W), the sampled points
    row, col = divmod(int(energy.argmax()), w)
    sharp = float(energy.max()) > 100 * float(energy[energy > 0].median())  # a DC, not noise
    if sharp and (abs(row - h // 2) > h / 4 or abs(col - w // 2) > w / 4):
        warnings.warn(
            f"the k-space peaks at ({row}, {col}), far from its centre ({h // 2}, {w // 2}): "
            "rimkit takes centred k-space, fftshift(fft2(ifftshift(x), norm='ortho')) as "
            "fastMRI and BART store it; for the DC at (0, 0) give np.fft.fftshift(k, axes=(-2, "
            "-1))",
            UserWarning,
            stacklevel=6,  # restore's caller
        )


def estimate_coil_maps(
    image: np.ndarray, mask: np.ndarray | None = None, maps: np.ndarray | str | None = None
) -> np.ndarray | str | None:
    """The coil maps ``restore`` would estimate for multi-coil k-space ``image`` with the
    method ``maps`` names (default ESPIRiT), as a complex ``(coils, H, W)`` array; ``maps``
    itself for single-coil k-space or given maps. ``rimkit compare`` estimates them once for
    all its methods.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> kspace = rng.normal(size=(2, 24, 24)) + 1j * rng.normal(size=(2, 24, 24))
        >>> estimate_coil_maps(kspace, maps="lowres").shape
        (2, 24, 24)
    """
    method = _coil_map_method(maps)
    if method in (None, NO_MAPS) or np.ndim(image) == 2 or len(image) == 1:  # given, one coil
        return maps
    k, binary = _kspace_and_mask(image, mask)
    return COIL_MAP_METHODS[method](k, binary)[0].numpy()


def _given_maps(maps: np.ndarray, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Coil maps given for k-space ``k`` ``(1, coils, H, W)``, as ``(1, coils, H, W)``: one
    per coil of its size, noted when ``sum_c |S_c|^2`` is not about 1 where they see signal,
    and turned to the image's low-resolution phase when ``mask`` samples the centre (maps
    from BART or SigPy keep a phase convention of their own; the models see real images)."""
    sens = torch.from_numpy(np.asarray(maps, dtype=np.complex64))
    sens = sens.reshape(1, -1, *sens.shape[-2:])  # (1, coils, H, W); (H, W): one coil
    if tuple(sens.shape[1:]) != tuple(k.shape[1:]):
        raise ValueError(
            f"the maps are {tuple(sens.shape[1:])} (coils, H, W) but the k-space is "
            f"{tuple(k.shape[1:])}; give one map per coil of the same size"
        )
    energy = sens.abs().square().sum(dim=1)  # (1, H, W)
    typical = float(energy[energy > 0].median()) if bool((energy > 0).any()) else 0.0
    if abs(typical - 1) > 0.1:
        warnings.warn(
            f"the coil maps have sum_c |S_c|^2 = {typical:.3g} where they see signal (the "
            "median), not 1 as ESPIRiT's: the image comes back scaled by about its inverse and "
            "the models see another scale; normalise them, S / sqrt(sum_c |S_c|^2)",
            UserWarning,
            stacklevel=5,
        )
    if calibration_size(mask) < MIN_CALIBRATION:
        return sens
    return with_image_phase(sens, k, calibration_side(k, mask, limit=24))


def restore_mri(image, model, sigma255, mask, steps, maps, baseline=None) -> Restored:
    if model is not None and model.channels not in (1, 2):
        raise ValueError(
            f"MRI needs a model for complex images (2 channels: real, imaginary) or a gray one "
            f"(the image taken as real); this one has {model.channels}"
        )
    k, binary = _kspace_and_mask(image, mask)
    shape = tuple(k.shape[-2:])
    method = _coil_map_method(maps)
    seen = np.ones(shape)  # the pixels some coil sees; the others come back 0
    if method == NO_MAPS and k.shape[1] > 1:
        raise ValueError(f"maps {NO_MAPS!r} is for single-coil k-space, not {k.shape[1]} coils")
    if (
        method
        and k.shape[1] == 1
        and (method == NO_MAPS or calibration_size(binary) < MIN_CALIBRATION)
    ):
        operator = CartesianMRI(binary)  # no phase read (none asked, or no centre to read)
    else:
        if method:  # coil maps; for one coil, the image's low-resolution phase
            estimate = COIL_MAP_METHODS["lowres" if k.shape[1] == 1 else method]
            sens = estimate(k, binary)
        else:
            sens = _given_maps(maps, k, binary)
        operator = MultiCoilMRI(binary, sens)
        seen = (sens != 0).any(dim=1)[0].numpy()  # (H, W): ESPIRiT's crop
    # a 2-channel model (and a baseline) sees the complex image; a gray model takes it as real:
    # Re(A^H (y - A x))
    complex_image = model is None or model.channels == 2
    operator = ComplexAsChannels(operator) if complex_image else RealImages(operator)
    scale = float(operator.op.adjoint(k).abs().max())  # the zero-filled image's maximum
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError("the k-space is zero wherever the mask samples it; nothing to restore")
    # MRI models learn images whose maximum is 1: scale the data there and the result back
    sigma = sigma255 / 255.0 / scale
    if model is None:
        estimates = baseline_run(baseline, operator, sigma, shape)(k / scale)
    else:
        estimates = RIMReconstructor(model, steps)(k / scale, operator, sigma).estimates
    frames = [scale * magnitude(x)[0, 0].cpu().double().numpy() * seen for x in estimates]
    return Restored(frames[-1], frames, sigma255)
