"""The Recurrent Inference Machine (Putzky & Welling, 2017).

A RIM never sees the physics, only the gradient of the log-likelihood. With ``x_t = link(eta_t)``
and a cell ``g`` with state ``s``:

    grad_t = link'(eta_t) * grad_x log p(y | x_t)          (chain rule through the link)
    eta_{t+1}, s_{t+1} = eta_t + g(concat(grad_t, eta_t), s_t)

The likelihood is any object with ``grad(x, eps)`` (:class:`rimkit.likelihood.Likelihood`),
so the same weights run on denoising, inpainting, random projections or MRI. Its noise floor
``eps`` is trained and lives in the model (:class:`rimkit.likelihood.NoiseFloor`). The gradient
is not detached: back-propagation through time also runs through ``grad_x log p(y | x_t)`` (as
in the i-RIM reference code), so training learns how each update changes the next gradient.

Example:
    >>> import torch
    >>> from rimkit.likelihood import GaussianLikelihood
    >>> from rimkit.operators import Identity
    >>> rim = build_rim("restoration", channels=1, features=8, hidden=16, train_steps=4)
    >>> y = torch.rand(2, 1, 17, 23)
    >>> trajectory = rim(GaussianLikelihood(Identity(), y, sigma=0.1), x0=y)
    >>> len(trajectory.estimates), trajectory.final.shape
    (4, torch.Size([2, 1, 17, 23]))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from rimkit.likelihood import Likelihood, NoiseFloor
from rimkit.models.cells import CELLS, State
from rimkit.models.links import LINKS, Link, SigmoidLink
from rimkit.models.utils import count_parameters
from rimkit.operators.base import LinearOperator

if TYPE_CHECKING:
    from rimkit.models.invertible import InvertibleRIM
    from rimkit.models.unrolled import UnrolledProximalGradient


@dataclass
class Trajectory:
    """The estimates ``x_1 .. x_T`` (``T >= 1``) of one RIM run, in image space
    (``link(eta_t)``).

    It is a sequence of its estimates: ``len(tr) == T``, ``tr[0]`` is ``x_1``, ``tr[-1]`` is
    ``x_T`` (also ``tr.final``), and ``for x in tr`` / ``list(tr)`` run over ``x_1 .. x_T``.

    Example:
        >>> import torch
        >>> tr = Trajectory([torch.zeros(1), torch.ones(1)])
        >>> len(tr), tr[-1].item(), [x.item() for x in tr]
        (2, 1.0, [0.0, 1.0])
    """

    estimates: list[Tensor]

    def __post_init__(self) -> None:
        if len(self.estimates) == 0:
            raise ValueError(_EMPTY_TRAJECTORY)

    @property
    def final(self) -> Tensor:
        """The last estimate ``x_T``."""
        if len(self.estimates) == 0:
            raise ValueError(_EMPTY_TRAJECTORY)
        return self.estimates[-1]

    def __len__(self) -> int:
        return len(self.estimates)

    @overload
    def __getitem__(self, index: int) -> Tensor: ...

    @overload
    def __getitem__(self, index: slice) -> list[Tensor]: ...

    def __getitem__(self, index: int | slice) -> Tensor | list[Tensor]:
        """The estimate ``x_{index + 1}`` (negative indices from the end); a slice: a list."""
        return self.estimates[index]

    def __iter__(self) -> Iterator[Tensor]:
        """The estimates ``x_1 .. x_T`` in order."""
        return iter(self.estimates)

    def stacked(self) -> Tensor:
        """All estimates as one tensor ``(T, B, C, H, W)``."""
        return torch.stack(self.estimates)


_EMPTY_TRAJECTORY = (
    "a Trajectory needs at least one estimate (x_1 .. x_T with T >= 1); a model run with "
    "steps >= 1 gives one per step"
)


def _check_steps(steps: object, name: str = "steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{name} must be an int >= 1, got {steps!r}")
    return steps


def check_run(likelihood: object, steps: int | None, train_steps: int, model: str) -> int:
    """The number of steps to run (``steps``, default ``train_steps``) after checking it and
    that ``likelihood`` has the ``.grad(x, eps)`` that every RIM-like ``model`` calls."""
    steps = train_steps if steps is None else _check_steps(steps)
    if not callable(getattr(likelihood, "grad", None)):
        raise ValueError(
            f"the {model} takes a likelihood with .grad(x, eps) (e.g. GaussianLikelihood("
            f"operator, y, sigma)), got {type(likelihood).__name__}"
        )
    return steps


def check_start(
    likelihood: Likelihood,
    x0: Tensor | None,
    shape: tuple[int, ...] | None,
    channels: int,
    ref: Tensor,
) -> Tensor:
    """The validated initial image ``x0``, or zeros of ``shape`` (or of the image shape the
    likelihood implies, :func:`image_shape`), on ``ref``'s dtype and device."""
    if x0 is not None:
        if shape is not None and isinstance(x0, Tensor) and tuple(shape) != tuple(x0.shape):
            raise ValueError(
                f"shape={tuple(shape)} and x0 of shape {tuple(x0.shape)} disagree; give one of "
                "them (the start x0 fixes the image shape)"
            )
        if not isinstance(x0, Tensor) or x0.ndim != 4:
            got = tuple(x0.shape) if isinstance(x0, Tensor) else type(x0).__name__
            raise ValueError(f"x0 must be a tensor (B, C, H, W), got {got}")
        if x0.is_complex():
            raise ValueError(
                "x0 is complex (a complex operator's start A^H y?); a RIM runs on real images: "
                "wrap the operator in ComplexAsChannels (a 2-channel model: real and imaginary "
                "parts, x0 by rimkit.operators.complex_to_channels) or RealImages (a 1-channel "
                "model: the image taken as real)"
            )
        if x0.shape[1] != channels:
            raise ValueError(f"x0 has {x0.shape[1]} channels; this model was built for {channels}")
        if x0.dtype != ref.dtype or x0.device != ref.device:
            raise ValueError(
                f"x0 is {x0.dtype} on {x0.device} but the model is {ref.dtype} on "
                f"{ref.device}; move one, e.g. model.to(x0.device, x0.dtype)"
            )
        return x0
    if shape is None:
        shape = image_shape(likelihood, channels)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"shape must be (B, C, H, W) with positive sizes, got {shape}")
    if shape[1] != channels:
        raise ValueError(f"shape has {shape[1]} channels; this model was built for {channels}")
    return torch.zeros(shape, dtype=ref.dtype, device=ref.device)


