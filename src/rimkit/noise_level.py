"""Estimate the standard deviation of additive white Gaussian noise from one noisy image.

A RIM is told the noise level: its likelihood gradient is ``A^T (y - A x) / sigma^2``. When a
user does not know it (``rimkit reconstruct --sigma auto``), it is estimated from ``y``:

- ``"pca"`` (default; Liu, Tanaka & Okutomi, "Single-image noise level estimation for blind
  denoising", IEEE TIP 2013): the noise variance is the smallest eigenvalue of the covariance
  of ``p x p`` patches, taken over weak-texture patches only. A patch is weak-texture when its
  gradient energy ``tr(G^T G)`` is below ``tau = sigma^2 F^-1(confidence)``, ``F`` the Gamma law
  that energy follows for a flat patch under noise ``sigma``; ``sigma`` and the patch set are
  refined together a few times. The smallest eigenvalue of the covariance of ``N`` samples in
  ``d = p^2`` dimensions sits near the Marchenko-Pastur edge ``sigma^2 (1 - sqrt(d / N))^2``
  below the true one; rimkit divides by that factor (Liu et al. do not: without it a 64x64
  crop's estimate at sigma 25 is 10 % low on BSDS300-train, 0.5 % on whole images). Patches
  that touch a clipped pixel are left out (unless too few are left); with strong noise clipped
  in an 8-bit image (sigma 50) the estimate is still about 5 % low, the noise kept being the
  smaller part.
- A scattered mask (e.g. half the pixels missing at random) leaves too few whole patches, so
  ``"pca"`` falls back to local plane fits: each observed pixel's residual ``r`` from the
  least-squares plane through its observed neighbours (a window holding about 14 of them),
  scaled by ``sqrt(1 + h)``, ``h`` the fit's leverage at the pixel, so that ``r`` has
  variance ``sigma^2`` where the image is locally planar. The mean ``e`` of ``r^2`` over the
  ``k`` fits of each 7x7 window follows about ``sigma^2 Gamma(k / 2, 2 / k)`` there;
  ``sigma^2`` is chosen so that this law puts 3 % of the windows below the 3 % quantile of
  their ``e``, the flattest windows standing for the noise. Texture and curvature still leak
  in: on BSD68 with half or 80 % of the pixels missing it over-estimates sigma 5 to 50 by 1.6
  to 2.7 on average (0-255 scale), which costs a RIM told the estimate 0.01-0.11 dB
  (BENCHMARKS.md, section ``noise-level-inpaint``).
- ``"wavelet"``: the median absolute deviation of the finest diagonal wavelet band / 0.6745
  (Donoho), through :func:`skimage.restoration.estimate_sigma`. Faster, but texture leaks into
  that band: on BSD68 it over-estimates sigma 5 by 1.89 on average where ``"pca"`` does so
  by 0.22 (BENCHMARKS.md, section ``noise-level``).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ramp = np.linspace(0, 1, 128)[None, :] * np.ones((128, 1))
    >>> round(estimate_noise_level(ramp + rng.normal(0, 0.05, ramp.shape)), 3)
    0.05
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

METHODS = ("pca", "wavelet")
IMAGE_TASKS = ("denoise", "sr", "inpaint", "blur", "lensing")
"""rimkit's tasks whose measurement is an image, so that its noise level can be estimated."""
MAX_PATCHES = 250_000
PATCHES_PER_DIMENSION = 4
SCATTERED_NEIGHBOURS = 14
"""Observed neighbours a scattered-mask pixel's plane fit has on average (sets the window)."""
FLATTEST_FRACTION = 0.03
"""The fraction of 7x7 windows, the lowest in residual energy, that stands for the noise."""
LEAST_SCATTERED_PIXELS = 1000
"""Observed pixels with a plane fit that a scattered-mask estimate needs at least."""


def estimate_noise_level(
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    method: str = "pca",
    patch: int = 7,
    confidence: float = 1 - 1e-6,
    iterations: int = 3,
) -> float:
    """The noise standard deviation of ``image`` (``(H, W)`` or ``(H, W, C)``), in its units.

    A colour image gets the mean of its channels' estimates (the denoisers take one sigma).
    ``mask`` (``(H, W)``, nonzero = observed) leaves out the patches that touch an unobserved
    pixel, e.g. the holes of an inpainting measurement; patches that touch a pixel at a
    channel's minimum or maximum (clipped, e.g. 0 or 255 in an 8-bit image) are left out too.
    When a mask leaves too few fully observed patches, ``"pca"`` falls back to local plane
    fits through the observed pixels. ``patch``, ``confidence`` and ``iterations`` are the
    ``"pca"`` method's; see the module docstring.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> noisy = 0.5 + rng.normal(0, 0.1, (64, 64, 3))
        >>> round(estimate_noise_level(noisy), 2), round(estimate_noise_level(noisy, method="wavelet"), 2)
        (0.1, 0.1)
    """  # noqa: E501
    if method not in METHODS:
        raise ValueError(f"unknown noise-level method {method!r}; known: {', '.join(METHODS)}")
    image = np.asarray(image)
    if np.iscomplexobj(image) or image.ndim not in (2, 3) or image.dtype == object:
        raise ValueError(
            f"the noise level is estimated from a real image (H, W) or (H, W, C), got an array "
            f"of shape {image.shape} and type {image.dtype}"
        )
    image = image.astype(np.float64)
    if not np.isfinite(image).all():
        raise ValueError("the image holds NaN or infinite values; its noise level is undefined")
    channels = image[..., None] if image.ndim == 2 else image
    observed = _check_mask(mask, channels.shape[:2])
    if method == "wavelet":
        return _wavelet(channels, observed)
    if min(channels.shape[:2]) < patch + 2:
        raise ValueError(
            f"the image is {channels.shape[0]}x{channels.shape[1]}; estimating its noise level "
            f"needs at least {patch + 2}x{patch + 2} pixels: give the noise level (--sigma)"
        )
    tau0 = _flat_patch_threshold(patch, confidence)
    try:
        sigmas = [
            _pca(channels[..., c], observed, patch, tau0, iterations)
            for c in range(channels.shape[2])
        ]
    except _TooFewPatches:
        if observed is None:
            raise
        sigmas = [_scattered(channels[..., c], observed) for c in range(channels.shape[2])]
    return float(np.mean(sigmas))


