"""Classical baselines: closed forms, references (PyWavelets, numpy FFT, BM3D), invariants.

Checks: the wavelet transform against ``pywt.wavedec2(mode='periodization')`` and for
orthonormality; CG and GD against the FFT closed form of circular-blur Tikhonov; ISTA/FISTA
against the closed-form soft threshold for ``A = I``; monotone objectives where theory says so;
TV and BM3D beating the noisy input; the direct baselines equal to their definitions; clear
errors for bad input.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import pywt
import torch

from rimkit.operators import (
    BicubicDownsample,
    Blur,
    CartesianMRI,
    ComplexAsChannels,
    Identity,
    Inpainting,
    bicubic_upsample,
    box_kernel,
    gaussian_kernel,
    random_mask,
    random_projection,
    variable_density_mask,
)
from rimkit.solvers import (
    BASELINES,
    BM3D,
    BicubicUpsampling,
    ConjugateGradientTikhonov,
    FISTAWavelet,
    GradientDescentTikhonov,
    ISTAWavelet,
    Reconstructor,
    SolverResult,
    TotalVariation,
    WaveletTransform,
    ZeroFilled,
    baseline,
    estimate_lipschitz,
    gradient,
    gradient_adjoint,
    soft_threshold,
    total_variation,
)

ITERATIVE = {
    "gd-tikhonov": GradientDescentTikhonov,
    "cg-tikhonov": ConjugateGradientTikhonov,
    "ista-wavelet": ISTAWavelet,
    "fista-wavelet": FISTAWavelet,
    "tv": TotalVariation,
}
F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _shapes_image(h: int = 32, w: int = 32, batch: int = 1, channels: int = 1) -> torch.Tensor:
    """Piecewise-constant test image in [0, 1]: a disc and a rectangle on a background."""
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=F64) / h, torch.arange(w, dtype=F64) / w, indexing="ij"
    )
    img = torch.full((h, w), 0.2, dtype=F64)
    img[(xx - 0.35) ** 2 + (yy - 0.4) ** 2 < 0.05] = 0.8
    img[(xx > 0.55) & (xx < 0.85) & (yy > 0.5) & (yy < 0.9)] = 0.5
    return img.expand(batch, channels, h, w).clone()


def _psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / torch.mean((x - ref) ** 2).item())


def _monotone(objective: torch.Tensor, rel: float = 1e-12) -> bool:
    """``objective`` ``(K, B)`` never rises (up to rounding)."""
    slack = rel * objective.abs().max()
    return bool((objective.diff(dim=0) <= slack).all())


# ---------------------------------------------------------------- wavelet transform


@pytest.mark.filterwarnings("ignore:Level value of .* is too high")  # pywt: N < filter length
@pytest.mark.parametrize("name", ["haar", "db2", "db4", "sym3"])
@pytest.mark.parametrize(("h", "w", "levels"), [(16, 24, 2), (8, 8, 3)])
def test_wavelet_matches_pywt_periodization(name, h, w, levels):
    x = torch.rand(2, 3, h, w, generator=_gen(1), dtype=F64)
    wt = WaveletTransform(name, levels)
    packed = wt(x)
    decomposed = wt.wavedec2(x)
    for b in range(2):
        for c in range(3):
            ref = pywt.wavedec2(x[b, c].numpy(), name, mode="periodization", level=levels)
            array, _ = pywt.coeffs_to_array(ref)
            np.testing.assert_allclose(packed[b, c].numpy(), array, atol=1e-12)
            np.testing.assert_allclose(decomposed[0][b, c].numpy(), ref[0], atol=1e-12)
            for ours, theirs in zip(decomposed[1:], ref[1:], strict=True):
                for o, t in zip(ours, theirs, strict=True):
                    np.testing.assert_allclose(o[b, c].numpy(), t, atol=1e-12)


@pytest.mark.parametrize("name", ["haar", "db3", "db4"])
def test_wavelet_is_orthonormal(name):
    wt = WaveletTransform(name, levels=3)
    x = torch.randn(2, 2, 16, 24, generator=_gen(2), dtype=F64)
    c = torch.randn(2, 2, 16, 24, generator=_gen(3), dtype=F64)
    torch.testing.assert_close(wt.adjoint(wt(x)), x, rtol=0, atol=1e-12)  # W^T W = I
    torch.testing.assert_close(wt(wt.adjoint(c)), c, rtol=0, atol=1e-12)  # W W^T = I
    torch.testing.assert_close(wt(x).norm(), x.norm(), rtol=1e-13, atol=0)  # energy
    assert abs((wt(x) * c).sum() - (x * wt.adjoint(c)).sum()) < 1e-11 * x.norm() * c.norm()


def test_wavelet_rejects_bad_input():
    with pytest.raises(ValueError, match="not orthogonal"):
        WaveletTransform("bior2.2")
    with pytest.raises(ValueError, match="unknown wavelet"):
        WaveletTransform("no-such-wavelet")
    with pytest.raises(ValueError, match="levels must be an int >= 1"):
        WaveletTransform("haar", levels=0)
    with pytest.raises(ValueError, match=r"multiples of 8: pad to 24x16"):
        WaveletTransform("haar", levels=3)(torch.zeros(1, 1, 17, 16))


# ---------------------------------------------------------------- Tikhonov: CG and GD


def _blur_tikhonov_closed_form(y: torch.Tensor, kernels: torch.Tensor, lam: float):
    """``x = F^-1(conj(K) F y / (|K|^2 + lam))`` per sample, in numpy."""
    out = []
    for b in range(y.shape[0]):
        k = kernels[b].numpy()
        kh, kw = k.shape
        h, w = y.shape[-2:]
        padded = np.zeros((h, w))
        padded[:kh, :kw] = k
        otf = np.fft.fft2(np.roll(padded, (-(kh // 2), -(kw // 2)), axis=(0, 1)))
        fy = np.fft.fft2(y[b, 0].numpy())
        out.append(np.real(np.fft.ifft2(np.conj(otf) * fy / (np.abs(otf) ** 2 + lam))))
    return torch.tensor(np.stack(out))[:, None]


def test_cg_and_gd_match_the_fft_closed_form_for_circular_blur():
    box = torch.nn.functional.pad(box_kernel(5), (1, 1, 1, 1))
    kernels = torch.stack([gaussian_kernel(1.5, size=7), box]).double()  # one per sample
    op = Blur(kernels)
    x = _shapes_image(24, 20, batch=2)
    y = op(x) + 0.05 * torch.randn(x.shape, generator=_gen(4), dtype=F64)
    lam = 0.05
    expected = _blur_tikhonov_closed_form(y, kernels, lam)
    cg = ConjugateGradientTikhonov(weight=lam, iterations=80)(y, op)
    torch.testing.assert_close(cg.final, expected, rtol=0, atol=1e-8)
    assert _monotone(cg.objective_stacked())

    lam_gd = 0.5  # contraction 1 - lam / (||A||^2 + lam) ~ 2/3 per step
    gd = GradientDescentTikhonov(weight=lam_gd, iterations=80)(y, op)
    expected_gd = _blur_tikhonov_closed_form(y, kernels, lam_gd)
    torch.testing.assert_close(gd.final, expected_gd, rtol=0, atol=1e-8)
    assert _monotone(gd.objective_stacked())
    assert bool((gd.objective[0] < gd.initial_objective).all())


def test_gd_objective_decreases_monotonically_on_random_projections():
    op = random_projection("gaussian", (1, 8, 8), 0.5, batch=2, generator=_gen(5), dtype=F64)
    x = _shapes_image(8, 8, batch=2)
    y = op(x) + 0.01 * torch.randn(2, 32, generator=_gen(6), dtype=F64)
    result = GradientDescentTikhonov(weight=1e-3, iterations=60)(y, op)
    assert _monotone(result.objective_stacked())
    assert len(result) == 60 and result.final.shape == x.shape


def test_a_shorter_run_is_the_start_of_a_longer_one_and_runs_are_deterministic():
    op = Blur(gaussian_kernel(1.0))
    y = op(_shapes_image(16, 16))
    for cls in ITERATIVE.values():
        short = cls(iterations=4)(y, op)
        long = cls(iterations=7)(y, op)
        for a, b in zip(short.estimates, long.estimates[:4], strict=True):
            assert torch.equal(a, b), cls.__name__


# ---------------------------------------------------------------- ISTA / FISTA


@pytest.mark.parametrize("cls", [ISTAWavelet, FISTAWavelet])
@pytest.mark.parametrize("penalize_approximation", [False, True])
def test_ista_fista_with_identity_give_the_closed_form_soft_threshold(cls, penalize_approximation):
    lam = 0.08
    wt = WaveletTransform("db2", levels=3)
    x = _shapes_image(32, 32, batch=2)
    y = x + 0.1 * torch.randn(x.shape, generator=_gen(7), dtype=F64)
    c = wt(y)
    mask = torch.ones(32, 32, dtype=torch.bool)
    if not penalize_approximation:
        mask = wt.detail_mask((32, 32))
    expected = wt.adjoint(torch.where(mask, soft_threshold(c, lam), c))
    solver = cls(
        weight=lam,
        iterations=30,
        wavelet="db2",
        levels=3,
        penalize_approximation=penalize_approximation,
    )
    result = solver(y, Identity(), 0.1)
    torch.testing.assert_close(result.final, expected, rtol=0, atol=1e-10)


def test_ista_and_mfista_are_monotone_and_fista_ends_below_ista():
    g = _gen(8)
    x = _shapes_image(32, 32, batch=2)
    op = Inpainting(random_mask(x.shape, 0.5, g, dtype=F64)) @ Blur(gaussian_kernel(1.0).double())
    y = op(x) + 0.02 * torch.randn(x.shape, generator=g, dtype=F64)
    kwargs = {"weight": 0.01, "iterations": 40, "wavelet": "db2", "levels": 3}
    ista = ISTAWavelet(**kwargs)(y, op)
    fista = FISTAWavelet(**kwargs)(y, op)
    mfista = FISTAWavelet(monotone=True, **kwargs)(y, op)
    assert _monotone(ista.objective_stacked())
    assert _monotone(mfista.objective_stacked())
    assert bool((fista.objective[-1] < ista.objective[-1]).all())
    assert bool((mfista.objective[-1] < ista.objective[-1]).all())


def test_wavelet_solvers_work_on_sizes_not_divisible_by_two_to_the_levels():
    x = _shapes_image(17, 23)
    y = x + 0.1 * torch.randn(x.shape, generator=_gen(9), dtype=F64)
    result = ISTAWavelet(weight=0.1, iterations=20, levels=4)(y, Identity(), 0.1)
    assert result.final.shape == x.shape
    assert _monotone(result.objective_stacked())
    assert _psnr(result.final, x) > _psnr(y, x) + 1.5  # one orthonormal basis on 17x23: ~2 dB


def test_lipschitz_estimate_of_a_sample_does_not_depend_on_its_batch_mates():
    gains = torch.rand(3, 1, 6, 6, generator=_gen(12), dtype=F64) + 0.5

    class Gains(Identity):  # a diagonal operator, a different one per sample
        def __init__(self, g):
            super().__init__()
            self.g = g

        def forward(self, v):
            return self.g * v

        def adjoint(self, w):
            return self.g * w

    like = torch.zeros(3, 1, 6, 6, dtype=F64)
    batched = estimate_lipschitz(Gains(gains), like, iterations=3)
    alone = [estimate_lipschitz(Gains(gains[i : i + 1]), like[:1], iterations=3) for i in range(3)]
    assert torch.equal(batched, torch.cat(alone))
    assert (batched <= gains.flatten(1).amax(1) ** 2 + 1e-12).all()


# ---------------------------------------------------------------- total variation


def test_tv_gradient_adjoint_and_norm():
    x = torch.randn(2, 3, 9, 7, generator=_gen(10), dtype=F64)
    q = torch.randn(2, 3, 2, 9, 7, generator=_gen(11), dtype=F64)
    lhs, rhs = (gradient(x) * q).sum(), (x * gradient_adjoint(q)).sum()
    assert abs(lhs - rhs) < 1e-12 * x.norm() * q.norm()

    class Grad(Identity):  # ||D||^2 through the power iteration, via D^T D
        def forward(self, v):
            return gradient(v)

        def adjoint(self, w):
            return gradient_adjoint(w)

    assert estimate_lipschitz(Grad(), torch.zeros(1, 1, 16, 16, dtype=F64), 100).item() <= 8
    edge = torch.zeros(1, 1, 5, 6, dtype=F64)
    edge[..., 3:] = 2.0
    assert total_variation(edge).item() == pytest.approx(10.0)  # jump 2 over 5 rows


def test_tv_denoises_a_piecewise_constant_image_and_lowers_its_objective():
    x = _shapes_image(48, 48)
    y = x + 0.1 * torch.randn(x.shape, generator=_gen(12), dtype=F64)
    result = TotalVariation(weight=0.08, iterations=150)(y, Identity(), 0.1)
    assert _psnr(result.final, x) > _psnr(y, x) + 6
    objective = result.objective_stacked()[:, 0]
    assert objective[-1] < 0.5 * result.initial_objective[0]
    assert objective[-1] <= objective.min() + 1e-6 * objective[-1]  # converged: ends lowest
    assert objective[-1] < objective[len(objective) // 10]


def test_tv_step_ratio_follows_the_weight_and_speeds_low_noise_deblurring():
    assert TotalVariation(weight=0.0025).ratio == pytest.approx(10.0)
    assert TotalVariation(weight=0.5).ratio == 1.0 and TotalVariation(weight=1e-6).ratio == 30.0
    assert TotalVariation(weight=0.0025, step_ratio=2).ratio == 2.0
    for bad in (0, -1.0, float("inf"), float("nan"), True, "3"):
        with pytest.raises(ValueError, match="step_ratio"):
            TotalVariation(step_ratio=bad)
    x = _shapes_image(48, 48)
    op = Blur(box_kernel(5).double())
    y = op(x) + 0.01 * torch.randn(x.shape, generator=_gen(15), dtype=F64)

    def objective(**kw):
        return TotalVariation(weight=0.002, keep_estimates=False, **kw)(y, op).objective[-1].item()

    minimum = objective(iterations=3000)
    balanced, equal = objective(iterations=60), objective(iterations=60, step_ratio=1)
    assert balanced - minimum < 0.2 * (equal - minimum)  # r = 11 (0.09 measured) against r = 1


def test_tv_on_mri_gives_a_real_image_closer_than_zero_filled():
    x = _shapes_image(32, 32).float()
    op = CartesianMRI(variable_density_mask((32, 32), 3, generator=_gen(13)))
    y = op(x)
    zero_filled = ZeroFilled(magnitude=True)(y, op).final
    result = TotalVariation(weight=1e-3, iterations=100)(y, op)
    assert result.final.dtype == torch.float32 and not result.final.is_complex()
    assert _psnr(result.final, x) > _psnr(zero_filled, x) + 2
    assert result.objective[-1] < 0.5 * result.initial_objective


# ---------------------------------------------------------------- every iterative baseline


@pytest.mark.parametrize("name", list(ITERATIVE))
def test_iterative_baselines_run_on_every_operator_family(name):
    g = _gen(14)
    x = _shapes_image(16, 16, batch=2).float()
    cases = {
        "inpainting": Inpainting(random_mask(x.shape, 0.4, g)),
        "projection": random_projection("bernoulli", (1, 16, 16), 0.4, batch=2, generator=g),
        "mri": CartesianMRI(variable_density_mask((16, 16), 2, batch=2, generator=g)),
        "super-resolution": BicubicDownsample(2),
    }
    for kind, op in cases.items():
        result = ITERATIVE[name](iterations=10, weight=0.01)(op(x), op, 0.0)
        assert isinstance(result, SolverResult) and len(result) == 10, kind
        assert result.final.shape == x.shape and result.final.dtype == torch.float32, kind
        assert torch.isfinite(result.final).all(), kind
        assert result.objective[0].shape == (2,)
        assert bool((result.objective[-1] < result.initial_objective).all()), kind


def test_keep_estimates_false_keeps_the_final_estimate_and_the_whole_objective():
    y = _shapes_image(16, 16)
    full = FISTAWavelet(iterations=6, levels=2)(y, Identity())
    lean = FISTAWavelet(iterations=6, levels=2, keep_estimates=False)(y, Identity())
    assert len(lean) == 1 and len(lean.objective) == 6
    assert torch.equal(lean.final, full.final)


# ---------------------------------------------------------------- direct baselines


def test_zero_filled_is_the_adjoint_and_its_magnitude():
    x = torch.rand(2, 1, 16, 16, generator=_gen(15), dtype=torch.complex128)
    op = CartesianMRI(variable_density_mask((16, 16), 4, batch=2, generator=_gen(16)))
    y = op(x)
    assert torch.equal(ZeroFilled()(y, op).final, op.adjoint(y))
    magnitude = ZeroFilled(magnitude=True)(y, op).final
    assert torch.equal(magnitude, op.adjoint(y).abs()) and magnitude.dtype == F64
    as_channels = ZeroFilled(magnitude=True)(y, ComplexAsChannels(op)).final  # (B, 1, H, W)
    torch.testing.assert_close(as_channels, op.adjoint(y).abs())


def test_bicubic_baseline_is_bicubic_upsample():
    op = BicubicDownsample(3, in_size=(20, 22))
    y = op(torch.rand(2, 3, 20, 22, generator=_gen(17)))
    result = BicubicUpsampling()(y, op, 0.0)
    assert torch.equal(result.final, bicubic_upsample(y, 3, (20, 22)))
    assert result.objective == []
    with pytest.raises(ValueError, match="accepts only a BicubicDownsample"):
        BicubicUpsampling()(y, Identity())


# ---------------------------------------------------------------- BM3D


@pytest.mark.parametrize("channels", [1, pytest.param(3, marks=pytest.mark.slow)])
def test_bm3d_beats_the_noisy_input_by_a_wide_margin(channels):
    pytest.importorskip("bm3d", reason="the optional extra rimkit[bm3d] is not installed")
    x = _shapes_image(32, 32, channels=channels).float()
    if channels == 3:
        x = x * torch.tensor([1.0, 0.7, 0.4]).reshape(1, 3, 1, 1)
    sigma = 25 / 255
    y = x + sigma * torch.randn(x.shape, generator=_gen(18))
    result = BM3D()(y, Identity(), sigma)
    assert result.final.shape == x.shape and result.final.dtype == torch.float32
    assert _psnr(result.final, x) > _psnr(y, x) + 5


def test_bm3d_without_the_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # makes `import bm3d` fail
    with pytest.raises(ImportError, match=r"pip install 'rimkit\[bm3d\]'"):
        BM3D()(torch.rand(1, 1, 8, 8), Identity(), 0.1)


def test_bm3d_rejects_other_operators_and_bad_input():
    y = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"only the Identity operator.*got BicubicDownsample"):
        BM3D()(y, BicubicDownsample(2), 0.1)
    with pytest.raises(ValueError, match="sigma > 0"):
        BM3D()(y, Identity(), 0.0)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        BM3D()(torch.rand(1, 2, 8, 8), Identity(), 0.1)
    with pytest.raises(ValueError, match="unknown BM3D profile"):
        BM3D(profile="fast")
    for threads in (-1, 1.5, True):
        with pytest.raises(ValueError, match="threads must be None or an int >= 0"):
            BM3D(threads=threads)


def test_bm3d_runs_on_torchs_thread_count_unless_told(monkeypatch):
    bm3d = pytest.importorskip("bm3d", reason="the optional extra rimkit[bm3d] is not installed")
    seen = []
    monkeypatch.setattr(bm3d, "bm3d", lambda z, s, profile: seen.append(profile) or z)
    y = torch.rand(1, 1, 8, 9)  # (8x8 crashes the package: refused)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        BM3D()(y, Identity(), 0.1)
        BM3D(profile="refilter", threads=0)(y, Identity(), 0.1)
    finally:
        torch.set_num_threads(previous)
    assert [p.num_threads for p in seen] == [1, 0]
    assert type(seen[0]) is bm3d.profiles.BM3DProfile
    assert type(seen[1]) is bm3d.profiles.BM3DProfileRefilter


# ---------------------------------------------------------------- interface and bad input


def test_registry_names_every_baseline_once():
    assert set(BASELINES) == {
        "gd-tikhonov",
        "cg-tikhonov",
        "ista-wavelet",
        "fista-wavelet",
        "tv",
        "zero-filled",
        "bm3d",
        "bicubic",
    }
    for name, cls in BASELINES.items():
        assert issubclass(cls, Reconstructor) and cls.name == name
    assert isinstance(baseline("tv", iterations=3), TotalVariation)
    with pytest.raises(ValueError, match="unknown baseline 'nlm'; known: gd-tikhonov"):
        baseline("nlm")
    with pytest.raises(ValueError, match=r"option\(s\) steps for baseline 'tv'; accepted: weight"):
        baseline("tv", steps=3)


@pytest.mark.parametrize("name", list(ITERATIVE))
@pytest.mark.parametrize("weight", [0.0, -1.0, float("nan"), True])
def test_a_non_positive_weight_is_a_value_error(name, weight):
    with pytest.raises(ValueError, match=r"weight \(the regularisation weight lambda\).*> 0"):
        ITERATIVE[name](weight=weight)


@pytest.mark.parametrize("name", list(ITERATIVE))
@pytest.mark.parametrize("iterations", [0, -3, 2.5])
def test_an_iteration_count_below_one_is_a_value_error(name, iterations):
    with pytest.raises(ValueError, match="iterations must be an int >= 1"):
        ITERATIVE[name](iterations=iterations)


@pytest.mark.parametrize("name", list(BASELINES))
def test_a_non_operator_is_a_value_error_naming_what_is_accepted(name):
    y = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"must be a rimkit LinearOperator.*got function"):
        BASELINES[name]()(y, lambda v: v, 0.1)


def test_bad_measurements_sigma_and_x0_are_value_errors():
    solver = GradientDescentTikhonov(iterations=2)
    y = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="sigma must be finite and >= 0"):
        solver(y, Identity(), -0.1)
    with pytest.raises(ValueError, match="one per sample"):
        solver(y, Identity(), torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="NaN or Inf"):
        solver(torch.full((1, 1, 4, 4), float("nan")), Identity())
    with pytest.raises(ValueError, match="x0 has shape"):
        solver(y, Identity(), x0=torch.zeros(2, 1, 4, 4))


def test_a_diverging_baseline_warns_and_points_to_the_adjoint_check():
    """An operator whose adjoint is wrong sends the iterations to NaN / Inf: say so."""
    from rimkit.operators import LinearOperator, adjoint_mismatch

    class RowShift(LinearOperator):  # y = 3 x shifted along rows; "adjoint" wrongly = forward
        def forward(self, x):
            return 3 * torch.roll(x, 1, dims=-1)

        def adjoint(self, y):
            return 3 * torch.roll(y, 1, dims=-1)

    x = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    op = RowShift()
    assert float(adjoint_mismatch(op, x).max()) > 1e-3
    with pytest.warns(UserWarning, match=r"NaN or Inf: its iterations diverged.*adjoint_mismatch"):
        result = GradientDescentTikhonov(weight=1e-3, iterations=300)(op(x), op, 0.0)
    assert not torch.isfinite(result.final).all()


def test_steps_and_ratios_are_refused_by_their_own_names():
    from rimkit.solvers.map_descent import MAPDescent

    for options, name in (({"step": 0.0}, "step"), ({"smoothing": -1.0}, "smoothing")):
        with pytest.raises(ValueError, match=rf"^{name} must be a finite number > 0") as err:
            MAPDescent(**options)
        assert "regularisation weight" not in str(err.value)
    with pytest.raises(ValueError, match=r"^step_ratio \(or None\) must be a finite number > 0"):
        TotalVariation(step_ratio=float("nan"))
    with pytest.raises(ValueError, match=r"weight \(the regularisation weight lambda\)"):
        TotalVariation(weight=0.0)