_NO_SHAPE = (
    "give x0 (e.g. the adjoint A^T y) or shape=(B, C, H, W); the image shape cannot be derived "
    "from this likelihood"
)


@torch.no_grad()
def image_shape(likelihood: Likelihood, channels: int) -> tuple[int, ...]:
    """The shape ``(B, C, H, W)`` of the images a likelihood measures, for a run without ``x0``.

    For a measurement that is an image ``(B, C', H', W')`` of a linear operator it is the shape
    of ``A^T y`` (an operator may change the size: super-resolution, a valid blur); for any
    other forward model ``f`` it is ``y``'s, checked by ``f(zeros)`` having ``y``'s shape.
    Anything else (e.g. random projections, whose ``y`` is no image) is a ``ValueError`` asking
    for ``x0`` or ``shape``.

    Example:
        >>> from rimkit.likelihood import GaussianLikelihood
        >>> from rimkit.operators import BicubicDownsample
        >>> image_shape(GaussianLikelihood(BicubicDownsample(2), torch.rand(2, 1, 4, 4), 0.1), 1)
        (2, 1, 8, 8)
    """
    y = getattr(likelihood, "y", None)
    if not isinstance(y, Tensor) or y.ndim != 4:
        raise ValueError(_NO_SHAPE)
    operator = getattr(likelihood, "operator", None)
    shape = tuple((operator.adjoint(y) if isinstance(operator, LinearOperator) else y).shape)
    if len(shape) != 4 or shape[1] != channels:
        raise ValueError(_NO_SHAPE)
    forward = getattr(likelihood, "forward", None)
    if operator is None and callable(forward):
        try:
            measured = tuple(forward(torch.zeros(shape, dtype=y.real.dtype, device=y.device)).shape)
        except (RuntimeError, ValueError) as err:  # f refuses images of y's shape
            measured = f"an error ({err})"
        if measured != tuple(y.shape):
            raise ValueError(
                f"the forward model maps images of y's shape {tuple(y.shape)} to {measured}, "
                "not to y's shape, so the image shape is unknown: give x0 or shape=(B, C, H, W)"
            )
    return tuple(shape)


