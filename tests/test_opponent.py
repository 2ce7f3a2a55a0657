"""The opponent-colour RIM: its colour transform, its likelihood gradient, gray weights, and
the luminance-guided variant."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from blobs import denoising, smooth_images
from rimkit.likelihood import GaussianLikelihood
from rimkit.models import RIM, RIMConfig, build_rim
from rimkit.models.opponent import (
    GuidedOpponentColorRIM,
    LuminanceChromaCell,
    OpponentColorRIM,
    OpponentLikelihood,
    SplitOpponentColorRIM,
    TaggedOpponentColorRIM,
    from_opponent,
    opponent_matrix,
    to_opponent,
)
from rimkit.models.utils import load_widened
from rimkit.operators import Identity, Inpainting, random_mask

SMALL = {"features": 6, "hidden": 8}


def _perturbed(rim: RIM, seed: int = 0) -> RIM:
    """Random weights in the zero-initialised output layer, so the RIM changes its input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in rim.cell.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return rim


def test_the_transform_maps_the_rgb_cube_into_itself_and_back():
    corners = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3))).T  # (3, 8)
    x = corners.reshape(1, 3, 2, 4)
    z = to_opponent(x)
    assert z.min() >= 0 and z.max() <= 1
    assert torch.allclose(from_opponent(z), x, atol=1e-6)
    gray = torch.full((1, 3, 1, 1), 0.3)
    assert torch.allclose(to_opponent(gray).flatten(), torch.tensor([0.3, 0.5, 0.5]))


def test_white_noise_stays_white_with_a_third_of_the_variance():
    m = opponent_matrix(torch.float64)
    assert torch.allclose(m @ m.T, torch.eye(3, dtype=torch.float64) / 3)


def test_the_gradient_is_the_chain_rule_for_any_rgb_likelihood():
    g = torch.Generator().manual_seed(0)
    x = smooth_images(2, 8, g, channels=3)
    op = Inpainting(random_mask(x.shape, 0.6, g))
    lik = GaussianLikelihood(op, op(x) + 0.05 * torch.randn(x.shape, generator=g), 0.05)
    z = (to_opponent(torch.rand(2, 3, 8, 8, generator=g))).reshape(6, 1, 8, 8)
    z.requires_grad_(True)
    seen = OpponentLikelihood(lik)
    seen.log_prob(z, 1e-3).sum().backward()
    assert torch.allclose(seen.grad(z.detach(), 1e-3), z.grad, rtol=1e-4, atol=1e-5)


def test_denoising_is_the_gray_rim_on_each_opponent_channel_at_sigma_over_root_three():
    gray = _perturbed(build_rim("restoration", 1, train_steps=3, noise_floor=0.01, **SMALL))
    colour = OpponentColorRIM.from_gray(gray)
    x = smooth_images(2, 16, torch.Generator().manual_seed(1), channels=3)
    lik, y = denoising(x, sigma=0.1)
    got = colour(lik, x0=y.clamp(0, 1))
    z = to_opponent(y).reshape(6, 1, 16, 16)
    z0 = to_opponent(y.clamp(0, 1)).reshape(6, 1, 16, 16)
    want = gray(GaussianLikelihood(Identity(), z, 0.1 / math.sqrt(3)), x0=z0)
    assert len(got) == 3 and got.final.shape == (2, 3, 16, 16)
    for a, b in zip(got.estimates, want.estimates, strict=True):
        assert torch.allclose(a, from_opponent(b.reshape(2, 3, 16, 16)), atol=1e-5)
    assert not torch.allclose(got.final, y.clamp(0, 1), atol=1e-3)


def test_from_gray_shares_the_weights_and_keeps_how_the_model_starts():
    gray = build_rim("restoration", 1, **SMALL)
    gray.start = "flat"
    colour = OpponentColorRIM.from_gray(gray)
    assert colour.start == "flat" and colour.cell is gray.cell
    assert colour.noise_floor is gray.noise_floor


def test_without_a_start_it_begins_at_flat_gray():
    colour = build_rim("restoration", 3, color="opponent", train_steps=1, **SMALL)
    lik, _ = denoising(torch.full((1, 3, 8, 8), 0.5), sigma=0.0)
    assert torch.allclose(colour(lik).final, torch.full((1, 3, 8, 8), 0.5), atol=1e-5)


def test_a_gray_models_weights_are_an_opponent_models_weights():
    gray = build_rim("restoration", 1, **SMALL)
    colour = RIMConfig(channels=3, color="opponent", **SMALL).build()
    assert isinstance(colour, OpponentColorRIM) and colour.channels == 3
    colour.load_state_dict(gray.state_dict())
    assert RIMConfig(channels=3, color="opponent").cell_channels == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": 1, "color": "opponent"}, "channels 3"),
        ({"channels": 3, "color": "opponent", "variant": "unrolled"}, "channels 3"),
        ({"channels": 3, "color": "lab"}, "unknown color 'lab'"),
    ],
)
def test_bad_colour_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_rim("restoration", **kwargs)


def test_wrong_inputs_are_named():
    colour = build_rim("restoration", 3, color="opponent", **SMALL)
    lik, y = denoising(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="3"):
        colour(lik, x0=y)
    with pytest.raises(ValueError, match="one-channel cell"):
        OpponentColorRIM(build_rim("restoration", 3, **SMALL).cell)
    with pytest.raises(ValueError, match="one-channel RIM"):
        OpponentColorRIM.from_gray(build_rim("restoration", 3, **SMALL))


