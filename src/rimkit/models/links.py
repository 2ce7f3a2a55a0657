"""Links ``x = link(eta)`` between the RIM's unconstrained state ``eta`` and image space.

A RIM updates ``eta`` and reports ``x = link(eta)``. The likelihood gradient is taken with
respect to ``eta`` by the chain rule, ``d log p / d eta = link'(eta) * d log p / d x``
(:meth:`Link.chain`). :meth:`Link.inverse` turns an initial image estimate into ``eta``,
clamping it into the link's range first.

=========  ==================  =========================================
name       ``x = link(eta)``   use
=========  ==================  =========================================
sigmoid    ``1/(1+e^-eta)``    images in ``[0, 1]`` (the RIM paper)
identity   ``eta``             unconstrained data, complex as channels
softplus   ``log(1+e^eta)``    positive quantities (fluxes)
=========  ==================  =========================================

Example:
    >>> import torch
    >>> link = LINKS["sigmoid"]()
    >>> x = torch.tensor([0.25, 0.5])
    >>> torch.allclose(link(link.inverse(x)), x)
    True
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class Link(nn.Module):
    """An elementwise, monotone map from ``eta`` (unconstrained) to image space, onto
    ``bounds`` (``None``: all reals)."""

    bounds: tuple[float, float] | None = None

    def warn_if_far_outside(self, x0: Tensor) -> None:
        """A note when most of a start ``x0`` lies more than 1 outside :attr:`bounds`: it is
        clamped where the link is flat (a sigmoid's slope at ``x = 1 - 1e-4`` is ``1e-4``), so
        the likelihood gradient barely moves the estimate.

        Example:
            >>> import warnings
            >>> with warnings.catch_warnings(record=True) as caught:
            ...     warnings.simplefilter("always")
            ...     SigmoidLink().warn_if_far_outside(torch.full((1, 1, 4, 4), 30.0))
            >>> "start x0 lies mostly outside" in str(caught[0].message)
            True
        """
        if self.bounds is None or x0.numel() == 0:
            return
        low, high = self.bounds
        x = x0.detach()
        outside = ((x < low - 1) | (x > high + 1)).float().mean()
        if float(outside) > 0.5:
            warnings.warn(
                f"the start x0 lies mostly outside [{low - 1:g}, {high + 1:g}], far from the "
                f"{type(self).__name__}'s range ({low:g}, {high:g}): it is clamped where the link "
                "is flat and the RIM barely moves; scale the start into that range (e.g. a flat "
                "0.5 image, or A^T y / ||A||^2 for an operator of large norm)",
                UserWarning,
                stacklevel=4,
            )

    def forward(self, eta: Tensor) -> Tensor:
        raise NotImplementedError

    def inverse(self, x: Tensor) -> Tensor:
        """``eta`` with ``link(eta) == x``, ``x`` clamped into the link's range first."""
        raise NotImplementedError

    def derivative(self, eta: Tensor) -> Tensor:
        """``link'(eta)``, elementwise."""
        raise NotImplementedError

    def chain(self, grad_x: Tensor, eta: Tensor) -> Tensor:
        """A gradient with respect to ``x`` turned into one with respect to ``eta``."""
        return grad_x * self.derivative(eta)


class SigmoidLink(Link):
    """``x = sigmoid(eta)``: images in ``(0, 1)``, the RIM paper's choice.

    ``inverse`` clamps ``x`` to ``[margin, 1 - margin]`` so ``logit`` stays finite.

    Example:
        >>> import torch
        >>> SigmoidLink().derivative(torch.zeros(1)).item()
        0.25
    """

    bounds = (0.0, 1.0)

    def __init__(self, margin: float = 1e-4) -> None:
        super().__init__()
        if not 0.0 < margin < 0.5:
            raise ValueError(f"margin must lie in (0, 0.5), got {margin}")
        self.margin = margin

    def forward(self, eta: Tensor) -> Tensor:
        return torch.sigmoid(eta)

    def inverse(self, x: Tensor) -> Tensor:
        return torch.logit(x.clamp(self.margin, 1.0 - self.margin))

    def derivative(self, eta: Tensor) -> Tensor:
        s = torch.sigmoid(eta)
        return s * (1.0 - s)

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


class IdentityLink(Link):
    """``x = eta``: unconstrained data, e.g. complex images as (real, imaginary) channels.

    Example:
        >>> import torch
        >>> IdentityLink().inverse(torch.tensor([-3.0])).item()
        -3.0
    """

    def forward(self, eta: Tensor) -> Tensor:
        return eta

    def inverse(self, x: Tensor) -> Tensor:
        return x

    def derivative(self, eta: Tensor) -> Tensor:
        return torch.ones_like(eta)

    def chain(self, grad_x: Tensor, eta: Tensor) -> Tensor:
        return grad_x


class SoftplusLink(Link):
    """``x = softplus(eta) = log(1 + e^eta)``: positive quantities such as fluxes.

    ``inverse`` clamps ``x`` to ``>= margin``.

    Example:
        >>> import torch
        >>> link = SoftplusLink()
        >>> round(link(link.inverse(torch.tensor([2.0]))).item(), 5)
        2.0
    """

    bounds = (0.0, float("inf"))

    def __init__(self, margin: float = 1e-4) -> None:
        super().__init__()
        if not margin > 0.0:
            raise ValueError(f"margin must be > 0, got {margin}")
        self.margin = margin

    def forward(self, eta: Tensor) -> Tensor:
        return F.softplus(eta)

    def inverse(self, x: Tensor) -> Tensor:
        x = x.clamp_min(self.margin)
        return x + torch.log(-torch.expm1(-x))

    def derivative(self, eta: Tensor) -> Tensor:
        return torch.sigmoid(eta)

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


LINKS: dict[str, type[Link]] = {
    "sigmoid": SigmoidLink,
    "identity": IdentityLink,
    "softplus": SoftplusLink,
}
