"""Invariants of the RIM, its cells, links and ablations (tiny widths, 16x16 images)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from blobs import denoising, smooth_images
from rimkit.likelihood import GaussianLikelihood
from rimkit.models import (
    CELLS,
    LINKS,
    RIM,
    VARIANTS,
    ConvGRU,
    RestorationCell,
    RIMConfig,
    Trajectory,
    build_ffn,
    build_gdn,
    build_rim,
    count_parameters,
    trajectory_loss,
)
from rimkit.operators import (
    ComplexAsChannels,
    Identity,
    Inpainting,
    channels_to_complex,
    complex_to_channels,
    random_mask,
    random_projection,
)

SMALL = {"features": 6, "hidden": 8}


def perturb_output(rim: RIM, scale: float = 0.05, seed: int = 0) -> RIM:
    """Give the zero-initialised output layer random weights so the RIM is not trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in rim.cell.out.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return rim


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_zero_initialised_output_leaves_x0_unchanged(cell: str, variant: str, image: Tensor):
    rim = build_rim(cell, 1, variant=variant, **SMALL)
    likelihood, y = denoising(image)
    trajectory = rim(likelihood, x0=y.clamp(0.05, 0.95), steps=5)
    assert len(trajectory) == 5
    for estimate in trajectory.estimates:
        torch.testing.assert_close(estimate, y.clamp(0.05, 0.95), rtol=0, atol=1e-6)


def test_zero_initialised_identity_link_is_exact(image: Tensor):
    rim = build_rim("restoration", 1, link="identity", **SMALL)
    likelihood, y = denoising(image)
    assert all(torch.equal(e, y) for e in rim(likelihood, x0=y, steps=3).estimates)