class RIM(nn.Module):
    """A Recurrent Inference Machine: a cell, a link and a trainable noise floor.

    ``forward(likelihood, x0=None, steps=None, *, shape=None)`` runs ``steps`` updates
    (default ``train_steps``, any ``steps >= 1`` at inference) and returns the
    :class:`Trajectory` of estimates ``x_1 .. x_T``.

    - ``x0`` (``(B, C, H, W)``, real, in image space) is the initial estimate, e.g. the adjoint
      ``A^T y`` or an upsampled image; it enters as ``eta_0 = link.inverse(x0)`` (clamped into
      the link's range). Without ``x0``, ``eta_0 = 0`` with ``shape`` ``(B, C, H, W)``, or the
      shape of ``likelihood.y`` where that is an image with ``C`` channels.
    - A subclass may give the cell ``guide_channels`` more input channels, made from the
      estimate by its ``guide(eta)`` (e.g. :class:`~rimkit.models.opponent.GuidedOpponentColorRIM`).
    - ``uses_estimate=False`` is the GDN ablation: the cell sees only ``grad_t`` (``C``
      channels) instead of ``concat(grad_t, eta_t)`` (``2C``).
    - ``checkpoint=True`` recomputes each step's cell activations in the backward pass
      (``torch.utils.checkpoint``, non-reentrant), so training memory holds only the
      per-step inputs and states instead of all activations of all steps.
    - ``check_finite=True`` raises a ``ValueError`` naming the step at which the likelihood
      gradient turned NaN or Inf. On CPU it checks after every step and stops there; on an
      accelerator it records a flag per step on the device and checks them once after the
      loop (one host-device sync per run, not per step).
    - ``cell_dtype`` (attribute, default ``None``): run the cell under autocast to this dtype,
      e.g. ``torch.bfloat16`` on a GPU; ``eta``, the link and the likelihood gradient stay in
      the estimate's dtype.

    Example:
        >>> import torch
        >>> from rimkit.likelihood import GaussianLikelihood
        >>> from rimkit.models import RestorationCell
        >>> from rimkit.operators import Inpainting, random_mask
        >>> rim = RIM(RestorationCell(2, 1, features=8, hidden=8), train_steps=3)
        >>> x = torch.rand(1, 1, 16, 16)
        >>> op = Inpainting(random_mask(x.shape, 0.5, torch.Generator().manual_seed(0)))
        >>> out = rim(GaussianLikelihood(op, op(x), sigma=0.05), steps=5, shape=x.shape)
        >>> len(out), out.final.shape
        (5, torch.Size([1, 1, 16, 16]))
    """

    guide_channels = 0
    """Input channels the cell reads beyond the gradient and the estimate (see :meth:`guide`)."""

    def __init__(
        self,
        cell: nn.Module,
        link: Link | None = None,
        *,
        uses_estimate: bool = True,
        train_steps: int = 20,
        noise_floor: float = 1e-3,
        checkpoint: bool = False,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(cell, nn.Module):
            raise ValueError(f"cell must be an nn.Module, got {type(cell).__name__}")
        for attr in ("in_channels", "out_channels", "initial_state"):
            if not hasattr(cell, attr):
                raise ValueError(
                    f"cell {type(cell).__name__} has no {attr!r}; see rimkit.models.cells"
                )
        link = SigmoidLink() if link is None else link
        if not isinstance(link, Link):
            raise ValueError(f"link must be a rimkit Link (see LINKS), got {type(link).__name__}")
        channels = cell.out_channels
        expected = channels * (2 if uses_estimate else 1) + self.guide_channels
        if cell.in_channels != expected:
            what = "concat(grad, estimate)" if uses_estimate else "the gradient alone"
            if self.guide_channels:
                what += f" and {self.guide_channels} guide channel(s)"
            raise ValueError(
                f"the cell reads {cell.in_channels} channels but {what} has {expected} for "
                f"{channels} image channels; build the cell with in_channels={expected}"
            )
        self.cell = cell
        self.link = link
        self.noise_floor = NoiseFloor(noise_floor)
        self.channels = channels
        self.uses_estimate = uses_estimate
        self.train_steps = _check_steps(train_steps, "train_steps")
        self.checkpoint = checkpoint
        self.check_finite = check_finite
        self.cell_dtype: torch.dtype | None = None  # e.g. torch.bfloat16: autocast the cell

    @classmethod
    def paper_denoiser(cls, channels: int = 1, train_steps: int = 20) -> RIM:
        """The paper's image-restoration RIM: RestorationCell(64, 256), sigmoid link, T=20."""
        return build_rim("restoration", channels, features=64, hidden=256, train_steps=train_steps)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, train_steps={self.train_steps}, "
            f"uses_estimate={self.uses_estimate}, checkpoint={self.checkpoint}, "
            f"parameters={count_parameters(self):,}"
        )

    def guide(self, eta: Tensor) -> Tensor | None:
        """Extra cell inputs ``(B, guide_channels, H, W)`` made from ``eta``; none here."""
        return None

    def _initial_eta(
        self, likelihood: Likelihood, x0: Tensor | None, shape: tuple[int, ...] | None
    ) -> Tensor:
        channels = self.cell.out_channels  # the cell's images (self.channels may differ)
        start = check_start(likelihood, x0, shape, channels, self.noise_floor.raw)
        if x0 is None:
            return start  # (B, C, H, W)
        self.link.warn_if_far_outside(start)
        return self.link.inverse(start)  # (B, C, H, W)

    def forward(
        self,
        likelihood: Likelihood,
        x0: Tensor | None = None,
        steps: int | None = None,
        *,
        shape: tuple[int, int, int, int] | None = None,
    ) -> Trajectory:
        steps = check_run(likelihood, steps, self.train_steps, "RIM")
        eta = self._initial_eta(likelihood, x0, shape)  # (B, C, H, W)
        eps = self.noise_floor()
        x = self.link(eta)  # (B, C, H, W)
        guard = GradientGuard(eta, steps, self.check_finite)
        state: State | None = None
        estimates: list[Tensor] = []
        for t in range(1, steps + 1):
            grad_x = guard(likelihood.grad(x, eps), t)  # (B, C, H, W)
            grad = self.link.chain(grad_x, eta)  # (B, C, H, W)
            inputs = grad  # (B, C, H, W)
            if self.uses_estimate:
                inputs = torch.cat([grad, eta], dim=1)  # (B, 2C, H, W)
            guide = self.guide(eta)
            if guide is not None:
                inputs = torch.cat([inputs, guide], dim=1)  # (B, 2C + guide_channels, H, W)
            if state is None:
                state = self.cell.initial_state(inputs)
            with _autocast(eta.device, self.cell_dtype):
                if self.checkpoint and torch.is_grad_enabled():
                    update, state = _checkpoint(self.cell, inputs, state, use_reentrant=False)
                else:
                    update, state = self.cell(inputs, state)
            eta = eta + update.to(eta.dtype)  # (B, C, H, W), the estimate stays in its dtype
            x = self.link(eta)  # (B, C, H, W)
            estimates.append(x)
        guard.finish()
        return Trajectory(estimates)


