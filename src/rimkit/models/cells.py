"""RIM cells: the network ``g`` in ``eta_{t+1}, s_{t+1} = eta_t + g(grad_t, eta_t, s_t)``.

Every cell is an ``nn.Module`` with

- ``in_channels``, ``out_channels``: it reads ``(B, in_channels, H, W)`` (the RIM gives it
  ``concat(grad_t, eta_t)``, ``2C`` channels, or ``grad_t`` alone, ``C``, for the GDN ablation)
  and returns an update of ``out_channels = C``;
- ``initial_state(inputs)``: the zero state for inputs of that shape;
- ``forward(inputs, state) -> (update, new_state)``; ``state`` is a tuple with one entry per
  memory unit (a tensor for a :class:`ConvGRU`, ``None`` for the FFN's feed-forward layer).

The last convolution of every cell starts at zero, so an untrained RIM leaves its initial
estimate unchanged. ``recurrent=False`` swaps each GRU for a conv + ReLU layer of the same
width (the paper's FFN ablation). Any image size works: the strided cell pads to even size
(replicate) and crops back; the others keep full resolution throughout. Activations and states
are kept channels-last in memory (:func:`~rimkit.models.utils.to_cell_layout`); the update is
returned in the usual layout.

Example:
    >>> import torch
    >>> cell = CELLS["restoration"](2, 1, features=8, hidden=16)
    >>> inputs = torch.rand(1, 2, 17, 23)
    >>> update, state = cell(inputs, cell.initial_state(inputs))
    >>> update.shape, state[0].shape
    (torch.Size([1, 1, 17, 23]), torch.Size([1, 16, 9, 12]))
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from rimkit.models.convgru import memory_unit
from rimkit.models.utils import Tanh, count_parameters, pad_to_multiple, tanh, to_cell_layout

State = tuple[Tensor | None, ...]


class Cell(Protocol):
    """What a RIM needs of a cell (an ``nn.Module``)."""

    in_channels: int
    out_channels: int

    def initial_state(self, inputs: Tensor) -> State: ...

    def __call__(self, inputs: Tensor, state: State) -> tuple[Tensor, State]: ...


def _check_channels(in_channels: int, out_channels: int, **widths: int) -> None:
    for name, value in {"in_channels": in_channels, "out_channels": out_channels, **widths}.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_inputs(cell: nn.Module, inputs: Tensor) -> None:
    if inputs.ndim != 4 or inputs.shape[1] != cell.in_channels:
        raise ValueError(
            f"{type(cell).__name__} was built for inputs (B, {cell.in_channels}, H, W), got "
            f"{tuple(inputs.shape)}"
        )


def _zero_(conv: nn.Conv2d) -> nn.Conv2d:
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


NORMS = ("none", "batch", "layer")


def normalisation(norm: str, channels: int) -> nn.Module:
    """The layer ``norm`` names (one of :data:`NORMS`) for ``channels`` feature maps.

    Example:
        >>> type(normalisation("layer", 8)).__name__, type(normalisation("none", 8)).__name__
        ('GroupNorm', 'Identity')
    """
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "layer":
        return nn.GroupNorm(1, channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")


class _CellBase(nn.Module):
    in_channels: int
    out_channels: int

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"parameters={count_parameters(self):,}"
        )


class RestorationCell(_CellBase):
    """The RIM paper's image-restoration cell (about 2.36 M parameters at paper widths, C=1).

    ``conv 3x3 stride 2 (features) + tanh -> ConvGRU 3x3 (hidden) at half resolution ->
    transposed conv 3x3 stride 2 (features) + tanh -> conv 3x3 (out_channels)``.

    ``norm`` puts a normalisation before each of the two tanh layers: ``"batch"``, batch
    normalisation as in the paper's section 4.1 (batch statistics in training, running ones in
    ``eval()``, one set shared by all steps); ``"layer"``, each sample's features normalised over
    channels and pixels (``GroupNorm`` with one group; per tile where an image is restored in
    tiles), the same in training and use, so the cell sees its inputs at one scale whatever the
    likelihood gradient's; ``"none"`` (default).

    Odd sizes are padded to even (``pad_mode``: replicate or reflect) and cropped back; the
    state has size ``ceil(H/2) x ceil(W/2)``.

    Example:
        >>> import torch
        >>> cell = RestorationCell(2, 1)            # paper widths: features 64, hidden 256
        >>> f"{count_parameters(cell):,}"
        '2,361,921'
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        features: int = 64,
        hidden: int = 256,
        recurrent: bool = True,
        pad_mode: str = "replicate",
        norm: str = "none",
    ) -> None:
        super().__init__()
        _check_channels(in_channels, out_channels, features=features, hidden=hidden)
        if pad_mode not in ("replicate", "reflect"):
            raise ValueError(f"pad_mode must be 'replicate' or 'reflect', got {pad_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.pad_mode = pad_mode
        self.down = nn.Conv2d(in_channels, features, 3, stride=2, padding=1)
        self.down_norm = normalisation(norm, features)
        self.memory = memory_unit(features, hidden, 3, recurrent=recurrent)
        self.up = nn.ConvTranspose2d(hidden, features, 3, stride=2, padding=1, output_padding=1)
        self.up_norm = normalisation(norm, features)
        self.out = _zero_(nn.Conv2d(features, out_channels, 3, padding=1))

    def initial_state(self, inputs: Tensor) -> State:
        _check_inputs(self, inputs)
        if not self.memory.stateful:
            return (None,)
        b, _, h, w = inputs.shape
        size = (b, self.memory.hidden_channels, -(-h // 2), -(-w // 2))
        return (to_cell_layout(inputs.new_zeros(size)),)

    def forward(self, inputs: Tensor, state: State) -> tuple[Tensor, State]:
        _check_inputs(self, inputs)
        h, w = inputs.shape[-2:]
        x = pad_to_multiple(inputs, 2, self.pad_mode)  # (B, C_in, H', W'), H', W' even
        x = to_cell_layout(x)
        x = tanh(self.down_norm(self.down(x)))  # (B, features, H'/2, W'/2)
        s = self.memory(x, state[0])  # (B, hidden, H'/2, W'/2)
        x = tanh(self.up_norm(self.up(s)))  # (B, features, H', W')
        update = self.out(x)[..., :h, :w].contiguous()  # (B, C_out, H, W)
        return update, (s if self.memory.stateful else None,)


class SuperResolutionCell(_CellBase):
    """A full-resolution cell with a-trous (dilated) convolutions and no striding.

    ``conv 3x3 (features) + tanh -> conv 3x3 dilation 2 (features) + tanh -> ConvGRU 3x3
    (hidden) -> conv 3x3 dilation 4 (features) + tanh -> conv 3x3 (out_channels)``.

    The receptive field per step is 19 x 19 pixels (the strided cell's: 9 x 9 to 11 x 11, by
    the pixel's parity), with no loss of resolution and about an eighth of the strided cell's
    parameters at the default widths (64, 64).

    Example:
        >>> import torch
        >>> cell = SuperResolutionCell(2, 1, features=8, hidden=8)
        >>> inputs = torch.rand(1, 2, 7, 5)
        >>> cell(inputs, cell.initial_state(inputs))[0].shape
        torch.Size([1, 1, 7, 5])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        features: int = 64,
        hidden: int = 64,
        recurrent: bool = True,
    ) -> None:
        super().__init__()
        _check_channels(in_channels, out_channels, features=features, hidden=hidden)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.head = nn.Sequential(
            nn.Conv2d(in_channels, features, 3, padding=1),
            Tanh(),
            nn.Conv2d(features, features, 3, padding=2, dilation=2),
            Tanh(),
        )
        self.memory = memory_unit(features, hidden, 3, recurrent=recurrent)
        self.tail = nn.Sequential(nn.Conv2d(hidden, features, 3, padding=4, dilation=4), Tanh())
        self.out = _zero_(nn.Conv2d(features, out_channels, 3, padding=1))

    def initial_state(self, inputs: Tensor) -> State:
        _check_inputs(self, inputs)
        return (self.memory.initial_state(inputs),)

    def forward(self, inputs: Tensor, state: State) -> tuple[Tensor, State]:
        _check_inputs(self, inputs)
        x = self.head(to_cell_layout(inputs))  # (B, features, H, W)
        s = self.memory(x, state[0])  # (B, hidden, H, W)
        update = self.out(self.tail(s)).contiguous()  # (B, C_out, H, W)
        return update, (s if self.memory.stateful else None,)


class MRICell(_CellBase):
    """The DIRECT / i-RIM reference cell for MRI (two GRUs, full resolution).

    ``conv 5x5 (features) + ReLU -> ConvGRU 1x1 (hidden) -> conv 3x3 dilation 2 (features)
    + ReLU -> ConvGRU 1x1 (hidden) -> conv 3x3 (out_channels)``.

    Example:
        >>> import torch
        >>> cell = MRICell(4, 2, features=8, hidden=8)    # complex image as 2 channels
        >>> inputs = torch.rand(1, 4, 9, 9)
        >>> [s.shape[1] for s in cell.initial_state(inputs)]
        [8, 8]
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        features: int = 64,
        hidden: int = 64,
        recurrent: bool = True,
        gru_kernel_size: int = 1,
    ) -> None:
        super().__init__()
        _check_channels(in_channels, out_channels, features=features, hidden=hidden)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv1 = nn.Conv2d(in_channels, features, 5, padding=2)
        self.memory1 = memory_unit(features, hidden, gru_kernel_size, recurrent=recurrent)
        self.conv2 = nn.Conv2d(hidden, features, 3, padding=2, dilation=2)
        self.memory2 = memory_unit(features, hidden, gru_kernel_size, recurrent=recurrent)
        self.out = _zero_(nn.Conv2d(hidden, out_channels, 3, padding=1))

    def initial_state(self, inputs: Tensor) -> State:
        _check_inputs(self, inputs)
        return (self.memory1.initial_state(inputs), self.memory2.initial_state(inputs))

    def forward(self, inputs: Tensor, state: State) -> tuple[Tensor, State]:
        _check_inputs(self, inputs)
        x = torch.relu(self.conv1(to_cell_layout(inputs)))  # (B, features, H, W)
        s1 = self.memory1(x, state[0])  # (B, hidden, H, W)
        x = torch.relu(self.conv2(s1))  # (B, features, H, W)
        s2 = self.memory2(x, state[1])  # (B, hidden, H, W)
        update = self.out(s2).contiguous()  # (B, C_out, H, W)
        stateful = self.memory1.stateful
        return update, (s1 if stateful else None, s2 if stateful else None)


CELLS: dict[str, type[RestorationCell | SuperResolutionCell | MRICell]] = {
    "restoration": RestorationCell,
    "super_resolution": SuperResolutionCell,
    "mri": MRICell,
}