@pytest.mark.parametrize("cell", list(CELLS))
def test_first_steps_of_a_longer_run_equal_a_shorter_run(cell: str, image: Tensor):
    rim = perturb_output(build_rim(cell, 1, train_steps=3, **SMALL))
    likelihood, y = denoising(image)
    short = rim(likelihood, x0=y)
    long = rim(likelihood, x0=y, steps=7)
    assert len(short) == 3 and len(long) == 7
    assert not torch.allclose(short.final, y, atol=1e-3)
    for a, b in zip(short.estimates, long.estimates[:3], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_same_weights_run_on_any_likelihood(image: Tensor):
    rim = perturb_output(build_rim("restoration", 1, train_steps=4, **SMALL))
    before = {k: v.clone() for k, v in rim.state_dict().items()}
    g = torch.Generator().manual_seed(3)
    inpaint = Inpainting(random_mask(tuple(image.shape), 0.5, g))
    project = random_projection("gaussian", (1, 16, 16), ratio=0.3, batch=2, generator=g)
    fourier = random_projection("fourier", (1, 16, 16), ratio=0.3, batch=2, generator=g)
    finals = []
    for op in (Identity(), inpaint, project, fourier):
        likelihood = GaussianLikelihood(op, op(image), sigma=0.05)
        with torch.no_grad():
            trajectory = rim(likelihood, x0=op.adjoint(op(image)), steps=6)
        assert trajectory.final.shape == image.shape
        assert torch.isfinite(trajectory.stacked()).all()
        finals.append(trajectory.final)
    for k, v in rim.state_dict().items():
        assert torch.equal(v, before[k]), k
    for i in range(len(finals)):
        for j in range(i):
            assert not torch.allclose(finals[i], finals[j])


@pytest.mark.parametrize(
    ("cell", "variant"),
    [(c, "rim") for c in CELLS] + [("restoration", "gdn"), ("mri", "ffn")],
)
def test_gradients_reach_every_parameter(cell: str, variant: str, image: Tensor):
    rim = perturb_output(build_rim(cell, 1, variant=variant, train_steps=3, **SMALL))
    likelihood, y = denoising(image)
    trajectory_loss(rim(likelihood, x0=y), image).backward()
    names = [name for name, _ in rim.named_parameters()]
    assert "noise_floor.raw" in names
    for name, p in rim.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def train(rim: RIM, iters: int, x0_noisy: bool, seed: int = 0) -> tuple[float, float]:
    """Adam on fresh smooth images each step; the MSE of x_T on a fixed batch before/after."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x_val = smooth_images(8, 16, g)
    lik_val, y_val = denoising(x_val, seed=seed + 1)

    def val_loss() -> float:
        with torch.no_grad():
            out = rim(lik_val, x0=y_val if x0_noisy else None, shape=tuple(x_val.shape))
            return trajectory_loss(out, x_val, weights="final").item()

    initial = val_loss()
    opt = torch.optim.Adam(rim.parameters(), lr=1e-2)
    for _ in range(iters):
        x = smooth_images(8, 16, g)
        y = x + 0.1 * torch.randn(x.shape, generator=g)
        likelihood = GaussianLikelihood(Identity(), y, sigma=0.1)
        out = rim(likelihood, x0=y if x0_noisy else None, shape=tuple(x.shape))
        loss = trajectory_loss(out, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return initial, val_loss()


@pytest.mark.parametrize("build", [build_rim, build_gdn, build_ffn])
def test_short_training_lowers_the_loss(build):
    rim = build("restoration", 1, train_steps=4, features=8, hidden=8)
    initial, final = train(rim, iters=40, x0_noisy=False)
    assert final < 0.7 * initial, (initial, final)


def test_short_training_denoises_beyond_the_noisy_input():
    rim = build_rim("mri", 1, link="sigmoid", train_steps=4, features=8, hidden=8)
    initial, final = train(rim, iters=40, x0_noisy=True)
    assert initial == pytest.approx(0.01, rel=0.1)  # starts at the noisy input, MSE ~ sigma^2
    assert final < 0.7 * initial, (initial, final)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("size", [(17, 23), (1, 5), (16, 16)])
def test_any_image_size(cell: str, size: tuple[int, int]):
    rim = perturb_output(build_rim(cell, 1, **SMALL))
    x = torch.rand(2, 1, *size)
    trajectory = rim(GaussianLikelihood(Identity(), x, 0.1), x0=x, steps=2)
    assert trajectory.final.shape == x.shape and trajectory.final.dtype == x.dtype


def test_restoration_cell_trained_size_independent_of_parity():
    cell = RestorationCell(2, 1, features=4, hidden=4, pad_mode="reflect")
    inputs = torch.rand(1, 2, 33, 21)
    update, (state,) = cell(inputs, cell.initial_state(inputs))
    assert update.shape == (1, 1, 33, 21) and state.shape == (1, 4, 17, 11)


def test_rgb():
    rim = perturb_output(build_rim("super_resolution", 3, **SMALL))
    x = smooth_images(1, 16, torch.Generator().manual_seed(0), channels=3)
    trajectory = rim(GaussianLikelihood(Identity(), x, 0.1), x0=x, steps=2)
    assert rim.cell.in_channels == 6
    assert trajectory.final.shape == (1, 3, 16, 16)


def test_complex_as_channels():
    g = torch.Generator().manual_seed(0)
    z = torch.complex(torch.randn(2, 1, 9, 12, generator=g), torch.randn(2, 1, 9, 12, generator=g))
    op = ComplexAsChannels(Identity())
    likelihood = GaussianLikelihood(op, z, sigma=0.1)
    rim = perturb_output(build_rim("mri", 2, link="identity", **SMALL))
    x0 = complex_to_channels(z)
    trajectory = rim(likelihood, x0=x0, steps=3)
    assert trajectory.final.shape == (2, 2, 9, 12) and trajectory.final.dtype == torch.float32
    assert channels_to_complex(trajectory.final).shape == z.shape
    zeros_start = rim(likelihood, shape=(2, 2, 9, 12), steps=2)
    assert zeros_start.final.shape == (2, 2, 9, 12)


def test_float64(image: Tensor):
    rim = perturb_output(build_rim("restoration", 1, **SMALL)).double()
    likelihood, y = denoising(image.double())
    trajectory = rim(likelihood, x0=y, steps=3)
    assert trajectory.final.dtype == torch.float64
    trajectory_loss(trajectory, image.double()).backward()
    assert rim.noise_floor.raw.grad.dtype == torch.float64


def test_shape_from_likelihood_when_no_x0(image: Tensor):
    rim = build_rim("restoration", 1, **SMALL)
    likelihood, _ = denoising(image)
    trajectory = rim(likelihood, steps=2)
    torch.testing.assert_close(trajectory.final, torch.full_like(image, 0.5))


@pytest.mark.parametrize("cell", list(CELLS))
def test_checkpointing_gives_same_outputs_and_gradients(cell: str, image: Tensor):
    rim = perturb_output(build_rim(cell, 1, train_steps=3, **SMALL))
    likelihood, y = denoising(image)
    results = []
    for flag in (False, True):
        rim.checkpoint = flag
        rim.zero_grad()
        trajectory = rim(likelihood, x0=y)
        trajectory_loss(trajectory, image).backward()
        grads = {n: p.grad.clone() for n, p in rim.named_parameters()}
        results.append((trajectory.stacked().detach(), grads))
    (out_a, grads_a), (out_b, grads_b) = results
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=0)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", list(LINKS))
def test_links_invert_and_chain_rule_matches_autograd(name: str):
    link = LINKS[name]()
    x = torch.linspace(0.05, 0.95, 11, dtype=torch.float64)
    torch.testing.assert_close(link(link.inverse(x)), x)
    eta = torch.linspace(-3, 3, 13, dtype=torch.float64, requires_grad=True)
    target = torch.rand(13, dtype=torch.float64)
    log_p = -0.5 * ((link(eta) - target) ** 2).sum()
    (expected,) = torch.autograd.grad(log_p, eta)
    grad_x = target - link(eta).detach()
    torch.testing.assert_close(link.chain(grad_x, eta.detach()), expected)


def test_sigmoid_inverse_is_clamped():
    eta = LINKS["sigmoid"]().inverse(torch.tensor([0.0, 1.0]))
    assert torch.isfinite(eta).all()


def test_convgru_recurrent_weights_are_orthogonal():
    gru = ConvGRU(3, 8, kernel_size=1)
    for w in (*gru.gate_conv.weight.chunk(2, dim=0), gru.candidate_conv.weight):
        m = w.reshape(8, 8)
        torch.testing.assert_close(m @ m.T, torch.eye(8), atol=1e-5, rtol=0)


def test_paper_denoiser_parameter_count():
    rim = RIM.paper_denoiser(channels=1)
    assert count_parameters(rim) == 2_361_922  # paper: "about 2.36 M"
    assert "parameters=2,361,922" in repr(rim)
    assert rim.train_steps == 20


def test_config_round_trip_and_unknown_keys():
    cfg = RIMConfig(cell="super_resolution", channels=3, variant="ffn", **SMALL)
    rim = RIMConfig.from_dict(cfg.to_dict()).build()
    assert rim.channels == 3 and rim.cell.memory.stateful is False
    with pytest.raises(ValueError, match="unknown RIM config keys"):
        RIMConfig.from_dict({"cell": "restoration", "stesp": 3})
    with pytest.raises(ValueError, match="unknown cell"):
        build_rim("unet")
    with pytest.raises(ValueError, match="unknown link"):
        build_rim(link="tanh")


@pytest.mark.parametrize(
    ("cell", "channels", "link"),
    [("restoration", 1, "sigmoid"), ("super_resolution", 1, "sigmoid"), ("mri", 2, "identity")],
)
def test_each_cell_gets_its_default_link(cell: str, channels: int, link: str):
    cfg = RIMConfig(cell=cell, channels=channels, **SMALL)
    assert cfg.link == link
    assert type(cfg.build().link).__name__.lower().startswith(link)
    assert type(build_rim(cell, channels, **SMALL).link) is type(cfg.build().link)
    assert RIMConfig(cell=cell, channels=channels, link="softplus", **SMALL).link == "softplus"


def test_trajectory_is_a_plain_dataclass(image: Tensor):
    rim = build_rim("restoration", 1, **SMALL)
    likelihood, y = denoising(image)
    trajectory = rim(likelihood, x0=y, steps=2)
    assert isinstance(trajectory, Trajectory)
    assert trajectory.final is trajectory.estimates[-1]
    assert trajectory.stacked().shape == (2, *image.shape)


# --- bad input -----------------------------------------------------------------------------


class _ScriptedLikelihood:
    """A likelihood whose gradient turns NaN at a given step, or has a given shape."""

    def __init__(self, nan_at: int | None = None, shape: tuple[int, ...] | None = None):
        self.nan_at, self.shape, self.calls = nan_at, shape, 0

    def grad(self, x: Tensor, eps: Tensor | float = 0.0) -> Tensor:
        self.calls += 1
        g = torch.zeros(self.shape or x.shape, dtype=x.dtype)
        if self.calls == self.nan_at:
            g[..., 0, 0] = float("nan")
        return g

    def log_prob(self, x: Tensor, eps: Tensor | float = 0.0) -> Tensor:
        return x.new_zeros(x.shape[0])


def test_nan_gradient_raises_naming_the_step(image: Tensor):
    rim = build_rim("restoration", 1, **SMALL)
    likelihood = _ScriptedLikelihood(nan_at=3)
    with pytest.raises(ValueError, match="step 3 of 5"):
        rim(likelihood, x0=image, steps=5)
    assert likelihood.calls == 3  # stopped at once on CPU


def test_finite_check_can_be_switched_off(image: Tensor):
    rim = build_rim("restoration", 1, check_finite=False, **SMALL)
    rim = perturb_output(rim)
    trajectory = rim(_ScriptedLikelihood(nan_at=1), x0=image, steps=2)
    assert torch.isnan(trajectory.final).any()


def test_gradient_of_wrong_shape_raises(image: Tensor):
    rim = build_rim("restoration", 1, **SMALL)
    with pytest.raises(ValueError, match=r"gradient at step 1 has shape \(2, 1, 8, 8\)"):
        rim(_ScriptedLikelihood(shape=(2, 1, 8, 8)), x0=image)
    measurement = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="do not belong together"):
        rim(GaussianLikelihood(Identity(), measurement, 0.1), x0=image)


@pytest.mark.parametrize("steps", [0, -1, 2.5, True])
def test_steps_below_one_raise(steps, image: Tensor):
    rim = build_rim("restoration", 1, **SMALL)
    likelihood, y = denoising(image)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        rim(likelihood, x0=y, steps=steps)
    with pytest.raises(ValueError, match="train_steps must be an int >= 1"):
        build_rim(train_steps=0)


def test_wrong_channel_count_raises(image: Tensor):
    rim = build_rim("restoration", 1, **SMALL)
    rgb = image.expand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="3 channels; this model was built for 1"):
        rim(GaussianLikelihood(Identity(), rgb, 0.1), x0=rgb)
    with pytest.raises(ValueError, match="3 channels; this model was built for 1"):
        rim(GaussianLikelihood(Identity(), rgb, 0.1), shape=(2, 3, 16, 16))
    with pytest.raises(ValueError, match="build the cell with in_channels=2"):
        RIM(RestorationCell(3, 1, **SMALL))
    cell = RestorationCell(2, 1, **SMALL)
    with pytest.raises(ValueError, match=r"built for inputs \(B, 2, H, W\)"):
        cell(torch.rand(1, 4, 8, 8), cell.initial_state(torch.rand(1, 2, 8, 8)))


def test_other_bad_inputs_raise(image: Tensor):
    rim = build_rim("restoration", 1, **SMALL)
    likelihood, y = denoising(image)
    with pytest.raises(ValueError, match="takes a likelihood"):
        rim(Identity(), x0=y)
    with pytest.raises(ValueError, match=r"x0 is complex.*ComplexAsChannels.*or RealImages"):
        rim(likelihood, x0=torch.complex(y, y))
    with pytest.raises(ValueError, match=r"model\.to"):
        rim(likelihood, x0=y.double())
    projection = random_projection("gaussian", (1, 16, 16), 0.5)
    with pytest.raises(ValueError, match="give x0"):
        rim(GaussianLikelihood(projection, projection(image[:1]), 0.1))


def test_deferred_finite_check_names_the_step(image: Tensor, monkeypatch: pytest.MonkeyPatch):
    """The accelerator path: one flag per step on the device, checked once after the loop."""
    monkeypatch.setattr("rimkit.models.rim._syncs_cheaply", lambda device: False)
    rim = build_rim("restoration", 1, **SMALL)
    likelihood = _ScriptedLikelihood(nan_at=2)
    with pytest.raises(ValueError, match="step 2 of 5"):
        rim(likelihood, x0=image, steps=5)
    assert likelihood.calls == 5
    assert len(rim(_ScriptedLikelihood(), x0=image, steps=3)) == 3


def _saved_numel(rim: RIM, likelihood: GaussianLikelihood, x0: Tensor) -> int:
    total = 0

    def pack(t: Tensor) -> Tensor:
        nonlocal total
        total += t.numel()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        trajectory_loss(rim(likelihood, x0=x0), x0).backward()
    return total


def test_checkpointing_saves_less_for_backward(image: Tensor):
    rim = perturb_output(build_rim("restoration", 1, train_steps=6, features=8, hidden=32))
    likelihood, y = denoising(image)
    plain = _saved_numel(rim, likelihood, y)
    rim.checkpoint = True
    assert _saved_numel(rim, likelihood, y) < 0.5 * plain


@pytest.mark.parametrize("cell", ["restoration", "super_resolution", "mri"])
def test_cells_compute_channels_last_and_match_the_plain_layout(cell):
    from rimkit.models.cells import CELLS
    from rimkit.models.utils import cell_layout

    torch.manual_seed(0)
    module = CELLS[cell](6, 3, features=8, hidden=8)
    torch.nn.init.normal_(module.out.weight, std=0.1)  # it starts at zero
    inputs = torch.rand(2, 6, 11, 14, requires_grad=True)
    results = {}
    for layout in (torch.channels_last, torch.contiguous_format):
        with cell_layout(layout):
            state = module.initial_state(inputs)
            update, state = module(inputs, state)
            update, state = module(inputs, state)  # a second step, from a computed state
            (grad,) = torch.autograd.grad(update.square().sum(), inputs)
        assert update.is_contiguous()  # the estimate keeps the usual layout
        assert state[0].is_contiguous(memory_format=layout)
        results[layout] = (update, grad)
    (u1, g1), (u2, g2) = results.values()
    torch.testing.assert_close(u1, u2)
    torch.testing.assert_close(g1, g2)


def test_gru_first_step_skips_the_recurrent_convs_with_the_same_result():
    from rimkit.models.convgru import ConvGRU

    torch.manual_seed(0)
    gru = ConvGRU(4, 6)
    x = torch.rand(2, 4, 9, 7)
    zero = gru.initial_state(x)
    calls = []
    gru.gate_conv.register_forward_hook(lambda *a: calls.append("gate"))
    fast = gru(x, zero)
    assert calls == []  # the zero first state: no convolution of the state
    general = gru(x, zero.clone().requires_grad_())  # a state in autograd takes the full path
    assert calls == ["gate"]
    # equal up to the last bit: on some CPUs (AVX512) sigmoid / tanh of a strided chunk and of a
    # fresh tensor take different vector kernels
    torch.testing.assert_close(fast, general, atol=1e-7, rtol=1e-6)
    assert torch.equal(gru(x, None), fast)
    with torch.no_grad():  # inference computes in place; the same skip
        torch.testing.assert_close(gru(x, zero), fast.detach(), atol=1e-6, rtol=0)
    assert calls == ["gate"]


def test_tanh_in_place_matches_torch_tanh_and_keeps_autograd_out_of_place():
    from rimkit.models.utils import tanh, tanh_

    x = torch.cat([torch.linspace(-60, 60, 1001), torch.tensor([0.0, -0.0, 1e-8])])
    out = tanh_(x.clone())
    torch.testing.assert_close(out, torch.tanh(x), atol=1e-6, rtol=0)
    assert out.abs().max() <= 1
    leaf = x.clone().requires_grad_()
    (tanh(leaf) * 2).sum().backward()  # in autograd: torch.tanh, not the in-place form
    torch.testing.assert_close(leaf.grad, 2 * (1 - torch.tanh(x) ** 2))


@pytest.mark.parametrize("zero_first", [True, False])
def test_gru_inference_in_place_matches_the_autograd_step(zero_first: bool):
    torch.manual_seed(0)
    gru = ConvGRU(4, 6)
    x = torch.rand(2, 4, 9, 7).contiguous(memory_format=torch.channels_last)
    h = gru.initial_state(x) if zero_first else torch.rand_like(gru.initial_state(x)) - 0.5
    h_before, x_before = h.clone(), x.clone()
    reference = gru(x, h.clone().requires_grad_())  # the out-of-place path
    with torch.no_grad():
        fast = gru(x, h)
    torch.testing.assert_close(fast, reference.detach(), atol=1e-6, rtol=0)
    assert torch.equal(h, h_before) and torch.equal(x, x_before)  # inputs untouched
    assert fast.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("cell", list(CELLS))
def test_rim_inference_matches_its_training_forward(cell: str, variant: str, image: Tensor):
    torch.manual_seed(0)
    rim = perturb_output(build_rim(cell, 1, variant=variant, train_steps=4, **SMALL))
    likelihood, _ = denoising(image)
    trained = rim(likelihood).stacked()  # grad enabled: the autograd path
    with torch.no_grad():
        inferred = rim(likelihood).stacked()
    assert trained.requires_grad
    torch.testing.assert_close(inferred, trained.detach(), atol=1e-5, rtol=0)


def test_the_gru_state_keeps_its_dtype_under_autocast_with_and_without_autograd():
    from rimkit.models.convgru import ConvGRU

    torch.manual_seed(0)
    cell = ConvGRU(2, 4)
    x, h = torch.rand(1, 2, 8, 8), torch.rand(1, 4, 8, 8)  # a state past the first step
    with torch.autocast("cpu", dtype=torch.bfloat16):
        trained = cell(x.requires_grad_(), h)
        with torch.no_grad():
            validated = cell(x.detach(), h)
    assert trained.dtype == validated.dtype == torch.float32  # as in training, so in validation
    torch.testing.assert_close(validated, trained.detach(), atol=1e-2, rtol=0)
