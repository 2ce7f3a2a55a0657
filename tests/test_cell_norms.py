"""The restoration cell's ``norm`` option: batch and per-sample layer normalisation."""

from __future__ import annotations

import pytest
import torch

from rimkit.likelihood import GaussianLikelihood
from rimkit.models import NORMS, RestorationCell, RIMConfig, build_rim
from rimkit.operators import Identity
from rimkit.zoo import load_model, save_model


def _cell(norm: str, seed: int = 0) -> RestorationCell:
    torch.manual_seed(seed)
    cell = RestorationCell(2, 1, features=6, hidden=8, norm=norm)
    with torch.no_grad():
        cell.out.weight.normal_(0, 0.1)  # the zero-initialised output layer made non-trivial
        cell.down.bias.zero_()  # so that conv(c x) = c conv(x)
    return cell


def _update(cell: RestorationCell, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return cell(inputs, cell.initial_state(inputs))[0]


def test_layer_norm_makes_the_cell_blind_to_the_scale_of_its_inputs():
    inputs = torch.randn(2, 2, 12, 10)
    layer, plain = _cell("layer"), _cell("none")
    torch.testing.assert_close(_update(layer, 40 * inputs), _update(layer, inputs))
    assert not torch.allclose(_update(plain, 40 * inputs), _update(plain, inputs), atol=1e-3)


def test_layer_norm_treats_each_sample_alone():
    inputs = torch.randn(3, 2, 8, 8)
    cell = _cell("layer")
    torch.testing.assert_close(_update(cell, inputs)[1:2], _update(cell, inputs[1:2]))


def test_batch_norm_learns_running_statistics_and_uses_them_in_eval():
    inputs = 5 + 3 * torch.randn(4, 2, 8, 8)
    cell = _cell("batch")
    cell.train()
    _update(cell, inputs)
    assert cell.down_norm.running_mean.abs().sum() > 0
    trained_alone = _update(cell, inputs[:1])
    trained_in_batch = _update(cell, inputs)[:1]
    assert not torch.allclose(trained_alone, trained_in_batch, atol=1e-4)  # batch statistics
    cell.eval()
    torch.testing.assert_close(_update(cell, inputs[:1]), _update(cell, inputs)[:1])


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_a_normalised_rim_round_trips_through_save_and_load(norm: str, tmp_path):
    rim = build_rim(features=6, hidden=8, train_steps=3, norm=norm)
    x = torch.rand(2, 1, 16, 16)
    likelihood = GaussianLikelihood(Identity(), x, 0.1)
    with torch.no_grad():
        rim.cell.out.weight.normal_(0, 0.1)
        rim(likelihood, x0=x)  # in training mode: moves batch norm's running statistics
    rim.eval()
    path = save_model(tmp_path / "m.safetensors", rim, [{"name": "denoise", "sigma": [0, 50]}])
    loaded = load_model(path)
    assert loaded.config["model"]["norm"] == norm
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.model(likelihood, x0=x).final, rim(likelihood, x0=x).final
        )


def test_norm_is_checked_and_kept_to_the_restoration_cell():
    assert type(RIMConfig.from_dict({"norm": "layer"}).build().cell.up_norm).__name__ == (
        "GroupNorm"
    )
    assert NORMS == ("none", "batch", "layer")
    with pytest.raises(ValueError, match="norm must be one of none, batch, layer"):
        build_rim(features=4, hidden=4, norm="instance")
    with pytest.raises(ValueError, match="restoration cell"):
        build_rim("mri", 2, features=4, hidden=4, norm="layer")
    with pytest.raises(ValueError, match="restoration cell"):
        build_rim(variant="unrolled", features=4, hidden=2, norm="batch")
