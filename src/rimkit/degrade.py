"""Degrade one image with a named task: the library side of ``rimkit degrade``.

``undersample`` does the MRI part for k-space measured on a scanner.

Example:
    >>> import numpy as np
    >>> result = degrade(np.full((12, 12), 0.5), "sr", scale=3)
    >>> result.measurement.shape
    (4, 4)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from rimkit.inputs import check_array_type, check_image, check_mask_values, mask_tensor
from rimkit.io import from_tensor, to_tensor
from rimkit.noise import GaussianNoise, UnitScaleWarning, simulate, warn_if_unit_scale
from rimkit.operators import (
    MRI_MASKS,
    BicubicDownsample,
    Blur,
    CartesianMRI,
    Identity,
    Inpainting,
    LensingSetup,
    LinearOperator,
    MultiCoilMRI,
    blur_kernel,
    random_mask,
    synthetic_coil_maps,
)

TASKS = ("denoise", "blur", "sr", "inpaint", "mri", "lensing")


@dataclass
class Degraded:
    """A measurement ``y``, the operator that made it and, for inpaint and mri, the mask
    (multi-coil mri: also the coil sensitivity maps, ``(coils, H, W)``). ``operator`` is
    ``None`` for measured k-space (:func:`undersample`), whose coil maps are not known."""

    measurement: np.ndarray
    operator: LinearOperator | None
    mask: np.ndarray | None = None
    maps: np.ndarray | None = None


SIGMA_MAX = 255.0
"""The largest noise level (0-255 scale) rimkit simulates and restores."""


def degrade(
    image: np.ndarray,
    task: str,
    *,
    sigma: float | None = None,
    scale: int = 2,
    fraction: float = 0.5,
    acceleration: float = 4.0,
    mask: str | np.ndarray | None = None,
    kernel: np.ndarray | str | None = None,
    boundary: str = "circular",
    quantize: bool = False,
    seed: int = 0,
    lensing: LensingSetup | None = None,
    coils: int = 1,
    units: str = "image",
) -> Degraded:
    """Apply the forward model of ``task`` and Gaussian noise to an ``(H, W[, C])`` image.

    ``sigma`` is on the 0-255 scale (required for ``denoise``, 0 otherwise by default).
    ``units="data"`` takes an image of any scale (counts, an MRI slice) with ``sigma`` in its
    units, as :func:`rimkit.pipeline.restore` does: it is degraded as the image divided by its
    largest absolute value and the measurement multiplied back.
    ``sr`` crops the image to a multiple of ``scale`` first, as the SR protocol does; the
    result equals MATLAB ``imresize(im2double(hr), 1/scale, 'bicubic')`` (an 8-bit output is
    that rounded once; MATLAB's ``imresize`` of a ``uint8`` image also rounds between its row
    and column passes, which moves about one LR pixel in ten by one level). ``inpaint`` keeps
    the pixels of ``mask`` (``(H, W)``, white = observed; default: a random ``1 - fraction``
    of them).
    ``mri`` returns complex centred k-space of a gray (or complex) image sampled by ``mask``:
    a pattern of :data:`~rimkit.operators.MRI_MASKS` drawn at ``acceleration`` (default
    ``"columns"``, variable-density columns), or a sampling mask ``(H, W)`` or ``(W,)``; with
    ``coils > 1`` multi-coil k-space ``(coils, H, W)`` through smooth simulated sensitivities
    (:func:`rimkit.operators.synthetic_coil_maps`), returned as ``maps``.
    ``lensing`` sees the image as a source behind ``lensing.lens`` and returns the lensed
    image of the same pixel count.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    if units == "data":
        options = {
            "scale": scale, "fraction": fraction, "acceleration": acceleration, "mask": mask,
            "kernel": kernel, "boundary": boundary, "seed": seed, "lensing": lensing,
            "coils": coils,
        }  # fmt: skip
        return _degrade_data(image, task, sigma, quantize, options)
    if units != "image":
        raise ValueError(f"units must be 'image' or 'data', got {units!r}")
    check_image(image, task, "degrade")
    if sigma is None:
        if task == "denoise":
            raise ValueError("denoise needs a noise level: give --sigma (0-255 scale), e.g. 25")
        sigma = 0.0
    if not (is_real_number(sigma) and math.isfinite(sigma) and 0 <= sigma <= SIGMA_MAX):
        raise ValueError(f"sigma must lie in [0, {SIGMA_MAX:g}] on the 0-255 scale, got {sigma!r}")
    warn_if_unit_scale(float(sigma), "degrade")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise ValueError(
            f"seed is a whole number in [0, 2^63) (the noise and masks drawn), got {seed!r}"
        )
    seed = int(seed)  # numpy integers too
    mask = _check_mask(mask, task, np.shape(image)[:2])
    if isinstance(coils, bool) or not isinstance(coils, int) or coils < 1:
        raise ValueError(f"coils must be a whole number >= 1, got {coils!r}")
    if coils > 1 and task != "mri":
        raise ValueError(f"coils apply to mri only, not {task}")
    if np.iscomplexobj(image) and task != "mri":
        raise ValueError(f"the image is complex; {task} takes a real image (complex: --task mri)")
    if task == "sr":
        scale = _check_scale(scale)
        image = crop_noting(image, scale)
        if min(image.shape[:2]) < 8:
            warnings.warn(
                f"the image is {image.shape[0]}x{image.shape[1]}: its {scale}x smaller measurement "
                "is too small for rimkit to up-sample back (the image's shorter side must reach "
                "8 pixels)",
                UserWarning,
                stacklevel=2,
            )
    x = to_tensor(image, torch.float64)
    generator = torch.Generator().manual_seed(seed)
    if task == "lensing":
        operator, sampled = lensing_operator(lensing, tuple(x.shape[-2:])).double(), None
    else:
        args = (scale, fraction, acceleration, mask, kernel, boundary, coils, generator)
        operator, sampled = _operator(task, x, *args)
    if quantize and x.is_complex():
        raise ValueError("8-bit quantisation applies to real measurements, not MRI k-space")
    noise = GaussianNoise(sigma / 255.0, quantize=quantize)
    y = simulate(x, operator, noise, generator)
    if task == "mri":  # points not sampled are not measured: 0, noise or not
        y = y * sampled.to(y.real.dtype)  # (1, 1, H, W) over (1, coils, H, W)
    mask_array = None if sampled is None else sampled[0, 0].numpy()
    if isinstance(operator, MultiCoilMRI):  # coils first, as multi-coil k-space is stored
        return Degraded(y[0].numpy(), operator, mask_array, operator.maps[0].numpy())
    measurement = from_tensor(y)
    if np.ndim(image) == 3 and np.shape(image)[2] == 1:  # (H, W, 1) in, (H, W, 1) out
        measurement = measurement.reshape(*measurement.shape[:2], 1)
    return Degraded(measurement, operator, mask_array)