def test_the_guide_is_each_images_luminance_estimate_for_all_three_channels():
    rim = build_rim("restoration", 3, color="opponent-guided", **SMALL)
    assert isinstance(rim, GuidedOpponentColorRIM) and rim.cell.in_channels == 3
    eta = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(6, 1, 2, 2)  # 2 images, folded
    guide = rim.guide(eta)
    assert guide.shape == (6, 1, 2, 2)
    for image in range(2):
        for channel in range(3):
            assert torch.equal(guide[3 * image + channel], eta[3 * image])
    gdn = build_rim("restoration", 3, color="opponent-guided", variant="gdn", **SMALL)
    assert gdn.cell.in_channels == 2
    assert RIMConfig(channels=3, color="opponent-guided").cell_channels == 1


@pytest.mark.parametrize(
    ("narrow", "wide", "new_input"),
    [
        ("opponent", "opponent-guided", 2),  # the luminance guide now steers the chroma
        ("opponent-guided", "opponent-tagged", 4),  # the second chroma channel now differs
    ],
)
def test_widened_weights_restore_exactly_what_the_narrower_model_did(narrow, wide, new_input):
    plain = _perturbed(build_rim("restoration", 3, color=narrow, train_steps=3, **SMALL))
    widened = build_rim("restoration", 3, color=wide, train_steps=3, **SMALL)
    assert load_widened(widened, plain.state_dict()) == ["cell.down.weight"]
    x = smooth_images(2, 16, torch.Generator().manual_seed(2), channels=3)
    lik, y = denoising(x, sigma=0.1)
    want, got = plain(lik, x0=y.clamp(0, 1)).final, widened(lik, x0=y.clamp(0, 1)).final
    assert torch.allclose(got, want, atol=1e-6)
    with torch.no_grad():
        widened.cell.down.weight[:, new_input].normal_()
    assert not torch.allclose(widened(lik, x0=y.clamp(0, 1)).final, want, atol=1e-4)


def test_the_tags_name_each_folded_channel_beside_the_luminance_guide():
    rim = build_rim("restoration", 3, color="opponent-tagged", **SMALL)
    assert isinstance(rim, TaggedOpponentColorRIM) and rim.cell.in_channels == 5
    eta = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(6, 1, 2, 2)  # 2 images, folded
    guide = rim.guide(eta)
    assert guide.shape == (6, 3, 2, 2)
    for image in range(2):
        for channel, tags in enumerate([(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]):
            assert torch.equal(guide[3 * image + channel, :1], eta[3 * image])
            for k, tag in enumerate(tags):
                assert torch.equal(guide[3 * image + channel, 1 + k], torch.full((2, 2), tag))
    assert RIMConfig(channels=3, color="opponent-tagged").cell_channels == 1


def test_weights_that_do_not_widen_are_named():
    guided = build_rim("restoration", 3, color="opponent-guided", **SMALL)
    with pytest.raises(ValueError, match=r"cell.down.weight is \(6, 6, 3, 3\) there"):
        load_widened(guided, build_rim("restoration", 3, **SMALL).state_dict())
    with pytest.raises(ValueError, match="missing"):
        load_widened(guided, {"noise_floor.raw": torch.zeros(())})
    with pytest.raises(ValueError, match=r"optim\.init"):
        GuidedOpponentColorRIM.from_gray(build_rim("restoration", 1, **SMALL))
    with pytest.raises(ValueError, match="guide channel"):
        GuidedOpponentColorRIM(build_rim("restoration", 1, **SMALL).cell)


def test_split_cells_restore_the_luminance_and_the_chroma_each_with_its_own_weights():
    guided = _perturbed(
        build_rim("restoration", 3, color="opponent-guided", train_steps=3, **SMALL)
    )
    split = build_rim("restoration", 3, color="opponent-split", train_steps=3, **SMALL)
    assert isinstance(split, SplitOpponentColorRIM)
    assert isinstance(split.cell, LuminanceChromaCell) and split.cell.in_channels == 3
    split.load_state_dict(SplitOpponentColorRIM.state_from_one_cell(guided.state_dict()))
    x = smooth_images(2, 16, torch.Generator().manual_seed(3), channels=3)
    lik, y = denoising(x, sigma=0.1)
    want = guided(lik, x0=y.clamp(0, 1)).final
    assert torch.allclose(split(lik, x0=y.clamp(0, 1)).final, want, atol=1e-6)

    inputs = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(4))  # 2 images
    before, _ = split.cell(inputs, split.cell.initial_state(inputs))
    with torch.no_grad():
        split.cell.chroma.out.bias.add_(1.0)
    after, _ = split.cell(inputs, split.cell.initial_state(inputs))
    luminance = torch.tensor([0, 3])
    assert torch.equal(after[luminance], before[luminance])
    assert torch.allclose(after[[1, 2, 4, 5]], before[[1, 2, 4, 5]] + 1.0, atol=1e-6)


def test_a_split_cell_refuses_a_batch_that_is_not_folded_opponent_images():
    cell = LuminanceChromaCell(build_rim("restoration", 1, **SMALL).cell)
    with pytest.raises(ValueError, match=r"folded opponent images \(3B, C, H, W\)"):
        cell.initial_state(torch.zeros(4, 2, 8, 8))
    with pytest.raises(ValueError, match="one channel at a time"):
        LuminanceChromaCell(build_rim("restoration", 3, **SMALL).cell)
