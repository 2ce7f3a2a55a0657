"""One call for every method: ``method(y, operator, sigma)`` for a RIM as for a baseline.

:class:`RIMReconstructor` wraps a trained RIM in the :class:`rimkit.solvers.Reconstructor`
call, building the Gaussian likelihood and the usual initial estimate for the operator
(:func:`initial_estimate`), so evaluation code treats a RIM, FISTA-wavelet and BM3D alike.
Large images are reconstructed in overlapping tiles blended with smooth weights
(:func:`reconstruct_tiled`) for the operators that act locally (denoising, inpainting,
super-resolution, blur with valid boundaries).

Example:
    >>> import torch
    >>> from rimkit.models import build_rim
    >>> from rimkit.operators import Identity
    >>> method = RIMReconstructor(build_rim(features=4, hidden=4, train_steps=2))
    >>> y = 0.1 + 0.8 * torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    >>> torch.allclose(method(y, Identity(), 0.1).final, y, atol=1e-5)   # untrained: x0 = y
    True
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.nn import functional as F

from rimkit.io import IMAGE_RANGE_LIMIT
from rimkit.likelihood import GaussianLikelihood, is_noise_map
from rimkit.likelihood import _check_sigma as check_noise_sigma
from rimkit.models import RIM, Trajectory
from rimkit.operators import (
    BicubicDownsample,
    Blur,
    ComplexAsChannels,
    Composition,
    Identity,
    Inpainting,
    LinearOperator,
    RealImages,
    bicubic_upsample,
)
from rimkit.solvers.base import check_measurement

if TYPE_CHECKING:
    from rimkit.zoo import LoadedModel


def _inpaint_start(op: Inpainting, y: Tensor) -> Tensor:
    mask = op.adjoint(torch.ones_like(y))  # (B, C, H, W); checks the mask fits y
    observed = mask.sum(dim=(1, 2, 3), keepdim=True).clamp_min(1)
    mean = (y * mask).sum(dim=(1, 2, 3), keepdim=True) / observed
    return y * mask + mean * (1 - mask)


def _blur_start(op: Blur, y: Tensor) -> Tensor:
    """``y``; for a ``valid`` blur, ``y`` extended past its edges by repeating them."""
    top, bottom, left, right = op.margins()
    if top == bottom == left == right == 0:
        return y
    return F.pad(y, (left, right, top, bottom), mode="replicate")  # (B, C, H + kh - 1, ...)


def _sr_start(op: BicubicDownsample, y: Tensor) -> Tensor:
    size = op.in_size or (y.shape[-2] * op.scale, y.shape[-1] * op.scale)
    return bicubic_upsample(y, op.scale, out_size=tuple(size))


INITIAL_ESTIMATES: dict[type, Callable[[LinearOperator, Tensor], Tensor]] = {
    Identity: lambda op, y: y,
    Blur: _blur_start,
    Inpainting: _inpaint_start,
    BicubicDownsample: _sr_start,
    ComplexAsChannels: lambda op, y: op.adjoint(y),
    RealImages: lambda op, y: op.op.adjoint(y).abs(),  # a real image: the zero-filled magnitude
}
"""Operator type -> the initial estimate its training tasks use; others start at 0.5."""


FLAT_START_TASKS = frozenset({"projection", "lensing"})
"""Training tasks whose operators have no entry in :data:`INITIAL_ESTIMATES` (flat start)."""


def initial_estimate(
    operator: LinearOperator, y: Tensor, like: Tensor | None = None, flat: bool = False
) -> Tensor:
    """The initial image for ``operator``: ``y`` (denoising, deblurring), bicubic up-sampling
    (SR), the observed mean in the holes (inpainting), zero-filled (MRI); else (or with
    ``flat=True``) a constant 0.5 image of the shape of ``like`` (or of ``A^T y``). Clipped to
    ``[0, 1]`` for real images.

    Example:
        >>> y = torch.rand(1, 1, 4, 4)
        >>> bool(torch.equal(initial_estimate(Identity(), y), y))
        True
        >>> initial_estimate(Identity(), y, flat=True).unique().tolist()
        [0.5]
    """
    if not flat and isinstance(operator, Composition) and isinstance(operator.outer, Inpainting):
        y, operator = _inpaint_start(operator.outer, y), operator.inner  # bad pixels filled
    start = None if flat else _start_of(operator)
    if start is not None:
        x0 = start(operator, y)
        keep = isinstance(operator, ComplexAsChannels) or x0.is_complex()  # the RIM says why
        return x0 if keep else x0.clamp(0, 1)
    shape_of = like if like is not None else operator.adjoint(y)
    return torch.full_like(shape_of, 0.5)


def _start_of(operator: LinearOperator) -> Callable[[LinearOperator, Tensor], Tensor] | None:
    """The :data:`INITIAL_ESTIMATES` entry of ``operator``'s class or of its nearest base
    class (a subclass of ``Blur`` starts as a blur does)."""
    for cls in type(operator).__mro__:
        if cls in INITIAL_ESTIMATES:
            return INITIAL_ESTIMATES[cls]
    return None


IMAGE_SCALE_OPERATORS = (Identity, Blur, Inpainting, BicubicDownsample)
"""Operators whose measurement of an image in ``[0, 1]`` lies on the image scale."""


def warn_if_off_image_scale(operator: LinearOperator, y: Tensor) -> None:
    """A note when a measurement of an image-scale operator reaches beyond
    +-:data:`rimkit.io.IMAGE_RANGE_LIMIT` (an 8-bit image not divided by 255): the RIMs
    work on images in ``[0, 1]``, with sigma on that scale.
    """
    inner = operator.inner if isinstance(operator, Composition) else operator
    if y.is_complex() or not isinstance(inner, IMAGE_SCALE_OPERATORS) or not y.numel():
        return
    peak = float(y.detach().abs().max())
    if peak > IMAGE_RANGE_LIMIT:
        warnings.warn(
            f"y reaches {peak:.4g}, but the RIMs work on images in [0, 1]: for 8-bit data give "
            "y / 255 and sigma / 255 (the rimkit command and rimkit.pipeline.restore scale files "
            "themselves)",
            UserWarning,
            stacklevel=4,
        )


def warn_if_no_start(operator: LinearOperator, stacklevel: int = 4) -> None:
    """A note when a model trained from each task's own start meets an operator of one's own
    with no :data:`INITIAL_ESTIMATES` entry: it starts from a flat 0.5 image it may never have
    trained from (a task of one's own gives its start in ``Measurement.x0``; pass the same as
    ``x0``). rimkit's projections and lensing start flat by design: no note.
    """
    inner = operator
    if isinstance(operator, Composition) and isinstance(operator.outer, Inpainting):
        inner = operator.inner  # its holes are filled, then the inner operator's start
    ours = type(inner).__module__.startswith("rimkit.")  # projections, lensing: flat by design
    if not ours and _start_of(inner) is None:
        warnings.warn(
            f"no start is known for {type(inner).__name__}: the RIM starts from a flat 0.5 image; "
            "if the model trained from another start (a task of one's own gives it in "
            "Measurement.x0), pass that as x0 (e.g. x0=operator.adjoint(y))",
            UserWarning,
            stacklevel=stacklevel,
        )


def trained_start(task_names: Iterable[str]) -> str:
    """How a model trained on ``task_names`` starts: ``"flat"`` when every one of them starts
    from the constant 0.5 image (a model trained only on random projections has never seen
    another start, so it keeps it on every task it is transferred to), else ``"task"``: each
    operator's own :func:`initial_estimate`.

    Example:
        >>> trained_start(["projection"]), trained_start(["denoise", "projection"])
        ('flat', 'task')
    """
    names = set(task_names)
    return "flat" if names and names <= FLAT_START_TASKS else "task"


class RIMReconstructor:
    """A RIM behind the baselines' call: ``method(y, operator, sigma, x0=None) -> Trajectory``.

    ``steps`` defaults to the model's trained ``T``; ``tile`` (pixels of the output image)
    turns on tiled reconstruction for images larger than a tile. A model whose ``start``
    attribute is ``"flat"`` (set by :func:`rimkit.zoo.load_model`, see :func:`trained_start`)
    starts from the constant 0.5 image on every task. ``model`` is the network (an
    ``nn.Module``) or what :func:`rimkit.zoo.load_model` returns. It runs in the model's
    precision and on its device (``y``, ``x0`` and the operator are moved there), and its
    estimates come back so (float32 for float64 data: ``model.double()`` for float64).

    Example:
        >>> from rimkit.models import build_rim
        >>> from rimkit.operators import Identity
        >>> rim = build_rim("restoration", channels=1, features=4, hidden=4, train_steps=3)
        >>> result = RIMReconstructor(rim)(torch.rand(1, 1, 16, 16), Identity(), 25 / 255)
        >>> len(result.estimates), tuple(result.final.shape)
        (3, (1, 1, 16, 16))
    """

    name = "rim"

    def __init__(
        self,
        model: RIM | LoadedModel,
        steps: int | None = None,
        tile: int | None = None,
        overlap: int = 32,
        progress: bool = False,
    ) -> None:
        self.model = _network(model)
        self.steps = steps
        self.tile = tile
        self.overlap = overlap
        self.progress = progress

    def reconstruct(
        self,
        y: Tensor,
        operator: LinearOperator,
        sigma: Tensor | float = 0.0,
        *,
        x0: Tensor | None = None,
    ) -> Trajectory:
        y = check_measurement(y)
        if not isinstance(operator, LinearOperator):
            raise ValueError(
                f"RIMReconstructor takes a rimkit LinearOperator, got {type(operator).__name__}; "
                "for a non-linear forward model f run the RIM itself: "
                "model(AutogradLikelihood(f, y, sigma), x0=...)"
            )
        check_noise_sigma(sigma)  # the likelihood notes a sigma on the 0-255 scale
        warn_if_off_image_scale(operator, y)
        if self.tile is not None and x0 is None:
            return reconstruct_tiled(self, y, operator, sigma, self.tile, self.overlap)
        param = next(self.model.parameters())
        if param.dtype not in (torch.float32, torch.float64):
            raise ValueError(
                f"the model's weights are {str(param.dtype)[6:]}; a RIM reconstructs in float32 "
                "or float64, the operators' precision: call model.float() first (for bfloat16, "
                "rimkit.precision.apply_precision(model, 'bf16', device) on the float32 model)"
            )
        dtype = param.dtype.to_complex() if y.is_complex() else param.dtype  # MRI: k-space
        y = y.to(device=param.device, dtype=dtype)
        if isinstance(x0, Tensor) and x0.is_floating_point():
            x0 = x0.to(device=param.device, dtype=param.dtype)
        operator = in_model_dtype(operator, param.dtype, param.device)
        if x0 is None:
            flat = getattr(self.model, "start", "task") == "flat"
            if not flat:
                warn_if_no_start(operator)
            x0 = initial_estimate(operator, y, flat=flat)
            if x0.ndim != 4:
                raise ValueError(
                    f"y of shape {tuple(y.shape)} gives a start of shape {tuple(x0.shape)}, "
                    "not an image batch (B, C, H, W): give y with its batch and channel axes "
                    "(a gray image: y[None, None])"
                )
        with warnings.catch_warnings(record=True) as notes:  # to be told at the caller's line
            warnings.simplefilter("always")
            likelihood = GaussianLikelihood(operator, y, sigma)
        for note in notes:
            warnings.warn(note.message, note.category, stacklevel=2)
        steps = self.steps or self.model.train_steps
        with torch.no_grad(), _bar(steps, "steps", self.progress) as bar:
            return self.model(CountingLikelihood(likelihood, bar), x0=x0, steps=self.steps)

    __call__ = reconstruct


def _network(model: object, who: str = "RIMReconstructor") -> torch.nn.Module:
    """The network of ``model``: itself, or the ``.model`` of a loaded model."""
    from rimkit.zoo import LoadedModel  # the zoo builds on this module

    if isinstance(model, LoadedModel):
        return model.model
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"{who} takes a model (a torch.nn.Module), got {type(model).__name__}; "
            f"for a shipped model or a run folder give {who}(load_model(name).model)"
        )
    return model


CASTS = {torch.float32: "float", torch.float64: "double", torch.float16: "half"}
"""The ``nn.Module`` method that casts a module's real tensors (only those) to a dtype."""


