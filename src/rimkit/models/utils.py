"""Small helpers shared by the models: parameter counts, padding to a stride, the memory layout
of the cells' activations."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

_LAYOUT = {"memory_format": torch.channels_last}


def check_int(value: object, name: str, low: int = 1, high: int | None = None) -> int:
    """``value`` if it is an int in ``[low, high]`` (``high=None``: no upper bound), else a
    ``ValueError`` that names ``name`` and the bound.

    Example:
        >>> check_int(3, "layers", 2, 16)
        3
    """
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if not ok or (high is not None and value > high):  # type: ignore[operator]
        bound = f"an int in [{low}, {high}]" if high is not None else f"an int >= {low}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return value  # type: ignore[return-value]


def to_cell_layout(x: Tensor) -> Tensor:
    """``x`` ``(B, C, H, W)`` in the memory layout the cells compute in: channels-last (NHWC)
    unless :func:`cell_layout` says otherwise. On CPU, oneDNN runs the cells' convolutions
    20-30 % faster on whole images in this layout (``benchmarks/layout.py``); the values are
    the same.

    Example:
        >>> to_cell_layout(torch.zeros(1, 3, 4, 4)).stride()
        (48, 1, 12, 3)
    """
    return x.contiguous(memory_format=_LAYOUT["memory_format"])


@contextlib.contextmanager
def cell_layout(memory_format: torch.memory_format) -> Iterator[None]:
    """Compute the cells in another layout inside a ``with`` block (to compare speeds).

    Example:
        >>> with cell_layout(torch.contiguous_format):
        ...     to_cell_layout(torch.zeros(1, 3, 4, 4)).stride()
        (48, 16, 4, 1)
    """
    previous = _LAYOUT["memory_format"]
    _LAYOUT["memory_format"] = memory_format
    try:
        yield
    finally:
        _LAYOUT["memory_format"] = previous


def needs_grad(*tensors: Tensor | None) -> bool:
    """Whether autograd records an op on ``tensors`` (so it must not overwrite them in place);
    ``None`` entries are skipped."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def tanh_(x: Tensor) -> Tensor:
    """``tanh(x)`` written into ``x``, as ``2 sigmoid(2x) - 1`` on CPU.

    PyTorch's vectorised ``tanh`` runs about three times slower on CPU than its ``sigmoid``
    (AVX2, one thread: 3.5 vs 1 ns per element), so four in-place passes built on ``sigmoid``
    take half the time of one ``tanh``; the two agree to ~2e-7. For a freshly computed ``x``
    outside autograd (:func:`needs_grad`); elsewhere use :func:`tanh`.

    Example:
        >>> x = torch.linspace(-4, 4, 9)
        >>> bool(torch.allclose(tanh_(x.clone()), torch.tanh(x), atol=1e-6))
        True
    """
    if x.device.type != "cpu":
        return x.tanh_()
    return x.mul_(2).sigmoid_().mul_(2).sub_(1)


def tanh(x: Tensor) -> Tensor:
    """``tanh`` of a freshly computed ``x`` (one nothing else reads): in place with
    :func:`tanh_` where autograd does not record it, ``torch.tanh`` where it does."""
    return torch.tanh(x) if needs_grad(x) else tanh_(x)


class Tanh(nn.Module):
    """:func:`tanh` as a module, for the cells' ``nn.Sequential`` blocks (after a layer whose
    output nothing else reads)."""

    def forward(self, x: Tensor) -> Tensor:
        return tanh(x)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """The number of (trainable) scalar parameters of ``module``.

    Example:
        >>> from torch import nn
        >>> count_parameters(nn.Conv2d(2, 4, 3))
        76
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def pad_to_multiple(x: Tensor, multiple: int, mode: str = "replicate") -> Tensor:
    """Pad ``x`` ``(B, C, H, W)`` at the bottom and right so ``H`` and ``W`` divide ``multiple``.

    Crop the result back with ``y[..., :H, :W]``.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "replicate"  # reflect needs more pixels than it pads
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def load_widened(model: nn.Module, state: dict[str, Tensor]) -> list[str]:
    """Load ``state`` into ``model`` where the model's convolutions may read more input channels
    than ``state``'s: those weights are copied into the leading input channels and the new ones
    start at zero, so the model computes what ``state``'s did. Returns the widened keys; any
    other difference in keys or shapes is a ``ValueError``.

    Example:
        >>> wide, narrow = nn.Conv2d(3, 4, 3), nn.Conv2d(2, 4, 3)
        >>> load_widened(wide, narrow.state_dict())
        ['weight']
        >>> bool(wide.weight[:, 2].abs().sum() == 0)
        True
    """
    own = model.state_dict()
    if set(own) != set(state):
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        raise ValueError(f"the weights do not fit this model: missing {missing}, extra {extra}")
    merged, widened = {}, []
    for key, mine in own.items():
        theirs = state[key]
        if theirs.shape == mine.shape:
            merged[key] = theirs
        elif theirs.ndim == 4 and _wider_inputs(mine.shape, theirs.shape):
            merged[key] = torch.zeros_like(mine)
            merged[key][:, : theirs.shape[1]] = theirs
            widened.append(key)
        else:
            raise ValueError(
                f"the weights do not fit this model: {key} is {tuple(theirs.shape)} there, "
                f"{tuple(mine.shape)} here"
            )
    model.load_state_dict(merged)
    return widened


def _wider_inputs(mine: torch.Size, theirs: torch.Size) -> bool:
    """Whether a conv weight ``(out, in, k, k)`` of shape ``mine`` reads more inputs than
    ``theirs`` and is otherwise the same."""
    return mine[0] == theirs[0] and mine[2:] == theirs[2:] and mine[1] > theirs[1]
