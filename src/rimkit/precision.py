"""The arithmetic a RIM's cell runs in: ``fp32`` (the default) or ``bf16``.

``bf16`` runs the cell's convolutions and GRU under bfloat16 autocast while the estimate
``eta``, the link and the likelihood gradient stay float32: ``eta_{t+1} = eta_t + g(...)``
adds a bfloat16 update to a float32 estimate, so rounding does not pile up over the steps.
Where the hardware computes bfloat16 natively (a GPU; an x86 CPU with AVX512-BF16 or AMX)
the convolutions run about twice as fast; elsewhere bfloat16 is emulated and slower, which
:func:`apply_precision` warns of. The training loop (``optim.precision``) and inference
(``load_model(..., precision=)``, ``--precision``) share this module.

Example:
    >>> from rimkit.models import build_rim
    >>> rim = apply_precision(build_rim(features=4, hidden=4, train_steps=2), "fp32", "cpu")
    >>> rim.cell_dtype is None
    True
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # torch is imported where it is used: the command line reads this without it
    import torch
    from torch import nn

__all__ = ["PRECISIONS", "PRECISION_HELP", "apply_precision", "check_precision", "native_bf16"]

PRECISIONS = ("fp32", "bf16")
"""The precisions a RIM's cell runs in."""

PRECISION_HELP = (
    "the RIM's cell in fp32 (default) or bf16: bfloat16 convolutions, the estimate kept float32; "
    "about 1.5x as fast on a CPU with AVX512-BF16 or AMX, slower on one without"
)

Model = TypeVar("Model", bound="nn.Module")


def check_precision(precision: str, what: str = "precision") -> None:
    """Refuse a precision not in :data:`PRECISIONS`, naming the setting ``what``.

    Example:
        >>> check_precision("fp16")
        Traceback (most recent call last):
        ...
        ValueError: unknown precision 'fp16'; known: fp32, bf16
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown {what} {precision!r}; known: {', '.join(PRECISIONS)}")


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware: a CUDA GPU that supports it, or a
    CPU with AVX512-BF16 or AMX (x86; other CPUs count as not native).

    Example:
        >>> isinstance(native_bf16("cpu"), bool)
        True
    """
    import torch

    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def apply_precision(
    model: Model, precision: str, device: str | torch.device, what: str = "precision"
) -> Model:
    """Set ``model`` (a RIM) to run its cell in ``precision`` on ``device`` and return it.

    ``bf16`` on a model without a separate cell (the invertible RIM, the unrolled network) is a
    ``ValueError``; on a device without native bfloat16 it warns that it will be slower.
    """
    import torch

    check_precision(precision, what)
    if not hasattr(model, "cell_dtype"):
        if precision == "fp32":
            return model
        raise ValueError(
            f"{what} bf16 runs a RIM's cell under bfloat16 autocast; the "
            f"{type(model).__name__} has no separate cell: use {what} fp32"
        )
    if precision == "bf16" and not native_bf16(device):
        warnings.warn(
            f"{what} bf16: {torch.device(device).type} here has no native bfloat16 arithmetic "
            "(a CPU needs AVX512-BF16 or AMX), so bfloat16 is emulated and likely slower than "
            "fp32",
            UserWarning,
            stacklevel=3,
        )
    model.cell_dtype = torch.bfloat16 if precision == "bf16" else None
    return model
