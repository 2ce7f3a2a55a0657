"""Task distributions: every batch draws its forward model and a noise level per sample.

A task turns a batch of clean patches ``x`` into a :class:`Measurement`: the operator, the
noisy measurement ``y``, the per-sample ``sigma``, the initial estimate ``x0`` and the target
the model should reconstruct (``x`` itself, or ``x`` as complex channels for MRI). The
initial estimate is :func:`rimkit.reconstruct.initial_estimate`, the one inference uses. Noise
levels are given on the 0-255 scale and drawn uniformly per sample. Everything is drawn from
the generator passed in, so a seeded generator gives the same batch every time.

Example:
    >>> import torch
    >>> task = TaskMixture([DenoiseTask(sigma=(0, 55)), SuperResolutionTask(scales=(2, 3, 4))])
    >>> m = task.sample(torch.rand(4, 1, 32, 32), torch.Generator().manual_seed(0))
    >>> m.sigma.shape, m.x0.shape
    (torch.Size([4]), torch.Size([4, 1, 32, 32]))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from rimkit.likelihood import GaussianLikelihood
from rimkit.noise import GaussianNoise, simulate, warn_if_255_scale, warn_if_unit_scale
from rimkit.operators import (
    MRI_MASKS,
    PROJECTION_KINDS,
    SIE,
    BicubicDownsample,
    Blur,
    CartesianMRI,
    ComplexAsChannels,
    Identity,
    Inpainting,
    LensingSetup,
    LinearOperator,
    MultiCoilMRI,
    complex_to_channels,
    gaussian_kernel,
    motion_kernel,
    random_mask,
    random_projection,
    rms_row_norm,
    synthetic_coil_maps,
)
from rimkit.reconstruct import initial_estimate


@dataclass
class Measurement:
    """One batch of a task: ``y = A(target) + n`` with per-sample ``sigma`` (data units).

    - ``operator``: the forward model ``A`` (a :class:`~rimkit.operators.LinearOperator`; for a
      non-linear model, any callable, in a subclass whose :meth:`likelihood` is an
      :class:`~rimkit.likelihood.AutogradLikelihood`).
    - ``y``: the noisy measurement, batch first; ``sigma``: ``(B,)`` noise std in the units of
      ``y`` (the 0-1 scale for images in [0, 1]: ``25 / 255``, not 25).
    - ``target``: what the RIM should reconstruct ``(B, C, H, W)``, usually the clean patches.
    - ``x0``: the estimate the RIM starts from, of the target's shape and on its scale (e.g.
      ``A^T y`` where ``A`` keeps the scale, ``y`` for denoising, or a flat 0.5: a sigmoid
      link clamps the start into ``(0, 1)``, and from 30 it barely moves); reconstruct with
      the same start (``RIMReconstructor(...)(y, A, sigma, x0=...)``), since
      :func:`rimkit.reconstruct.initial_estimate` knows only the built-in operators and
      starts others from a flat 0.5 image.
    - ``name``: the task's name; ``"mri"`` scores validation on magnitudes.

    Example:
        >>> m = TASKS["denoise"]((25, 25)).sample(torch.rand(2, 1, 8, 8), torch.manual_seed(0))
        >>> m.y.shape, m.sigma * 255, m.likelihood().grad(m.x0).shape
        (torch.Size([2, 1, 8, 8]), tensor([25., 25.]), torch.Size([2, 1, 8, 8]))
    """

    operator: LinearOperator
    y: Tensor
    sigma: Tensor  # (B,)
    target: Tensor  # (B, C, H, W)
    x0: Tensor  # (B, C, H, W)
    name: str

    def likelihood(self) -> GaussianLikelihood:
        return GaussianLikelihood(self.operator, self.y, self.sigma)


class Task(Protocol):
    """Anything that draws a measurement of a clean batch."""

    def sample(self, x: Tensor, generator: torch.Generator) -> Measurement: ...


def _uniform(bounds: Sequence[float], n: int, gen: torch.Generator) -> Tensor:
    low, high = float(bounds[0]), float(bounds[1])
    return low + (high - low) * torch.rand(n, generator=gen, dtype=torch.float64)


MAX_COILS = 64
"""The most receive coils a simulated MRI task draws."""


def _check_range(bounds: Sequence[float], name: str, low: float, high: float) -> None:
    if len(bounds) != 2 or not (low <= bounds[0] <= bounds[1] <= high):
        raise ValueError(
            f"{name} must be a range [a, b] with {low} <= a <= b <= {high}, got {bounds}"
        )


def _check_sigma_range(bounds: Sequence[float], task: str) -> None:
    """A task's noise range, on the 0-255 scale: one within [0, 1) gets the note that it looks
    like the 0-1 scale (``[0.01, 0.1]`` for ``[2.55, 25.5]``)."""
    _check_range(bounds, "sigma", 0.0, 255.0)
    warn_if_unit_scale(float(bounds[1]), task, stacklevel=5)  # the line that made the task


def _measure(
    op: LinearOperator,
    target: Tensor,
    sigma255: Tensor,
    gen: torch.Generator,
    quantize: bool = False,
) -> tuple[Tensor, Tensor]:
    """Per-sample sigma in data units and the noisy measurement of ``target``."""
    sigma = (sigma255 / 255.0).to(target.dtype)  # (B,)
    y = simulate(target, op, GaussianNoise(sigma, quantize=quantize), gen)
    return sigma, y


@dataclass
class DenoiseTask:
    """``y = x + n``, ``sigma ~ U(sigma[0], sigma[1])`` per sample (0-255 scale); ``x0 = y``."""

    sigma: tuple[float, float] = (0.0, 55.0)
    quantize: bool = False

    def __post_init__(self) -> None:
        _check_sigma_range(self.sigma, type(self).__name__)

    def sample(self, x: Tensor, generator: torch.Generator) -> Measurement:
        op = Identity()
        sigma, y = _measure(
            op, x, _uniform(self.sigma, len(x), generator), generator, self.quantize
        )
        return Measurement(op, y, sigma, x, initial_estimate(op, y), "denoise")


@dataclass
class SuperResolutionTask:
    """MATLAB-bicubic down-sampling by a scale drawn per batch; ``x0`` = bicubic up-sampling."""

    scales: tuple[int, ...] = (2, 3, 4)
    sigma: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if not self.scales or any(int(s) != s or s < 1 for s in self.scales):
            raise ValueError(f"scales must be integers >= 1, got {self.scales}")
        _check_sigma_range(self.sigma, type(self).__name__)

    def sample(self, x: Tensor, generator: torch.Generator) -> Measurement:
        pick = int(torch.randint(len(self.scales), (1,), generator=generator))
        scale = int(self.scales[pick])
        op = BicubicDownsample(scale, in_size=tuple(x.shape[-2:]))
        sigma, y = _measure(op, x, _uniform(self.sigma, len(x), generator), generator)
        return Measurement(op, y, sigma, x, initial_estimate(op, y), f"sr-x{scale}")


@dataclass
class InpaintTask:
    """Random pixel masks with a missing fraction drawn per sample; missing pixels of ``x0``
    are filled with the mean of the observed ones."""

    fraction: tuple[float, float] = (0.3, 0.9)
    sigma: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        _check_range(self.fraction, "fraction", 0.0, 0.99)
        _check_sigma_range(self.sigma, type(self).__name__)

    def sample(self, x: Tensor, generator: torch.Generator) -> Measurement:
        b, c, h, w = x.shape
        fractions = _uniform(self.fraction, b, generator)
        masks = [random_mask((1, c, h, w), float(f), generator, x.dtype) for f in fractions]
        mask = torch.cat(masks).to(x.device)  # (B, C, H, W)
        op = Inpainting(mask)
        sigma, y = _measure(op, x, _uniform(self.sigma, b, generator), generator)
        return Measurement(op, y, sigma, x, initial_estimate(op, y), "inpaint")


BLUR_KERNELS = ("gaussian", "motion")
"""Kernel families a :class:`BlurTask` draws from."""


@dataclass
class BlurTask:
    """Blur by a kernel drawn per sample, then noise: ``y = k * x + n``; ``x0 = y``.

    Each sample's kernel family is drawn uniformly from ``kernels``: an isotropic Gaussian of
    standard deviation ``~ U(std)`` pixels, or linear motion of length ``~ U(length)`` pixels
    at an angle ``~ U(0, 180)`` degrees; every kernel lies on a ``size x size`` grid (odd) and
    sums to one. ``boundary`` is the blur's boundary condition (``circular``, as the deblurring
    benchmarks synthesise their inputs, or ``zero``).

    Example:
        >>> import torch
        >>> m = BlurTask().sample(torch.rand(2, 1, 32, 32), torch.Generator().manual_seed(0))
        >>> tuple(m.operator.kernel.shape), bool(torch.equal(m.x0, m.y.clamp(0, 1)))
        ((2, 17, 17), True)
    """

    kernels: tuple[str, ...] = BLUR_KERNELS
    std: tuple[float, float] = (0.5, 2.7)
    length: tuple[float, float] = (3.0, 15.0)
    size: int = 17
    sigma: tuple[float, float] = (0.0, 15.0)
    boundary: str = "circular"

    def __post_init__(self) -> None:
        unknown = [k for k in self.kernels if k not in BLUR_KERNELS]
        if not self.kernels or unknown:
            raise ValueError(f"unknown blur kernels {unknown}; known: {', '.join(BLUR_KERNELS)}")
        if isinstance(self.size, bool) or int(self.size) != self.size or self.size % 2 == 0:
            raise ValueError(f"the kernel size must be an odd integer, got {self.size}")
        if "gaussian" in self.kernels:
            _check_range(self.std, "std", 0.1, (self.size - 1) / 2)
        if "motion" in self.kernels:
            _check_range(self.length, "length", 1.0, float(self.size))
        _check_sigma_range(self.sigma, type(self).__name__)
        Blur(torch.ones(1, 1), self.boundary)  # names an unknown boundary now, not mid-run

    def kernel(self, generator: torch.Generator) -> Tensor:
        """One kernel ``(size, size)`` drawn from the task's families."""
        family = self.kernels[int(torch.randint(len(self.kernels), (1,), generator=generator))]
        if family == "gaussian":
            return gaussian_kernel(float(_uniform(self.std, 1, generator)), self.size)
        length, angle = (
            float(_uniform(self.length, 1, generator)),
            180.0 * float(torch.rand(1, generator=generator, dtype=torch.float64)),
        )
        return motion_kernel(length, angle, self.size)

    def sample(self, x: Tensor, generator: torch.Generator) -> Measurement:
        kernels = torch.stack([self.kernel(generator) for _ in range(len(x))])  # (B, k, k)
        op = Blur(kernels.to(device=x.device, dtype=x.dtype), self.boundary)
        sigma, y = _measure(op, x, _uniform(self.sigma, len(x), generator), generator)
        return Measurement(op, y, sigma, x, initial_estimate(op, y), "blur")


