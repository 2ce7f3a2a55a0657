"""The one contract every forward model follows: a linear operator A with its adjoint.

A :class:`LinearOperator` maps a batch of images ``x`` of shape ``(B, C, H, W)`` to
measurements ``y = A x`` and back with the adjoint ``A^H y``. Operators know nothing of
networks; a RIM only ever sees them through a likelihood gradient.

Example:
    >>> import torch
    >>> from rimkit.operators import Identity
    >>> op = Identity()
    >>> x = torch.rand(2, 1, 8, 8)
    >>> bool(torch.equal(op.H.H(x), op(x)))
    True
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import Tensor, nn

REAL_DTYPES = (torch.float32, torch.float64)
COMPLEX_DTYPES = (torch.complex64, torch.complex128)


def check_image(
    x: Tensor,
    name: str = "x",
    *,
    channels: int | None = None,
    allow_complex: bool = False,
    min_size: tuple[int, int] = (1, 1),
) -> None:
    """Raise a ``ValueError`` that says what is wrong unless ``x`` is a batch of images.

    Accepted: a tensor of shape ``(B, C, H, W)``, float32 or float64 (complex64 or
    complex128 where ``allow_complex``), with ``channels`` channels when given and at least
    ``min_size`` pixels in height and width.
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x)}")
    if x.ndim != 4:
        raise ValueError(
            f"{name} must have 4 dimensions (B, C, H, W), got shape {tuple(x.shape)}; "
            "add batch and channel axes with x[None, None] for a single gray image"
        )
    accepted = REAL_DTYPES + (COMPLEX_DTYPES if allow_complex else ())
    if x.dtype not in accepted:
        names = ", ".join(str(d).removeprefix("torch.") for d in accepted)
        raise ValueError(f"{name} has dtype {x.dtype}; accepted: {names}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{name} has {x.shape[1]} channels; this operator was built for {channels}"
        )
    if x.shape[-2] < min_size[0] or x.shape[-1] < min_size[1]:
        raise ValueError(
            f"{name} is {x.shape[-2]}x{x.shape[-1]} pixels; this operation needs at least "
            f"{min_size[0]}x{min_size[1]}"
        )


def per_sample(value: Tensor | float, batch: int, like: Tensor, name: str) -> Tensor:
    """Broadcast a scalar or per-sample ``(B,)`` value to ``(B, 1, 1, 1)`` on ``like``'s device."""
    v = torch.as_tensor(value, dtype=like.real.dtype, device=like.device)
    if v.ndim == 0:
        v = v.expand(batch)
    v = v.reshape(-1)
    if v.numel() not in (1, batch):
        raise ValueError(f"{name} has {v.numel()} values for a batch of {batch}; give 1 or {batch}")
    return v.expand(batch).reshape(batch, 1, 1, 1)


def inner(a: Tensor, b: Tensor) -> Tensor:
    """Real inner product Re <a, b> per sample over all non-batch axes; shape ``(B,)``."""
    prod = a * b.conj() if a.is_complex() or b.is_complex() else a * b
    return prod.real.reshape(a.shape[0], -1).sum(dim=1)


def adjoint_mismatch(op: LinearOperator, x: Tensor, seed: int = 0) -> Tensor:
    """How far ``op.adjoint`` is from the adjoint of ``op``, per sample, shape ``(B,)``:

    ``|<A x, y> - <x, A^H y>| / (||A|| ||x|| ||y||)`` for random ``y`` shaped like ``A x``, with
    ``||A||`` by power iteration on ``A^H A``. Computed in double precision on a copy of ``op``
    (``op`` and ``x`` are left as they are), so it is near machine epsilon (about 1e-15) for a
    correct adjoint: run it on a custom operator before training with it. An operator that
    cannot run so (tensors kept as plain attributes, not buffers) is measured as given, with
    a note.

    Example:
        >>> import torch
        >>> from rimkit.operators import Blur, gaussian_kernel
        >>> x = torch.rand(2, 1, 16, 16)
        >>> blur = Blur(gaussian_kernel(1.0))
        >>> bool(adjoint_mismatch(blur, x).max() < 1e-12), blur.kernel.dtype
        (True, torch.float32)
    """
    name = type(op).__name__
    if not isinstance(x, Tensor) or x.ndim != 4:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"adjoint_mismatch takes a batch of images x (B, C, H, W), got {got}")
    try:
        ax = op(x)
    except Exception as err:
        raise ValueError(f"{name}(x) failed for x {tuple(x.shape)} of {x.dtype}: {err}") from err
    try:
        back = op.adjoint(ax)
    except Exception as err:
        raise ValueError(
            f"{name}.adjoint(y) failed for y = {name}(x) of shape {tuple(ax.shape)}: {err}; the "
            "adjoint takes what forward returns"
        ) from err
    if not isinstance(back, Tensor) or back.shape != x.shape:
        got = tuple(back.shape) if isinstance(back, Tensor) else type(back).__name__
        raise ValueError(f"{name}.adjoint returned {got} for x {tuple(x.shape)}; give x's shape")
    try:  # an operator whose tensors are plain attributes, or that cannot be copied: as given
        precise = copy.deepcopy(op).double()
        x64 = x.to(torch.complex128 if x.is_complex() else torch.float64)
        return _mismatch(precise, x64, seed)
    except (RuntimeError, TypeError, copy.Error) as err:
        warnings.warn(
            f"adjoint_mismatch ran {type(op).__name__} in {x.dtype}, not float64 ({err}); expect "
            "about 1e-7 for float32",
            UserWarning,
            stacklevel=2,
        )
        return _mismatch(op, x, seed)