def in_model_dtype(
    operator: LinearOperator, dtype: torch.dtype, device: torch.device | str | None = None
) -> LinearOperator:
    """``operator``, or a copy of it on ``device`` (default: where it is) whose real tensors
    are cast to ``dtype`` where some are of another float type (a ``.double()`` operator for a
    float32 model); complex ones stay. The caller's operator is never moved or cast.

    Example:
        >>> from rimkit.operators import Blur, gaussian_kernel
        >>> blur = Blur(gaussian_kernel(1.0)).double()
        >>> in_model_dtype(blur, torch.float32).kernel.dtype, blur.kernel.dtype
        (torch.float32, torch.float64)
    """
    tensors = [*operator.parameters(), *operator.buffers()]
    device = torch.device(device) if device is not None else None
    moved = device is not None and any(t.device != device for t in tensors)
    if not moved and all(t.dtype == dtype for t in tensors if t.is_floating_point()):
        return operator
    kept = copy.deepcopy(operator)
    kept = kept.to(device) if moved else kept
    return getattr(kept, CASTS.get(dtype, str(dtype)[6:]))()


class CountingLikelihood:
    """Forwards a likelihood and ticks a progress bar at every gradient: once per RIM step."""

    def __init__(self, likelihood: GaussianLikelihood, bar) -> None:
        self.likelihood = likelihood
        self.y = likelihood.y
        self.bar = bar

    def grad(self, x: Tensor, eps: Tensor | float = 0.0) -> Tensor:
        self.bar.update(1)
        return self.likelihood.grad(x, eps)

    def log_prob(self, x: Tensor, eps: Tensor | float = 0.0) -> Tensor:
        return self.likelihood.log_prob(x, eps)