SIGMA_UNITS = ("measurement", "image")
"""What a projection task's ``sigma`` measures: each measurement's noise, or image units."""


@dataclass
class ProjectionTask:
    """Random projections of the flattened patch, ensemble drawn uniformly per batch, ratio
    ``m / n`` drawn per batch; each sample has its own matrix.
    The estimate starts at ``x0 = 0.5``.

    ``sigma_units`` says what the drawn ``sigma`` is: ``"measurement"``, the std of each
    measurement's noise; ``"image"``, the noise in image units along each measured direction,
    so that each measurement's noise is ``sigma * rms_row_norm(A)`` (``sqrt(n / m)`` times larger
    for the matrix ensembles, whose rows have norm ``sqrt(n / m)``) and a measurement of a pixel's
    worth of signal is as noisy as a pixel in denoising at the same ``sigma``.
    """

    kinds: tuple[str, ...] = PROJECTION_KINDS
    ratio: tuple[float, float] = (0.1, 0.5)
    sigma: tuple[float, float] = (0.0, 0.0)
    sigma_units: str = "measurement"

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in PROJECTION_KINDS]
        if not self.kinds or unknown:
            raise ValueError(f"unknown projections {unknown}; known: {', '.join(PROJECTION_KINDS)}")
        _check_range(self.ratio, "ratio", 1e-6, 1.0)
        _check_sigma_range(self.sigma, type(self).__name__)
        if self.sigma_units not in SIGMA_UNITS:
            raise ValueError(
                f"unknown sigma_units {self.sigma_units!r}; known: {', '.join(SIGMA_UNITS)}"
            )

    def sample(self, x: Tensor, generator: torch.Generator) -> Measurement:
        kind = self.kinds[int(torch.randint(len(self.kinds), (1,), generator=generator))]
        ratio = float(_uniform(self.ratio, 1, generator))
        shape = tuple(x.shape[1:])
        op = random_projection(kind, shape, ratio, len(x), generator, x.dtype, x.device)
        op = op.to(device=x.device)  # where the device has no generator, drawn on the CPU
        sigma255 = _uniform(self.sigma, len(x), generator)
        if self.sigma_units == "image":
            sigma255 = sigma255 * rms_row_norm(op, len(x)).to(sigma255)
        sigma, y = _measure(op, x, sigma255, generator)
        return Measurement(op, y, sigma, x, initial_estimate(op, y, like=x), kind)