class _TooFewPatches(ValueError):
    pass


def _check_mask(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"the mask is {mask.shape} but the image is {shape}; give one per pixel")
    return mask != 0


def _unclipped(channel: np.ndarray) -> np.ndarray:
    """The pixels that are not at the channel's minimum or maximum: clipping (to 0 and 255 in
    an 8-bit image) lowers the noise there."""
    return (channel > channel.min()) & (channel < channel.max())


def _flat_patch_threshold(patch: int, confidence: float) -> float:
    """``F^-1(confidence)`` for ``sigma = 1``: the gradient energy a flat ``patch x patch``
    patch stays below with that probability. The energy ``n^T D^T D n`` of white noise ``n``
    is close to Gamma-distributed with shape ``r / 2`` and scale ``2 tr(D^T D) / r``, ``D`` the
    central differences inside the patch (horizontal and vertical), ``r`` the rank of
    ``D^T D``."""
    from scipy.stats import gamma

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    d = np.concatenate([_differences(patch, axis) for axis in (0, 1)])  # (2 p (p - 2), p^2)
    dtd = d.T @ d
    rank = np.linalg.matrix_rank(dtd)
    return float(gamma.ppf(confidence, rank / 2, scale=2 * np.trace(dtd) / rank))


def _differences(patch: int, axis: int) -> np.ndarray:
    """Central differences ``(x[i + 1] - x[i - 1]) / 2`` along ``axis`` inside a patch, as a
    matrix acting on the flattened patch."""
    index = np.arange(patch * patch).reshape(patch, patch)
    ahead = np.take(index, np.arange(2, patch), axis=axis).ravel()
    behind = np.take(index, np.arange(0, patch - 2), axis=axis).ravel()
    d = np.zeros((ahead.size, patch * patch))
    d[np.arange(ahead.size), ahead] = 0.5
    d[np.arange(ahead.size), behind] = -0.5
    return d


def _pca(
    image: np.ndarray, observed: np.ndarray | None, patch: int, tau0: float, iterations: int
) -> float:
    h, w = image.shape
    step = max(1, math.ceil(math.sqrt((h - patch + 1) * (w - patch + 1) / MAX_PATCHES)))
    grid = (slice(None, None, step), slice(None, None, step))
    windows = sliding_window_view(image, (patch, patch))[grid]  # (h', w', p, p)
    gx = (image[:, 2:] - image[:, :-2]) / 2
    gy = (image[2:, :] - image[:-2, :]) / 2
    energy = (
        sliding_window_view(gx**2, (patch, patch - 2))[grid].sum(axis=(-1, -2))
        + sliding_window_view(gy**2, (patch - 2, patch))[grid].sum(axis=(-1, -2))
    ).ravel()  # (N,) the gradient energy tr(G^T G) of each patch
    patches = windows.reshape(-1, patch * patch)  # (N, p^2)
    least = PATCHES_PER_DIMENSION * patch * patch
    whole = np.ones(len(patches), bool) if observed is None else _whole(observed, patch, grid)
    unclipped = whole & _whole(_unclipped(image), patch, grid)
    if unclipped.sum() >= least:  # else clipping is everywhere; keep it rather than fail
        whole = unclipped
    patches, energy = patches[whole], energy[whole]
    if len(patches) < least:
        raise _TooFewPatches(
            f"only {len(patches)} fully observed {patch}x{patch} patches; estimating the noise "
            f"level needs {least}: give the noise level (--sigma)"
        )
    variance = _noise_variance(patches)
    for _ in range(iterations - 1):
        weak = energy < variance * tau0
        if weak.sum() < least:
            break
        patches, energy = patches[weak], energy[weak]
        variance = _noise_variance(patches)
    return math.sqrt(max(variance, 0.0))


