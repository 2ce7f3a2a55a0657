"""Restore one image array with a trained model: the library side of ``rimkit reconstruct``.

The model's channels decide how an image is handled: a gray RIM restores a colour image in
opponent colour coordinates, a luminance and two chroma channels each with its one-channel cell
(:class:`~rimkit.models.opponent.OpponentColorRIM`; other gray models restore each RGB channel
separately), except for super-resolution, where it restores the Y channel and Cb/Cr are
up-sampled bicubically (the usual practice and the published protocol); a colour model needs a
colour image.

Example:
    >>> import numpy as np
    >>> from rimkit.models import build_rim
    >>> model = build_rim(features=4, hidden=4, train_steps=2)
    >>> out = restore(np.full((8, 8), 0.5), "denoise", model, sigma=10)
    >>> out.image.shape, len(out.frames)
    ((8, 8), 2)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rimkit.background import sky_level
from rimkit.color import rgb_to_ycbcr, ycbcr_to_rgb
from rimkit.degrade import SIGMA_MAX, is_real_number, lensing_operator
from rimkit.inputs import (
    check_array_type,
    check_image,
    check_mask_values,
    mask_of_shape,
    mask_tensor,
)
from rimkit.io import IMAGE_RANGE_LIMIT, from_tensor, to_tensor
from rimkit.models import RIM
from rimkit.models.opponent import OpponentColorRIM
from rimkit.noise import warn_if_unit_scale
from rimkit.noise_level import IMAGE_TASKS, estimate_noise_level
from rimkit.operators import (
    BicubicDownsample,
    Blur,
    Identity,
    Inpainting,
    LensingSetup,
    LinearOperator,
    bicubic_upsample,
    blur_kernel,
)
from rimkit.photon import PhotonNoise
from rimkit.reconstruct import RIMReconstructor
from rimkit.self_ensemble import ENSEMBLE_TASKS, SelfEnsemble, check_size
from rimkit.solvers.selection import baseline_run
from rimkit.zoo.loading import LoadedModel

TASKS = ("denoise", "sr", "inpaint", "blur", "mri", "lensing")
BAD_PIXEL_TASKS = ("denoise", "sr", "blur", "lensing")
"""Tasks that take a mask of the measurement's bad pixels (white = measured): the operator is
then ``Inpainting(mask) @ A`` (denoising: inpainting, with the denoising weights of baselines).
Inpainting's mask is its operator; MRI's samples k-space."""
MASKLESS_BASELINES = ("bm3d", "bicubic")
"""Baselines that cannot leave bad pixels out (they do not use the operator)."""
AUTO_TILE_PIXELS = 2048 * 2048
DEFAULT_TILE = 512

MOVED = ("COIL_MAP_METHODS", "NO_MAPS", "estimate_coil_maps")
"""Names of :mod:`rimkit.restore_mri` (MRI's part of :func:`restore`) once held here; still
importable from here."""


def __dir__() -> list[str]:
    return sorted({*globals(), *MOVED})


def __getattr__(name: str) -> Any:
    if name not in MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rimkit import restore_mri

    return getattr(restore_mri, name)


UNITS = ("image", "data")
"""How :func:`restore` reads a measurement and ``sigma``. ``"image"``: an image in ``[0, 1]``
with sigma on the 0-255 scale (MRI: k-space of any scale, sigma 255 times its units).
``"data"``: values of any scale in the data's own units (an astronomer's counts, a detector's
photons; MRI k-space) with sigma, the noise's standard deviation, in those units."""


@dataclass
class Restored:
    """The restored image ``(H, W[, C])``, every step ``x_1 .. x_T`` of its trajectory (a
    baseline: its final estimate), the noise level the method was told (estimated when
    ``sigma="auto"``; a noise map as given) and the background subtracted, all in the units
    of the call (:data:`UNITS`: sigma on the 0-255 scale, or in the data's units)."""

    image: np.ndarray
    frames: list[np.ndarray]
    sigma: float | np.ndarray = 0.0
    background: float | np.ndarray = 0.0


OPTION_TASKS = {
    "scale": "sr",
    "scales": "sr",
    "kernel": "blur",
    "boundary": "blur",
    "lensing": "lensing",
    "maps": "mri",
}
"""The options of :func:`restore` that one task reads, and that task."""


