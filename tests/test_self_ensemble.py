"""Geometric self-ensemble: transforms, operators that commute with them, and the averaged RIM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rimkit.cli import main
from rimkit.models import RIMConfig, Trajectory
from rimkit.operators import BicubicDownsample, Blur, Identity, Inpainting, gaussian_kernel
from rimkit.pipeline import restore
from rimkit.reconstruct import RIMReconstructor
from rimkit.self_ensemble import (
    SIZES,
    SelfEnsemble,
    check_size,
    inverse,
    transform,
    transform_operator,
)
from rimkit.train.checkpoint import export_weights

CONFIG = {"features": 4, "hidden": 4, "train_steps": 3}


def random_rim(channels: int = 1) -> RIMReconstructor:
    torch.manual_seed(0)
    model = RIMConfig(channels=channels, **CONFIG).build().double().eval()
    for p in model.parameters():  # large random weights: the output depends on the orientation
        p.data.normal_(0, 0.3)
    return RIMReconstructor(model)


def test_transforms_are_the_eight_distinct_symmetries_and_invert():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    images = [transform(x, k) for k in range(8)]
    assert len({tuple(im.flatten().tolist()) for im in images}) == 8
    assert [tuple(im.shape[-2:]) for im in images] == [(3, 4)] * 4 + [(4, 3)] * 4
    for k in range(8):
        torch.testing.assert_close(inverse(transform(x, k), k), x)


@pytest.mark.parametrize("k", range(8))
@pytest.mark.parametrize(
    "operator",
    [
        Identity(),
        Inpainting(torch.rand(1, 1, 12, 18, generator=torch.Generator().manual_seed(1)) > 0.5),
        BicubicDownsample(2),
        BicubicDownsample(3, in_size=(12, 18)),
    ],
    ids=["identity", "inpaint", "sr2", "sr3-sized"],
)
def test_transformed_operators_commute_with_their_transform(operator, k):
    x = torch.rand(2, 1, 12, 18, dtype=torch.float64)
    moved = transform_operator(operator, k)
    torch.testing.assert_close(moved(transform(x, k)), transform(operator(x), k))


@pytest.mark.parametrize(
    ("operator", "message"),
    [
        (Blur(gaussian_kernel(1.0)), "not for Blur"),
        (BicubicDownsample(2, in_size=(11, 12)), "multiple of the scale"),
    ],
)
def test_operators_without_the_symmetry_are_refused(operator, message):
    with pytest.raises(ValueError, match=message):
        transform_operator(operator, 1)


@pytest.mark.parametrize("size", [0, 3, 16, True, "8", 2.0])
def test_sizes_are_checked(size):
    with pytest.raises(ValueError, match="one of"):
        check_size(size)


def test_eight_transforms_make_any_rim_equivariant():
    rim = random_rim()
    y = torch.rand(1, 1, 10, 14, dtype=torch.float64)
    plain = rim(y, Identity(), 0.1).final
    moved = rim(transform(y, 5), Identity(), 0.1).final
    assert (inverse(moved, 5) - plain).abs().max() > 1e-3  # the RIM alone is not
    ensemble = SelfEnsemble(rim, 8)
    out = ensemble(y, Identity(), 0.1)
    assert len(out) == 3
    for k in range(8):
        torch.testing.assert_close(
            ensemble(transform(y, k), Identity(), 0.1).final, transform(out.final, k)
        )
    mean = sum(inverse(rim(transform(y, k), Identity(), 0.1).final, k) for k in range(8)) / 8
    torch.testing.assert_close(out.final, mean)


def test_inpainting_ensemble_moves_the_mask_with_the_image():
    rim = random_rim()
    generator = torch.Generator().manual_seed(2)
    mask = (torch.rand(1, 1, 10, 14, generator=generator) > 0.4).double()
    y = torch.rand(1, 1, 10, 14, dtype=torch.float64, generator=generator) * mask
    out = SelfEnsemble(rim, 4)(y, Inpainting(mask), 0.05).final
    flipped = SelfEnsemble(rim, 4)(y.flip(-1), Inpainting(mask.flip(-1)), 0.05).final
    torch.testing.assert_close(flipped, out.flip(-1))


def test_a_given_start_is_moved_too():
    seen = []

    def method(y, operator, sigma, *, x0=None):
        seen.append(x0)
        return Trajectory([x0])

    x0 = torch.arange(6.0).reshape(1, 1, 2, 3)
    out = SelfEnsemble(method, 8)(torch.zeros(1, 1, 2, 3), Identity(), 0.1, x0=x0)
    assert [tuple(s.shape[-2:]) for s in seen] == [(2, 3)] * 4 + [(3, 2)] * 4
    torch.testing.assert_close(out.final, x0)


def test_restore_takes_an_ensemble_for_denoising_and_refuses_it_for_blur():
    rim = random_rim()
    image = np.random.default_rng(0).random((9, 11))
    one = restore(image, "denoise", rim.model, sigma=10).image
    four = restore(image, "denoise", rim.model, sigma=10, ensemble=4).image
    flipped = restore(image[:, ::-1], "denoise", rim.model, sigma=10, ensemble=4).image
    assert np.abs(four - one).max() > 1e-4
    np.testing.assert_allclose(flipped, four[:, ::-1], atol=1e-6)
    with pytest.raises(ValueError, match="blur has none"):
        restore(image, "blur", rim.model, sigma=1, ensemble=2)


def test_rgb_model_restores_an_averaged_colour_image():
    rim = random_rim(channels=3)
    image = np.random.default_rng(1).random((8, 10, 3))
    out = restore(image, "denoise", rim.model, sigma=10, ensemble=2).image
    mirrored = restore(image[:, ::-1], "denoise", rim.model, sigma=10, ensemble=2).image
    assert out.shape == (8, 10, 3)
    np.testing.assert_allclose(mirrored, out[:, ::-1], atol=1e-6)


def test_cli_reconstruct_ensemble(tmp_path, capsys):
    model = tmp_path / "m.safetensors"
    config = {"config": {"model": RIMConfig(channels=1, **CONFIG).to_dict()}}
    export_weights(model, random_rim().model.float(), config)
    Image.fromarray((np.random.default_rng(4).random((12, 10)) * 255).astype(np.uint8)).save(
        tmp_path / "noisy.png"
    )
    args = ["reconstruct", str(tmp_path / "noisy.png"), "--task", "denoise", "--sigma", "25"]
    args += ["--model", str(model)]
    assert main([*args, str(tmp_path / "a.png"), "--ensemble", "8"]) == 0
    assert "mean of 8 flips/rotations" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        main([*args, str(tmp_path / "b.png"), "--ensemble", "3"])
    assert stop.value.code == 2
    assert "invalid choice: 3" in capsys.readouterr().err
    assert not (tmp_path / "b.png").exists()
    assert SIZES == (1, 2, 4, 8)
