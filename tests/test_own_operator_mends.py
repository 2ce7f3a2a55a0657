"""Mends from an audit of a user with a forward model of their own: a start far from the link's
range, an operator's attribute named like its adjoint, adjoint checks that blame the right
thing, data on the 0-255 scale given to a RIM, and the baselines' default start."""

from __future__ import annotations

import warnings

import pytest
import torch

from rimkit.likelihood import GaussianLikelihood
from rimkit.models import build_rim
from rimkit.models.invertible import InvertibleRIM
from rimkit.operators import LinearOperator, adjoint_mismatch


class ColumnSum(LinearOperator):
    """Sums each column: ``(B, C, H, W) -> (B, C, 1, W)``, of norm ``sqrt(H)``."""

    def forward(self, x):
        return x.sum(dim=-2, keepdim=True)

    def adjoint(self, y):
        return y.expand(*y.shape[:-2], 16, y.shape[-1])


def test_a_start_far_outside_the_sigmoid_range_gets_a_note():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 16, 16)
    op = ColumnSum()
    likelihood = GaussianLikelihood(op, op(x), 0.01)
    models = [
        build_rim("restoration", channels=1, features=4, hidden=4, train_steps=2),
        InvertibleRIM(channels=1, state_channels=4, features=4, train_steps=2),
    ]
    for model in models:
        with pytest.warns(UserWarning, match=r"start x0 lies mostly outside \[-1, 2\]"):
            model(likelihood, x0=op.adjoint(op(x)))  # values 2-14: the column sums
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model(likelihood, x0=op.adjoint(op(x)) / 16)
            model(likelihood, x0=x + 0.8 * torch.randn_like(x))  # a noisy start, mostly within


def test_adjoint_mismatch_names_what_failed():
    class WrongAdjoint(ColumnSum):
        def adjoint(self, y):  # the height the forward dropped is not restored
            return y.expand(*y.shape[:-2], 8, y.shape[-1])

    with pytest.raises(ValueError, match=r"WrongAdjoint.adjoint returned \(1, 1, 8, 16\) for x "):
        adjoint_mismatch(WrongAdjoint(), torch.rand(1, 1, 16, 16))

    class Crashing(ColumnSum):
        def adjoint(self, y):
            return y @ torch.ones(3, 3)

    with pytest.raises(ValueError, match=r"Crashing.adjoint\(y\) failed for y = Crashing\(x\) of"):
        adjoint_mismatch(Crashing(), torch.rand(1, 1, 16, 16))

    class CrashingForward(ColumnSum):
        def forward(self, x):
            return x @ torch.ones(3, 3)

    with pytest.raises(ValueError, match=r"CrashingForward\(x\) failed for x \(1, 1, 16, 16\) of"):
        adjoint_mismatch(CrashingForward(), torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match=r"a batch of images x \(B, C, H, W\), got \(16, 16\)"):
        adjoint_mismatch(ColumnSum(), torch.rand(16, 16))
    assert float(adjoint_mismatch(ColumnSum(), torch.rand(2, 1, 16, 16)).max()) < 1e-12


def test_an_attribute_named_like_the_adjoint_is_named():
    class Projector(ColumnSum):
        def __init__(self, height):
            super().__init__()
            self.H = height

    with pytest.raises(AttributeError, match=r"Projector.H is the operator's adjoint \(op.H\)"):
        Projector(16)


