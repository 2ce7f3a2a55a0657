"""Image-quality metrics as the published tables compute them.

Arrays are numpy ``(H, W)`` or ``(H, W, C)`` images (the :mod:`rimkit.io` layout); a
``(1, C, H, W)`` tensor is accepted too. Everything is computed in float64.

* :func:`psnr`: ``10 log10(peak^2 / MSE)`` with the peak stated: ``1.0`` for data in
  ``[0, 1]``, ``255`` for 8-bit values. The denoising and super-resolution protocols first clip
  the output to ``[0, 1]`` and round it to 8 bits (:func:`quantize`), so PSNR on the 8-bit
  grid with peak 1 equals PSNR of the ``uint8`` images with peak 255.
* :func:`ssim`: Wang et al. (2004) / MATLAB ``ssim_index``: an 11 x 11 Gaussian window with
  sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``, population covariances, averaged over the pixels
  whose window lies inside the image (and over channels). Equal to
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=...)``; computed by :func:`rimkit.models.ssim`.
* :func:`rgb_to_y`: the Y channel of MATLAB ``rgb2ycbcr``,
  ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for RGB in ``[0, 1]``, returned divided by
  255 (white -> 235/255, black -> 16/255), :func:`shave` and :func:`crop_to_multiple`.
* :func:`nmse` and :func:`mri_metrics`: the fastMRI conventions on magnitude images.

Example:
    >>> import numpy as np
    >>> x = np.full((16, 16), 0.5)
    >>> round(psnr(x + 0.01, x), 2), ssim(x, x)
    (40.0, 1.0)
    >>> round(float(rgb_to_y(np.ones((1, 1, 3)))[0, 0] * 255), 3)
    235.0
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from rimkit import color
from rimkit.io import to_uint8
from rimkit.models.losses import ssim as _ssim_torch

__all__ = [
    "as_image",
    "crop_to_multiple",
    "mri_metrics",
    "nmse",
    "psnr",
    "quantize",
    "rgb_to_y",
    "shave",
    "ssim",
    "to_8bit",
    "y_channel",
]


def as_image(x: np.ndarray | Tensor) -> np.ndarray:
    """A float64 ``(H, W)`` or ``(H, W, C)`` array from an array or a ``(1, C, H, W)`` tensor."""
    if isinstance(x, Tensor):
        if x.ndim != 4 or x.shape[0] != 1:
            raise ValueError(f"expected one image tensor (1, C, H, W), got {tuple(x.shape)}")
        chw = x[0].detach().cpu().to(torch.float64).numpy()
        return chw[0] if chw.shape[0] == 1 else np.moveaxis(chw, 0, -1)
    array = np.asarray(x, dtype=np.float64)
    if array.ndim not in (2, 3):
        raise ValueError(f"expected an image (H, W) or (H, W, C), got shape {array.shape}")
    return array


def _pair(estimate: np.ndarray | Tensor, reference: np.ndarray | Tensor) -> tuple:
    a, b = as_image(estimate), as_image(reference)
    if a.shape != b.shape:
        raise ValueError(f"the images differ in shape: {a.shape} and {b.shape}")
    return a, b


def quantize(x: np.ndarray | Tensor) -> np.ndarray:
    """Clip to ``[0, 1]`` and round to the 8-bit grid ``k / 255`` (float64).

    Example:
        >>> quantize(np.array([[-0.2, 0.5, 1.3]])).tolist() == [[0.0, 128 / 255, 1.0]]
        True
    """
    return to_8bit(x) / 255.0


def to_8bit(x: np.ndarray | Tensor) -> np.ndarray:
    """Clip to ``[0, 1]`` and round to ``uint8`` (what MATLAB's ``im2uint8`` does).

    Example:
        >>> to_8bit(np.array([[0.0, 0.5, 2.0]])).tolist()
        [[0, 128, 255]]
    """
    return to_uint8(as_image(x))


def psnr(estimate: np.ndarray | Tensor, reference: np.ndarray | Tensor, peak: float = 1.0) -> float:
    """``10 log10(peak^2 / mean((estimate - reference)^2))``; ``inf`` for identical images.

    ``peak`` is the data range: 1.0 for images in ``[0, 1]``, 255 for 8-bit values.

    Example:
        >>> round(psnr(np.full((4, 4), 100.0), np.full((4, 4), 110.0), peak=255), 4)
        28.1308
    """
    a, b = _pair(estimate, reference)
    if not peak > 0:
        raise ValueError(f"the PSNR peak must be > 0, got {peak}")
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def psnr_per_sample(estimate: Tensor, target: Tensor) -> Tensor:
    """PSNR (peak 1) per sample of a batch ``(B, ...)``, the estimate clipped to ``[0, 1]``;
    shape ``(B,)``: ``PSNR = -10 log10(mean((clip(x_hat, 0, 1) - x)^2))``, the error floored
    at ``1e-12`` (an exact match scores 120 dB, not infinity). Training's validation and the
    baselines' tuning score with it.

    Example:
        >>> psnr_per_sample(torch.full((1, 1, 4, 4), 0.6), torch.full((1, 1, 4, 4), 0.5)).round()
        tensor([20.])
    """
    if estimate.shape != target.shape:
        raise ValueError(
            f"the estimate is {tuple(estimate.shape)} but the target {tuple(target.shape)}"
        )
    err = (estimate.clamp(0, 1) - target).pow(2).flatten(1).mean(dim=1)
    return -10 * torch.log10(err.clamp_min(1e-12))


def _nchw(x: np.ndarray) -> Tensor:
    chw = x[None] if x.ndim == 2 else np.moveaxis(x, -1, 0)
    return torch.from_numpy(np.ascontiguousarray(chw))[None]  # (1, C, H, W) float64


def ssim(
    estimate: np.ndarray | Tensor,
    reference: np.ndarray | Tensor,
    data_range: float = 1.0,
    *,
    gaussian: bool = True,
    window_size: int | None = None,
) -> float:
    """Mean SSIM of two images (channels averaged).

    ``gaussian=True`` (default): Wang et al. / MATLAB, an 11 x 11 Gaussian window with sigma
    1.5 and population covariances. ``gaussian=False``: scikit-image's default, a uniform
    ``window_size`` window (default 7) with sample covariances, which fastMRI uses.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.random((32, 32))
        >>> ssim(x, x), round(ssim(x, 0.5 * x), 3)
        (1.0, 0.642)
    """
    a, b = _pair(estimate, reference)
    if not data_range > 0:
        raise ValueError(f"the SSIM data range must be > 0, got {data_range}")
    if gaussian:
        size = 11 if window_size is None else window_size
        return float(_ssim_torch(_nchw(a), _nchw(b), data_range, window_size=size)[0])
    return _ssim_uniform(_nchw(a), _nchw(b), data_range, 7 if window_size is None else window_size)


def _ssim_uniform(x: Tensor, y: Tensor, data_range: float, size: int) -> float:
    """scikit-image's default SSIM: uniform window, sample covariance, valid pixels only."""
    if min(x.shape[-2:]) < size:
        raise ValueError(f"ssim needs images of at least {size}x{size} pixels")
    c = x.shape[1]
    stats = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (1, 5C, H, W)
    mx, my, mxx, myy, mxy = F.avg_pool2d(stats, size, stride=1).chunk(5, dim=1)
    n = size * size
    norm = n / (n - 1)
    vx, vy, cxy = norm * (mxx - mx * mx), norm * (myy - my * my), norm * (mxy - mx * my)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.reshape(c, -1).mean())


