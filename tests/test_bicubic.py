"""Tests of the MATLAB-compatible bicubic resize (rimkit.operators.bicubic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rimkit.operators.bicubic import BicubicDownsample, bicubic_upsample, imresize_matrix

SIZES = [(17, 23), (32, 32), (33, 40), (7, 5)]
SCALES = [2, 3, 4]


# --- An independent reference: MATLAB's contributions(), one output pixel at a time ----------


def ref_cubic(t: float) -> float:
    a = abs(t)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    if a <= 2:
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
    return 0.0


def ref_matrix(n_in: int, n_out: int, scale: float) -> np.ndarray:
    """Dense (n_out, n_in) matrix; ``scale`` is MATLAB's (1/s shrinks, with antialiasing)."""
    shrink = scale < 1
    width = 4 / scale if shrink else 4.0
    m = np.zeros((n_out, n_in))
    for x in range(1, n_out + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        idx = [left + k for k in range(math.ceil(width) + 2)]
        if shrink:
            w = [scale * ref_cubic(scale * (u - i)) for i in idx]
        else:
            w = [ref_cubic(u - i) for i in idx]
        total = sum(w)
        for i, wi in zip(idx, w, strict=True):
            # symmetric border: ... 2 1 | 1 2 ... n | n n-1 ..., period 2n
            j = (i - 1) % (2 * n_in)
            j = j + 1 if j < n_in else 2 * n_in - j
            m[x - 1, j - 1] += wi / total
    return m


def ref_down(img: np.ndarray, s: int) -> np.ndarray:
    h, w = img.shape
    wh = ref_matrix(h, -(-h // s), 1 / s)
    ww = ref_matrix(w, -(-w // s), 1 / s)
    return wh @ img @ ww.T


def ref_up(img: np.ndarray, s: int) -> np.ndarray:
    h, w = img.shape
    return ref_matrix(h, h * s, float(s)) @ img @ ref_matrix(w, w * s, float(s)).T


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- Hand-derived values ---------------------------------------------------------------------


def test_hand_checked_rows_shrink_by_2():
    # in = 8, scale = 1/2: width 8, P = 10, h(t) = 0.5 * cubic(t / 2).
    # cubic(0.25) = 0.8671875, cubic(0.75) = 0.2265625, cubic(1.25) = -0.0703125,
    # cubic(1.75) = -0.0234375, so h at t = ±0.5, ±1.5, ±2.5, ±3.5 is
    # 0.43359375, 0.11328125, -0.03515625, -0.01171875 (they already sum to 1).
    # Row 1: u = 1.5, taps -3..6. Folding: 0 -> 1, -1 -> 2, -2 -> 3, so
    # col1 = h(0.5) + h(1.5), col2 = h(0.5) + h(2.5), col3 = h(1.5) + h(3.5).
    # Row 2: u = 3.5, taps -1..8; tap 0 folds to 1: col1 = h(2.5) + h(3.5).
    m = imresize_matrix(8, 0.5)
    assert m.shape == (4, 8)
    row1 = [0.546875, 0.3984375, 0.1015625, -0.03515625, -0.01171875, 0, 0, 0]
    row2 = [-0.046875, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875, 0]
    np.testing.assert_allclose(m[0], row1, rtol=0, atol=1e-15)
    np.testing.assert_allclose(m[1], row2, rtol=0, atol=1e-15)
    # Row 4 mirrors row 1 (the grid is symmetric about the centre).
    np.testing.assert_allclose(m[3], row1[::-1], rtol=0, atol=1e-15)


def test_hand_checked_row_enlarge_by_2():
    # in = 4, scale = 2, no antialiasing: x = 1 -> u = 0.75, taps -2..3 with
    # cubic(2.75, 1.75, 0.75, -0.25, -1.25, -2.25) = 0, -0.0234375, 0.2265625, 0.8671875,
    # -0.0703125, 0. Folding 0 -> 1, -1 -> 2: col1 = 0.2265625 + 0.8671875,
    # col2 = -0.0234375 - 0.0703125.
    m = imresize_matrix(4, 2.0)
    assert m.shape == (8, 4)
    np.testing.assert_allclose(m[0], [1.09375, -0.09375, 0, 0], rtol=0, atol=1e-15)


def test_scale_one_is_identity():
    x = rand(1, 2, 6, 5)
    torch.testing.assert_close(BicubicDownsample(1)(x), x, rtol=0, atol=1e-15)
    torch.testing.assert_close(bicubic_upsample(x, 1), x, rtol=0, atol=1e-15)


# --- Against the reference -------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("s", SCALES)
def test_downsample_matches_reference(size, s):
    if min(size) < s:
        pytest.skip("image smaller than the scale")
    x = rand(2, 3, *size, seed=s)
    y = BicubicDownsample(s)(x)
    assert y.shape == (2, 3, -(-size[0] // s), -(-size[1] // s))
    for b in range(2):
        for c in range(3):
            expected = ref_down(x[b, c].numpy(), s)
            np.testing.assert_allclose(y[b, c].numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("s", SCALES)
def test_upsample_matches_reference(size, s):
    y = rand(1, 2, *size, seed=s)
    x = bicubic_upsample(y, s)
    assert x.shape == (1, 2, size[0] * s, size[1] * s)
    for c in range(2):
        np.testing.assert_allclose(x[0, c].numpy(), ref_up(y[0, c].numpy(), s), atol=1e-12, rtol=0)


def test_upsample_out_size_crops_the_same_grid():
    y = rand(1, 1, 6, 7)
    full = bicubic_upsample(y, 3)
    part = bicubic_upsample(y, 3, out_size=(17, 20))
    assert part.shape == (1, 1, 17, 20)
    # away from the cropped edge the same output pixels are produced
    torch.testing.assert_close(part[..., :12, :14], full[..., :12, :14], rtol=0, atol=1e-12)


def test_float32_keeps_dtype_and_agrees():
    x = rand(1, 1, 20, 18)
    op = BicubicDownsample(2)
    y32 = op(x.float())
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32.double(), op(x), rtol=0, atol=1e-5)
    assert bicubic_upsample(y32, 2).dtype == torch.float32


# --- Known values ----------------------------------------------------------------------------


@pytest.mark.parametrize("s", SCALES)
def test_constant_stays_constant(s):
    x = torch.full((1, 1, 17, 23), 0.3, dtype=torch.float64)
    down = BicubicDownsample(s)(x)
    torch.testing.assert_close(down, torch.full_like(down, 0.3), rtol=0, atol=1e-12)
    up = bicubic_upsample(x, s)
    torch.testing.assert_close(up, torch.full_like(up, 0.3), rtol=0, atol=1e-12)


@pytest.mark.parametrize("s", SCALES)
def test_linear_ramp_is_reproduced(s):
    # Cubic convolution reproduces linear functions: away from the border, the output at pixel
    # x equals the ramp evaluated at u = x/scale + 0.5 (1 - 1/scale).
    n = 48
    ramp = torch.arange(1, n + 1, dtype=torch.float64)
    cols = ramp.expand(n, n)[None, None]  # value = column index (1-based)
    rows = cols.transpose(-1, -2)  # value = row index
    for scale, out in ((1 / s, BicubicDownsample(s)), (float(s), lambda t: bicubic_upsample(t, s))):
        half = 2 / scale if scale < 1 else 2.0  # half the kernel width
        y_cols, y_rows = out(cols), out(rows)
        k = np.arange(1, y_cols.shape[-1] + 1)
        u = k / scale + 0.5 * (1 - 1 / scale)
        inner = (u - half >= 1) & (u + half <= n)
        assert inner.sum() >= 3
        u_t = torch.from_numpy(u[inner])
        torch.testing.assert_close(y_cols[0, 0, 5, inner], u_t, rtol=0, atol=1e-12)
        torch.testing.assert_close(y_rows[0, 0, inner, 5], u_t, rtol=0, atol=1e-12)


# --- Adjoint and gradients -------------------------------------------------------------------


@pytest.mark.parametrize("size", [(16, 16), (17, 23), (33, 40), (7, 5)])
@pytest.mark.parametrize("s", SCALES)
def test_adjoint(size, s):
    if min(size) < s:
        pytest.skip("image smaller than the scale")
    op = BicubicDownsample(s, in_size=size)
    out = (-(-size[0] // s), -(-size[1] // s))
    x = rand(2, 3, *size, seed=1)
    y = rand(2, 3, *out, seed=2)
    lhs = (op(x) * y).sum()
    rhs = (x * op.adjoint(y)).sum()
    norm = np.linalg.norm(ref_matrix(size[0], out[0], 1 / s), 2) * np.linalg.norm(
        ref_matrix(size[1], out[1], 1 / s), 2
    )
    rel = abs(lhs - rhs) / (norm * x.norm() * y.norm())
    assert rel < 1e-12
    assert op.adjoint(y).shape == x.shape
    assert op.H.H is op


def test_adjoint_without_in_size_uses_multiple():
    op = BicubicDownsample(2)
    y = rand(1, 1, 5, 6)
    assert op.adjoint(y).shape == (1, 1, 10, 12)
    x = rand(1, 1, 10, 12, seed=3)
    torch.testing.assert_close((op(x) * y).sum(), (x * op.adjoint(y)).sum(), rtol=1e-12, atol=0)


def test_gradcheck():
    op = BicubicDownsample(2, in_size=(7, 6))
    x = rand(1, 1, 7, 6).requires_grad_()
    assert torch.autograd.gradcheck(op, (x,))
    y = rand(1, 1, 4, 3).requires_grad_()
    assert torch.autograd.gradcheck(op.adjoint, (y,))
    assert torch.autograd.gradcheck(lambda t: bicubic_upsample(t, 3), (y,))


# --- Bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0, -2, 2.5, True, 2.0, "2"])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match="scale must be an int"):
        BicubicDownsample(scale)
    with pytest.raises(ValueError, match="scale must be an int"):
        bicubic_upsample(rand(1, 1, 4, 4), scale)


def test_image_smaller_than_scale():
    with pytest.raises(ValueError, match="at least"):
        BicubicDownsample(4)(rand(1, 1, 3, 8))


def test_wrong_rank():
    with pytest.raises(ValueError, match="4 dimensions"):
        BicubicDownsample(2)(rand(8, 8))
    with pytest.raises(ValueError, match="4 dimensions"):
        BicubicDownsample(2).adjoint(rand(1, 4, 4))
    with pytest.raises(ValueError, match="4 dimensions"):
        bicubic_upsample(rand(4, 4), 2)


def test_in_size_mismatch():
    op = BicubicDownsample(2, in_size=(9, 10))
    with pytest.raises(ValueError, match="in_size"):
        op(rand(1, 1, 10, 10))
    with pytest.raises(ValueError, match="must be 5x5"):
        op.adjoint(rand(1, 1, 4, 5))
    with pytest.raises(ValueError, match="in_size"):
        BicubicDownsample(4, in_size=(3, 8))
    with pytest.raises(ValueError, match="in_size"):
        BicubicDownsample(2, in_size=(8,))


def test_integer_dtype_rejected():
    with pytest.raises(ValueError, match="dtype"):
        BicubicDownsample(2)(torch.zeros(1, 1, 4, 4, dtype=torch.uint8))