def _bar(total: int, unit: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, disable=not enabled, leave=False, delay=1.0)


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = [*range(0, size - tile, step), size - tile]
    return sorted(set(starts))


def _ramp(
    length: int, overlap: int, first: bool, last: bool, lead: int = 0, trail: int = 0
) -> Tensor:
    """1-D blending weights: linear ramps over the overlap except at the image borders; on an
    edge inside the image, 0 over the ``lead`` (``trail``) pixels before the ramp at the
    start (end), a valid blur's margins that the tile's own measurement barely sees.

    Example:
        >>> (3 * _ramp(8, 2, first=False, last=True, lead=1)).round().tolist()
        [0.0, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    """
    w = torch.ones(length, dtype=torch.float64)
    ramp = torch.linspace(0, 1, overlap + 2, dtype=torch.float64)[1:-1]
    if not first:
        w[:lead] = 0
        w[lead : lead + overlap] = ramp
    if not last:
        w[length - trail :] = 0
        w[length - trail - overlap : length - trail] = ramp.flip(0)
    return w


def _tile_operator(operator: LinearOperator, window: tuple[slice, slice]) -> LinearOperator:
    if isinstance(operator, Identity):
        return operator
    if isinstance(operator, Inpainting):
        return Inpainting(operator.mask[..., window[0], window[1]])
    if isinstance(operator, BicubicDownsample):
        return BicubicDownsample(operator.scale)
    if isinstance(operator, Blur) and operator.boundary == "valid" and len(operator.kernel) == 1:
        return operator  # a tile of y is measured by the same blur of a tile of x
    raise ValueError(
        f"tiled reconstruction supports denoising, inpainting, super-resolution and blur with "
        f"valid boundaries, not {_describe(operator)}; reconstruct it whole (no tile size)"
    )


