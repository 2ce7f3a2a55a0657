"""Strong gravitational lensing: a foreground mass maps a background source to the observed image.

The lens equation ``beta = theta - alpha(theta)`` sends each image-plane position ``theta`` to
the source-plane position ``beta`` whose light it sees; surface brightness is conserved, so the
observed image is the source read at ``beta(theta)``. For a fixed lens this is linear in the
source: :class:`Lensing` is ``A = `` bilinear interpolation of the source grid at every pixel's
``beta`` (zero outside the source grid), with its exact adjoint. Compose it with a
:class:`~rimkit.operators.Blur` for the telescope's point-spread function.

The deflection :meth:`SIE.deflection` is that of a singular isothermal ellipsoid with external
shear (Kormann et al. 1994; Keeton 2001), in closed form and differentiable in every lens
parameter, so a lens can also be fitted through autograd: ``A`` is then non-linear in the lens
and :class:`~rimkit.likelihood.AutogradLikelihood` gives its gradient. Convergence, in the
lens's frame (major axis along ``x'`` for ``q < 1``)::

    kappa(x', y') = theta_E / (2 sqrt(q x'^2 + y'^2 / q))

Coordinates are angles (e.g. arcsec) with ``x`` along columns and ``y`` along rows, in array
order (row 0 at the smallest ``y``); pixel centres sit at ``(i + 1/2) * pixel - fov / 2``.

Example:
    >>> import torch
    >>> lens = SIE(einstein_radius=1.0, axis_ratio=0.7, angle=0.3)
    >>> op = Lensing.from_lens(lens, image_size=(32, 32), image_fov=4.0,
    ...                        source_size=(24, 24), source_fov=2.0)
    >>> op(torch.rand(1, 1, 24, 24)).shape
    torch.Size([1, 1, 32, 32])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from rimkit.operators.base import LinearOperator, check_image
from rimkit.operators.blur import Blur, gaussian_kernel

_CORE = 1e-12  # squared angle added under the root so the lens centre stays finite


def _pair(value: int | float | tuple, name: str, kind: type) -> tuple:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, float)) and v > 0 for v in pair):
        raise ValueError(f"{name} must be a positive number or a pair (rows, columns), got {value}")
    if kind is int and not all(float(v).is_integer() for v in pair):
        raise ValueError(f"{name} must be whole pixels, got {value}")
    return tuple(kind(v) for v in pair)


def angular_grid(
    size: int | tuple[int, int],
    fov: float | tuple[float, float],
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Pixel-centre angles ``(x, y)`` of a ``size`` grid spanning ``fov``, each ``(H, W)``.

    Example:
        >>> x, y = angular_grid((2, 4), (1.0, 2.0))
        >>> x[0].tolist(), y[:, 0].tolist()
        ([-0.75, -0.25, 0.25, 0.75], [-0.25, 0.25])
    """
    (h, w), (fov_y, fov_x) = _pair(size, "size", int), _pair(fov, "fov", float)
    ys = (torch.arange(h, dtype=dtype) + 0.5) * (fov_y / h) - fov_y / 2
    xs = (torch.arange(w, dtype=dtype) + 0.5) * (fov_x / w) - fov_x / 2
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return x, y