@dataclass
class MRITask:
    """Cartesian MRI of gray patches seen as complex images (2 real channels).

    Acceleration ``~ U(acceleration)`` per sample (the MRI RIMs use ``U(1.5, 5.2)``); masks are
    1-D variable-density columns or 2-D Gaussian points; ``x0`` is the zero-filled image.
    ``coils = (a, b)``: each batch draws a coil count from ``a .. b``; one coil is single-coil
    MRI, more are multi-coil (SENSE) with smooth simulated sensitivities per sample
    (:func:`rimkit.operators.synthetic_coil_maps`), normalised so ``sum_c |S_c|^2 = 1``.
    ``phase > 0`` gives each image a smooth random phase, ``x exp(i phi)`` with ``phi`` an
    offset of up to ``phase_offset`` radians (default pi: any) plus linear and quadratic terms
    of up to ``phase`` radians each across the patch, as measured images carry after coil
    combination (a small ``phase_offset`` and ``phase``: the residual phase left after
    ``rimkit reconstruct`` removes the low-resolution one); ``0`` keeps the images real.
    """

    acceleration: tuple[float, float] = (1.5, 5.2)
    sigma: tuple[float, float] = (0.0, 0.0)
    mask: str = "columns"
    coils: tuple[int, int] = (1, 1)
    phase: float = 0.0
    phase_offset: float = math.pi

    def __post_init__(self) -> None:
        _check_range(self.acceleration, "acceleration", 1.0, 1e6)
        _check_sigma_range(self.sigma, type(self).__name__)
        if self.mask not in MRI_MASKS:
            raise ValueError(f"unknown MRI mask {self.mask!r}; known: {', '.join(MRI_MASKS)}")
        _check_range(self.coils, "coils", 1, MAX_COILS)
        if any(isinstance(c, bool) or int(c) != c for c in self.coils):
            raise ValueError(f"coils must be whole numbers, got {self.coils}")
        if not 0.0 <= self.phase <= 10 * math.pi:
            raise ValueError(f"phase must lie in [0, 10 pi] radians, got {self.phase}")
        if not 0.0 <= self.phase_offset <= math.pi:
            raise ValueError(f"phase_offset must lie in [0, pi] radians, got {self.phase_offset}")

    def sample(self, x: Tensor, generator: torch.Generator) -> Measurement:
        b, c, h, w = x.shape
        if c != 1:
            raise ValueError(f"MRI tasks take gray patches, got {c} channels")
        draw = MRI_MASKS[self.mask]
        rates = _uniform(self.acceleration, b, generator)
        masks = torch.cat([draw((h, w), float(r), generator=generator) for r in rates])
        masks = masks.to(device=x.device, dtype=x.dtype)
        low, high = (int(n) for n in self.coils)
        coils = low if low == high else int(torch.randint(low, high + 1, (1,), generator=generator))
        if coils == 1:
            op = ComplexAsChannels(CartesianMRI(masks))
        else:
            maps = synthetic_coil_maps(coils, (h, w), b, generator, x.dtype.to_complex())
            op = ComplexAsChannels(MultiCoilMRI(masks, maps.to(x.device)))
        target = torch.cat([x, torch.zeros_like(x)], dim=1)  # (B, 2, H, W): real, imaginary
        if self.phase > 0:
            target = complex_to_channels(
                x * torch.exp(1j * _smooth_phase(x, self.phase, self.phase_offset, generator))
            )
        sigma, y = _measure(op, target, _uniform(self.sigma, b, generator), generator)
        return Measurement(op, y, sigma, target, initial_estimate(op, y), "mri")