def undersample(
    kspace: np.ndarray, acceleration: float = 4.0, seed: int = 0, mask: str = "columns"
) -> Degraded:
    """Under-sample measured, fully sampled k-space ``(coils, H, W)`` (or ``(H, W)``) by the
    ``mask`` pattern at ``acceleration``, as ``degrade`` samples an image's: the measurement
    keeps the sampled points and is 0 elsewhere. The k-space keeps its own noise.

    Example:
        >>> k = np.ones((2, 8, 16), dtype=complex)
        >>> result = undersample(k, 4.0)
        >>> result.measurement.shape, int(result.mask[0].sum())
        ((2, 8, 16), 4)
    """
    k = np.asarray(kspace)
    if not np.iscomplexobj(k) or k.ndim not in (2, 3):
        raise ValueError(
            f"k-space to under-sample is complex (H, W) or (coils, H, W), got {k.dtype} of "
            f"shape {k.shape}"
        )
    k = k if k.ndim == 3 else k[None]
    generator = torch.Generator().manual_seed(seed)
    sampled = _mask_pattern(mask)(k.shape[-2:], acceleration, generator=generator)[0, 0].numpy()
    return Degraded(k * sampled, None, sampled)


def _check_mask(
    mask: str | np.ndarray | None, task: str, shape: tuple[int, int]
) -> str | torch.Tensor | None:
    """``degrade``'s mask: an MRI pattern's name, a ``(1, 1, H, W)`` mask of an array given for
    inpaint or mri, or ``None`` (inpaint: draw one)."""
    if mask is None:
        return "columns" if task == "mri" else None
    if task not in ("inpaint", "mri"):
        raise ValueError(f"mask applies to inpaint and mri (what they measure), not {task}")
    if isinstance(mask, str):
        if task == "inpaint":
            raise ValueError(
                f"an inpainting mask is an array (H, W) of 0 / 1 (white = observed), not "
                f"{mask!r}; or leave it out to draw one with fraction"
            )
        _mask_pattern(mask)
        return mask
    check_mask_values(mask, shape, columns=task == "mri")
    return mask_tensor(mask, shape, columns=task == "mri").double()


