"""What a model costs to run: the floating-point operations of its network on one image.

The count is ``torch.utils.flop_counter``'s (two per multiply-add of the convolutions and
matrix products), over a denoising run of ``steps`` steps on a ``(1, C, height, width)``
image; the forward model's own operations (an FFT, a blur) and the element-wise ones (the
GRU's gates, the link) are left out, so it is the network's cost, the bulk of a RIM's. The
RIM paper's image-restoration RIM (features 64, hidden 256, T = 20) needs 3.5 TFLOP on a
481x321 BSD68 image; the shipped ``denoise-gray``, made for a laptop's CPU, needs 107 GFLOP,
1/33 of that.

Example:
    >>> from rimkit.models import build_rim
    >>> rim = build_rim(features=4, hidden=4, train_steps=3)
    >>> one, two, three = (inference_flops(rim, 16, 16, steps=t) for t in (1, 2, 3))
    >>> three - two == two - one > one > 0  # the first step's memory is still empty
    True
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

BSD68_SIZE = (321, 481)
"""A BSD68 image's height and width: the size the model cards quote costs for."""


@torch.no_grad()
def inference_flops(
    model: nn.Module,
    height: int = BSD68_SIZE[0],
    width: int = BSD68_SIZE[1],
    steps: int | None = None,
) -> int:
    """The network's floating-point operations to restore one ``height x width`` image over
    ``steps`` steps (default: the model's trained ``T``), counted on a denoising run on the
    model's device (see the module docstring for what is counted).

    Example:
        >>> from rimkit.models import build_rim
        >>> rim = build_rim("restoration", channels=1, features=4, hidden=4, train_steps=2)
        >>> inference_flops(rim, 32, 32) == 4 * inference_flops(rim, 16, 16)  # per pixel
        True
    """
    from rimkit.likelihood import GaussianLikelihood
    from rimkit.operators import Identity

    channels = getattr(model, "channels", None)
    if not isinstance(channels, int) or not callable(model):
        raise ValueError(f"inference_flops takes a rimkit model, got {type(model).__name__}")
    if min(height, width) < 1:
        raise ValueError(f"the image must have pixels, got {height}x{width}")
    parameter = next(model.parameters())
    y = torch.full(
        (1, channels, height, width), 0.5, dtype=parameter.dtype, device=parameter.device
    )
    likelihood = GaussianLikelihood(Identity(), y, torch.tensor(0.1, dtype=y.dtype))
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(likelihood, x0=y, steps=steps)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