def _refuse_options_of_other_tasks(task: str, **given: bool) -> None:
    """Refuse an option of :data:`OPTION_TASKS` given (``True``) for a task that would ignore
    it, e.g. a kernel with ``task="denoise"`` (the blur would stay).

    Example:
        >>> _refuse_options_of_other_tasks("denoise", kernel=True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: kernel applies to task='blur' only, not 'denoise'; leave it out or ...
    """
    for name, set_ in given.items():
        own = OPTION_TASKS[name]
        if set_ and task != own:
            raise ValueError(
                f"{name} applies to task={own!r} only, not {task!r}; leave it out or give "
                f"task={own!r}"
            )


def data_peak(image: np.ndarray, task: str, mask: np.ndarray | None = None) -> float:
    """What ``restore(units="data")`` divides a real measurement by: its largest value (with a
    mask, over the observed pixels), where the models' images have their white, 1. MRI
    k-space is scaled inside (by its zero-filled image's maximum): 1.

    Example:
        >>> data_peak(np.array([[-3.0, 40.0], [7.0, 10.0]]), "lensing")
        40.0
    """
    if task == "mri":
        return 1.0
    values = np.asarray(image, dtype=np.float64)
    if mask is not None and np.shape(mask) == values.shape[:2]:  # observed pixels only
        values = values[np.asarray(mask) > 0.5]
    peak = float(values.max()) if values.size else 0.0
    if not (math.isfinite(peak) and peak > 0):
        raise ValueError(
            f"the measurement's largest value is {peak:g}; units='data' divides it by its peak "
            "(the models' white), so it needs a positive one (subtract a negative offset first)"
        )
    return peak


def check_sigma(
    task: str, sigma: float | str | np.ndarray | None, units: str = "image", peak: float = 1.0
) -> float | str | np.ndarray:
    """The noise level on the 0-255 scale of the image :func:`restore` works on (a measurement
    in the data's units divided by ``peak``; MRI k-space in its units); ``"auto"`` (estimate
    it from the measurement) passes for the tasks in :data:`IMAGE_TASKS` and is the default
    for denoising, 0 for the others. A noise map (an array, sigma per pixel) is converted
    alike."""
    if units not in UNITS:
        raise ValueError(f"units must be one of {', '.join(UNITS)}, got {units!r}")
    if isinstance(sigma, list | tuple | torch.Tensor):
        sigma = np.asarray(sigma.detach().cpu() if isinstance(sigma, torch.Tensor) else sigma)
    if isinstance(sigma, np.ndarray):
        if not (np.issubdtype(sigma.dtype, np.number) and not np.iscomplexobj(sigma)):
            raise ValueError(f"a noise map holds real numbers, got {sigma.dtype}")
        if not (np.isfinite(sigma).all() and (sigma >= 0).all()):
            raise ValueError("a noise map must be finite and >= 0 everywhere")
        if units == "image" and sigma.size and task != "mri":
            warn_if_unit_scale(float(np.median(sigma)), "restore's noise map", stacklevel=4)
        return sigma.astype(np.float64) * (255.0 / peak if units == "data" else 1.0)
    if units == "data" and not isinstance(sigma, str | type(None)):
        if not (is_real_number(sigma) and math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"sigma (in the data's units) must be a number >= 0, got {sigma}")
        if task != "mri" and sigma > peak:
            raise ValueError(
                f"sigma {sigma:g} exceeds the measurement's peak {peak:g}: the noise would hide "
                "the image; give the noise's standard deviation in the data's units"
            )
        return 255.0 * sigma / peak
    if isinstance(sigma, str):
        if sigma != "auto":
            raise ValueError(f"sigma is a number (0-255 scale) or 'auto', got {sigma!r}")
        if task not in IMAGE_TASKS:
            raise ValueError(
                f"sigma 'auto' estimates the noise of an image; {task} measurements are not one: "
                "give the noise level as a number"
            )
        return sigma
    if sigma is None:
        return "auto" if task == "denoise" else 0.0
    if not is_real_number(sigma):
        raise ValueError(f"sigma is a number (0-255 scale) or 'auto', got {sigma!r}")
    if not (math.isfinite(sigma) and 0 <= sigma <= SIGMA_MAX):
        other = "; data of another scale: units='data' (--units data) takes sigma in their units"
        raise ValueError(
            f"sigma must lie in [0, {SIGMA_MAX:g}] on the 0-255 scale, got {sigma}{other}"
        )
    if task != "mri":  # k-space has any scale
        warn_if_unit_scale(sigma, "restore", stacklevel=4)
    return float(sigma)