def _mask_pattern(name: str):
    if name not in MRI_MASKS:
        raise ValueError(f"unknown MRI mask {name!r}; known: {', '.join(MRI_MASKS)}")
    return MRI_MASKS[name]


def lensing_operator(lensing: LensingSetup | None, shape: tuple[int, int]) -> LinearOperator:
    """The lensing operator for an image of ``shape`` (source and image alike)."""
    if lensing is None:
        raise ValueError("lensing needs the lens: give --einstein-radius (and --axis-ratio, ...)")
    if not isinstance(lensing, LensingSetup):
        raise TypeError(
            f"lensing takes a LensingSetup, e.g. LensingSetup(SIE(0.45)), got "
            f"{type(lensing).__name__}"
        )
    return lensing.operator(shape)


def is_real_number(value: object) -> bool:
    """Whether ``value`` is a real number: a Python, numpy or ``fractions`` one, or a 0-d
    numpy array or tensor of one (not a bool, a string, a complex number, ...).

    Example:
        >>> [is_real_number(v) for v in (2, 2.5, np.float32(1), np.array(2), True, "2", 1j)]
        [True, True, True, True, False, False, False]
    """
    if isinstance(value, np.ndarray | torch.Tensor) and value.ndim == 0:
        value = value.item()
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _degrade_data(
    image: np.ndarray, task: str, sigma: float | None, quantize: bool, options: dict
) -> Degraded:
    """:func:`degrade` of an image in the data's own units: the image divided by its largest
    value (sigma alike) is degraded, and the measurement multiplied back."""
    from rimkit.pipeline import check_sigma, data_peak

    if quantize:
        raise ValueError("quantize rounds an image in [0, 1] to 8 bits; not with units='data'")
    check_array_type(image, "degrade")
    peak = data_peak(np.abs(np.asarray(image)), "denoise")  # the clean image's largest value
    told = None if sigma is None else check_sigma("denoise", sigma, "data", peak)
    with warnings.catch_warnings():  # sigma / peak on the 0-255 scale may well lie in (0, 1)
        warnings.simplefilter("ignore", UnitScaleWarning)
        result = degrade(np.asarray(image) / peak, task, sigma=told, **options)
    return dataclasses.replace(result, measurement=result.measurement * peak)


def _check_scale(scale: int) -> int:
    whole = is_real_number(scale) and math.isfinite(scale) and float(scale).is_integer()
    if not (whole and scale >= 2):
        raise ValueError(f"scale must be an integer >= 2 (2, 3, 4, ...), got {scale!r}")
    return int(scale)


def crop_noting(
    image: np.ndarray,
    scale: int,
    what: str = "the image",
    why: str = "before down-sampling (as the SR protocol does)",
) -> np.ndarray:
    """:func:`rimkit.evaluate.metrics.crop_to_multiple` (bottom and right) with a note naming
    ``what`` and ``why`` where it drops pixels.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     crop_noting(np.zeros((10, 9)), 4).shape
        (8, 8)
    """
    from rimkit.evaluate.metrics import crop_to_multiple

    cropped = crop_to_multiple(image, scale)
    if cropped.shape[:2] != image.shape[:2]:
        warnings.warn(
            f"{what} is cropped from {image.shape[0]}x{image.shape[1]} to "
            f"{cropped.shape[0]}x{cropped.shape[1]}, a multiple of scale {scale}, {why}",
            UserWarning,
            stacklevel=3,
        )
    return cropped


def _operator(
    task: str,
    x: torch.Tensor,
    scale: int,
    fraction: float,
    acceleration: float,
    pattern: str | torch.Tensor | None,
    kernel: np.ndarray | str | None,
    boundary: str,
    coils: int,
    generator: torch.Generator,
) -> tuple[LinearOperator, torch.Tensor | None]:
    _, c, h, w = x.shape
    if task == "denoise":
        return Identity(), None
    if task == "blur":
        return Blur(blur_kernel(kernel).double(), boundary=boundary), None
    if task == "sr":
        return BicubicDownsample(scale), None
    if task == "inpaint":
        if pattern is None:
            pattern = random_mask((1, 1, h, w), fraction, generator, dtype=torch.float64)
        return Inpainting(pattern), pattern
    if c != 1:
        raise ValueError(f"mri needs a gray or complex single-channel image, got {c} channels")
    if isinstance(pattern, str):
        pattern = _mask_pattern(pattern)((h, w), acceleration, generator=generator)
    mask = pattern.double()
    if coils == 1:
        return CartesianMRI(mask), mask
    maps = synthetic_coil_maps(coils, (h, w), 1, generator, torch.complex128)
    return MultiCoilMRI(mask, maps), mask