def _smooth_phase(x: Tensor, amplitude: float, offset: float, generator: torch.Generator) -> Tensor:
    """Per sample ``phi = a0 + a1 Y + a2 X + a3 Y^2 + a4 X^2 + a5 X Y`` on ``[-1, 1]^2``,
    ``a0 ~ U(-offset, offset)``, the others ``~ U(-amplitude, amplitude) / 2``: ``(B, 1, H, W)``."""
    b, _, h, w = x.shape
    yy, xx = torch.meshgrid(
        torch.linspace(-1, 1, h, dtype=x.dtype),
        torch.linspace(-1, 1, w, dtype=x.dtype),
        indexing="ij",
    )
    terms = torch.stack([torch.ones_like(yy), yy, xx, yy**2, xx**2, xx * yy])  # (6, H, W)
    scale = torch.tensor([offset] + [amplitude / 2] * 5, dtype=x.dtype)
    coefficients = (2 * torch.rand(b, 6, generator=generator, dtype=x.dtype) - 1) * scale
    return torch.einsum("bk,khw->bhw", coefficients, terms)[:, None].to(x.device)


@dataclass
class LensingTask:
    """Strong lensing: each patch is a background source behind its own random lens.

    The patch spans ``source_fov`` (angle units) on the source plane; the observed image has
    the patch's pixel count over ``image_fov``. Per sample: an SIE with Einstein radius and
    axis ratio drawn from their ranges, a uniform orientation, a centre within ``offset`` of
    the source's and an external shear of strength up to ``shear`` in a uniform direction;
    the image is blurred by a Gaussian PSF of ``psf`` image pixels (0: none). The estimate
    starts at the flat 0.5 source.
    """

    einstein_radius: tuple[float, float] = (0.3, 0.6)
    axis_ratio: tuple[float, float] = (0.5, 1.0)
    offset: float = 0.05
    shear: float = 0.05
    source_fov: float = 1.0
    image_fov: float = 2.0
    psf: float = 0.0
    sigma: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        _check_range(self.einstein_radius, "einstein_radius", 0.0, 1e6)
        _check_range(self.axis_ratio, "axis_ratio", 1e-3, 1.0)
        _check_sigma_range(self.sigma, type(self).__name__)
        for name in ("offset", "shear", "psf"):
            if not 0.0 <= getattr(self, name) < 1e6:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("source_fov", "image_fov"):
            if not 0.0 < getattr(self, name) < 1e6:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    def sample(self, x: Tensor, generator: torch.Generator) -> Measurement:
        b, _, h, w = x.shape
        turn = _uniform((0.0, 2 * torch.pi), 3 * b, generator).reshape(3, b)
        reach = self.offset * torch.sqrt(_uniform((0.0, 1.0), b, generator))
        strength = _uniform((0.0, self.shear), b, generator)
        lens = SIE(
            einstein_radius=_uniform(self.einstein_radius, b, generator),
            axis_ratio=_uniform(self.axis_ratio, b, generator),
            angle=turn[0] / 2,
            center=(reach * torch.cos(turn[1]), reach * torch.sin(turn[1])),
            shear=(strength * torch.cos(turn[2]), strength * torch.sin(turn[2])),
        )
        setup = LensingSetup(lens, self.image_fov, self.source_fov, self.psf)
        op = setup.operator((h, w)).to(device=x.device, dtype=x.dtype)
        sigma, y = _measure(op, x, _uniform(self.sigma, b, generator), generator)
        return Measurement(op, y, sigma, x, initial_estimate(op, y, like=x), "lensing")