def _operator(
    task: str,
    shape: tuple[int, int],
    scale: int,
    mask: np.ndarray | None,
    kernel: np.ndarray | str | None,
    boundary: str,
) -> LinearOperator:
    if task == "denoise":
        return Identity()
    if task == "sr":
        return BicubicDownsample(scale)
    if task == "blur":
        return Blur(blur_kernel(kernel).float(), boundary)
    if mask is None:
        raise ValueError(f"{task} needs the sampling mask: give --mask FILE (white = observed)")
    return Inpainting(mask_tensor(mask, shape))


def restore(
    image: np.ndarray,
    task: str,
    model: RIM | LoadedModel | None,
    *,
    baseline: str | None = None,
    sigma: float | str | None = None,
    scale: int = 2,
    mask: np.ndarray | None = None,
    kernel: np.ndarray | str | None = None,
    boundary: str = "circular",
    steps: int | None = None,
    tile: int | None = None,
    progress: bool = False,
    scales: tuple[int, ...] | None = None,
    ensemble: int = 1,
    lensing: LensingSetup | None = None,
    maps: np.ndarray | str | None = None,
    units: str = "image",
    peak: float | None = None,
    background: float | str | None = None,
    photons: PhotonNoise | None = None,
) -> Restored:
    """Reconstruct ``x`` from the measurement ``image`` (``(H, W[, C])``; complex k-space for
    MRI) with ``model`` (a network, or what :func:`rimkit.zoo.load_model` returns), or with
    the classical ``baseline`` of that name instead (:data:`rimkit.solvers.BASELINES`, with
    the weight tuned for the task and noise level, every channel at once, MRI on the complex
    image; only its final estimate comes back).
    ``sigma`` is on the 0-255 scale, or ``"auto"``: estimated from the measurement
    (:func:`rimkit.noise_level.estimate_noise_level`; with a mask: from the measured pixels
    only; super-resolution of a colour image: from its luma), the default for denoising (0
    for the other tasks); the ``sigma`` used comes back in :class:`Restored`.

    ``scales`` are the super-resolution factors the model was trained for (others are
    refused; default: the model's ``trained_scales``, which :func:`rimkit.zoo.load_model`
    sets); ``progress`` shows a bar; ``ensemble`` averages the restorations of that many
    flips and rotations of the image (1, 2, 4 or 8; :mod:`rimkit.self_ensemble`, tasks in
    :data:`ENSEMBLE_TASKS`); ``lensing`` the lens and its observation for ``task="lensing"``
    (the source has the image's pixel count; the operator spans the whole image, so it is
    never tiled). A blur with ``boundary="valid"`` is reconstructed past the measurement's
    edges and cropped back to its field of view. MRI k-space is ``(H, W)``
    or ``(coils, H, W)`` of any scale: it is divided by the zero-filled image's maximum (the
    scale MRI models learn) and the magnitude image comes back in the data's units; ``sigma``
    is in those units too. Its ``mask`` defaults to the nonzero points; multi-coil data use
    ``maps`` (``(coils, H, W)``) or maps estimated from the fully sampled centre by the method
    ``maps`` names in :data:`rimkit.restore_mri.COIL_MAP_METHODS` (default ``"espirit"``), their
    phase that of the low-resolution image; pixels no coil sees (every map 0 there, as outside
    ESPIRiT's crop) come back 0, as in a SENSE reconstruction. Single-coil data with such a centre
    are demodulated by the image's low-resolution phase ``exp(i phi)`` as a one-coil map, so the
    models, trained on real images, see a nearly real image.

    ``units="data"`` takes a measurement of any scale (:data:`UNITS`): it is divided by its
    ``peak`` (default :func:`data_peak`, its largest value), restored, and multiplied back,
    so the result (within ``[0, peak]``, plus a background) and ``sigma`` are in the data's
    units; for MRI only sigma's units change. A deblurred or super-resolved image can be
    brighter than its measurement: give such data a larger ``peak`` (a note says when the
    result meets it).
    ``sigma`` may also be a noise map, an array of the (gray) measurement's shape in the same units:
    each pixel's residual is weighted by its variance (RIMs; a baseline takes its inverse-variance
    mean, :func:`_map_level`). ``background`` (a level in the call's units, as sigma: the 0-255
    scale or the data's, or ``"auto"``: the sky level, :func:`rimkit.background.sky_level`, of each
    channel) is subtracted first and added back to the result, except for lensing, whose source lies
    behind the sky. A ``mask`` of a denoise, blur, sr or lensing measurement (white = measured)
    leaves its bad pixels out of the likelihood (:data:`BAD_PIXEL_TASKS`); the noise level
    ``"auto"`` and the data's peak are read from the measured pixels only. ``photons``
    (:class:`rimkit.photon.PhotonNoise`: gain, read noise, dark offset) denoises photon counts
    (``units="data"``, no ``sigma``), whose noise grows with the signal: made Gaussian of sigma 1 by
    the generalised Anscombe transform, denoised, and mapped back by its unbiased inverse; ``sigma``
    comes back as 1, in those units.

    Example (a lensed galaxy in counts):
        >>> from rimkit.models import build_rim
        >>> from rimkit.operators import SIE, LensingSetup
        >>> setup = LensingSetup(SIE(einstein_radius=0.45))
        >>> counts = 900.0 * np.random.default_rng(0).random((16, 16))
        >>> model = build_rim(features=4, hidden=4, train_steps=2)
        >>> out = restore(counts, "lensing", model, sigma=12.0, lensing=setup, units="data")
        >>> bool(out.image.max() <= counts.max()), out.sigma
        (True, 12.0)
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    _refuse_options_of_other_tasks(
        task, scale=scale != 2, scales=scales is not None, kernel=kernel is not None,
        boundary=boundary != "circular", lensing=lensing is not None, maps=maps is not None,
    )  # fmt: skip
    if isinstance(model, LoadedModel):
        model = model.model
    plausible = np.ndim(image) == 2 or (np.ndim(image) == 3 and np.shape(image)[2] in (1, 3))
    if mask is not None and task != "mri" and plausible:  # else the image's shape is refused
        check_mask_values(mask, np.shape(image)[:2])
        if task == "inpaint" and bool((mask_of_shape(mask, np.shape(image)[:2]) > 0.5).all()):
            warnings.warn(
                "the mask marks every pixel as measured: there is nothing to fill in, and the "
                "result is the measurement restored as a whole (without noise, the measurement "
                "itself is the best answer)",
                UserWarning,
                stacklevel=2,
            )
    if photons is not None:
        _check_photon_counts(task, sigma, units, peak, background)
        kept = photons.stabilise(image)  # noise of sigma 1, nearly Gaussian
        if not float(np.max(kept)) > 0:
            raise ValueError(
                f"every count is at or below the offset ({photons.offset:g}) and the read "
                "noise allows: check the detector's offset"
            )
        out = restore(
            kept, task, model, baseline=baseline, sigma=1.0, mask=mask, steps=steps, tile=tile,
            progress=progress, ensemble=ensemble, units="data",
        )  # fmt: skip
        frames = [photons.unstabilise(frame) for frame in out.frames]
        return Restored(frames[-1], frames, out.sigma)
    if peak is not None and units != "data":
        raise ValueError("peak sets the white of data in their own units: give units='data'")
    sky = _background_level(image, task, background, mask, units)  # in the image's values
    has_sky = bool(np.any(sky))
    lowered, estimated = sky, None  # the noise std in the image's values, where estimated
    if has_sky and task != "lensing":
        noise = _noise_of(sigma, units)
        if noise is None:
            estimated = _sky_noise(image, mask)
        lowered = _lowered_by(sky, noise if noise is not None else estimated or 0.0)
    if has_sky:
        image = image - lowered
    if units == "data" and task != "mri":
        _check_real_array(image)
        if mask is not None and np.shape(mask) == image.shape[:2]:
            observed = np.asarray(mask, dtype=np.float64) > 0.5  # the holes' values are unknown
            image = image * (observed if image.ndim == 2 else observed[..., None])
        if peak is None:
            peak = data_peak(image, task, mask)
            _note_outliers(image, peak)
        elif isinstance(peak, bool) or not (math.isfinite(peak) and peak > 0):
            raise ValueError(f"peak must be a positive number (the data's white), got {peak!r}")
        image = image / peak
        if float(image.max()) > IMAGE_RANGE_LIMIT:  # a given peak far below the data's white
            raise ValueError(
                f"the measurement reaches {float(image.max()) * peak:g}, over "
                f"{IMAGE_RANGE_LIMIT:g} times the peak given ({peak:g}): give a peak near the "
                "data's white, or none (the largest value is taken)"
            )
        if float(image.min()) < -IMAGE_RANGE_LIMIT:
            raise ValueError(
                f"the measurement reaches down to {float(image.min()) * peak:g}, over "
                f"{IMAGE_RANGE_LIMIT:g} times its peak ({peak:g}) below zero: subtract its "
                "background (sky) first"
                + ("" if background is not None else " (background='auto', --background auto)")
            )
    peak = 1.0 if peak is None else peak
    restored = _restore(
        image, task, model, baseline=baseline, sigma255=check_sigma(task, sigma, units, peak),
        scale=scale, mask=mask, kernel=kernel, boundary=boundary, steps=steps, tile=tile,
        progress=progress, scales=scales, ensemble=ensemble, lensing=lensing, maps=maps,
        estimated255=None if estimated is None else 255.0 * estimated / peak,
    )  # fmt: skip
    frames, sigma_out = restored.frames, restored.sigma
    if units == "data":
        if task in ("blur", "sr") and float(np.mean(restored.image >= 0.999)) > 0.001:
            warnings.warn(
                f"{100 * float(np.mean(restored.image >= 0.999)):.2g} % of the result meets the "
                f"data's peak, {peak:g}{' above the background' if has_sky else ''}, and is "
                "clipped there: a deblurred or super-resolved "
                "image can be brighter than its measurement; give a larger peak (--peak)",
                UserWarning,
                stacklevel=2,
            )
        frames, sigma_out = [frame * peak for frame in frames], sigma_out / 255.0 * peak
    if isinstance(sigma, np.ndarray):
        sigma_out = sigma  # the noise map, as given
    if has_sky and task != "lensing":  # the sky lies in the image plane, not in the source
        frames = [frame + lowered for frame in frames]
    return Restored(frames[-1], frames, sigma_out, sky * (255.0 if units == "image" else 1.0))


def _check_photon_counts(
    task: str, sigma: object, units: str, peak: object, background: object
) -> None:
    """Refuse what photon-counting noise (:class:`rimkit.photon.PhotonNoise`) leaves no room for."""
    if task != "denoise":
        raise ValueError(
            "photon-counting noise is made Gaussian for denoising only (task='denoise')"
        )
    if units != "data":
        raise ValueError("photon counts are data in their own units: give units='data'")
    if sigma is not None:
        raise ValueError(
            "with photon-counting noise the noise follows the signal: leave sigma out (give the "
            "detector's gain and read noise instead)"
        )
    if peak is not None or background is not None:
        raise ValueError(
            "with photon-counting noise give the detector's dark level as its offset, not a "
            "peak or background"
        )


def _lowered_by(sky: float | np.ndarray, noise: float) -> float | np.ndarray:
    """How far :func:`restore` lowers an image-plane measurement for its background ``sky``:
    to three times the noise above 0 (``noise``, the std in the image's values), so the noise
    about an empty sky is not cut off at 0, where the models' estimates end, and the sky comes
    back as it went in. A lensed source lies behind the sky: lensing subtracts all of it."""
    return sky - 3.0 * float(noise)


def _sky_noise(image: np.ndarray, mask: np.ndarray | None) -> float | None:
    """The noise std of a measurement with a background, in its values, estimated as
    :func:`_restore` estimates ``sigma="auto"`` (each channel's, then their mean; measured
    pixels only), so that one estimate serves both; ``None`` for an image too small to
    estimate it from (:func:`_restore` then refuses ``"auto"``, naming the size)."""
    if min(image.shape[:2]) < 9:
        return None
    observed = None if mask is None or np.shape(mask) != image.shape[:2] else mask
    return _estimate_sigma(image, "denoise", observed)


def _noise_of(sigma: object, units: str) -> float | None:
    """A noise level told :func:`restore` as a std in the image's values (a noise map: its
    median); ``None`` where it is to be estimated."""
    if isinstance(sigma, np.ndarray):
        level = float(np.median(sigma))
    elif isinstance(sigma, (int, float)) and not isinstance(sigma, bool):
        level = float(sigma)
    else:
        return None
    return level / 255.0 if units == "image" else level


def _background_level(
    image: np.ndarray,
    task: str,
    background: float | str | None,
    mask: np.ndarray | None,
    units: str,
) -> float | np.ndarray:
    """The background :func:`restore` subtracts, in the image's own values: 0 for ``None``, the
    level given (on the 0-255 scale for ``units="image"``, as sigma), or for ``"auto"`` the sky
    level of the measured pixels, :func:`rimkit.background.sky_level`: of each channel of a
    colour image (``(C,)``; a sky lit by a town is coloured)."""
    if background is None:
        return 0.0
    if task == "mri":
        raise ValueError("a background (sky) level belongs to images, not to MRI k-space")
    _check_real_array(image)
    if isinstance(background, str):
        if background != "auto":
            raise ValueError(
                f"background is a level in the image's units or 'auto', got {background!r}"
            )
        values = image.reshape(*image.shape[:2], -1)  # (H, W, C)
        if mask is not None and np.shape(mask) == image.shape[:2]:
            values = values[np.asarray(mask, dtype=np.float64) > 0.5]  # (N, C)
        levels = np.array([sky_level(values[..., c]) for c in range(values.shape[-1])])
        return float(levels[0]) if image.ndim == 2 else levels
    if isinstance(background, bool) or not math.isfinite(background):
        raise ValueError(f"background must be a finite number or 'auto', got {background!r}")
    return float(background) / (255.0 if units == "image" else 1.0)


def _restore(
    image: np.ndarray,
    task: str,
    model: RIM | None,
    *,
    baseline: str | None,
    sigma255: float | str,
    scale: int,
    mask: np.ndarray | None,
    kernel: np.ndarray | str | None,
    boundary: str,
    steps: int | None,
    tile: int | None,
    progress: bool,
    scales: tuple[int, ...] | None,
    ensemble: int,
    lensing: LensingSetup | None,
    maps: np.ndarray | str | None,
    estimated255: float | None = None,
) -> Restored:
    """:func:`restore` of an image in ``[0, 1]`` (MRI: k-space), ``sigma`` checked, on the
    0-255 scale; ``estimated255``: the noise level :func:`restore` already estimated for
    ``sigma255="auto"``, on this image's scale (not for a colour image super-resolved by its
    luma, whose noise is estimated on the luma)."""
    check_image(image, task)
    if model is not None and not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"model must be a RIM (an nn.Module such as load_model(name).model), got "
            f"{type(model).__name__}"
        )
    if (model is None) == (baseline is None):
        raise ValueError("restore with a model or a baseline: give exactly one")
    bad_pixels = mask if task in BAD_PIXEL_TASKS else None  # pixels of y not measured
    if baseline is not None:
        _check_baseline(baseline, task, ensemble)
        if bad_pixels is not None and baseline in MASKLESS_BASELINES:
            raise ValueError(
                f"baseline {baseline!r} takes no mask of bad pixels (or blank pixels); choose "
                "one that does, such as tv or fista-wavelet"
            )
    if check_size(ensemble) > 1 and task not in ENSEMBLE_TASKS:
        raise ValueError(
            f"a self-ensemble needs an operator that commutes with flips and rotations "
            f"({', '.join(ENSEMBLE_TASKS)}); {task} has none: use ensemble 1"
        )
    whole = is_real_number(scale) and math.isfinite(scale) and int(scale) == scale
    if task == "sr" and not (whole and scale >= 2):
        raise ValueError(f"scale must be an integer >= 2, got {scale!r}")
    if scales is None and model is not None:
        scales = getattr(model, "trained_scales", None)
    if task == "sr" and scales and int(scale) not in scales:
        known = ", ".join(str(s) for s in scales)
        raise ValueError(
            f"the model was trained for scales {known}, not {int(scale)}; a baseline takes any "
            "scale (baseline 'bicubic' or 'tv', --baseline on the command line)"
        )
    if bad_pixels is not None:
        if tile is not None:
            raise ValueError("tiles do not apply with a mask of bad pixels; leave --tile out")
        if check_size(ensemble) > 1:
            raise ValueError("a self-ensemble does not apply with a mask of bad pixels: use 1")
    noise_map = isinstance(sigma255, np.ndarray)
    if noise_map:
        _check_noise_map(sigma255, image, task, ensemble)
    if task == "mri":
        if tile is not None:
            raise ValueError(
                "MRI k-space is reconstructed whole: tiles do not apply; leave --tile out"
            )
        from rimkit.restore_mri import restore_mri

        return restore_mri(image, model, sigma255, mask, steps, maps, baseline)
    if np.iscomplexobj(image):
        raise ValueError(f"complex input is k-space; use --task mri, not {task}")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if model is not None and model.channels not in (1, channels):
        gray = (
            "; use a gray model such as denoise-gray" if (channels, task) == (1, "denoise") else ""
        )
        raise ValueError(
            f"the model restores {model.channels}-channel images but the input has {channels}"
            f"{gray}; choose a model for this kind of image (rimkit models)"
        )
    h, w = image.shape[:2]
    if task == "sr" and min(h, w) * scale < 8:
        raise ValueError(
            f"the image is {h}x{w}; too small to up-sample by {int(scale)} (its shorter side "
            f"times the scale must reach 8 pixels)"
        )
    if task == "lensing":
        if tile is not None:
            raise ValueError("a lens maps the whole image: tiles do not apply; leave --tile out")
        operator = lensing_operator(lensing, (h, w))
    else:
        local = task != "blur" or boundary == "valid"  # a wrapped or zero-padded blur is not
        large = h * w * (scale**2 if task == "sr" else 1) > AUTO_TILE_PIXELS
        if tile is None and local and large and bad_pixels is None:
            tile = DEFAULT_TILE
        operator = _operator(task, (h, w), int(scale), mask, kernel, boundary)
    base = operator  # without the bad pixels' mask
    if bad_pixels is not None:  # A's output measured only where the mask is white
        operator = Inpainting(mask_tensor(bad_pixels, (h, w))) @ operator
    gray_model = model is not None and model.channels == 1
    luma = task == "sr" and channels == 3 and (gray_model or model is None)
    if isinstance(sigma255, str) and estimated255 is not None and not luma:
        sigma255 = estimated255  # "auto", estimated by restore for the background
    elif isinstance(sigma255, str):  # "auto"
        sigma255 = 255 * _estimate_sigma(rgb_to_ycbcr(image)[..., 0] if luma else image, task, mask)
    level = _map_level(sigma255, mask) if noise_map else sigma255
    told = to_tensor(sigma255 / 255.0, torch.float64) if noise_map else sigma255 / 255.0
    if model is None:  # a baseline takes one level
        run = baseline_run(baseline, operator, level / 255.0, image.shape)
    else:
        if task == "denoise":
            _note_noise_below_floor(model, level)
        if task != "sr" and channels == 3 and gray_model and isinstance(model, RIM):
            model = OpponentColorRIM.from_gray(model)
            gray_model = False
        method = RIMReconstructor(model, steps, tile=tile, progress=progress)
        if ensemble > 1:
            method = SelfEnsemble(method, ensemble)
        run = lambda y: method(to_tensor(y), operator, told).estimates  # noqa: E731
    if luma:
        frames = _restore_luma(image, run, int(scale), bad_pixels)
    elif channels > 1 and gray_model:
        parts = [_frames(run(image[..., c])) for c in range(channels)]
        frames = [np.stack(f, axis=-1) for f in zip(*parts, strict=True)]
    else:
        frames = _frames(run(image))
    if isinstance(base, Blur):  # valid boundaries: x extends past y; keep y's view
        top, _, left, _ = base.margins()
        frames = [f[top : top + h, left : left + w] for f in frames]
    if image.ndim == 3 and channels == 1:  # (H, W, 1) in, (H, W, 1) out
        frames = [f.reshape(*f.shape[:2], 1) for f in frames]
    return Restored(frames[-1], frames, sigma255)


def _map_level(noise: np.ndarray, mask: np.ndarray | None) -> float:
    """The one noise level a noise map amounts to, for a baseline: the inverse-variance mean
    over the measured pixels, ``1 / sqrt(mean(1 / sigma^2))`` (huge sigma of bad pixels do not
    dominate it).

    Example:
        >>> round(_map_level(np.array([[5.0, 5.0], [5.0, 1e4]]), None), 2)
        5.77
    """
    values = noise if mask is None else noise[np.asarray(mask) > 0.5]
    if values.size == 0 or float(values.min()) == 0.0:
        return 0.0
    return float(1.0 / np.sqrt(np.mean(1.0 / np.square(values))))


def _check_noise_map(noise: np.ndarray, image: np.ndarray, task: str, ensemble: int) -> None:
    """Refuse a noise map (sigma per pixel) where :func:`restore` cannot use one."""
    if task == "mri" or image.ndim != 2:
        raise ValueError(
            "a noise map (sigma per pixel) is for gray image measurements, not "
            f"{'MRI k-space' if task == 'mri' else 'colour images'}: give sigma as a number"
        )
    if noise.shape != image.shape:
        raise ValueError(f"the noise map is {noise.shape} but the measurement {image.shape}")
    if check_size(ensemble) > 1:
        raise ValueError("a self-ensemble does not apply with a noise map: use ensemble 1")


def _note_noise_below_floor(model: torch.nn.Module, sigma255: float) -> None:
    """A note when denoising noise far below the model's learned noise floor ``eps`` (its
    likelihood's variance is ``sigma^2 + eps``): it then smooths as at that floor, and an
    image of high signal-to-noise may come back worse than it went in."""
    floor = getattr(model, "noise_floor", None)
    if not isinstance(floor, torch.nn.Module):
        return
    with torch.no_grad():
        floor255 = 255.0 * float(floor()) ** 0.5
    if sigma255 < floor255 / 3:
        warnings.warn(
            f"the noise, sigma {sigma255:.3g} on the 0-255 scale of the image (its peak: 255), "
            f"is far below the model's noise floor ({floor255:.3g}): it smooths as at that "
            "level, so an image this clean may come back no better than it went in",
            UserWarning,
            stacklevel=4,
        )


def _note_outliers(image: np.ndarray, peak: float) -> None:
    """A note when the peak that scales data is a pixel far above its neighbours (a cosmic
    ray, a hot pixel): the image then comes out dim beside it."""
    from scipy.ndimage import rank_filter

    size = (3, 3) if image.ndim == 2 else (3, 3, 1)
    values = np.asarray(image, dtype=np.float64)
    second = rank_filter(values, rank=-2, size=size, mode="constant", cval=float(values.min()))
    around = float(second.max())  # the largest second brightest of a 3x3 neighbourhood
    if peak > 5 * max(around, 0.0):
        warnings.warn(
            f"the measurement's peak, {peak:g}, which scales it for the model, is a lone pixel "
            f"far above its neighbours (without such pixels the peak is {around:g}): a cosmic "
            "ray or hot pixel (or a star narrower than a pixel)? The rest is then restored as a "
            "faint image; clean it first (or mask it and inpaint), or give the peak yourself",
            UserWarning,
            stacklevel=3,
        )


def _check_real_array(image: np.ndarray) -> None:
    """A measurement in the data's units: a real numpy array (complex input is MRI k-space)."""
    check_array_type(image)
    if np.iscomplexobj(image) or not np.issubdtype(image.dtype, np.number):
        raise ValueError(
            f"the measurement holds {image.dtype} values; units='data' takes real numbers "
            "(complex k-space is --task mri)"
        )
    if not np.isfinite(image).all():
        raise ValueError("the measurement holds NaN or Inf values; replace them first")


