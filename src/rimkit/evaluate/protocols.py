"""Evaluation protocols: for one image, the ``(truth, operator, y, sigma)`` a table is made of.

Each protocol is a small frozen dataclass whose :meth:`cases` turns an image (``(H, W)`` or
``(H, W, C)`` in ``[0, 1]``) and its index in the sorted evaluation set into one or more
:class:`Case` objects, reproducibly: every random draw comes from a generator seeded with
``seed + index``. :meth:`Case.score` measures an estimate as the published tables do.

=========================  ================================================================
protocol                   what
=========================  ================================================================
:class:`DenoiseProtocol`   DnCNN / FFDNet / DRUNet: ``y = x + sigma/255 N(0, 1)`` in float, no
                           clipping of ``y``; ``quantize=True``: the RIM paper's column, ``y``
                           clipped and rounded to 8 bits
:class:`SuperResolution    HR cropped to a multiple of ``s``, LR = MATLAB ``imresize(HR, 1/s,
Protocol`                  'bicubic')`` rounded to 8 bits; RGB images: the Y channel of
                           MATLAB ``rgb2ycbcr`` (rounded, as for ``uint8``) is reconstructed
                           and measured, after shaving ``s`` pixels
:class:`InpaintProtocol`   a random pixel mask with a fixed missing fraction
:class:`DeblurProtocol`    a named kernel (``gaussian:1.6``, ``motion:15:45``), circular
                           convolution of the whole image, then noise (IRCNN / DPIR)
:class:`ProjectionProtocol` 32 x 32 patches at seeded positions (constant ones drawn again),
                           one random projection each
:class:`LensingProtocol`   patches as background sources, each behind its own seeded SIE lens
                           (:class:`rimkit.tasks.LensingTask`) of a fixed Einstein radius
:class:`MRIProtocol`       single-coil Cartesian MRI of the whole (magnitude) image: seeded
                           variable-density mask at a fixed acceleration; scored on ``|x|``
=========================  ================================================================

Scores: the estimate is clipped to ``[0, 1]`` and rounded to 8 bits, then PSNR (peak 1 on
``[0, 1]``, the same number as peak 255 on ``uint8``) and SSIM (11 x 11 Gaussian window,
:func:`rimkit.evaluate.metrics.ssim`) against the truth, with ``shave`` border pixels removed.
MRI estimates are complex images as two channels; their magnitude is what is scored.

Example:
    >>> import numpy as np
    >>> image = np.full((24, 24), 128 / 255)          # an 8-bit gray level
    >>> case = DenoiseProtocol(sigma=25, seed=0).cases(image, index=3, name="flat")[0]
    >>> case.setting, case.y.shape, round(case.sigma * 255, 6)
    ('sigma=25', torch.Size([1, 1, 24, 24]), 25.0)
    >>> case.score(case.truth)["psnr"]
    inf
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Protocol as TypingProtocol

import numpy as np
import torch
from torch import Tensor

from rimkit.evaluate.metrics import as_image, crop_to_multiple, psnr, quantize, rgb_to_y, shave
from rimkit.evaluate.metrics import ssim as ssim_metric
from rimkit.io import from_tensor, to_tensor
from rimkit.noise import GaussianNoise, quantize_8bit, simulate, warn_if_unit_scale
from rimkit.operators import (
    DEFAULT_KERNEL,
    MRI_MASKS,
    PROJECTION_KINDS,
    BicubicDownsample,
    Blur,
    Identity,
    Inpainting,
    LinearOperator,
    kernel_from_spec,
    magnitude,
    random_mask,
    random_projection,
)
from rimkit.reconstruct import initial_estimate
from rimkit.solvers.selection import OWN_TASK

__all__ = [
    "Case",
    "DeblurProtocol",
    "DenoiseProtocol",
    "InpaintProtocol",
    "LensingProtocol",
    "MRIProtocol",
    "OperatorProtocol",
    "ProjectionProtocol",
    "Protocol",
    "SuperResolutionProtocol",
    "add_noise",
    "psnr_curve",
    "score",
    "sr_measurement",
]

SSIM_WINDOW = 11
FLAT_REDRAWS = 20
"""How often a constant patch is drawn again before it is kept (an image may be flat)."""


def score(estimate: np.ndarray | Tensor, truth: np.ndarray | Tensor, border: int = 0) -> dict:
    """PSNR and SSIM of ``estimate`` clipped and rounded to 8 bits, ``border`` pixels shaved.

    SSIM is NaN when the shaved image is smaller than its 11 x 11 window.

    Example:
        >>> x = np.linspace(0, 1, 400).reshape(20, 20)
        >>> s = score(x + 0.3, x, border=2)
        >>> round(s["psnr"], 2) < 20, 0 < s["ssim"] < 1
        (True, True)
    """
    est = shave(quantize(estimate), border)
    ref = shave(as_image(truth), border)
    value = psnr(est, ref, 1.0)
    small = min(ref.shape[:2]) < SSIM_WINDOW
    return {"psnr": value, "ssim": math.nan if small else ssim_metric(est, ref, 1.0)}


@dataclass
class Case:
    """One evaluation item: reconstruct ``truth`` from ``y = A truth + n``.

    ``truth`` and ``y`` are float64 tensors ``(1, C, H, W)`` (``y`` as the operator gives
    it), ``sigma`` the noise standard deviation in data units (``[0, 1]`` scale), ``shave``
    the border left out of the scores, ``display`` the measurement drawn at the size of
    ``truth`` for figures and ``task`` the protocol's task (denoise, sr, inpaint, projection).
    """

    image: str
    setting: str
    truth: Tensor
    operator: LinearOperator
    y: Tensor
    sigma: float
    shave: int = 0
    display: np.ndarray | None = field(default=None, repr=False)
    task: str = ""

    def view(self, estimate: Tensor) -> Tensor:
        """What is scored and shown of an estimate ``(1, C, H, W)``: itself, or for MRI (a
        complex image as real and imaginary channels) its magnitude ``(1, 1, H, W)``."""
        if self.task != "mri":
            return estimate
        return magnitude(estimate)

    def score(self, estimate: np.ndarray | Tensor) -> dict:
        """PSNR and SSIM of an estimate of ``truth`` under this protocol (see :func:`score`):
        a tensor ``(1, C, H, W)`` or an array ``(H, W)`` / ``(H, W, C)``."""
        return score(self.view(_as_estimate(estimate)), self.view(self.truth), self.shave)

    def psnr(self, estimate: np.ndarray | Tensor) -> float:
        """PSNR only (cheaper): for convergence curves."""
        est = shave(quantize(self.view(_as_estimate(estimate))), self.shave)
        return psnr(est, shave(as_image(self.view(self.truth)), self.shave), 1.0)


def _as_estimate(estimate: np.ndarray | Tensor) -> Tensor:
    """A tensor estimate as it is; an array ``(H, W)`` / ``(H, W, C)`` as ``(1, C, H, W)``."""
    if isinstance(estimate, Tensor):
        return estimate
    array = np.asarray(estimate)
    if array.ndim not in (2, 3):
        raise ValueError(
            f"an estimate is a tensor (1, C, H, W) or an array (H, W) / (H, W, C), got an array "
            f"of shape {array.shape}"
        )
    return to_tensor(array, torch.float64)


def psnr_curve(estimates: list[Tensor], case: Case) -> list[float]:
    """PSNR of every step ``x_1 .. x_T`` of a trajectory or an iterative baseline."""
    return [case.psnr(x) for x in estimates]


class Protocol(TypingProtocol):
    """What the runner needs of a protocol."""

    task: str

    @property
    def setting(self) -> str: ...

    def cases(self, image: np.ndarray, index: int, name: str) -> list[Case]: ...

    def describe(self) -> dict: ...


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")


def _check_sigma(sigma: float) -> None:
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0 on the 0-255 scale, got {sigma}")
    warn_if_unit_scale(sigma, "a protocol", stacklevel=5)  # the line that made the protocol


def _noise_suffix(sigma: float) -> str:
    """``",sigma=S"`` for a setting's label where there is noise, else nothing."""
    return f",sigma={sigma:g}" if sigma else ""


