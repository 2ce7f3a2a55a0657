"""The RIM paper's ablations, built from the same RIM loop and cells (composition, no copy).

- **GDN**, gradient-descent network: the cell sees only the likelihood gradient (and its own
  state), not the current estimate: ``eta_{t+1}, s_{t+1} = eta_t + g(grad_t, s_t)``.
  A :class:`~rimkit.models.rim.RIM` with ``uses_estimate=False``.
- **FFN**, feed-forward network: the same inputs as the RIM, but each GRU is replaced by a
  conv + ReLU layer of the same width, so there is no hidden state:
  ``eta_{t+1} = eta_t + g(grad_t, eta_t)``. Cells built with ``recurrent=False``.

Both run under the RIM's ``forward(likelihood, x0, steps)`` and return a ``Trajectory``.

Example:
    >>> import torch
    >>> from rimkit.likelihood import GaussianLikelihood
    >>> from rimkit.operators import Identity
    >>> gdn = build_gdn(features=8, hidden=8, train_steps=3)
    >>> y = torch.rand(1, 1, 16, 16)
    >>> len(gdn(GaussianLikelihood(Identity(), y, 0.1), x0=y))
    3
"""

from __future__ import annotations

from typing import Any

from rimkit.models.rim import RIM, build_rim


def build_gdn(*args: Any, **kwargs: Any) -> RIM:
    """The GDN ablation: ``build_rim(..., variant="gdn")`` (no estimate as cell input); takes
    the arguments of :func:`~rimkit.models.rim.build_rim` but ``variant``.

    Example:
        >>> gdn = build_gdn("restoration", channels=1, features=4, hidden=4, train_steps=2)
        >>> ffn = build_ffn("restoration", channels=1, features=4, hidden=4, train_steps=2)
        >>> gdn.uses_estimate, type(ffn.cell.memory).__name__  # no x_t in; no GRU memory
        (False, 'ConvFeedForward')
    """
    return build_rim(*args, variant="gdn", **kwargs)


def build_ffn(*args: Any, **kwargs: Any) -> RIM:
    """The FFN ablation: ``build_rim(..., variant="ffn")`` (GRUs replaced by conv + ReLU);
    takes the arguments of :func:`~rimkit.models.rim.build_rim` but ``variant`` (see
    :func:`build_gdn`'s example)."""
    return build_rim(*args, variant="ffn", **kwargs)