def _autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Autocast of the cell to ``dtype`` (``None``: off)."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


class GradientGuard:
    """Checks each step's likelihood gradient against the estimate: shape, dtype, finiteness.

    A non-finite gradient raises a ``ValueError`` naming the step. Where a host-device sync is
    cheap (CPU) that happens at once; elsewhere a flag per step stays on the device and
    :meth:`finish` checks them all with one sync after the loop.
    """

    def __init__(self, estimate: Tensor, steps: int, check_finite: bool) -> None:
        self.shape, self.dtype, self.steps = estimate.shape, estimate.dtype, steps
        self.check_now = check_finite and _syncs_cheaply(estimate.device)
        self.deferred = check_finite and not self.check_now
        self.flags: list[Tensor] = []

    def __call__(self, grad: Tensor, step: int) -> Tensor:
        if not isinstance(grad, Tensor) or grad.shape != self.shape:
            got = tuple(grad.shape) if isinstance(grad, Tensor) else type(grad)
            raise ValueError(
                f"the likelihood gradient at step {step} has shape {got} but the estimate has "
                f"shape {tuple(self.shape)}; likelihood and x0/shape do not belong together"
            )
        if grad.dtype != self.dtype:
            raise ValueError(_dtype_message(grad.dtype, self.dtype))
        if self.check_now and not bool(torch.isfinite(grad).all()):
            raise ValueError(_not_finite_message(step, self.steps))
        if self.deferred:
            self.flags.append(torch.isfinite(grad).all())
        return grad

    def finish(self) -> None:
        if self.flags:
            ok = torch.stack(self.flags)
            if not bool(ok.all()):
                raise ValueError(_not_finite_message(int((~ok).nonzero()[0, 0]) + 1, self.steps))