@dataclass
class SIE:
    """A singular isothermal ellipsoid with external shear.

    Each field is a number or a per-sample ``(B,)`` tensor (which may require grad):
    ``einstein_radius`` theta_E (angle), ``axis_ratio`` q in (0, 1], ``angle`` of the major axis
    from the x axis towards y (radians), ``center`` ``(x0, y0)``, ``shear`` ``(gamma1, gamma2)``
    about the centre. ``q = 1`` without shear is the singular isothermal sphere, whose
    deflection has length theta_E everywhere.

    Example:
        >>> import torch
        >>> ax, ay = SIE(einstein_radius=1.5).deflection(torch.tensor([3.0]), torch.tensor([4.0]))
        >>> [round(float(v), 6) for v in (ax, ay)]
        [0.9, 1.2]
    """

    einstein_radius: float | Tensor
    axis_ratio: float | Tensor = 1.0
    angle: float | Tensor = 0.0
    center: tuple[float | Tensor, float | Tensor] = (0.0, 0.0)
    shear: tuple[float | Tensor, float | Tensor] = (0.0, 0.0)

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("einstein_radius", self.einstein_radius, 0.0, math.inf),
            ("axis_ratio", self.axis_ratio, 1e-3, 1.0),
        ):
            v = torch.as_tensor(value).detach()
            if not bool(torch.isfinite(v).all()) or bool((v < low).any() | (v > high).any()):
                bound = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
                raise ValueError(f"{name} must be a finite number {bound}, got {value}")
        for name, parts in (
            ("angle", (self.angle,)),
            ("center", self.center),
            ("shear", self.shear),
        ):
            if not all(bool(torch.isfinite(torch.as_tensor(v)).all()) for v in parts):
                raise ValueError(
                    f"{name} must be finite, got {parts if len(parts) > 1 else parts[0]}"
                )

    def deflection(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The deflection ``(alpha_x, alpha_y)`` at angles ``x``, ``y``.

        ``x`` and ``y`` broadcast against the parameters shaped ``(B, 1, 1)``: give ``(H, W)``
        grids for a ``(B, H, W)`` result. In the lens frame, with ``e = sqrt(1 - q^2)`` and
        ``psi = sqrt(q^2 x'^2 + y'^2)``::

            alpha_x' = theta_E sqrt(q) / e * atan(e x' / psi)
            alpha_y' = theta_E sqrt(q) / e * atanh(e y' / psi)
        """

        def param(value: float | Tensor) -> Tensor:
            v = torch.as_tensor(value, dtype=x.dtype, device=x.device)
            return v.reshape(-1, 1, 1) if v.ndim else v

        theta_e, q, phi = param(self.einstein_radius), param(self.axis_ratio), param(self.angle)
        dx, dy = x - param(self.center[0]), y - param(self.center[1])
        cos, sin = torch.cos(phi), torch.sin(phi)
        xr, yr = cos * dx + sin * dy, -sin * dx + cos * dy  # into the lens frame
        psi = torch.sqrt(q * q * xr * xr + yr * yr + _CORE)
        e2 = 1 - q * q
        scale = theta_e * torch.sqrt(q)
        ax_r = scale * _atan_over(e2, xr / psi, hyperbolic=False)
        ay_r = scale * _atan_over(e2, yr / psi, hyperbolic=True)
        g1, g2 = param(self.shear[0]), param(self.shear[1])
        alpha_x = cos * ax_r - sin * ay_r + g1 * dx + g2 * dy
        alpha_y = sin * ax_r + cos * ay_r + g2 * dx - g1 * dy
        return alpha_x, alpha_y

    def source_positions(self, x: Tensor, y: Tensor) -> Tensor:
        """``beta = theta - alpha(theta)`` as ``(..., H, W, 2)`` with ``(x, y)`` last."""
        alpha_x, alpha_y = self.deflection(x, y)
        return torch.stack(torch.broadcast_tensors(x - alpha_x, y - alpha_y), dim=-1)


def _atan_over(e2: Tensor, u: Tensor, hyperbolic: bool) -> Tensor:
    """``atan(e u) / e`` (or ``atanh``) for ``e = sqrt(e2)``, analytic in ``e2`` down to 0.

    Near a round lens (``e2 < 1e-3``) the series ``u -+ e2 u^3 / 3 + e2^2 u^5 / 5`` stands in,
    so the value and its gradient in the axis ratio stay right at ``q = 1`` (the SIS).
    """
    sign = 1.0 if hyperbolic else -1.0
    series = u + sign * e2 * u**3 / 3 + e2 * e2 * u**5 / 5
    e = torch.sqrt(e2.clamp_min(1e-3))
    exact = (torch.atanh(e * u) if hyperbolic else torch.atan(e * u)) / e
    return torch.where(e2 < 1e-3, series, exact)


class Lensing(LinearOperator):
    """Read a source grid at each image pixel's source-plane position, bilinearly.

    ``positions`` has shape ``(B or 1, H, W, 2)``: the source-plane ``(x, y)`` seen by each of
    the ``H x W`` image pixels, in the units of ``source_fov``, the extent of the source grid of
    ``source_size`` pixels (centred on the origin). Positions outside the grid see nothing.
    Maps sources ``(B, C, Hs, Ws)`` to images ``(B, C, H, W)``; the adjoint spreads each image
    pixel back onto its four source pixels with the same weights. Gradients flow to
    ``positions`` (and so to lens parameters) through the weights.

    Example:
        >>> import torch
        >>> x, y = angular_grid(4, 2.0)
        >>> op = Lensing(torch.stack([x, y], -1)[None], source_size=4, source_fov=2.0)
        >>> source = torch.rand(1, 1, 4, 4)
        >>> bool(torch.allclose(op(source), source))     # no lens: the image is the source
        True
    """

    def __init__(
        self,
        positions: Tensor,
        source_size: int | tuple[int, int],
        source_fov: float | tuple[float, float],
    ) -> None:
        super().__init__()
        if not isinstance(positions, Tensor) or positions.ndim != 4 or positions.shape[-1] != 2:
            shape = tuple(positions.shape) if isinstance(positions, Tensor) else type(positions)
            raise ValueError(f"positions must have shape (B, H, W, 2), got {shape}")
        if not positions.is_floating_point() or not bool(torch.isfinite(positions).all()):
            raise ValueError("positions must be finite floating-point angles")
        (hs, ws), (fov_y, fov_x) = (
            _pair(source_size, "source_size", int),
            _pair(source_fov, "source_fov", float),
        )
        self.source_size = (hs, ws)
        self.image_size = tuple(positions.shape[1:3])
        self.einstein_radius = math.nan  # the lens's mean theta_E, when built by from_lens
        # continuous source-pixel coordinates of each image pixel: (B, H*W)
        col = (positions[..., 0] + fov_x / 2) * (ws / fov_x) - 0.5
        row = (positions[..., 1] + fov_y / 2) * (hs / fov_y) - 0.5
        col, row = col.flatten(1), row.flatten(1)
        c0, r0 = torch.floor(col.detach()), torch.floor(row.detach())
        fc, fr = col - c0, row - r0
        indices, weights = [], []
        for dr, wr in ((0, 1 - fr), (1, fr)):
            for dc, wc in ((0, 1 - fc), (1, fc)):
                r, c = r0 + dr, c0 + dc
                inside = (r >= 0) & (r < hs) & (c >= 0) & (c < ws)
                indices.append(torch.where(inside, r.long() * ws + c.long(), 0))  # exact
                weights.append(wr * wc * inside)
        self.register_buffer("index", torch.stack(indices, -1), persistent=False)  # (B, H*W, 4)
        self.register_buffer("weight", torch.stack(weights, -1), persistent=False)  # (B, H*W, 4)

    @classmethod
    def from_lens(
        cls,
        lens: SIE,
        image_size: int | tuple[int, int],
        image_fov: float | tuple[float, float],
        source_size: int | tuple[int, int],
        source_fov: float | tuple[float, float],
    ) -> Lensing:
        """``lens``'s operator for an image grid of ``image_size`` pixels over ``image_fov``."""
        dtype = next(
            (v.dtype for v in (lens.einstein_radius, lens.axis_ratio) if isinstance(v, Tensor)),
            torch.float32,
        )
        x, y = angular_grid(image_size, image_fov, dtype=dtype)
        beta = lens.source_positions(x, y)
        op = cls(beta if beta.ndim == 4 else beta[None], source_size, source_fov)
        radius = torch.as_tensor(lens.einstein_radius, dtype=dtype).detach()
        op.einstein_radius = float(radius.mean())
        return op

    def _batch(self, b: int) -> tuple[Tensor, Tensor]:
        if self.index.shape[0] not in (1, b):
            raise ValueError(
                f"this lensing operator holds {self.index.shape[0]} lenses for a batch of {b}; "
                "give one lens or one per sample"
            )
        return self.index.expand(b, -1, -1), self.weight.expand(b, -1, -1)

    @staticmethod
    def _check(t: Tensor, name: str, size: tuple[int, int]) -> None:
        check_image(t, name)
        if tuple(t.shape[-2:]) != size:
            raise ValueError(
                f"the {name} is {t.shape[-2]}x{t.shape[-1]} pixels; this operator was built for "
                f"{size[0]}x{size[1]}-pixel {name}s"
            )

    def forward(self, x: Tensor) -> Tensor:
        self._check(x, "source", self.source_size)
        b, c = x.shape[:2]
        index, weight = self._batch(b)
        corners = index.flatten(1)[:, None].expand(b, c, -1)  # (B, C, H*W*4)
        picked = torch.gather(x.reshape(b, c, -1), 2, corners).reshape(b, c, -1, 4)
        image = (picked * weight[:, None].to(x.dtype)).sum(-1)  # (B, C, H*W)
        return image.reshape(b, c, *self.image_size)

    def adjoint(self, y: Tensor) -> Tensor:
        self._check(y, "image", self.image_size)
        b, c = y.shape[:2]
        index, weight = self._batch(b)
        spread = y.reshape(b, c, -1, 1) * weight[:, None].to(y.dtype)  # (B, C, H*W, 4)
        source = y.new_zeros(b, c, self.source_size[0] * self.source_size[1])
        corners = index.flatten(1)[:, None].expand(b, c, -1)  # (B, C, H*W*4)
        source = source.scatter_add(2, corners, spread.flatten(2))
        return source.reshape(b, c, *self.source_size)


