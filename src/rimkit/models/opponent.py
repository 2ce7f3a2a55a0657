"""Colour images through a one-channel RIM, in a decorrelated (opponent) colour space.

The estimate is kept in scaled orthonormal opponent coordinates

    z = M x + c,   M = O / sqrt(3),   c = (0, 1/2, 1/2),
    O = rows (1, 1, 1) / sqrt(3),  (1, 0, -1) / sqrt(2),  (1, -2, 1) / sqrt(6),

which map every RGB image in ``[0, 1]^3`` into ``[0, 1]^3`` (luminance and two centred chroma
channels) and keep white noise white: noise of variance ``sigma^2`` on ``x`` has variance
``sigma^2 / 3`` on each channel of ``z``. The likelihood stays that of the RGB image; by the
chain rule through ``x = M^{-1} (z - c)``

    grad_z log p(y | x(z)) = M^{-T} grad_x log p(y | x) = 3 M grad_x log p(y | x),

so any likelihood of RGB images works unchanged. The model's noise floor ``eps`` is that of
``z``: the RGB likelihood gets ``3 eps``, so each channel sees the variance ``sigma^2 / 3 + eps``
a one-channel model sees at noise ``sigma / sqrt(3)``. The three channels of ``z`` are folded into
the batch and restored by the same one-channel cell: a gray denoiser sees a luminance image and
two chroma images, each at noise ``sigma / sqrt(3)`` (the colour transform of CBM3D).

:class:`GuidedOpponentColorRIM` lets the channels see each other: its cell reads, beside each
channel's gradient and estimate, the luminance estimate of the same image (CBM3D likewise
filters the chroma with the luminance's block matches). Initialised from a gray or opponent
model (``optim.init``, :func:`rimkit.models.utils.load_widened`), its guide weights start at
zero, so it starts as that model.

Example:
    >>> import torch
    >>> from rimkit.likelihood import GaussianLikelihood
    >>> from rimkit.operators import Identity
    >>> from rimkit.models import build_rim
    >>> rim = build_rim("restoration", channels=3, color="opponent", features=8, hidden=8)
    >>> rim.channels, rim.cell.out_channels
    (3, 1)
    >>> y = torch.rand(2, 3, 16, 16)
    >>> rim(GaussianLikelihood(Identity(), y, 0.1), x0=y, steps=2).final.shape
    torch.Size([2, 3, 16, 16])
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from rimkit.likelihood import Likelihood
from rimkit.models.rim import RIM, Trajectory, check_start
from rimkit.models.utils import count_parameters

_ROWS = ((1.0, 1.0, 1.0), (1.0, 0.0, -1.0), (1.0, -2.0, 1.0))
_OFFSET = (0.0, 0.5, 0.5)


def opponent_matrix(
    dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Tensor:
    """``M = O / sqrt(3)``, ``(3, 3)``: RGB to scaled orthonormal opponent coordinates."""
    rows = torch.tensor(_ROWS, dtype=torch.float64)
    matrix = rows / rows.norm(dim=1, keepdim=True) / math.sqrt(3.0)
    return matrix.to(dtype=dtype, device=device)


def to_opponent(x: Tensor) -> Tensor:
    """``(B, 3, H, W)`` RGB to ``z = M x + c`` (``[0, 1]^3`` maps into ``[0, 1]^3``).

    Example:
        >>> to_opponent(torch.ones(1, 3, 1, 1)).flatten().tolist()
        [1.0, 0.5, 0.5]
    """
    _check_rgb(x)
    offset = torch.tensor(_OFFSET, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", opponent_matrix(x.dtype, x.device), x) + offset


def from_opponent(z: Tensor) -> Tensor:
    """The inverse of :func:`to_opponent`: ``x = M^{-1} (z - c) = 3 M^T (z - c)``."""
    _check_rgb(z)
    offset = torch.tensor(_OFFSET, dtype=z.dtype, device=z.device).view(1, 3, 1, 1)
    return 3.0 * torch.einsum("ji,bjhw->bihw", opponent_matrix(z.dtype, z.device), z - offset)


def _check_rgb(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != 3:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected RGB images (B, 3, H, W), got {got}")


def _fold(z: Tensor) -> Tensor:
    """``(B, 3, H, W) -> (3B, 1, H, W)``: each colour channel its own one-channel image."""
    b, c, h, w = z.shape
    return z.reshape(b * c, 1, h, w)


def _unfold(z: Tensor) -> Tensor:
    """``(3B, 1, H, W) -> (B, 3, H, W)``."""
    n, _, h, w = z.shape
    return z.reshape(n // 3, 3, h, w)


class OpponentLikelihood:
    """An RGB likelihood seen from folded opponent coordinates ``(3B, 1, H, W)``; ``eps`` is
    the noise floor in those coordinates (the RGB likelihood gets ``3 eps``)."""

    def __init__(self, likelihood: Likelihood) -> None:
        self.likelihood = likelihood

    def grad(self, z: Tensor, eps: Tensor | float = 0.0) -> Tensor:
        x = from_opponent(_unfold(z))  # (B, 3, H, W)
        grad_x = self.likelihood.grad(x, 3.0 * eps)  # (B, 3, H, W)
        matrix = opponent_matrix(grad_x.dtype, grad_x.device)
        return _fold(3.0 * torch.einsum("ij,bjhw->bihw", matrix, grad_x))  # (3B, 1, H, W)

    def log_prob(self, z: Tensor, eps: Tensor | float = 0.0) -> Tensor:
        return self.likelihood.log_prob(from_opponent(_unfold(z)), 3.0 * eps)


class OpponentColorRIM(RIM):
    """A :class:`~rimkit.models.rim.RIM` of RGB images whose one-channel cell restores each
    opponent channel (see the module docstring); its weights are those of a gray RIM, so a gray
    model's weights load into it unchanged (:meth:`from_gray`) and fine-tune on colour.

    ``forward`` takes and returns RGB images ``(B, 3, H, W)`` like any 3-channel RIM.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.cell.out_channels != 1:
            raise ValueError(
                f"an opponent-colour RIM restores each colour channel with a one-channel cell; "
                f"this cell restores {self.cell.out_channels} channels"
            )
        self.channels = 3

    @classmethod
    def from_gray(cls, rim: RIM) -> OpponentColorRIM:
        """An opponent-colour RIM sharing ``rim``'s cell, link and noise floor (no copy) and
        starting as it does."""
        if not isinstance(rim, RIM) or rim.channels != 1:
            raise ValueError("from_gray takes a one-channel RIM (a gray model)")
        colour = cls(
            rim.cell,
            rim.link,
            uses_estimate=rim.uses_estimate,
            train_steps=rim.train_steps,
            checkpoint=rim.checkpoint,
            check_finite=rim.check_finite,
        )
        colour.noise_floor = rim.noise_floor
        colour.cell_dtype = rim.cell_dtype
        if hasattr(rim, "start"):  # how a loaded model starts (rimkit.reconstruct.trained_start)
            colour.start = rim.start
        return colour

    def forward(
        self,
        likelihood: Likelihood,
        x0: Tensor | None = None,
        steps: int | None = None,
        *,
        shape: tuple[int, int, int, int] | None = None,
    ) -> Trajectory:
        start = check_start(likelihood, x0, shape, 3, self.noise_floor.raw)  # (B, 3, H, W)
        b, _, h, w = start.shape
        folded = None if x0 is None else _fold(to_opponent(x0))  # (3B, 1, H, W)
        inner = super().forward(
            OpponentLikelihood(likelihood), folded, steps, shape=(3 * b, 1, h, w)
        )
        return Trajectory([from_opponent(_unfold(z)) for z in inner.estimates])

    def extra_repr(self) -> str:
        return "opponent colour, " + super().extra_repr()