def _dtype_message(grad: torch.dtype, estimate: torch.dtype) -> str:
    """Why the likelihood gradient's dtype differs from the estimate's, and the fix."""
    head = f"the likelihood gradient is {grad}, the estimate {estimate}; "
    if grad.is_complex and not estimate.is_complex:
        return head + (
            "a complex operator needs real images: wrap it in ComplexAsChannels and give the "
            "image as real channels (rimkit.operators.complex_to_channels)"
        )
    return head + (
        f"the measurement y (or the operator) is {grad}: cast y (and x0) to the estimate's "
        f"dtype, e.g. y.to({estimate}), or run the model in {grad}: model.to({grad}) "
        f"(model.double() for float64) with x0 in {grad}"
    )


def _syncs_cheaply(device: torch.device) -> bool:
    """Whether reading a flag back each step costs nothing (CPU: no host-device sync)."""
    return device.type == "cpu"


def _not_finite_message(step: int, steps: int) -> str:
    return (
        f"the likelihood gradient is not finite (NaN or Inf) at step {step} of {steps}; "
        "check the measurement, sigma and the noise floor (and a custom operator's adjoint: "
        "rimkit.operators.adjoint_mismatch(operator, x) is about 1e-15 when it is right)"
    )


VARIANTS: dict[str, tuple[bool, bool]] = {
    "rim": (True, True),
    "gdn": (False, True),
    "ffn": (True, False),
}
"""name -> (uses_estimate, recurrent): the RIM and the paper's two ablations.

A config's ``variant`` may also name a learned unrolled baseline, a key of
:data:`rimkit.models.unrolled.UNROLLED_VARIANTS` (``unrolled``, ``unrolled-shared``), or
``invertible``: the i-RIM (:class:`~rimkit.models.invertible.InvertibleRIM`)."""

INVERTIBLE = "invertible"
"""The ``variant`` that builds an :class:`~rimkit.models.invertible.InvertibleRIM`."""