@dataclass
class LensingSetup:
    """A lens and how it is observed: the image spans ``image_fov`` and the source grid
    ``source_fov`` (the units of the Einstein radius), the telescope blurs with a Gaussian PSF
    of ``psf`` image pixels (0: none).

    Example:
        >>> op = LensingSetup(SIE(0.45, 0.7), psf=1.0).operator((16, 16))
        >>> op(torch.rand(1, 1, 16, 16)).shape
        torch.Size([1, 1, 16, 16])
    """

    lens: SIE
    image_fov: float = 2.0
    source_fov: float = 1.0
    psf: float = 0.0

    def __post_init__(self) -> None:
        for name in ("image_fov", "source_fov"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive angle, got {value}")
        if not (math.isfinite(self.psf) and self.psf >= 0):
            raise ValueError(f"psf must be a width >= 0 in pixels, got {self.psf}")

    def operator(
        self, image_size: int | tuple[int, int], source_size: int | tuple[int, int] | None = None
    ) -> LinearOperator:
        """``A``: source (``source_size``, default ``image_size``) -> blurred lensed image."""
        size = image_size if source_size is None else source_size
        op = Lensing.from_lens(self.lens, image_size, self.image_fov, size, self.source_fov)
        return Blur(gaussian_kernel(self.psf)) @ op if self.psf > 0 else op