def _describe(operator: LinearOperator) -> str:
    if isinstance(operator, Blur):
        return f"blur with {operator.boundary} boundaries"
    return type(operator).__name__


def reconstruct_tiled(
    method: RIMReconstructor,
    y: Tensor,
    operator: LinearOperator,
    sigma: Tensor | float,
    tile: int,
    overlap: int = 32,
) -> Trajectory:
    """Reconstruct in overlapping tiles of ``tile`` output pixels and blend them smoothly.

    ``tile`` is rounded down and ``overlap`` up to multiples of the super-resolution scale.

    Every step ``x_t`` of the trajectory is blended with the same weights, so the result is a
    full trajectory. For super-resolution the tiles are cut from the low-resolution ``y``
    (``tile / scale`` pixels) and placed at ``scale`` times their position; for a blur with
    valid boundaries each tile of ``y`` gives a tile of ``x`` larger by the kernel's margins,
    placed at the same position in ``x``, which is larger than ``y`` by the same margins.
    """
    scale = operator.scale if isinstance(operator, BicubicDownsample) else 1
    top, bottom, left, right = operator.margins() if isinstance(operator, Blur) else (0,) * 4
    given, tile, overlap = tile, tile - tile % scale, -(-overlap // scale) * scale  # multiples
    if overlap < 0:
        raise ValueError(f"the overlap between tiles must be >= 0, got {overlap}")
    if tile <= 2 * overlap:
        smallest = (2 * overlap // scale + 1) * scale
        rounded = f" (rounded down to {tile}, a multiple of scale {scale})" if tile != given else ""
        raise ValueError(
            f"tile {given}{rounded} is too small: tiles overlap by {overlap} pixels on each side, "
            f"so a tile must be at least {smallest} pixels of the restored image"
        )
    h, w = y.shape[-2:]
    t_lr, o_lr = tile // scale, overlap // scale
    rows, cols = _starts(h, t_lr, o_lr), _starts(w, t_lr, o_lr)
    whole = RIMReconstructor(method.model, method.steps)
    out: list[Tensor] | None = None
    total = None
    bar = _bar(len(rows) * len(cols), "tiles", method.progress)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            bar.update(1)
            window = (slice(r, min(r + t_lr, h)), slice(c, min(c + t_lr, w)))
            op = _tile_operator(operator, window)
            part = sigma[..., window[0], window[1]] if is_noise_map(sigma) else sigma
            traj = whole(y[..., window[0], window[1]], op, part)
            weight = torch.outer(
                _ramp(traj.final.shape[-2], overlap, i == 0, i == len(rows) - 1, top, bottom),
                _ramp(traj.final.shape[-1], overlap, j == 0, j == len(cols) - 1, left, right),
            ).to(device=traj.final.device, dtype=traj.final.dtype)  # (tile, tile)
            if out is None:
                shape = (*traj.final.shape[:2], h * scale + top + bottom, w * scale + left + right)
                out = [traj.final.new_zeros(shape) for _ in traj.estimates]
                total = traj.final.new_zeros(shape[-2:])
            rs, cs = (
                slice(r * scale, r * scale + weight.shape[0]),
                slice(c * scale, c * scale + weight.shape[1]),
            )
            for acc, x in zip(out, traj.estimates, strict=True):
                acc[..., rs, cs] += x * weight
            total[rs, cs] += weight
    bar.close()
    return Trajectory([acc / total for acc in out])