def rgb_to_y(rgb: np.ndarray | Tensor) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` luma of RGB in ``[0, 1]``, divided by 255: ``[16, 235] / 255``.

    ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255``; not rounded (MATLAB rounds only
    for ``uint8`` input: apply :func:`quantize` for that).

    Example:
        >>> rgb = np.zeros((1, 2, 3)); rgb[0, 1] = 1.0
        >>> (rgb_to_y(rgb) * 255).round(6).tolist()
        [[16.0, 235.0]]
    """
    image = as_image(rgb)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"rgb_to_y needs an RGB image (H, W, 3), got shape {image.shape}")
    return color.rgb_to_y(image)


def y_channel(image: np.ndarray | Tensor) -> np.ndarray:
    """The image itself when gray, else its :func:`rgb_to_y` luma (as SR evaluations do).

    Example:
        >>> y_channel(np.ones((2, 2, 3))).round(4).tolist()[0]  # white: Y = 235 / 255
        [0.9216, 0.9216]
    """
    array = as_image(image)
    return array if array.ndim == 2 else rgb_to_y(array)


def shave(image: np.ndarray, border: int) -> np.ndarray:
    """Remove ``border`` pixels from each of the four sides of ``(H, W[, C])``.

    Example:
        >>> shave(np.zeros((10, 12)), 3).shape
        (4, 6)
    """
    if isinstance(border, bool) or not isinstance(border, int) or border < 0:
        raise ValueError(f"border must be an int >= 0, got {border!r}")
    if border == 0:
        return image
    h, w = image.shape[:2]
    if h <= 2 * border or w <= 2 * border:
        raise ValueError(f"cannot shave {border} pixels from each side of a {h}x{w} image")
    return image[border : h - border, border : w - border]


def crop_to_multiple(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop ``(H, W[, C])`` at the bottom and right to a multiple of ``scale`` (MATLAB
    ``modcrop``).

    Example:
        >>> crop_to_multiple(np.zeros((10, 11, 3)), 3).shape
        (9, 9, 3)
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an int >= 1, got {scale!r}")
    h, w = image.shape[0] - image.shape[0] % scale, image.shape[1] - image.shape[1] % scale
    if h == 0 or w == 0:
        raise ValueError(
            f"the image is {image.shape[0]}x{image.shape[1]} pixels, too small for scale {scale}"
        )
    return image[:h, :w]


def _magnitude(x: np.ndarray | Tensor) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu()
        if x.ndim == 4 and x.shape[0] == 1:
            x = x[0, 0] if x.shape[1] == 1 else x[0]
        x = x.numpy()
    return np.abs(np.asarray(x)).astype(np.float64)


def nmse(estimate: np.ndarray | Tensor, reference: np.ndarray | Tensor) -> float:
    """fastMRI's normalised MSE on magnitudes, ``||ref - est||^2 / ||ref||^2``.

    Example:
        >>> nmse(np.array([1.0, 1.0]), np.array([1.0, 0.0]))
        1.0
    """
    est, ref = _magnitude(estimate), _magnitude(reference)
    if est.shape != ref.shape:
        raise ValueError(f"the images differ in shape: {est.shape} and {ref.shape}")
    denominator = float(np.sum(ref**2))
    if denominator == 0:
        raise ValueError("the reference image is zero; NMSE is undefined")
    return float(np.sum((ref - est) ** 2)) / denominator


def mri_metrics(estimate: np.ndarray | Tensor, reference: np.ndarray | Tensor) -> dict:
    """PSNR, SSIM and NMSE of magnitude images as fastMRI's evaluation computes them.

    Magnitudes of both (complex or real) images; PSNR and SSIM with ``data_range`` the
    maximum of the reference magnitude; SSIM with scikit-image's default window (7 x 7
    uniform, sample covariance), as ``fastmri.evaluate.ssim`` calls it, per 2-D image.

    Example:
        >>> ref = np.outer(np.hanning(16), np.hanning(16))
        >>> m = mri_metrics(ref * 1.01j, ref)  # complex estimate: its magnitude counts
        >>> sorted(m), round(m["nmse"], 6)
        (['nmse', 'psnr', 'ssim'], 0.0001)
    """
    est, ref = _magnitude(estimate), _magnitude(reference)
    if est.shape != ref.shape or ref.ndim != 2:
        raise ValueError(f"expected two 2-D images of one shape, got {est.shape} and {ref.shape}")
    peak = float(ref.max())
    if not peak > 0:
        raise ValueError("the reference magnitude is zero everywhere")
    return {
        "psnr": psnr(est, ref, peak),
        "ssim": ssim(est, ref, peak, gaussian=False),
        "nmse": nmse(est, ref),
    }
