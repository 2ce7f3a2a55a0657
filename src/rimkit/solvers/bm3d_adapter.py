"""BM3D and CBM3D (Dabov et al. 2007) through the optional ``bm3d`` package, for denoising.

``bm3d`` is an optional extra (``pip install 'rimkit[bm3d]'``), imported only when a
reconstruction runs. Gray images (one channel) go to ``bm3d.bm3d``, colour images (three
channels, RGB) to ``bm3d.bm3d_rgb`` (CBM3D: block matching on luminance). Each sample is
denoised on the CPU in float64 with its own ``sigma`` and returned on ``y``'s device and dtype.

Example:
    >>> import torch
    >>> from rimkit.operators import BicubicDownsample
    >>> BM3D()(torch.rand(1, 1, 8, 8), BicubicDownsample(2), 0.1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: BM3D is a denoiser: it accepts only the Identity operator (denoising), got ...
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import torch
from torch import Tensor

from rimkit.operators.base import Identity, LinearOperator
from rimkit.solvers.base import Reconstructor, SolverResult

__all__ = ["BM3D", "import_bm3d"]

PROFILES = {
    "np": "BM3DProfile",
    "refilter": "BM3DProfileRefilter",
    "vn": "BM3DProfileVN",
    "vn_old": "BM3DProfileVNOld",
    "high": "BM3DProfileHigh",
    "deb": "BM3DProfileDeb",
}
"""The ``bm3d`` package's profile names and the classes in ``bm3d.profiles`` they stand for."""


def import_bm3d() -> ModuleType:
    """Import the optional ``bm3d`` package, or raise an ``ImportError`` naming the extra."""
    try:
        import bm3d
    except ImportError as err:
        raise ImportError(
            "the BM3D baseline needs the optional 'bm3d' package: pip install 'rimkit[bm3d]'"
        ) from err
    return bm3d


@dataclass(frozen=True)
class BM3D(Reconstructor):
    """BM3D (gray) / CBM3D (RGB) denoising of ``y = x + n`` with ``n ~ N(0, sigma^2)``.

    Only for the :class:`~rimkit.operators.Identity` operator; ``sigma > 0`` per sample (a
    number or ``(B,)``), in the units of the data (``25 / 255`` for sigma 25 on ``[0, 1]``
    images). ``y`` is real ``(B, 1 or 3, H, W)``. ``profile`` is the ``bm3d`` package's
    profile name (default ``'np'``). ``objective`` is empty.

    ``threads``: the worker threads of the ``bm3d`` package, which keeps a thread pool of its
    own; ``None`` (default) takes ``torch.get_num_threads()``, so a run limited with
    ``torch.set_num_threads`` (``rimkit eval --threads``, the benchmarks' ``--threads``) limits
    BM3D alike and a speed comparison gives every method the same cores; ``0`` lets the package
    use every core.

    Example (needs ``bm3d``):
        >>> import torch
        >>> from rimkit.operators import Identity
        >>> y = torch.rand(2, 3, 16, 16)
        >>> BM3D()(y, Identity(), 0.1).final.shape  # doctest: +SKIP
        torch.Size([2, 3, 16, 16])
    """

    profile: str = "np"
    threads: int | None = None
    name = "bm3d"

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown BM3D profile {self.profile!r}; known: {', '.join(PROFILES)}")
        if self.threads is not None and (
            not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 0
        ):
            raise ValueError(f"BM3D threads must be None or an int >= 0, got {self.threads!r}")

    def package_profile(self, bm3d: ModuleType) -> object:
        """The ``bm3d`` package's profile object for ``profile``, with ``threads`` set."""
        profile = getattr(bm3d.profiles, PROFILES[self.profile])()
        profile.num_threads = torch.get_num_threads() if self.threads is None else self.threads
        return profile

    def _solve(
        self, y: Tensor, operator: LinearOperator, sigma: Tensor, x0: Tensor | None
    ) -> SolverResult:
        if not isinstance(operator, Identity):
            raise ValueError(
                "BM3D is a denoiser: it accepts only the Identity operator (denoising), got "
                f"{type(operator).__name__}; for super-resolution use 'bicubic' or a "
                "variational baseline"
            )
        if y.ndim != 4 or y.is_complex() or y.shape[1] not in (1, 3):
            raise ValueError(
                f"BM3D accepts real images (B, 1, H, W) (BM3D) or (B, 3, H, W) (CBM3D, RGB); "
                f"got {y.dtype} of shape {tuple(y.shape)}"
            )
        if (sigma <= 0).any():
            raise ValueError(f"BM3D needs the noise level sigma > 0 for every sample, got {sigma}")
        bm3d = import_bm3d()
        profile = self.package_profile(bm3d)
        block = max(int(profile.bs_ht), int(profile.bs_wiener))
        h, w = y.shape[-2:]
        if min(h, w) < block or max(h, w) <= block:  # the package crashes on block x block
            raise ValueError(
                f"BM3D matches {block}x{block} blocks: it needs an image of at least "
                f"{block}x{block + 1} pixels, got {h}x{w}; use another baseline such as tv"
            )
        out = []
        for b in range(y.shape[0]):
            z = y[b].detach().to("cpu", torch.float64).permute(1, 2, 0).numpy()  # (H, W, C)
            s = float(sigma[b])
            if y.shape[1] == 1:
                d = bm3d.bm3d(z[..., 0], s, profile=profile)[..., None]
            else:
                d = bm3d.bm3d_rgb(z, s, profile=profile)
            out.append(torch.from_numpy(d.reshape(z.shape).copy()).permute(2, 0, 1))
        x = torch.stack(out).to(device=y.device, dtype=y.dtype)  # (B, C, H, W)
        return SolverResult([x])