def shown_measurement(image: np.ndarray, task: str, scale: float = 2) -> np.ndarray | None:
    """The measurement as a picture of the restored image's size, for figures: itself, or
    for super-resolution each pixel repeated ``scale`` times; ``None`` for MRI k-space.

    Example:
        >>> shown_measurement(np.eye(2), "sr", 2).shape
        (4, 4)
    """
    if task == "mri":
        return None
    image = np.clip(np.asarray(image, dtype=np.float64), 0, 1)
    if task == "sr":
        s = int(scale)
        image = image.repeat(s, axis=0).repeat(s, axis=1)
    return image


def _estimate_sigma(image: np.ndarray, task: str, mask: np.ndarray | None) -> float:
    """The noise level of the measurement on its own scale (0-1); holes of a mask left out."""
    observed = None if mask is None or task == "mri" else np.asarray(mask) > 0.5
    return estimate_noise_level(image, mask=observed)


def _check_baseline(name: str, task: str, ensemble: int) -> None:
    from rimkit.solvers.selection import check_baselines

    if ensemble != 1:
        raise ValueError("a self-ensemble averages a RIM's restorations; not for a baseline")
    check_baselines([name], task)


def _frames(estimates: list[torch.Tensor]) -> list[np.ndarray]:
    return [np.clip(from_tensor(x), 0, 1) for x in estimates]