@dataclass
class TaskMixture:
    """Draw one of ``tasks`` per batch with probabilities proportional to ``weights``."""

    tasks: list[Task]
    weights: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("a task mixture needs at least one task")
        self.weights = list(self.weights) or [1.0] * len(self.tasks)
        if len(self.weights) != len(self.tasks) or min(self.weights) < 0 or sum(self.weights) <= 0:
            raise ValueError(f"weights must be {len(self.tasks)} non-negative numbers, not all 0")

    def sample(self, x: Tensor, generator: torch.Generator, pick: int | None = None) -> Measurement:
        """A measurement of ``x`` by a task drawn by weight, or by task ``pick`` (validation
        covers each task so)."""
        if pick is None:
            pick = 0
            if len(self.tasks) > 1:
                probs = torch.tensor(self.weights, dtype=torch.float64)
                pick = int(torch.multinomial(probs, 1, generator=generator))
        task = self.tasks[pick]
        measured = task.sample(x, generator)
        if not isinstance(measured, Measurement):
            raise TypeError(
                f"{type(task).__name__}.sample returned {type(measured).__name__}; a task's "
                "sample(x, generator) must return a rimkit.tasks.Measurement"
            )
        if type(task) not in BUILT_IN_TASKS:
            _check_measurement(measured, x, type(task).__name__)
        return measured


