"""The convolutional GRU the RIM cells share, and its feed-forward stand-in for the FFN ablation.

For input ``x`` and hidden state ``h`` (convolutions ``W`` on the input, ``U`` on the state):

    z = sigmoid(W_z x + U_z h)               update gate
    r = sigmoid(W_r x + U_r h)               reset gate
    n = tanh(W_n x + U_n (r * h))            candidate
    h' = (1 - z) * h + z * n

The recurrent weights ``U`` are initialised orthogonal (per gate), the biases zero. From the
zero first state ``h = 0`` the recurrent convolutions give zero (they have no bias), so that
step computes ``h' = z * n`` alone.

Example:
    >>> import torch
    >>> gru = ConvGRU(4, 8)
    >>> x = torch.rand(2, 4, 16, 16)
    >>> gru(x, gru.initial_state(x)).shape
    torch.Size([2, 8, 16, 16])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rimkit.models.utils import needs_grad, tanh_, to_cell_layout


def _check_conv_args(in_channels: int, hidden_channels: int, kernel_size: int, dilation: int):
    for name, value in (
        ("in_channels", in_channels),
        ("hidden_channels", hidden_channels),
        ("dilation", dilation),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")


class ConvGRU(nn.Module):
    """A convolutional GRU: ``forward(x, h) -> h'`` at the resolution of ``x``.

    ``kernel_size`` and ``dilation`` apply to the input and the recurrent convolutions
    alike; the padding keeps the spatial size.
    """

    stateful = True

    def __init__(
        self, in_channels: int, hidden_channels: int, kernel_size: int = 3, dilation: int = 1
    ) -> None:
        super().__init__()
        _check_conv_args(in_channels, hidden_channels, kernel_size, dilation)
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        pad = dilation * (kernel_size - 1) // 2
        conv = {"kernel_size": kernel_size, "padding": pad, "dilation": dilation}
        self.input_conv = nn.Conv2d(in_channels, 3 * hidden_channels, **conv)
        self.gate_conv = nn.Conv2d(hidden_channels, 2 * hidden_channels, bias=False, **conv)
        self.candidate_conv = nn.Conv2d(hidden_channels, hidden_channels, bias=False, **conv)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.input_conv.reset_parameters()
        nn.init.zeros_(self.input_conv.bias)
        with torch.no_grad():
            for block in self.gate_conv.weight.chunk(2, dim=0):
                nn.init.orthogonal_(block)
            nn.init.orthogonal_(self.candidate_conv.weight)

    def initial_state(self, x: Tensor) -> Tensor:
        """Zeros ``(B, hidden, H, W)`` (in the cells' memory layout) for an input ``x`` of
        shape ``(B, C_in, H, W)``."""
        b, _, h, w = x.shape
        return to_cell_layout(x.new_zeros(b, self.hidden_channels, h, w))

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        a = self.input_conv(x)  # (B, 3 hidden, H, W): W_z x, W_r x, W_n x
        if not needs_grad(a, h):
            return self._step_in_place(a, h)
        xz, xr, xn = a.chunk(3, dim=1)  # (B, hidden, H, W) each
        if h is None or _is_zero_state(h):  # U h = 0 (no biases): h' = z * n, exactly
            return torch.sigmoid(xz) * torch.tanh(xn)  # (B, hidden, H, W)
        hz, hr = self.gate_conv(h).chunk(2, dim=1)  # (B, hidden, H, W) each
        z = torch.sigmoid(xz + hz)
        r = torch.sigmoid(xr + hr)
        n = torch.tanh(xn + self.candidate_conv(r * h))
        return h + z * (n - h)  # (B, hidden, H, W)

    def _step_in_place(self, a: Tensor, h: Tensor | None) -> Tensor:
        """The step of :meth:`forward` outside autograd, overwriting its fresh intermediates
        (at inference on CPU about half the time of the element-wise work there, the same
        values to ~1e-6)."""
        k = self.hidden_channels
        if h is None or _is_zero_state(h):
            z = a[:, :k].sigmoid_()
            return torch.mul(z, tanh_(a[:, 2 * k :]))  # (B, hidden, H, W), a fresh tensor
        zr = self.gate_conv(h).add_(a[:, : 2 * k]).sigmoid_()  # (B, 2 hidden, H, W)
        z, r = zr[:, :k], zr[:, k:]
        n = tanh_(self.candidate_conv(r * h).add_(a[:, 2 * k :]))  # (B, hidden, H, W)
        if n.dtype != h.dtype:  # under autocast: keep the state's dtype, as forward does
            return h + z * (n - h)
        return n.sub_(h).mul_(z).add_(h)  # h + z (n - h)

    def extra_repr(self) -> str:
        k = self.input_conv.kernel_size[0]
        d = self.input_conv.dilation[0]
        return f"{self.in_channels}, {self.hidden_channels}, kernel_size={k}, dilation={d}"


def _is_zero_state(h: Tensor) -> bool:
    """Whether ``h`` is the all-zero first state, checked where that costs no device sync (CPU)
    and only for a state outside autograd (the first one; later states in training need it)."""
    return h.device.type == "cpu" and not h.requires_grad and not bool(h.any())


class ConvFeedForward(nn.Module):
    """The FFN ablation's stand-in for a :class:`ConvGRU`: ``relu(conv(x))``, no state.

    Same constructor and call as :class:`ConvGRU`; the state argument is ignored.

    Example:
        >>> import torch
        >>> ConvFeedForward(4, 8)(torch.rand(1, 4, 5, 5), None).shape
        torch.Size([1, 8, 5, 5])
    """

    stateful = False

    def __init__(
        self, in_channels: int, hidden_channels: int, kernel_size: int = 3, dilation: int = 1
    ) -> None:
        super().__init__()
        _check_conv_args(in_channels, hidden_channels, kernel_size, dilation)
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        pad = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(
            in_channels, hidden_channels, kernel_size, padding=pad, dilation=dilation
        )
        nn.init.zeros_(self.conv.bias)

    def initial_state(self, x: Tensor) -> None:
        return None

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        return torch.relu(self.conv(x))  # (B, hidden, H, W)


MemoryUnit = ConvGRU | ConvFeedForward


def memory_unit(
    in_channels: int,
    hidden_channels: int,
    kernel_size: int = 3,
    dilation: int = 1,
    *,
    recurrent: bool = True,
) -> MemoryUnit:
    """A :class:`ConvGRU`, or a :class:`ConvFeedForward` layer where ``recurrent`` is False."""
    unit = ConvGRU if recurrent else ConvFeedForward
    return unit(in_channels, hidden_channels, kernel_size, dilation)