def _display(x: Tensor) -> np.ndarray:
    return np.clip(from_tensor(x), 0.0, 1.0)


def add_noise(x: Tensor, sigma: float, seed: int, quantize: bool = False) -> Tensor:
    """The DnCNN measurement ``y = x + sigma/255 N(0, 1)`` (float64, not clipped), drawn from
    a generator seeded with ``seed``; ``quantize=True`` clips and rounds ``y`` to 8 bits.

    Example:
        >>> x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
        >>> bool(torch.equal(add_noise(x, 25, seed=1), add_noise(x, 25, seed=1)))
        True
        >>> bool((add_noise(x, 25, seed=1) < 0).any())    # no clipping
        True
    """
    _check_sigma(sigma)
    return _noisy(x, sigma, _generator(seed), quantize)


def _noisy(x: Tensor, sigma: float, gen: torch.Generator, quantize: bool) -> Tensor:
    noise = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    y = x.to(torch.float64) + sigma / 255.0 * noise
    return quantize_8bit(y) if quantize else y


class PatchedImages:
    """What the protocols that may score seeded patches of each image share: the check that
    an image holds a patch, made on every image before any work
    (:func:`rimkit.evaluate.runner.evaluate`)."""

    def check_image(self, image: np.ndarray, name: str) -> None:
        """Refuse an image smaller than the protocol's patches (``self.patch``)."""
        patch = self.patch  # type: ignore[attr-defined]
        h, w = np.shape(image)[:2]
        if patch is not None and (h < patch or w < patch):
            raise ValueError(
                f"image {name!r} ({h}x{w}) is smaller than the {patch}x{patch} patches; leave it "
                "out of the folder or give smaller patches"
            )