def _check_measurement(m: Measurement, x: Tensor, task: str) -> None:
    """Name what a task of one's own returned that training would trip over later, deep
    inside: images of another dtype than the patches, a start of another shape than the
    target (``x0=None`` is no start: the RIM begins at ``eta_0 = 0``)."""
    where = f"{task}.sample(x, generator) returned"
    for field_name in ("target", "x0"):
        value = getattr(m, field_name)
        if value is None and field_name == "x0":  # the RIM starts at eta_0 = 0
            continue
        if not isinstance(value, Tensor) or value.ndim != 4:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{where} {field_name} {got}; give a tensor (B, C, H, W)")
        if value.dtype != x.dtype:
            raise ValueError(
                f"{where} {field_name} of {value.dtype} for patches of {x.dtype}: draw the noise "
                "and sigma in the patches' dtype (e.g. torch.rand(..., dtype=x.dtype))"
            )
    if m.x0 is not None and m.x0.shape != m.target.shape:
        raise ValueError(
            f"{where} x0 {tuple(m.x0.shape)} and target {tuple(m.target.shape)}: the start "
            "is an image of the target's shape (e.g. A^T y)"
        )
    if m.y.is_floating_point() and m.y.dtype != x.dtype:
        raise ValueError(f"{where} y of {m.y.dtype} for patches of {x.dtype}; keep their dtype")
    sigma = torch.as_tensor(m.sigma)
    if sigma.is_floating_point() and bool((sigma > 1).any()):  # A(target): only then
        with torch.no_grad():
            clean = m.operator(m.target)
        what = f"y, whose noise-free values A(target) from {task} lie"
        warn_if_255_scale(clean, sigma, stacklevel=5, what=what)


TASKS: dict[str, type] = {
    "denoise": DenoiseTask,
    "sr": SuperResolutionTask,
    "blur": BlurTask,
    "inpaint": InpaintTask,
    "projection": ProjectionTask,
    "mri": MRITask,
    "lensing": LensingTask,
}
"""Task name -> class, for configs (:func:`register_task` adds your own)."""
BUILT_IN_TASKS = frozenset(TASKS.values())
"""rimkit's own tasks, whose measurements need no checking."""


def register_task(name: str) -> Callable[[type], type]:
    """Class decorator: a task of your own, named ``name`` in a config's ``tasks``.

    The class is a dataclass whose fields are the config entry's keys (typed; a ``tuple`` field
    takes a YAML list) with a ``sample(x, generator) -> Measurement`` that measures a batch
    ``x`` (B, C, P, P) of clean patches; ``rimkit.train.train`` then trains a RIM on it with
    everything else a recipe gives (checkpoints, resume, validation, logs). A non-linear
    forward model returns a :class:`Measurement` subclass whose ``likelihood()`` is an
    :class:`~rimkit.likelihood.AutogradLikelihood`. Register before the config is read, in
    every process that reads it (the ``rimkit`` command knows only the built-in tasks).

    Example:
        >>> @register_task("denoise-0-10")
        ... @dataclass
        ... class LightNoise:
        ...     sigma: tuple[float, float] = (0.0, 10.0)
        ...
        ...     def sample(self, x, generator):
        ...         return DenoiseTask(self.sigma).sample(x, generator)
        >>> from rimkit.train import ExperimentConfig
        >>> cfg = ExperimentConfig.from_dict({"tasks": [{"name": "denoise-0-10", "sigma": [0, 5]}]})
        >>> cfg.tasks
        [{'name': 'denoise-0-10', 'sigma': [0, 5]}]
        >>> del TASKS["denoise-0-10"]
    """

    def register(cls: type) -> type:
        if not dataclasses.is_dataclass(cls) or not callable(getattr(cls, "sample", None)):
            raise TypeError(
                f"task {name!r}: {getattr(cls, '__qualname__', cls)!r} must be a dataclass with "
                "a sample(x, generator) method returning a Measurement"
            )
        taken = TASKS.get(name, cls)
        if (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(
                f"task name {name!r} is taken (by {taken.__qualname__}); choose another"
            )  # the same class defined again (a notebook cell run twice) replaces itself
        TASKS[name] = cls
        return cls

    return register