@dataclass(frozen=True)
class RIMConfig:
    """Everything :func:`build_rim` needs; ``None`` widths take the cell's defaults.

    ``variant: unrolled`` (or ``unrolled-shared``) builds the learned unrolled baseline
    :class:`~rimkit.models.unrolled.UnrolledProximalGradient` instead, with ``train_steps``
    iterations, ``features`` the width of its proximal CNNs (default 32) and ``hidden`` their
    number of convolution layers (default 4) and ``step_size`` the initial gradient step (default
    1e-3; smaller for an operator of larger norm); ``cell`` and ``link`` are then checked but
    unused.
    ``variant: invertible`` builds the i-RIM
    :class:`~rimkit.models.invertible.InvertibleRIM` (memory constant in ``train_steps`` with
    ``checkpoint: true``), ``features`` the width of its coupling networks (default 32) and
    ``hidden`` its state channels (default 16); ``cell`` is then checked but unused.
    ``norm`` (``none``, ``batch`` or ``layer``) normalises the restoration cell's features
    before its tanh layers (:class:`~rimkit.models.cells.RestorationCell`).
    ``color: opponent`` (with ``channels: 3``) restores RGB images with a one-channel cell in
    opponent colour coordinates (:class:`~rimkit.models.opponent.OpponentColorRIM`);
    ``opponent-guided`` also gives that cell the luminance estimate as a third input
    (:class:`~rimkit.models.opponent.GuidedOpponentColorRIM`); the default ``native`` works on
    the channels as given.

    Example:
        >>> cfg = RIMConfig(cell="super_resolution", features=8, hidden=8, train_steps=5)
        >>> cfg.build().train_steps
        5
        >>> RIMConfig.from_dict({"cell": "mri", "channels": 2}).link
        'identity'
        >>> type(RIMConfig(variant="unrolled", features=8, hidden=3, train_steps=4).build())
        <class 'rimkit.models.unrolled.UnrolledProximalGradient'>
    """

    cell: str = "restoration"
    channels: int = 1
    variant: str = "rim"
    link: str | None = None
    features: int | None = None
    hidden: int | None = None
    train_steps: int = 20
    noise_floor: float = 1e-3
    checkpoint: bool = False
    check_finite: bool = True
    color: str = "native"
    step_size: float | None = None
    norm: str = "none"

    def __post_init__(self) -> None:
        if self.link is None:
            object.__setattr__(self, "link", default_link(self.cell))

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> RIMConfig:
        """A config from a plain dict (e.g. YAML); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown RIM config keys {unknown}; known: {sorted(known)}")
        return cls(**values)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @property
    def cell_channels(self) -> int:
        """The image channels the cell restores: 1 for the opponent colours, else ``channels``."""
        return cell_channels(self.channels, self.color)

    def build(self) -> RIM | UnrolledProximalGradient | InvertibleRIM:
        return build_rim(**self.to_dict())  # type: ignore[arg-type]


COLORS = {
    "native": "the channels as given",
    "opponent": "RGB in opponent coordinates",
    "opponent-guided": "RGB in opponent coordinates, each channel's cell also reads the luminance",
    "opponent-tagged": "as opponent-guided, and each cell also reads which channel it restores",
    "opponent-split": "as opponent-guided, with one cell for the luminance and one for the chroma",
}
"""The colour handling a config may name (``RIMConfig.color``)."""

OPPONENT_COLORS = ("opponent", "opponent-guided", "opponent-tagged", "opponent-split")
"""The colour handlings that restore RGB with a one-channel cell in opponent coordinates."""

DEFAULT_LINKS = {"restoration": "sigmoid", "super_resolution": "sigmoid", "mri": "identity"}
"""cell -> its link when none is named: images in [0, 1] go through a sigmoid; complex MRI
images (real and imaginary parts as channels) are signed and unbounded: identity."""


def cell_channels(channels: int, color: str) -> int:
    """The channels a cell restores for images of ``channels`` with colour handling ``color``."""
    return 1 if color in OPPONENT_COLORS else channels


def default_link(cell: str) -> str:
    """The link a cell gets when none is named (:data:`DEFAULT_LINKS`; sigmoid for others)."""
    return DEFAULT_LINKS.get(cell, "sigmoid")


def _pick(table: dict[str, object], name: str, what: str) -> object:
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; known: {', '.join(table)}")
    return table[name]


def build_rim(
    cell: str = "restoration",
    channels: int = 1,
    *,
    variant: str = "rim",
    link: str | None = None,
    features: int | None = None,
    hidden: int | None = None,
    train_steps: int = 20,
    noise_floor: float = 1e-3,
    checkpoint: bool = False,
    check_finite: bool = True,
    color: str = "native",
    step_size: float | None = None,
    norm: str = "none",
) -> RIM | UnrolledProximalGradient | InvertibleRIM:
    """Build a RIM (or a GDN / FFN ablation) by names from :data:`CELLS`, :data:`LINKS` and
    :data:`VARIANTS`; a variant in :data:`~rimkit.models.unrolled.UNROLLED_VARIANTS` builds the
    learned unrolled baseline (:func:`~rimkit.models.unrolled.build_unrolled`) and
    ``"invertible"`` the i-RIM (:func:`~rimkit.models.invertible.build_invertible`). Without a
    ``link`` the cell's default is used (:data:`DEFAULT_LINKS`). ``color="opponent"`` builds
    an :class:`~rimkit.models.opponent.OpponentColorRIM` of RGB images (``channels=3``) around
    a one-channel cell (``"opponent-guided"``: a
    :class:`~rimkit.models.opponent.GuidedOpponentColorRIM`; ``"opponent-tagged"``: a
    :class:`~rimkit.models.opponent.TaggedOpponentColorRIM`; ``"opponent-split"``: a
    :class:`~rimkit.models.opponent.SplitOpponentColorRIM`); ``"native"`` (default) a cell of
    all ``channels``.

    Example:
        >>> rim = build_rim("restoration", channels=3, features=8, hidden=8)
        >>> rim.cell.in_channels, rim.channels
        (6, 3)
        >>> rim.config.features  # what it was built from, for rimkit.zoo.save_model
        8
    """
    options = dict(locals())
    model = _build_model(**options)
    model.config = RIMConfig(**options)
    return model


def _build_model(
    cell: str,
    channels: int,
    *,
    variant: str,
    link: str | None,
    features: int | None,
    hidden: int | None,
    train_steps: int,
    noise_floor: float,
    checkpoint: bool,
    check_finite: bool,
    color: str,
    step_size: float | None,
    norm: str,
) -> RIM | UnrolledProximalGradient | InvertibleRIM:
    from rimkit.models import invertible, opponent, unrolled  # they build on this module

    cell_cls = _pick(CELLS, cell, "cell")
    _pick(COLORS, color, "color")
    link_cls = _pick(LINKS, default_link(cell) if link is None else link, "link")
    _pick({**VARIANTS, **unrolled.UNROLLED_VARIANTS, INVERTIBLE: None}, variant, "variant")
    if color in OPPONENT_COLORS and (channels != 3 or variant not in VARIANTS):
        raise ValueError(
            f"color {color!r} is for RIMs of RGB images: channels 3 and a variant among "
            f"{', '.join(VARIANTS)}; got channels {channels!r}, variant {variant!r}"
        )
    if norm != "none" and (cell != "restoration" or variant not in VARIANTS):
        raise ValueError(
            f"norm {norm!r} is an option of the restoration cell's RIMs (and their GDN / FFN "
            f"ablations); got cell {cell!r}, variant {variant!r}: leave norm out"
        )
    shared = {
        "features": features,
        "hidden": hidden,
        "train_steps": train_steps,
        "noise_floor": noise_floor,
        "checkpoint": checkpoint,
        "check_finite": check_finite,
    }
    if variant in unrolled.UNROLLED_VARIANTS:
        steps = {} if step_size is None else {"step_size": step_size}
        return unrolled.build_unrolled(channels, variant=variant, **shared, **steps)  # type: ignore[arg-type]
    if step_size is not None:
        raise ValueError(
            f"step_size is the unrolled variants' initial step; variant {variant!r} learns its "
            "own updates: leave it out"
        )
    if variant == INVERTIBLE:
        return invertible.build_invertible(channels, link_cls(), **shared)  # type: ignore[arg-type, operator]
    uses_estimate, recurrent = VARIANTS[variant]
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive int, got {channels!r}")
    widths = {k: v for k, v in (("features", features), ("hidden", hidden)) if v is not None}
    restored = cell_channels(channels, color)
    model_cls = {
        "opponent": opponent.OpponentColorRIM,
        "opponent-guided": opponent.GuidedOpponentColorRIM,
        "opponent-tagged": opponent.TaggedOpponentColorRIM,
        "opponent-split": opponent.SplitOpponentColorRIM,
    }.get(color, RIM)
    in_channels = restored * (2 if uses_estimate else 1) + model_cls.guide_channels
    normalised = {"norm": norm} if norm != "none" else {}  # the restoration cell's option
    network = cell_cls(in_channels, restored, recurrent=recurrent, **widths, **normalised)  # type: ignore[operator]
    return model_cls(
        network,
        link_cls(),  # type: ignore[operator]
        uses_estimate=uses_estimate,
        train_steps=train_steps,
        noise_floor=noise_floor,
        checkpoint=checkpoint,
        check_finite=check_finite,
    )