class GuidedOpponentColorRIM(OpponentColorRIM):
    """An :class:`OpponentColorRIM` whose one-channel cell also reads the luminance estimate:
    each channel's cell input is ``concat(grad_t, eta_t, eta_t^luminance)`` (3 channels, or 2
    for the GDN ablation), so chroma is restored knowing where the luminance has its edges.

    Example:
        >>> import torch
        >>> from rimkit.models import build_rim
        >>> rim = build_rim("restoration", 3, color="opponent-guided", features=8, hidden=8)
        >>> rim.cell.in_channels, rim.cell.out_channels
        (3, 1)
    """

    guide_channels = 1

    @classmethod
    def from_gray(cls, rim: RIM) -> OpponentColorRIM:
        raise ValueError(
            "a guided opponent-colour RIM's cell reads one more channel than a gray model's; "
            "initialise it from a gray or opponent model in training (optim.init) instead"
        )

    def guide(self, eta: Tensor) -> Tensor:
        n, _, h, w = eta.shape  # (3B, 1, H, W): luminance, chroma 1, chroma 2 of each image
        luminance = eta.reshape(n // 3, 3, h, w)[:, :1]  # (B, 1, H, W)
        return luminance.repeat_interleave(3, dim=0)  # (3B, 1, H, W)

    def extra_repr(self) -> str:
        return "luminance-guided " + super().extra_repr()


class TaggedOpponentColorRIM(GuidedOpponentColorRIM):
    """A :class:`GuidedOpponentColorRIM` whose cell also reads which channel it restores: its
    guide is ``concat(eta^luminance, [c == 1], [c == 2])``, two constant maps that are zero for
    the luminance and pick out each chroma channel, so one cell can restore the smooth chroma
    differently from the luminance. Initialised from a guided, opponent or gray model
    (``optim.init``), the tag weights start at zero, so it starts as that model.

    Example:
        >>> import torch
        >>> from rimkit.models import build_rim
        >>> rim = build_rim("restoration", 3, color="opponent-tagged", features=8, hidden=8)
        >>> rim.cell.in_channels
        5
        >>> rim.guide(torch.zeros(3, 1, 2, 2))[:, 1:].amax(dim=(2, 3)).tolist()
        [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    """

    guide_channels = 3

    def guide(self, eta: Tensor) -> Tensor:
        n, _, h, w = eta.shape  # (3B, 1, H, W): luminance, chroma 1, chroma 2 of each image
        tags = torch.eye(3, dtype=eta.dtype, device=eta.device)[:, 1:]  # (3, 2)
        tags = tags.repeat(n // 3, 1).view(n, 2, 1, 1).expand(n, 2, h, w)  # (3B, 2, H, W)
        return torch.cat([super().guide(eta), tags], dim=1)  # (3B, 3, H, W)

    def extra_repr(self) -> str:
        return "channel-tagged " + super().extra_repr()


class LuminanceChromaCell(nn.Module):
    """Two one-channel cells behind one cell's interface: ``luminance`` restores channel 0 of
    each folded image and ``chroma`` channels 1 and 2, so the smooth chroma gets weights of its
    own while each channel still costs one cell pass.

    Its inputs are folded opponent images ``(3B, C_in, H, W)`` (image ``b``'s channel ``c`` at
    ``3 b + c``); its state is the luminance cell's state entries, then the chroma cell's.

    Example:
        >>> import torch
        >>> from rimkit.models import CELLS
        >>> cell = LuminanceChromaCell(CELLS["restoration"](2, 1, features=4, hidden=4))
        >>> inputs = torch.rand(6, 2, 8, 8)          # 2 images, 3 opponent channels each
        >>> update, state = cell(inputs, cell.initial_state(inputs))
        >>> update.shape, [tuple(s.shape) for s in state]
        (torch.Size([6, 1, 8, 8]), [(2, 4, 4, 4), (4, 4, 4, 4)])
    """

    def __init__(self, luminance: nn.Module, chroma: nn.Module | None = None) -> None:
        super().__init__()
        if luminance.out_channels != 1:
            raise ValueError(
                f"a luminance-chroma cell restores one channel at a time; this cell restores "
                f"{luminance.out_channels}"
            )
        self.luminance = luminance
        self.chroma = copy.deepcopy(luminance) if chroma is None else chroma
        self.in_channels, self.out_channels = luminance.in_channels, 1

    @staticmethod
    def _split(inputs: Tensor) -> tuple[Tensor, Tensor]:
        """``(3B, C, H, W)`` -> luminance ``(B, C, H, W)`` and chroma ``(2B, C, H, W)``."""
        if inputs.ndim != 4 or inputs.shape[0] % 3:
            raise ValueError(
                f"expected folded opponent images (3B, C, H, W), got {tuple(inputs.shape)}"
            )
        images = inputs.reshape(-1, 3, *inputs.shape[1:])  # (B, 3, C, H, W)
        return images[:, 0], images[:, 1:].reshape(-1, *inputs.shape[1:])

    def initial_state(self, inputs: Tensor) -> tuple:
        luminance, chroma = self._split(inputs)
        return (*self.luminance.initial_state(luminance), *self.chroma.initial_state(chroma))

    def forward(self, inputs: Tensor, state: tuple) -> tuple[Tensor, tuple]:
        luminance, chroma = self._split(inputs)
        half = len(state) // 2
        update_l, state_l = self.luminance(luminance, state[:half])  # (B, 1, H, W)
        update_c, state_c = self.chroma(chroma, state[half:])  # (2B, 1, H, W)
        b, _, h, w = update_l.shape
        update = torch.cat([update_l.unsqueeze(1), update_c.reshape(b, 2, 1, h, w)], dim=1)
        return update.reshape(3 * b, 1, h, w), (*state_l, *state_c)  # (3B, 1, H, W)

    def extra_repr(self) -> str:
        return f"parameters={count_parameters(self):,}"


class SplitOpponentColorRIM(GuidedOpponentColorRIM):
    """A :class:`GuidedOpponentColorRIM` whose luminance and chroma channels are restored by
    two cells of the same architecture (:class:`LuminanceChromaCell`): twice the weights, the
    same work per image. Initialised from a one-cell opponent model (``optim.init``, see
    :meth:`state_from_one_cell`) both cells start as its cell, so it starts as that model.

    Example:
        >>> from rimkit.models import build_rim
        >>> rim = build_rim("restoration", 3, color="opponent-split", features=8, hidden=8)
        >>> type(rim.cell).__name__, rim.cell.in_channels
        ('LuminanceChromaCell', 3)
    """

    def __init__(self, cell: nn.Module, *args, **kwargs) -> None:
        if not isinstance(cell, LuminanceChromaCell):
            cell = LuminanceChromaCell(cell)
        super().__init__(cell, *args, **kwargs)

    @staticmethod
    def state_from_one_cell(state: dict[str, Tensor]) -> dict[str, Tensor]:
        """A one-cell model's weights with its cell's copied to the luminance and chroma cells."""
        split = {}
        for key, value in state.items():
            if key.startswith("cell."):
                for part in ("luminance", "chroma"):
                    split[f"cell.{part}.{key[5:]}"] = value.clone()
            else:
                split[key] = value
        return split

    def extra_repr(self) -> str:
        return "luminance / chroma cells, " + super().extra_repr()