def _mismatch(op: LinearOperator, x: Tensor, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    ax = op(x)
    y = torch.randn(ax.shape, generator=gen, dtype=ax.real.dtype).to(ax.device)
    if ax.is_complex():
        y = torch.complex(y, torch.randn(ax.shape, generator=gen, dtype=y.dtype).to(y.device))
    lhs, rhs = inner(ax, y), inner(x, op.adjoint(y))
    return (lhs - rhs).abs() / (_operator_norm(op, x) * _norm(x) * _norm(y))


def _norm(t: Tensor) -> Tensor:
    return torch.sqrt(inner(t, t))


def _operator_norm(op: LinearOperator, x: Tensor, iterations: int = 50) -> Tensor:
    """Largest singular value per sample, by power iteration on ``A^H A`` from ``x``."""
    shape = (-1, *[1] * (x.ndim - 1))
    v = x / _norm(x).reshape(shape)
    for _ in range(iterations):
        w = op.normal(v)
        v = w / _norm(w).clamp_min(torch.finfo(w.real.dtype).tiny).reshape(shape)
    return torch.sqrt(_norm(op.normal(v)))


class LinearOperator(nn.Module):
    """A linear forward model ``y = A x`` on batches of images.

    Subclasses implement :meth:`forward` and :meth:`adjoint`; :meth:`normal` (``A^H A x``)
    defaults to their composition and may be overridden where cheaper. Parameters (a kernel,
    a mask, a matrix) are fixed at construction and never changed by a call; an ``__init__``
    of one's own calls ``super().__init__()`` first, as for any ``torch.nn.Module``.

    Operators compose with ``@`` (``(A @ B)(x) == A(B(x))``) and ``op.H`` is the adjoint as
    an operator, with ``op.H.H is op`` (so ``H`` is no name for an attribute). Keep tensors as
    buffers (``self.register_buffer("kernel", kernel)``), so that ``.to``, ``.double()`` and
    the RIM's casts move them, and check the adjoint with :func:`adjoint_mismatch`.

    Example:
        >>> import torch
        >>> from rimkit.operators import Blur, gaussian_kernel, Inpainting
        >>> blur = Blur(gaussian_kernel(1.0))
        >>> mask = torch.ones(1, 1, 16, 16)
        >>> op = Inpainting(mask) @ blur
        >>> op(torch.rand(1, 1, 16, 16)).shape
        torch.Size([1, 1, 16, 16])
    """

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> measurement
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x) -> y")

    def adjoint(self, y: Tensor) -> Tensor:  # measurement -> (B, C, H, W)
        raise NotImplementedError(
            f"{type(self).__name__} must implement adjoint(y) -> x, the adjoint of forward "
            "(check it with rimkit.operators.adjoint_mismatch)"
        )

    def normal(self, x: Tensor) -> Tensor:
        """``A^H A x``."""
        return self.adjoint(self.forward(x))

    @property
    def H(self) -> LinearOperator:
        """The adjoint ``A^H`` as an operator; ``op.H.H`` is ``op``."""
        return Adjoint(self)

    def __setattr__(self, name: str, value: object) -> None:
        if name == "H":
            raise AttributeError(
                f"{type(self).__name__}.H is the operator's adjoint (op.H); keep that value under "
                "another name (e.g. self.height)"
            )
        if "_modules" not in self.__dict__:  # nn.Module's own state, set by its __init__
            raise AttributeError(
                f"{type(self).__name__}.__init__ sets {name!r} before calling "
                "super().__init__(): call super().__init__() first (a LinearOperator is a "
                "torch.nn.Module)"
            )
        super().__setattr__(name, value)

    def __matmul__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return Composition(self, other)


class Adjoint(LinearOperator):
    """The adjoint of an operator: ``forward`` is ``op.adjoint`` and vice versa."""

    def __init__(self, op: LinearOperator) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: Tensor) -> Tensor:
        return self.op.adjoint(x)

    def adjoint(self, y: Tensor) -> Tensor:
        return self.op.forward(y)

    @property
    def H(self) -> LinearOperator:
        return self.op