@dataclass(frozen=True)
class DenoiseProtocol(PatchedImages):
    """Gaussian denoising at ``sigma`` (0-255 scale), the DnCNN protocol.

    ``y = x + sigma/255 N(0, 1)`` in float with the seed ``seed + index``, not clipped;
    ``quantize=True`` is the RIM paper's variant, ``y`` clipped and rounded to 8 bits.
    ``patch`` (e.g. 32) evaluates ``patches`` seeded patches per image instead of the whole
    image (positions, then each patch's noise, drawn from the seed ``seed + index``), as in
    the RIM paper's transfer experiment.

    Example:
        >>> case = DenoiseProtocol(25, quantize=True).cases(np.zeros((12, 12)), 0, "black")[0]
        >>> case.setting, bool(torch.equal(case.y * 255, (case.y * 255).round()))
        ('sigma=25,q8', True)
        >>> [c.y.shape[-1] for c in DenoiseProtocol(25, patch=8, patches=3).cases(
        ...     np.zeros((12, 12)), 0, "black")]
        [8, 8, 8]
    """

    sigma: float
    quantize: bool = False
    seed: int = 0
    patch: int | None = None
    patches: int = 1
    task = "denoise"

    def __post_init__(self) -> None:
        _check_sigma(self.sigma)
        _check_seed(self.seed)
        _check_patching(self.patch, self.patches)

    @property
    def setting(self) -> str:
        return f"sigma={self.sigma:g}" + (",q8" if self.quantize else "")

    def describe(self) -> dict:
        return {"protocol": "denoise", **asdict(self)}

    def cases(self, image: np.ndarray, index: int, name: str) -> list[Case]:
        gen = _generator(self.seed + index)
        out = []
        for label, crop in _crops(as_image(image), name, self.patch, self.patches, gen):
            x = to_tensor(crop, torch.float64)  # (1, C, H, W)
            y = _noisy(x, self.sigma, gen, self.quantize)
            sigma = self.sigma / 255.0
            out.append(
                Case(label, self.setting, x, Identity(), y, sigma, 0, _display(y), "denoise")
            )
        return out


