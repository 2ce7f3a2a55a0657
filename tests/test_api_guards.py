"""API guards of the models and likelihoods: gradients reach (or are refused for) the
likelihood's tensors, trajectory weights, Trajectory as a sequence, and clear messages for
wrong dtypes and arguments."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from rimkit.evaluate.protocols import DenoiseProtocol, psnr_curve
from rimkit.likelihood import AutogradLikelihood, GaussianLikelihood
from rimkit.models import InvertibleRIM, build_rim, trajectory_loss
from rimkit.models.rim import GradientGuard, Trajectory
from rimkit.operators import Identity
from rimkit.operators.base import LinearOperator
from rimkit.zoo import load_model


class Scale(LinearOperator):
    """``A x = a x`` with a learnable scale ``a`` (self-adjoint)."""

    def __init__(self, a: float = 1.2) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.a

    def adjoint(self, y: Tensor) -> Tensor:
        return y * self.a


def _images(seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = 0.2 + 0.6 * torch.rand(2, 1, 12, 12, generator=g)
    return x, x + 0.1 * torch.randn(x.shape, generator=g)


def _frozen_rim():
    torch.manual_seed(0)
    rim = build_rim("restoration", 1, features=6, hidden=6, train_steps=3)
    with torch.no_grad():  # the last convolution starts at zero: make the cell act
        rim.cell.out.weight.normal_(std=0.1)
    return rim.requires_grad_(False)


def _tiny_irim(checkpoint: bool) -> InvertibleRIM:
    torch.manual_seed(0)
    irim = InvertibleRIM(1, state_channels=8, features=6, train_steps=3, checkpoint=checkpoint)
    with torch.no_grad():  # non-zero h outputs, so every part of a step acts
        for block in irim.blocks:
            block.h[-1].weight.normal_(std=0.05)
    return irim


# 1. the invert-to-learn backward does not reach the likelihood's tensors: refused


def test_shipped_irim_refuses_y_that_requires_grad_under_checkpoint():
    irim = load_model("irim-denoise-gray").model
    assert irim.checkpoint
    x, y = _images()
    y = y.requires_grad_()
    with pytest.raises(ValueError, match=r"here: y.*model\.checkpoint = False"):
        irim(GaussianLikelihood(Identity(), y, 0.1), x0=y.detach())
    irim.checkpoint = False
    trajectory_loss(irim(GaussianLikelihood(Identity(), y, 0.1), x0=y.detach()), x).backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


@pytest.mark.parametrize("learnable", ["y", "sigma", "operator", "autograd-operator"])
def test_irim_checkpoint_refuses_every_likelihood_tensor_that_requires_grad(learnable: str):
    _, y = _images()
    sigma = torch.full((2,), 0.1)
    if learnable == "y":
        y = y.requires_grad_()
    if learnable == "sigma":
        sigma = sigma.requires_grad_()
    if learnable == "autograd-operator":
        likelihood = AutogradLikelihood(Scale(), y, sigma)
    else:
        likelihood = GaussianLikelihood(
            Scale() if learnable == "operator" else Identity(), y, sigma
        )
    with pytest.raises(ValueError, match=r"does not reach the likelihood's tensors.*checkpoint"):
        _tiny_irim(checkpoint=True)(likelihood, x0=y.detach())
    with torch.no_grad():  # no backward: nothing to refuse
        assert len(_tiny_irim(checkpoint=True)(likelihood, x0=y.detach())) == 3


class CountingGaussian(GaussianLikelihood):
    """Counts the calls of ``grad``."""

    calls = 0

    def grad(self, x: Tensor, eps: Tensor | float = 0.0) -> Tensor:
        self.calls += 1
        return super().grad(x, eps)


def test_irim_checkpoint_check_costs_no_extra_likelihood_call():
    _, y = _images()
    likelihood = CountingGaussian(Identity(), y, 0.1)
    _tiny_irim(checkpoint=True)(likelihood, x0=y)
    assert likelihood.calls == 3  # one per step, as without the check
    likelihood.y = y.clone().requires_grad_()
    with pytest.raises(ValueError, match="here: y"):
        _tiny_irim(checkpoint=True)(likelihood, x0=y)
    assert likelihood.calls == 4  # refused at the first step


def test_irim_checkpoint_gradients_still_match_plain_backprop_without_learnable_likelihood():
    x, y = _images()
    grads = []
    for checkpoint in (True, False):
        irim = _tiny_irim(checkpoint).double()
        x0 = y.double().requires_grad_()
        likelihood = GaussianLikelihood(Identity(), y.double(), 0.1)
        trajectory_loss(irim(likelihood, x0=x0), x.double()).backward()
        grads.append([x0.grad, *(p.grad for p in irim.parameters())])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


# 2. AutogradLikelihood keeps the graph to the forward model like GaussianLikelihood


def _operator_and_y_grads(make_likelihood) -> tuple[Tensor, Tensor]:
    x, _ = _images()
    op = Scale()
    y = (0.8 * x).requires_grad_()
    final = _frozen_rim()(make_likelihood(op, y), x0=torch.full_like(x, 0.5)).final
    assert final.requires_grad
    final.pow(2).sum().backward()
    return op.a.grad, y.grad


def test_autograd_likelihood_gradients_to_operator_and_y_equal_gaussian_likelihood():
    analytic = _operator_and_y_grads(lambda op, y: GaussianLikelihood(op, y, 0.1))
    autograd = _operator_and_y_grads(lambda op, y: AutogradLikelihood(op, y, 0.1))
    closure = _operator_and_y_grads(lambda op, y: AutogradLikelihood(lambda x: op.a * x, y, 0.1))
    assert analytic[0].abs() > 0 and analytic[1].abs().sum() > 0
    for got in (autograd, closure):
        torch.testing.assert_close(got[0], analytic[0])
        torch.testing.assert_close(got[1], analytic[1])


def test_autograd_likelihood_keeps_no_graph_when_nothing_requires_grad():
    x, y = _images()
    op = Scale().requires_grad_(False)
    lik = AutogradLikelihood(op, y, 0.1)
    assert not _frozen_rim()(lik, x0=y).final.requires_grad
    op.requires_grad_(True)
    assert _frozen_rim()(lik, x0=y).final.requires_grad
    with torch.no_grad():
        assert not lik.grad(x).requires_grad


# 3. trajectory_loss: normalize=True normalises explicit weights too


def test_explicit_weights_are_normalised_only_when_asked():
    x, _ = _images()
    trajectory = Trajectory([x + 0.1 * t for t in range(1, 5)])
    per_step = torch.stack([((0.1 * t) ** 2) * torch.ones(()) for t in range(1, 5)])
    uniform = trajectory_loss(trajectory, x)
    torch.testing.assert_close(uniform, per_step.mean())
    ones = [1.0] * 4
    torch.testing.assert_close(trajectory_loss(trajectory, x, ones, normalize=True), uniform)
    torch.testing.assert_close(trajectory_loss(trajectory, x, ones), per_step.sum())
    torch.testing.assert_close(trajectory_loss(trajectory, x, ones, normalize=False), 4 * uniform)
    torch.testing.assert_close(
        trajectory_loss(trajectory, x, [0, 1, 0, 3], normalize=True),
        (per_step[1] + 3 * per_step[3]) / 4,
    )
    torch.testing.assert_close(
        trajectory_loss(trajectory, x, "uniform", normalize=False), per_step.sum()
    )
    with pytest.raises(ValueError, match="positive sum"):
        trajectory_loss(trajectory, x, [1, -1, 0, 0], normalize=True)


# 4. Trajectory is a sequence of its estimates and never empty


def test_trajectory_indexes_and_iterates_over_its_estimates():
    estimates = [torch.full((1, 1, 2, 2), float(t)) for t in range(1, 4)]
    trajectory = Trajectory(estimates)
    assert trajectory[0] is estimates[0] and trajectory[-1] is trajectory.final is estimates[2]
    assert list(trajectory) == estimates and [x for x in trajectory] == estimates
    assert trajectory[1:] == estimates[1:]
    with pytest.raises(IndexError):
        trajectory[3]


def test_psnr_curve_takes_a_trajectory():
    image = np.clip(np.linspace(0.1, 0.9, 16)[None, :] * np.ones((16, 1)), 0, 1)
    case = DenoiseProtocol(25).cases(image, 0, "x")[0]
    trajectory = Trajectory([case.y.clamp(0, 1), case.truth.clone()])
    assert psnr_curve(trajectory, case) == psnr_curve(trajectory.estimates, case)
    assert len(psnr_curve(trajectory, case)) == 2


def test_empty_trajectory_is_refused():
    with pytest.raises(ValueError, match="at least one estimate"):
        Trajectory([])
    trajectory = Trajectory([torch.zeros(1)])
    trajectory.estimates.clear()
    with pytest.raises(ValueError, match="at least one estimate"):
        _ = trajectory.final


# 5. the dtype advice fits the case


def test_real_dtype_mismatch_advises_a_cast_not_complex_as_channels():
    _, y = _images()
    rim = _frozen_rim()
    with pytest.raises(ValueError, match=r"float64.*cast y \(and x0\).*model\.double\(\)") as err:
        rim(GaussianLikelihood(Identity(), y.double(), 0.1), x0=y)
    assert "ComplexAsChannels" not in str(err.value)
    rim.double()  # the advice works
    assert rim(GaussianLikelihood(Identity(), y.double(), 0.1), x0=y.double()).final.dtype == (
        torch.float64
    )


def test_complex_gradient_advises_complex_as_channels():
    guard = GradientGuard(torch.zeros(1, 1, 4, 4), steps=2, check_finite=True)
    with pytest.raises(ValueError, match="ComplexAsChannels") as err:
        guard(torch.zeros(1, 1, 4, 4, dtype=torch.complex64), 1)
    assert "cast y" not in str(err.value)


# 6. measurements are float (or complex); sigma is a number or a tensor


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_integer_measurement_is_refused(dtype: torch.dtype):
    y = torch.zeros(1, 1, 4, 4, dtype=dtype)
    for make in (GaussianLikelihood, AutogradLikelihood):
        with pytest.raises(ValueError, match=r"float tensor, images in \[0, 1\]"):
            make(Identity(), y, 0.1)


@pytest.mark.parametrize("sigma", ["0.1", b"0.1", True, None, 0.1j, torch.tensor(0.1j)])
def test_sigma_that_is_not_a_real_number_is_refused(sigma: object):
    y = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="sigma"):
        GaussianLikelihood(Identity(), y, sigma)  # type: ignore[arg-type]


def test_sigma_as_string_names_the_scale():
    with pytest.raises(ValueError, match="a number or a tensor, on the 0-1 scale"):
        GaussianLikelihood(Identity(), torch.zeros(1, 1, 4, 4), "0.1")  # type: ignore[arg-type]


@pytest.mark.parametrize("sigma", [0.5, 1, np.float32(0.5), [0.5, 0.5], np.array([0.5, 0.5])])
def test_numeric_sigma_forms_give_the_same_gradient(sigma: object):
    y = torch.full((2, 1, 2, 2), 0.5)
    lik = GaussianLikelihood(Identity(), y, sigma)  # type: ignore[arg-type]
    expected = 0.5 / float(np.asarray(sigma).reshape(-1)[0]) ** 2
    torch.testing.assert_close(lik.grad(torch.zeros_like(y)), torch.full_like(y, expected))


def test_reconstructor_and_likelihood_name_a_wrong_measurement_or_operator_size():
    from rimkit.operators import BicubicDownsample
    from rimkit.reconstruct import RIMReconstructor

    rim = build_rim("restoration", channels=1, features=4, hidden=4, train_steps=2)
    with pytest.raises(ValueError, match=r"y must be a torch\.Tensor"):
        RIMReconstructor(rim)(np.zeros((1, 1, 8, 8), np.float32), Identity(), 0.1)
    op, x31 = BicubicDownsample(2), torch.rand(1, 1, 31, 31)
    with pytest.raises(ValueError, match=r"adjoint maps y back to \(1, 1, 32, 32\).*in_size"):
        GaussianLikelihood(op, op(x31), 0.01).grad(x31)
    fitted = BicubicDownsample(2, in_size=(31, 31))
    assert GaussianLikelihood(fitted, fitted(x31), 0.01).grad(x31).shape == x31.shape


def test_a_numpy_target_and_an_int_generator_are_named():
    from rimkit.noise import GaussianNoise, simulate

    x = torch.rand(1, 1, 8, 8)
    rim = build_rim("restoration", channels=1, features=4, hidden=4, train_steps=2)
    trajectory = rim(GaussianLikelihood(Identity(), x, 0.1), x0=x)
    with pytest.raises(TypeError, match=r"target must be a torch\.Tensor"):
        trajectory_loss(trajectory, x.numpy())
    with pytest.raises(TypeError, match=r"torch\.Generator\(\)\.manual_seed\(0\)"):
        simulate(x, Identity(), GaussianNoise(0.1), 0)


def test_a_double_operator_runs_with_a_float_rim_and_stays_double():
    from rimkit.operators import Blur, adjoint_mismatch, gaussian_kernel
    from rimkit.reconstruct import RIMReconstructor

    blur = Blur(gaussian_kernel(1.0))
    x = torch.rand(1, 1, 16, 16)
    assert adjoint_mismatch(blur, x).max() < 1e-12  # computed on a float64 copy
    assert blur.kernel.dtype == torch.float32
    blur.double()  # nn.Module.double() converts in place
    rim = build_rim(features=4, hidden=4, train_steps=2)
    trajectory = RIMReconstructor(rim)(blur(x.double()), blur, 0.01)
    assert trajectory.estimates[-1].dtype == torch.float32 and blur.kernel.dtype == torch.float64


def test_a_half_precision_rim_is_told_to_cast_and_cell_dtype_runs_instead():
    from rimkit.reconstruct import RIMReconstructor

    y = torch.rand(1, 1, 16, 16)
    for cast in (torch.float16, torch.bfloat16):
        rim = build_rim(features=4, hidden=4, train_steps=2).to(cast)
        with pytest.raises(ValueError, match=r"weights are b?float16; .*model\.float\(\)"):
            RIMReconstructor(rim)(y, Identity(), 0.1)
    rim = build_rim(features=4, hidden=4, train_steps=2)
    rim.cell_dtype = torch.bfloat16
    assert RIMReconstructor(rim)(y, Identity(), 0.1).final.dtype == torch.float32


def test_restore_takes_a_loaded_model_named_kernels_and_keeps_a_channel_axis(tmp_path):
    from rimkit.degrade import degrade
    from rimkit.operators import kernel_from_spec
    from rimkit.pipeline import restore
    from rimkit.zoo import save_model

    rim = build_rim(features=4, hidden=4, train_steps=2)
    loaded = load_model(save_model(tmp_path / "m.safetensors", rim, [{"name": "blur"}]))
    image = np.random.default_rng(0).random((16, 16))
    y = degrade(image, "blur", kernel="motion:5:30", sigma=2).measurement
    by_name = restore(y, "blur", loaded, kernel="motion:5:30", sigma=2)
    by_array = restore(y, "blur", loaded.model, kernel=kernel_from_spec("motion:5:30"), sigma=2)
    np.testing.assert_array_equal(by_name.image, by_array.image)
    with pytest.raises(ValueError, match=r"unknown kernel 'disk:3'"):
        restore(y, "blur", loaded, kernel="disk:3", sigma=2)
    kept = restore(y[..., None], "blur", loaded, kernel="motion:5:30", sigma=2)
    assert kept.image.shape == (16, 16, 1) and all(f.shape == (16, 16, 1) for f in kept.frames)
    np.testing.assert_array_equal(kept.image[..., 0], by_name.image)


def test_rim_reconstructor_points_a_non_linear_model_to_autograd_likelihood():
    from rimkit.reconstruct import RIMReconstructor

    rim = build_rim(features=4, hidden=4, train_steps=2)
    with pytest.raises(ValueError, match=r"got function; .*model\(AutogradLikelihood\(f, y"):
        RIMReconstructor(rim)(torch.rand(1, 1, 8, 8), lambda x: x * x, 0.01)


def test_a_sigma_on_the_other_scale_gets_a_note():
    from rimkit.pipeline import restore
    from rimkit.reconstruct import RIMReconstructor
    from rimkit.solvers import TotalVariation as TV

    image = np.random.default_rng(0).random((16, 16))
    with pytest.warns(UserWarning, match=r"restore takes sigma on the 0-255 scale.*0\.09804"):
        restore(image, "denoise", None, baseline="tv", sigma=25 / 255)
    with pytest.warns(UserWarning, match=r"a protocol takes sigma on the 0-255 scale"):
        DenoiseProtocol(25 / 255)
    y = torch.from_numpy(image)[None, None]
    rim = build_rim(features=4, hidden=4, train_steps=2).double()
    for method in (TV(iterations=2), RIMReconstructor(rim)):
        with pytest.warns(UserWarning, match=r"sigma 25 is in the units of y.*25 / 255"):
            method(y, Identity(), 25)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the scales meant: no note
        restore(image, "denoise", None, baseline="tv", sigma=25)
        TV(iterations=2)(y, Identity(), 25 / 255)
        TV(iterations=2)(y * 255, Identity(), 25)  # data on the 0-255 scale


def test_a_gray_image_for_a_colour_model_is_pointed_to_a_gray_one():
    from rimkit.pipeline import restore

    rgb = build_rim(channels=3, features=4, hidden=4, train_steps=2)
    with pytest.raises(ValueError, match=r"input has 1; use a gray model such as denoise-gray"):
        restore(np.zeros((16, 16)), "denoise", rgb, sigma=25)


def test_an_operator_with_plain_tensor_attributes_is_measured_as_given_with_a_note():
    from rimkit.operators import adjoint_mismatch

    class Matrix(LinearOperator):
        def __init__(self, a: Tensor) -> None:
            super().__init__()
            self.a = a  # a plain attribute: .double() leaves it float32

        def forward(self, x):  # (B, 1, 4, 4) -> (B, 6)
            return x.flatten(1) @ self.a.T

        def adjoint(self, y):
            return (y @ self.a).reshape(-1, 1, 4, 4)

    op = Matrix(torch.randn(6, 16, generator=torch.Generator().manual_seed(0)))
    with pytest.warns(UserWarning, match=r"ran Matrix in torch\.float32, not float64"):
        assert adjoint_mismatch(op, torch.rand(2, 1, 4, 4)).max() < 1e-5


def test_rim_reconstructor_names_a_bad_sigma_before_any_note():
    from rimkit.reconstruct import RIMReconstructor

    rim = build_rim(features=4, hidden=4, train_steps=2)
    for sigma in ("25", None):
        with pytest.raises(ValueError, match="sigma must be a number or a tensor"):
            RIMReconstructor(rim)(torch.rand(1, 1, 8, 8), Identity(), sigma)


def test_compare_tells_its_own_estimate_without_a_scale_note(capsys):
    from rimkit.compare import compare

    image = np.clip(np.random.default_rng(0).normal(0.5, 0.002, (32, 32)), 0, 1)  # faint noise
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = compare(image, "denoise", ["tv", "cg-tikhonov"], sigma="auto")
    assert 0 < results[0].sigma < 1 and results[1].sigma == results[0].sigma


def test_restore_refuses_options_its_task_would_ignore():
    from rimkit.operators import SIE, LensingSetup
    from rimkit.pipeline import restore

    image, model = np.random.default_rng(0).random((16, 16)), build_rim(features=4, hidden=4)
    for options, message in (
        ({"kernel": "gaussian:2"}, "kernel applies to task='blur' only, not 'denoise'"),
        ({"boundary": "valid"}, "boundary applies to task='blur' only"),
        ({"scale": 4}, "scale applies to task='sr' only"),
        ({"scales": (2, 3)}, "scales applies to task='sr' only"),
        ({"lensing": LensingSetup(SIE(0.4))}, "lensing applies to task='lensing' only"),
        ({"maps": "lowres"}, "maps applies to task='mri' only"),
    ):
        with pytest.raises(ValueError, match=message):
            restore(image, "denoise", model, sigma=25, **options)
    with pytest.raises(ValueError, match="kernel applies to task='blur' only, not 'sr'"):
        restore(image, "sr", model, kernel="gaussian:2")


def test_restore_refuses_mri_kspace_with_its_coils_last():
    from rimkit.pipeline import restore

    kspace = np.ones((64, 64, 8), dtype=np.complex64)
    with pytest.raises(ValueError, match=r"\(64, 64, 8\), which looks like \(H, W, coils\)"):
        restore(kspace, "mri", build_rim(channels=2, features=4, hidden=4))


def test_wrong_masks_and_shapes_get_the_operators_message_with_a_task_start():
    from rimkit.operators import Inpainting, random_mask
    from rimkit.reconstruct import RIMReconstructor

    model, gen = build_rim(features=4, hidden=4), torch.Generator().manual_seed(0)
    run = RIMReconstructor(model)
    with pytest.raises(ValueError, match="y is 32x32 but the mask is 64x64"):
        run(torch.rand(1, 1, 32, 32), Inpainting(random_mask((1, 1, 64, 64), 0.5, gen)), 0.05)
    with pytest.raises(ValueError, match=r"mask of shape \(3, 1, 32, 32\) does not fit"):
        run(torch.rand(2, 1, 32, 32), Inpainting(random_mask((3, 1, 32, 32), 0.5, gen)), 0.05)
    with pytest.raises(ValueError, match=r"y\[None, None\]"):
        run(torch.rand(32, 32), Identity(), 0.05)


def test_an_operator_that_sets_state_before_module_init_is_told_to_call_super_first():
    class Stride(LinearOperator):
        def __init__(self, n: int) -> None:
            self.n = n

    with pytest.raises(AttributeError, match=r"sets 'n' before calling super\(\).__init__\(\)"):
        Stride(2)


def test_evaluate_names_a_single_protocol_or_method_given_for_a_list():
    from rimkit.evaluate import Method, evaluate

    method = Method("same", lambda case: [case.y])
    images = [("a", np.zeros((8, 8)))]
    with pytest.raises(ValueError, match=r"protocols is a list: give \[DenoiseProtocol\(...\)\]"):
        evaluate(images, DenoiseProtocol(25), [method])
    with pytest.raises(ValueError, match=r"methods is a list: give \[Method\(...\)\]"):
        evaluate(images, [DenoiseProtocol(25)], method)