class Composition(LinearOperator):
    """``(outer @ inner)(x) = outer(inner(x))`` with adjoint ``inner^H outer^H``."""

    def __init__(self, outer: LinearOperator, inner: LinearOperator) -> None:
        super().__init__()
        self.outer = outer
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.outer(self.inner(x))

    def adjoint(self, y: Tensor) -> Tensor:
        return self.inner.adjoint(self.outer.adjoint(y))


class Identity(LinearOperator):
    """``A = I``: denoising.

    Example:
        >>> import torch
        >>> Identity()(torch.zeros(1, 3, 4, 4)).shape
        torch.Size([1, 3, 4, 4])
    """

    def forward(self, x: Tensor) -> Tensor:
        check_image(x, allow_complex=True)
        return x

    def adjoint(self, y: Tensor) -> Tensor:
        check_image(y, "y", allow_complex=True)
        return y

    def normal(self, x: Tensor) -> Tensor:
        return self.forward(x)


class ComplexAsChannels(LinearOperator):
    """Present a complex-valued operator to real networks: the image is real ``(B, 2C, H, W)``.

    The first ``C`` channels hold the real part and the last ``C`` the imaginary part. The
    wrapped operator is linear over the reals, so its adjoint under the real inner product is
    ``channels(op.adjoint(y))``.

    Example:
        >>> import torch
        >>> from rimkit.operators import CartesianMRI
        >>> op = ComplexAsChannels(CartesianMRI(torch.ones(1, 1, 8, 8)))
        >>> op.adjoint(op(torch.rand(1, 2, 8, 8))).shape
        torch.Size([1, 2, 8, 8])
    """

    def __init__(self, op: LinearOperator) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: Tensor) -> Tensor:
        return self.op(channels_to_complex(x))

    def adjoint(self, y: Tensor) -> Tensor:
        return complex_to_channels(self.op.adjoint(y))

    def normal(self, x: Tensor) -> Tensor:
        return complex_to_channels(self.op.normal(channels_to_complex(x)))


class RealImages(LinearOperator):
    """A complex-valued operator restricted to real images ``(B, C, H, W)``: ``op(x)``, with
    the adjoint under the real inner product, ``Re(op^H y)``.

    For magnitude images (real and non-negative) this lets a one-channel model, trained on
    anything, reconstruct MRI by its likelihood gradient ``Re(A^H (y - A x)) / sigma^2``.

    Example:
        >>> import torch
        >>> from rimkit.operators import CartesianMRI
        >>> op = RealImages(CartesianMRI(torch.ones(1, 1, 8, 8)))
        >>> x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
        >>> op(x).dtype, bool(torch.allclose(op.adjoint(op(x)), x))
        (torch.complex128, True)
    """

    def __init__(self, op: LinearOperator) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: Tensor) -> Tensor:
        check_image(x)
        if x.is_complex():
            raise ValueError("RealImages takes real images; use ComplexAsChannels for complex ones")
        return self.op(x.to(x.dtype.to_complex()))

    def adjoint(self, y: Tensor) -> Tensor:
        return self.op.adjoint(y).real


def complex_to_channels(z: Tensor) -> Tensor:
    """Complex ``(B, C, H, W)`` to real ``(B, 2C, H, W)`` (real parts, then imaginary parts).

    Example:
        >>> z = torch.complex(torch.ones(1, 1, 2, 2), -torch.ones(1, 1, 2, 2))
        >>> x = complex_to_channels(z)
        >>> x[0, :, 0, 0].tolist(), torch.equal(channels_to_complex(x), z)
        ([1.0, -1.0], True)
    """
    check_image(z, "z", allow_complex=True)
    if not z.is_complex():
        raise ValueError(f"expected a complex tensor, got {z.dtype}")
    return torch.cat([z.real, z.imag], dim=1)


def channels_to_complex(x: Tensor) -> Tensor:
    """Real ``(B, 2C, H, W)`` to complex ``(B, C, H, W)``: the inverse of complex_to_channels."""
    check_image(x)
    if x.shape[1] % 2:
        raise ValueError(
            f"a complex image as channels needs an even channel count (real, imaginary); "
            f"got {x.shape[1]}"
        )
    re, im = x.chunk(2, dim=1)
    return torch.complex(re, im)


def magnitude(x: Tensor) -> Tensor:
    """``|x|`` of a one-channel image ``(B, 1, H, W)``, or of a complex image held as two
    channels (real, imaginary): ``(B, 1, H, W)`` either way (an MRI estimate, real or complex).

    Example:
        >>> import torch
        >>> magnitude(torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)).item()
        5.0
    """
    check_image(x)
    if x.shape[1] not in (1, 2):
        raise ValueError(f"a magnitude needs 1 channel or 2 (real, imaginary), got {x.shape[1]}")
    return (channels_to_complex(x) if x.shape[1] == 2 else x).abs()