def sr_measurement(image: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The super-resolution pair ``(truth, lr)`` of the published protocol, as arrays.

    HR cropped to a multiple of ``scale``; LR = MATLAB ``imresize(im2double(HR), 1/scale,
    'bicubic')`` rounded to 8 bits. For RGB, both become the Y channel of ``rgb2ycbcr`` rounded
    to 8 bits (divided by 255); gray images stay as they are.

    Two near variants exist. MATLAB's ``imresize`` of the ``uint8`` HR also rounds between its
    row and column passes: 11.9 / 9.8 / 8.6 % of B100's LR Y pixels differ (mostly by one
    level) at x2 / x3 / x4, and bicubic's B100 PSNR moves by at most 0.002 dB. SRCNN's and
    A+'s code take Y of the HR first and down-sample it in float: bicubic's B100 PSNR is
    0.004-0.009 dB higher (29.55 / 27.20 / 25.95 against 29.54 / 27.19 / 25.95 dB), nearer the
    published 29.55 / 27.20 / 25.96.

    Example:
        >>> truth, lr = sr_measurement(np.ones((10, 11, 3)), 3)
        >>> truth.shape, lr.shape, round(float(lr[0, 0]) * 255)
        ((9, 9), (3, 3), 235)
    """
    hr = crop_to_multiple(as_image(image), scale)
    op = BicubicDownsample(scale, in_size=(hr.shape[0], hr.shape[1]))
    lr = quantize(from_tensor(op(to_tensor(hr, torch.float64))))
    if hr.ndim == 3:
        if hr.shape[2] != 3:
            raise ValueError(
                f"super-resolution takes gray or RGB images, got {hr.shape[2]} channels"
            )
        return quantize(rgb_to_y(hr)), quantize(rgb_to_y(lr))
    return hr, lr


@dataclass(frozen=True)
class SuperResolutionProtocol:
    """Super-resolution by ``scale`` on the Y channel, the protocol of the RIM paper's table
    (Huang et al.'s; SRCNN's and A+'s differ in how LR is made, see :func:`sr_measurement`).

    The model reconstructs the Y channel (gray images: the image) of the HR image from the
    8-bit LR Y channel (:func:`sr_measurement`) with ``BicubicDownsample(scale)``; scores on
    Y after shaving ``scale`` pixels from every border. ``sigma`` is 0 (8-bit rounding only).

    Example:
        >>> case = SuperResolutionProtocol(2).cases(np.random.rand(16, 17, 3), 0, "img")[0]
        >>> case.truth.shape, case.y.shape, case.shave
        (torch.Size([1, 1, 16, 16]), torch.Size([1, 1, 8, 8]), 2)
    """

    scale: int
    seed: int = 0
    task = "sr"

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or self.scale < 2:
            raise ValueError(f"scale must be an int >= 2, got {self.scale!r}")
        _check_seed(self.seed)

    @property
    def setting(self) -> str:
        return f"x{self.scale}"

    def describe(self) -> dict:
        return {"protocol": "sr", **asdict(self)}

    def check_image(self, image: np.ndarray, name: str) -> None:
        """Refuse an image too small to down-sample by the scale (after its crop)."""
        h, w = (n - n % self.scale for n in np.shape(image)[:2])
        if min(h, w) <= 2 * self.scale:
            raise ValueError(
                f"image {name!r} ({h}x{w} after the crop to a multiple of {self.scale}) is too "
                f"small for scale {self.scale}: its sides must exceed {2 * self.scale} pixels; "
                "leave it out of the folder"
            )

    def cases(self, image: np.ndarray, index: int, name: str) -> list[Case]:
        self.check_image(image, name)
        truth, lr = sr_measurement(image, self.scale)
        h, w = truth.shape[:2]
        op = BicubicDownsample(self.scale, in_size=(h, w))
        shown = np.repeat(np.repeat(lr, self.scale, axis=0), self.scale, axis=1)[:h, :w]
        return [
            Case(
                name,
                self.setting,
                to_tensor(truth, torch.float64),
                op,
                to_tensor(lr, torch.float64),
                0.0,
                self.scale,
                shown,
                "sr",
            )
        ]


def _patches(
    image: np.ndarray, patch: int, count: int, gen: torch.Generator
) -> list[tuple[int, int, np.ndarray]]:
    """``count`` patches ``patch x patch`` at positions drawn uniformly from ``gen``.

    A constant patch (every pixel equal, e.g. saturated sky) is drawn again, up to
    :data:`FLAT_REDRAWS` times: a method that keeps constants recovers it exactly, and its
    infinite PSNR would leave the mean over patches infinite.
    """
    h, w = image.shape[:2]
    if h < patch or w < patch:
        raise ValueError(f"the image is {h}x{w}, smaller than the {patch}x{patch} patches")
    out = []
    for _ in range(count):
        for _ in range(FLAT_REDRAWS + 1):
            top = int(torch.randint(h - patch + 1, (1,), generator=gen))
            left = int(torch.randint(w - patch + 1, (1,), generator=gen))
            crop = image[top : top + patch, left : left + patch]
            if crop.max() > crop.min():
                break
        out.append((top, left, crop))
    return out


def _crops(
    image: np.ndarray, name: str, patch: int | None, patches: int, gen: torch.Generator
) -> list[tuple[str, np.ndarray]]:
    """The whole image (``patch=None``) or its seeded patches, each with its case label."""
    if patch is None:
        return [(name, image)]
    return [
        (f"{name}@{top},{left}", crop) for top, left, crop in _patches(image, patch, patches, gen)
    ]


def _check_patching(patch: int | None, patches: int) -> None:
    if patch is not None and (isinstance(patch, bool) or not isinstance(patch, int) or patch < 1):
        raise ValueError(f"patch must be a positive int or None, got {patch!r}")
    if isinstance(patches, bool) or not isinstance(patches, int) or patches < 1:
        raise ValueError(f"patches must be an int >= 1, got {patches!r}")


@dataclass(frozen=True)
class InpaintProtocol(PatchedImages):
    """Inpainting: ``round(fraction H W)`` pixels missing (same in every channel), drawn with
    the seed ``seed + index``, plus noise of ``sigma`` (0-255 scale) on the observed pixels.

    ``patch`` (e.g. 32) evaluates ``patches`` seeded patches per image instead of the whole
    image, as in the RIM paper's transfer experiment.

    Example:
        >>> case = InpaintProtocol(0.75).cases(np.ones((8, 8)), 0, "white")[0]
        >>> int((case.y == 0).sum())
        48
    """

    fraction: float
    sigma: float = 0.0
    seed: int = 0
    patch: int | None = None
    patches: int = 1
    task = "inpaint"

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.fraction) < 1.0:
            raise ValueError(f"the missing fraction must lie in [0, 1), got {self.fraction}")
        _check_sigma(self.sigma)
        _check_seed(self.seed)
        _check_patching(self.patch, self.patches)

    @property
    def setting(self) -> str:
        return f"missing={self.fraction:g}{_noise_suffix(self.sigma)}"

    def describe(self) -> dict:
        return {"protocol": "inpaint", **asdict(self)}

    def cases(self, image: np.ndarray, index: int, name: str) -> list[Case]:
        gen = _generator(self.seed + index)
        out = []
        for label, crop in _crops(as_image(image), name, self.patch, self.patches, gen):
            x = to_tensor(crop, torch.float64)  # (1, C, H, W)
            mask = random_mask((1, 1, *x.shape[-2:]), self.fraction, gen, torch.float64)
            op = Inpainting(mask)
            y = simulate(x, op, GaussianNoise(self.sigma / 255.0), gen) * mask
            sigma = self.sigma / 255.0
            out.append(Case(label, self.setting, x, op, y, sigma, 0, _display(y), "inpaint"))
        return out


@dataclass(frozen=True)
class DeblurProtocol:
    """Non-blind deblurring of the whole image: ``y = k * x + sigma/255 N(0, 1)`` with the
    kernel named by ``kernel`` (:func:`rimkit.operators.kernel_from_spec`, e.g.
    ``gaussian:1.6`` or ``motion:15:45``), the ``boundary`` convolution (``circular``: the
    images wrap around, as IRCNN and DPIR synthesise their blurred inputs; ``valid``: ``y`` is
    the part of ``k * x`` that sees no pixel outside ``x``, as a photo, and the scores cover
    that part only, the margins of ``x`` being shaved) and noise drawn with the seed ``seed +
    index``, in float, not clipped.

    Example:
        >>> case = DeblurProtocol("gaussian:1.6", 2.55).cases(np.full((16, 16), 0.5), 0, "g")[0]
        >>> case.setting, torch.allclose(case.operator(case.truth), case.truth)
        ('gaussian:1.6,sigma=2.55', True)
    """

    kernel: str = DEFAULT_KERNEL
    sigma: float = 2.55
    seed: int = 0
    boundary: str = "circular"
    task = "blur"

    def __post_init__(self) -> None:
        kernel_from_spec(self.kernel)
        Blur(torch.ones(1, 1), self.boundary)  # names an unknown boundary
        _check_sigma(self.sigma)
        _check_seed(self.seed)

    @property
    def setting(self) -> str:
        edge = "" if self.boundary == "circular" else f",{self.boundary}"
        return f"{self.kernel}{edge}{_noise_suffix(self.sigma)}"

    def describe(self) -> dict:
        return {"protocol": "blur", **asdict(self)}

    def check_image(self, image: np.ndarray, name: str) -> None:
        """Refuse an image smaller than the kernel."""
        kh, kw = kernel_from_spec(self.kernel).shape
        h, w = np.shape(image)[:2]
        if kh > h or kw > w:
            raise ValueError(
                f"image {name!r} ({h}x{w}) is smaller than the {kh}x{kw} kernel of {self.kernel}; "
                "leave it out of the folder"
            )

    def cases(self, image: np.ndarray, index: int, name: str) -> list[Case]:
        x = to_tensor(as_image(image), torch.float64)  # (1, C, H, W)
        op = Blur(kernel_from_spec(self.kernel).double(), self.boundary)
        y = simulate(x, op, GaussianNoise(self.sigma / 255.0), _generator(self.seed + index))
        margin = max(op.margins())  # valid: score y's field of view; else 0
        display = _display(initial_estimate(op, y))  # valid: y extended to the size of x
        return [Case(name, self.setting, x, op, y, self.sigma / 255.0, margin, display, "blur")]


@dataclass(frozen=True)
class ProjectionProtocol(PatchedImages):
    """Random projections (``kind`` in gaussian, bernoulli, fourier) of ``patch x patch``
    patches with ``m = ratio * n`` measurements and noise ``sigma`` (0-255 scale).

    ``patches`` patches per image at positions drawn from the seed ``seed + index``; each gets
    its own projection drawn from the same generator. ``display`` is ``clip(A^T y)``.

    Example:
        >>> p = ProjectionProtocol("fourier", 0.25, patches=2)
        >>> cases = p.cases(np.random.rand(40, 40), 0, "img")
        >>> len(cases), cases[0].setting, cases[0].y.shape
        (2, 'fourier,m/n=0.25', torch.Size([1, 512]))
    """

    kind: str
    ratio: float
    sigma: float = 0.0
    seed: int = 0
    patch: int = 32
    patches: int = 4
    task = "projection"

    def __post_init__(self) -> None:
        if self.kind not in PROJECTION_KINDS:
            raise ValueError(
                f"unknown projection {self.kind!r}; known: {', '.join(PROJECTION_KINDS)}"
            )
        if not 0.0 < float(self.ratio) <= 1.0:
            raise ValueError(f"ratio must lie in (0, 1], got {self.ratio}")
        _check_sigma(self.sigma)
        _check_seed(self.seed)
        _check_patching(self.patch, self.patches)

    @property
    def setting(self) -> str:
        return f"{self.kind},m/n={self.ratio:g}{_noise_suffix(self.sigma)}"

    def describe(self) -> dict:
        return {"protocol": "projection", **asdict(self)}

    def cases(self, image: np.ndarray, index: int, name: str) -> list[Case]:
        gen = _generator(self.seed + index)
        out = []
        for label, crop in _crops(as_image(image), name, self.patch, self.patches, gen):
            x = to_tensor(crop, torch.float64)  # (1, C, p, p)
            op = random_projection(self.kind, tuple(x.shape[1:]), self.ratio, 1, gen, torch.float64)
            y = simulate(x, op, GaussianNoise(self.sigma / 255.0), gen)  # (1, m)
            shown = _display(op.adjoint(y))
            sigma = self.sigma / 255.0
            out.append(Case(label, self.setting, x, op, y, sigma, 0, shown, "projection"))
        return out


@dataclass(frozen=True)
class LensingProtocol(PatchedImages):
    """Strong lensing: each ``patch x patch`` patch (at positions drawn from the seed
    ``seed + index``) is a source behind its own lens, drawn from the same generator by
    :class:`rimkit.tasks.LensingTask` with the Einstein radius fixed at ``einstein_radius``
    (in units of the source patch's width; the image spans twice the source's field), a PSF of
    ``psf`` image pixels and noise ``sigma`` (0-255 scale). ``display`` is the observed image.

    Example:
        >>> p = LensingProtocol(0.45, patches=2)
        >>> cases = p.cases(np.random.rand(40, 40), 0, "img")
        >>> len(cases), cases[0].setting, cases[0].y.shape
        (2, 'einstein=0.45', torch.Size([1, 1, 32, 32]))
    """

    einstein_radius: float = 0.45
    sigma: float = 0.0
    psf: float = 0.0
    seed: int = 0
    patch: int = 32
    patches: int = 4
    task = "lensing"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.einstein_radius) and self.einstein_radius > 0):
            raise ValueError(f"einstein_radius must be > 0, got {self.einstein_radius}")
        if not (math.isfinite(self.psf) and self.psf >= 0):
            raise ValueError(f"psf must be a width >= 0 in pixels, got {self.psf}")
        _check_sigma(self.sigma)
        _check_seed(self.seed)
        _check_patching(self.patch, self.patches)

    @property
    def setting(self) -> str:
        psf = f",psf={self.psf:g}" if self.psf else ""
        return f"einstein={self.einstein_radius:g}{psf}{_noise_suffix(self.sigma)}"

    def describe(self) -> dict:
        return {"protocol": "lensing", **asdict(self)}

    def cases(self, image: np.ndarray, index: int, name: str) -> list[Case]:
        from rimkit.tasks import LensingTask

        radius, level = (self.einstein_radius,) * 2, (self.sigma,) * 2
        task = LensingTask(einstein_radius=radius, psf=self.psf, sigma=level)
        gen = _generator(self.seed + index)
        out = []
        for label, crop in _crops(as_image(image), name, self.patch, self.patches, gen):
            x = to_tensor(crop, torch.float64)  # (1, C, p, p)
            m = task.sample(x, gen)
            sigma = self.sigma / 255.0
            out.append(
                Case(label, self.setting, x, m.operator, m.y, sigma, 0, _display(m.y), "lensing")
            )
        return out


@dataclass(frozen=True)
class MRIProtocol:
    """Cartesian MRI of a whole gray image taken as a real magnitude image: its centred
    orthonormal 2-D FFT, sampled by a ``mask`` (``columns``: 1-D variable density with a fully
    sampled centre; ``points``: 2-D Gaussian) at ``acceleration``, drawn from the seed ``seed +
    index``, with complex noise of ``sigma`` (0-255 scale) per real component. ``coils > 1``:
    multi-coil k-space through simulated sensitivities (:class:`rimkit.tasks.MRITask`), drawn
    from the same seed; the reconstructions are given those maps.

    The truth and the estimates are complex images as two channels (real, imaginary), as
    MRI RIMs see them (:class:`rimkit.tasks.MRITask`); scores and figures use the magnitude.
    ``display`` is the zero-filled magnitude ``|A^H y|``.

    Example:
        >>> p = MRIProtocol(4.0)
        >>> case = p.cases(np.random.rand(32, 40), 0, "img")[0]
        >>> case.setting, case.truth.shape, case.view(case.truth).shape
        ('R=4', torch.Size([1, 2, 32, 40]), torch.Size([1, 1, 32, 40]))
    """

    acceleration: float = 4.0
    mask: str = "columns"
    sigma: float = 0.0
    seed: int = 0
    coils: int = 1
    task = "mri"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.acceleration) and self.acceleration >= 1):
            raise ValueError(f"acceleration must be a number >= 1, got {self.acceleration}")
        if self.mask not in MRI_MASKS:
            raise ValueError(f"unknown MRI mask {self.mask!r}; known: {', '.join(MRI_MASKS)}")
        _check_sigma(self.sigma)
        _check_seed(self.seed)
        if isinstance(self.coils, bool) or not isinstance(self.coils, int) or self.coils < 1:
            raise ValueError(f"coils must be an int >= 1, got {self.coils!r}")

    @property
    def setting(self) -> str:
        mask = "" if self.mask == "columns" else f",{self.mask}"
        coils = "" if self.coils == 1 else f",{self.coils} coils"
        return f"R={self.acceleration:g}{mask}{coils}{_noise_suffix(self.sigma)}"

    def describe(self) -> dict:
        return {"protocol": "mri", **asdict(self)}

    def cases(self, image: np.ndarray, index: int, name: str) -> list[Case]:
        from rimkit.tasks import MRITask

        array = as_image(image)
        if array.ndim == 3:
            raise ValueError(
                f"image {name!r} has {array.shape[2]} channels; MRI evaluation takes gray "
                "magnitude images"
            )
        rate, level = (self.acceleration,) * 2, (self.sigma,) * 2
        task = MRITask(rate, level, self.mask, (self.coils, self.coils))
        x = to_tensor(array, torch.float64)  # (1, 1, H, W)
        m = task.sample(x, _generator(self.seed + index))
        case = Case(name, self.setting, m.target, m.operator, m.y, self.sigma / 255.0, task="mri")
        case.display = _display(case.view(m.x0))
        return [case]


@dataclass(frozen=True)
class OperatorProtocol:
    """A forward model of one's own: ``y = A x + sigma/255 N(0, 1)``, the noise seeded by
    ``seed + index`` as in the other protocols. ``operator`` is a
    :class:`~rimkit.operators.LinearOperator` applied to every image, or a callable
    ``(x, generator) -> LinearOperator`` that draws one per image (``x`` the image
    ``(1, C, H, W)``, float64, so a mask or matrix can match its size); ``name`` labels its
    setting (by default the operator's class or function name). Its cases have task
    ``"own"``: baselines need a weight (``baseline_method(name, "own", {"weight": w})``), and
    methods start where ``start`` of :func:`~rimkit.evaluate.rim_method` says (else from a
    flat 0.5 image, :func:`rimkit.reconstruct.initial_estimate`).

    Example:
        >>> from rimkit.operators import random_projection
        >>> def project(x, gen):  # a Gaussian matrix per image, 16 rows
        ...     return random_projection("gaussian", tuple(x.shape[1:]), 0.25, generator=gen)
        >>> protocol = OperatorProtocol(project, sigma=5, name="gauss16")
        >>> case = protocol.cases(np.ones((8, 8)), 0, "flat")[0]
        >>> case.setting, case.task, tuple(case.y.shape)
        ('gauss16,sigma=5', 'own', (1, 16))
    """

    operator: object
    sigma: float = 0.0
    name: str | None = None
    seed: int = 0
    task = OWN_TASK

    def __post_init__(self) -> None:
        if not (isinstance(self.operator, LinearOperator) or callable(self.operator)):
            raise ValueError(
                f"operator must be a LinearOperator or a callable (x, generator) -> "
                f"LinearOperator, got {type(self.operator).__name__}"
            )
        _check_sigma(self.sigma)
        _check_seed(self.seed)
        name = self.name
        if name is not None and (not isinstance(name, str) or not name or "," in name):
            raise ValueError(f"name must be a non-empty string without commas, got {name!r}")

    @property
    def label(self) -> str:
        """``name``, by default the operator's class (or the function that draws it)."""
        if self.name is not None:
            return self.name
        what = self.operator
        if isinstance(what, LinearOperator):
            return type(what).__name__
        return getattr(what, "__qualname__", type(what).__name__)

    @property
    def setting(self) -> str:
        return f"{self.label},sigma={self.sigma:g}"

    def describe(self) -> dict:
        return {"protocol": OWN_TASK, "name": self.label, "sigma": self.sigma, "seed": self.seed}

    def cases(self, image: np.ndarray, index: int, name: str) -> list[Case]:
        gen = _generator(self.seed + index)
        x = to_tensor(as_image(image), torch.float64)  # (1, C, H, W)
        op = self.operator
        if not isinstance(op, LinearOperator):
            op = op(x, gen)
            if not isinstance(op, LinearOperator):
                raise ValueError(
                    f"OperatorProtocol's operator callable returned {type(op).__name__}; it must "
                    "return a rimkit LinearOperator"
                )
        op = op.double()
        clean = op(x)
        noise = torch.randn(clean.shape, generator=gen, dtype=clean.real.dtype)
        if clean.is_complex():
            noise = torch.complex(noise, torch.randn(clean.shape, generator=gen, dtype=noise.dtype))
        y = clean + self.sigma / 255.0 * noise
        return [Case(name, self.setting, x, op, y, self.sigma / 255.0, task=OWN_TASK)]