def _scattered(image: np.ndarray, observed: np.ndarray) -> float:
    """The noise level of ``image`` from its scattered observed pixels (boolean ``(H, W)``):
    local plane-fit residuals, their flattest 7x7 windows taken as noise (module docstring)."""
    from scipy.ndimage import correlate
    from scipy.optimize import brentq
    from scipy.stats import gamma

    if observed.sum() < LEAST_SCATTERED_PIXELS:  # before the windows grow to fit them
        raise ValueError(
            f"only {observed.sum()} observed pixel(s); estimating the noise level from scattered "
            f"pixels needs at least {LEAST_SCATTERED_PIXELS}: give the noise level (--sigma)"
        )
    unclipped = observed & _unclipped(image)
    if unclipped.sum() >= LEAST_SCATTERED_PIXELS:
        observed = unclipped
    residual, fitted = _plane_residuals(image, observed)  # (H, W) float, bool
    window = np.ones((7, 7))
    fits = correlate(fitted.astype(float), window, mode="constant")  # (H, W) k per window
    energy = correlate(residual**2, window, mode="constant") / np.maximum(fits, 1)
    usable = fitted & (fits >= 8)
    if usable.sum() < LEAST_SCATTERED_PIXELS:
        raise ValueError(
            f"only {usable.sum()} observed pixels have enough observed neighbours to estimate "
            f"the noise level from (at least {LEAST_SCATTERED_PIXELS}): give the noise level "
            "(--sigma)"
        )
    energy, fits = energy[usable], fits[usable].astype(int)
    cut = float(np.quantile(energy, FLATTEST_FRACTION))
    if cut <= 0:
        return 0.0
    counts = np.bincount(fits)
    ks = np.nonzero(counts)[0]
    weights = counts[ks] / counts.sum()

    def below_cut(variance: float) -> float:
        """The fraction of flat windows below the cut at this noise variance, minus 3 %."""
        flat = gamma.cdf(cut / variance, ks / 2, scale=2 / ks)
        return float(weights @ flat) - FLATTEST_FRACTION

    return math.sqrt(brentq(below_cut, cut * 1e-3, cut * 1e3))


def _plane_residuals(image: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each observed pixel minus the least-squares plane ``a + b dx + c dy`` through the
    observed pixels of the window around it (itself left out), over ``sqrt(1 + h)``, ``h =
    (G^-1)_00`` the leverage of ``a``, ``G`` the fit's Gram matrix: white noise of ``sigma``
    gives residuals of variance ``sigma^2`` on a planar image. Also whether each pixel got a
    fit (observed, 6 or more neighbours, leverage below 1/2)."""
    from scipy.ndimage import correlate

    keep = observed.mean()
    radius = max(1, math.ceil((math.sqrt(SCATTERED_NEIGHBOURS / max(keep, 1e-6)) - 1) / 2))
    offsets = np.arange(-radius, radius + 1, dtype=float)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    neighbours = np.ones_like(dx)
    neighbours[radius, radius] = 0
    basis = [neighbours, dx * neighbours, dy * neighbours]  # 1, dx, dy without the centre
    w = observed.astype(float)
    gram = np.empty((*image.shape, 3, 3))  # (H, W, 3, 3)
    for i in range(3):
        for j in range(i, 3):
            gram[..., i, j] = gram[..., j, i] = correlate(w, basis[i] * basis[j], mode="constant")
    moments = np.stack([correlate(w * image, b, mode="constant") for b in basis], -1)  # (H, W, 3)
    fitted = observed & (gram[..., 0, 0] >= 6)
    inverse = np.linalg.inv(gram[fitted] + 1e-9 * np.eye(3))  # (N, 3, 3)
    intercept = np.einsum("nj,nj->n", inverse[:, 0], moments[fitted])  # (N,) a = (G^-1 m)_0
    leverage = inverse[:, 0, 0]
    residual = np.zeros(image.shape)
    residual[fitted] = (image[fitted] - intercept) / np.sqrt(1 + leverage)
    fitted[fitted] = leverage < 0.5
    residual[~fitted] = 0
    return residual, fitted


def _whole(pixels: np.ndarray, patch: int, grid: tuple[slice, slice]) -> np.ndarray:
    """``(N,)``: whether each patch of the grid lies wholly on ``pixels`` (boolean ``(H, W)``)."""
    return sliding_window_view(pixels, (patch, patch))[grid].all(axis=(-1, -2)).ravel()


def _noise_variance(patches: np.ndarray) -> float:
    """The smallest eigenvalue of the patches' covariance over its Marchenko-Pastur bias."""
    n, d = patches.shape
    centred = patches - patches.mean(axis=0)
    covariance = centred.T @ centred / (n - 1)  # (p^2, p^2)
    return float(np.linalg.eigvalsh(covariance)[0]) / (1 - math.sqrt(d / n)) ** 2


def _wavelet(channels: np.ndarray, observed: np.ndarray | None) -> float:
    from skimage.restoration import estimate_sigma

    if observed is not None:
        raise ValueError("the wavelet method takes no mask; use method 'pca' for masked images")
    return float(np.mean(estimate_sigma(channels, channel_axis=-1)))