def _restore_luma(
    image: np.ndarray, run, scale: int, bad_pixels: np.ndarray | None = None
) -> list[np.ndarray]:
    """Super-resolution of a colour image: ``run`` on its luma, the chroma up-sampled
    bicubically (their bad pixels filled from the measured ones around them first)."""
    ycbcr = rgb_to_ycbcr(image)
    if bad_pixels is not None:
        measured = np.asarray(bad_pixels, dtype=np.float64) > 0.5
        for c in (1, 2):
            ycbcr[..., c] = _fill_from_around(ycbcr[..., c], measured)
    chroma = to_tensor(ycbcr[..., 1:], torch.float64)
    up = from_tensor(bicubic_upsample(chroma, scale))  # (sH, sW, 2)
    frames = []
    for luma in _frames(run(ycbcr[..., 0])):
        frames.append(np.clip(ycbcr_to_rgb(np.concatenate([luma[..., None], up], -1)), 0, 1))
    return frames


def _fill_from_around(values: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """``values`` ``(H, W)`` with the pixels not ``measured`` set to the Gaussian-weighted mean
    of the measured ones around them (a normalised convolution; far from any: their mean)."""
    from scipy.ndimage import gaussian_filter

    weights = gaussian_filter(measured.astype(np.float64), 2.0)
    smooth = gaussian_filter(np.where(measured, values, 0.0), 2.0)
    mean = float(values[measured].mean()) if measured.any() else 0.0
    filled = np.where(weights > 1e-3, smooth / np.maximum(weights, 1e-3), mean)
    return np.where(measured, values, filled)
