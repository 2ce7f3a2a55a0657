"""RIM models: the recurrent loop, its cells, links, ablations, losses over time, and the
learned unrolled baseline (:mod:`rimkit.models.unrolled`) and the invertible RIM
(:mod:`rimkit.models.invertible`).

Example:
    >>> import torch
    >>> from rimkit.likelihood import GaussianLikelihood
    >>> from rimkit.models import build_rim, trajectory_loss
    >>> from rimkit.operators import Identity
    >>> rim = build_rim("restoration", channels=1, features=8, hidden=8, train_steps=3)
    >>> x = torch.rand(2, 1, 16, 16)
    >>> y = x + 0.1 * torch.randn_like(x)
    >>> loss = trajectory_loss(rim(GaussianLikelihood(Identity(), y, 0.1), x0=y), x)
    >>> loss.backward()
"""

from rimkit.models.ablations import build_ffn, build_gdn
from rimkit.models.cells import CELLS, NORMS, Cell, MRICell, RestorationCell, SuperResolutionCell
from rimkit.models.convgru import ConvFeedForward, ConvGRU
from rimkit.models.cost import inference_flops
from rimkit.models.invertible import InvertibleRIM, build_invertible
from rimkit.models.links import LINKS, IdentityLink, Link, SigmoidLink, SoftplusLink
from rimkit.models.losses import (
    LOSSES,
    WEIGHT_SCHEMES,
    measurement_fit_loss,
    ssim,
    step_weights,
    trajectory_loss,
)
from rimkit.models.rim import RIM, VARIANTS, RIMConfig, Trajectory, build_rim
from rimkit.models.unrolled import (
    UNROLLED_VARIANTS,
    ProximalCNN,
    UnrolledProximalGradient,
    build_unrolled,
)
from rimkit.models.utils import count_parameters

__all__ = [
    "CELLS",
    "LINKS",
    "LOSSES",
    "NORMS",
    "RIM",
    "UNROLLED_VARIANTS",
    "VARIANTS",
    "WEIGHT_SCHEMES",
    "Cell",
    "ConvFeedForward",
    "ConvGRU",
    "IdentityLink",
    "InvertibleRIM",
    "Link",
    "MRICell",
    "ProximalCNN",
    "RIMConfig",
    "RestorationCell",
    "SigmoidLink",
    "SoftplusLink",
    "SuperResolutionCell",
    "Trajectory",
    "UnrolledProximalGradient",
    "build_ffn",
    "build_gdn",
    "build_invertible",
    "build_rim",
    "build_unrolled",
    "count_parameters",
    "inference_flops",
    "measurement_fit_loss",
    "ssim",
    "step_weights",
    "trajectory_loss",
]