def test_a_measurement_on_the_0_255_scale_given_to_a_rim_gets_a_note():
    from rimkit.operators import Blur, Identity, Inpainting, gaussian_kernel
    from rimkit.reconstruct import RIMReconstructor

    torch.manual_seed(0)
    rim = RIMReconstructor(build_rim("restoration", 1, features=4, hidden=4, train_steps=2))
    x = torch.rand(1, 1, 16, 16)
    holes = Inpainting((torch.rand(1, 1, 16, 16) > 0.3).float())
    for op in (Identity(), Blur(gaussian_kernel(1.0)), holes @ Blur(gaussian_kernel(1.0))):
        with pytest.warns(UserWarning, match=r"y reaches [23]\d\d\.?\d*, but the RIMs work on"):
            rim(op(x * 255) + 25 * torch.randn_like(op(x)), op, 25.0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            rim(op(x) + 0.1 * torch.randn_like(op(x)), op, 0.1)
    with warnings.catch_warnings():  # another scale is the operator's own: no note
        warnings.simplefilter("error")
        rim(ColumnSum()(4 * x), ColumnSum(), 0.01, x0=torch.full_like(x, 0.5))  # sums to ~32


def test_a_forward_model_of_ones_own_is_evaluated_beside_baselines():
    import numpy as np

    from rimkit.evaluate import OperatorProtocol, baseline_method, evaluate, rim_method

    def adjoint_start(op, y):  # the start a task of one's own trained from, scaled
        return (op.adjoint(y) / 16).clamp(0, 1)

    model = build_rim("restoration", 1, features=4, hidden=4, train_steps=2)
    image = np.linspace(0, 1, 16 * 16).reshape(16, 16)
    methods = [
        rim_method(model, start=adjoint_start),
        baseline_method("tv", "own", {"weight": 0.01, "iterations": 20}),
        baseline_method("gd-tikhonov", "own", {"weight": 0.01}, start=adjoint_start),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no note: every method was given its start
        result = evaluate([("ramp", image)], [OperatorProtocol(ColumnSum(), 5, "sums")], methods)
    rows = {row["method"]: row for row in result.summary()}
    assert set(rows) == {"rim", "tv", "gd-tikhonov"}
    assert all(
        row["setting"] == "sums,sigma=5" and np.isfinite(row["psnr"]) for row in rows.values()
    )

    with pytest.raises(ValueError, match=r"'tv' has no tuned weight: a forward model of one's"):
        baseline_method("tv", "own")
    with pytest.raises(ValueError, match=r"applies to denoise only, not to own"):
        baseline_method("bm3d", "own")
    with pytest.raises(ValueError, match=r"no tuned weights for ColumnSum.*'own'"):
        evaluate(
            [("ramp", image)],
            [OperatorProtocol(ColumnSum(), 5)],
            [baseline_method("tv", "projection")],
        )
    with pytest.raises(ValueError, match=r"start .*lambda.* returned \(1, 1, 1, 16\)"):
        bad = rim_method(model, start=lambda op, y: y)
        bad.run(OperatorProtocol(ColumnSum(), 5).cases(image, 0, "ramp")[0])
    with pytest.raises(ValueError, match=r"start is for a whole image: not with tile"):
        rim_method(model, start=adjoint_start, tile=64)
    both = [OperatorProtocol(ColumnSum(), 5), OperatorProtocol(ColumnSum(), 5)]
    assert both[0].setting == "ColumnSum,sigma=5"  # named after the operator by default
    with pytest.raises(ValueError, match=r"two protocols share the setting 'ColumnSum,sigma=5'"):
        evaluate([("ramp", image)], both, methods[1:2])


class MatrixOfMine(LinearOperator):
    """A dense matrix applied as ``x @ m``: it runs only in the matrix's own dtype."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.register_buffer("m", torch.rand(n * n, n, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return x.flatten(2) @ self.m

    def adjoint(self, y):
        return (y @ self.m.T).unflatten(-1, (16, 16))


def test_baselines_run_an_operator_that_keeps_one_dtype():
    import numpy as np

    from rimkit.evaluate import OperatorProtocol, baseline_method, evaluate

    image = np.linspace(0, 1, 16 * 16).reshape(16, 16)
    tv = baseline_method("tv", "own", {"weight": 0.01, "iterations": 5})
    result = evaluate([("ramp", image)], [OperatorProtocol(MatrixOfMine(16), 5)], [tv])
    assert np.isfinite(result.summary()[0]["psnr"])  # the protocol's float64 operator, float32 y


class RandomRays(LinearOperator):
    """Sums over random tenths of the pixels, ``(B, C, H, W) -> (B, C, 1, m)``: an operator of
    large norm (``||A||^2`` near 6e4 for 64 x 64 images) and an ill-conditioned ``A^T A``."""

    def __init__(self, n: int, m: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("rays", (torch.rand(m, n * n, generator=gen) < 0.1).float())
        self.n = n

    def forward(self, x):
        return (x.flatten(2) @ self.rays.T.to(x.dtype))[:, :, None, :]

    def adjoint(self, y):
        return (y[:, :, 0, :] @ self.rays.to(y.dtype)).unflatten(-1, (self.n, self.n))


def _rays_case():
    from rimkit.io import read_image

    x = torch.tensor(read_image("example:camera")[100:164, 200:264], dtype=torch.float32)
    x = x[None, None]  # (1, 1, 64, 64)
    op = RandomRays(64, 1500)
    noise = torch.randn(op(x).shape, generator=torch.Generator().manual_seed(1))
    return x, op, op(x) + 5 / 255 * noise


def test_the_baselines_default_start_is_fitted_to_the_operators_scale():
    from rimkit.evaluate import psnr
    from rimkit.solvers import baseline
    from rimkit.solvers.base import solver_start

    x, op, y = _rays_case()
    start = solver_start(y, op, None)
    assert 0.5 < float(start.mean()) / float(x.mean()) < 2  # A^T y alone: ~400 times brighter
    for name in ("gd-tikhonov", "fista-wavelet", "tv"):
        default = baseline(name)(y, op, 5 / 255).final
        flat = baseline(name)(y, op, 5 / 255, x0=torch.full_like(x, 0.5)).final
        assert float(psnr(default.clamp(0, 1), x)) > float(psnr(flat.clamp(0, 1), x)) - 0.5, name


def test_conjugate_gradients_in_float32_keep_their_best_iterate():
    from rimkit.evaluate import psnr
    from rimkit.operators import Blur, gaussian_kernel
    from rimkit.solvers import baseline

    x, op, y = _rays_case()  # ill-conditioned: float32 CG's objective rises after ~23 steps
    cg = baseline("cg-tikhonov", weight=0.01, iterations=60)
    single = cg(y, op, 5 / 255, x0=torch.full_like(x, 0.5))
    double = cg(y.double(), op.double(), 5 / 255, x0=torch.full_like(x, 0.5).double())
    single_db = float(psnr(single.final.clamp(0, 1), x))
    assert abs(float(psnr(double.final.float().clamp(0, 1), x)) - single_db) < 0.3  # was 3.4
    blur = Blur(gaussian_kernel(1.6))  # well-conditioned: both precisions reach one solution
    yb = blur(x) + 5 / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    cg = baseline("cg-tikhonov", weight=1e-3, iterations=200)
    low, high = cg(yb, blur, 5 / 255), cg(yb.double(), blur.double(), 5 / 255)
    assert float((low.final.double() - high.final).abs().max()) < 2e-3


def test_a_loaded_model_saves_again_and_a_torch_file_is_named(tmp_path):
    from rimkit.zoo import load_model, save_model

    loaded = load_model("3task")
    path = save_model(tmp_path / "again.safetensors", loaded)
    again = load_model(path)
    assert again.config["tasks"] == loaded.config["tasks"] and again.model.start == "flat"
    saved, before = again.model.state_dict(), loaded.model.state_dict()
    assert saved.keys() == before.keys()
    assert all(torch.equal(saved[k], before[k]) for k in saved)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "state.pt")
    with pytest.raises(ValueError, match=r"state.pt is no .safetensors file \(a torch.save file"):
        load_model(tmp_path / "state.pt")
