"""MRI end to end: volumes as training data, the MRI protocol, `rimkit eval --task mri`, tuning."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from rimkit.cli import main
from rimkit.data.volumes import is_volume_file, read_volume, volume_planes, volume_slices
from rimkit.evaluate import runner
from rimkit.evaluate.protocols import MRIProtocol
from rimkit.models import RIMConfig
from rimkit.operators import channels_to_complex
from rimkit.solvers.tuning import Setting, grid_search
from rimkit.train import ExperimentConfig, train
from rimkit.train.checkpoint import export_weights
from rimkit.train.data import load_patches


def _head(shape=(20, 24, 18), seed=0) -> np.ndarray:
    """A uint16 'head': a smooth ellipsoid of tissue with texture in an empty field of view."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    inside = sum((g / 0.8) ** 2 for g in grids) < 1
    texture = 0.6 + 0.3 * np.sin(6 * grids[0]) * np.cos(5 * grids[1]) + 0.05 * rng.random(shape)
    return np.round(inside * texture * 4000).astype(np.uint16)


@pytest.fixture
def volume(tmp_path):
    path = tmp_path / "head.npz"
    np.savez(path, volume=_head()[..., None])  # a trailing axis of 1, as dipy's volumes
    return path


def test_volume_slices_are_8_bit_planes_of_the_scaled_volume_without_empty_ends(volume):
    head = _head().astype(float) / _head().max()
    planes = volume_planes(volume, axes=(0,), min_fill=0.0)
    assert [name for name, _ in planes] == [f"axis0-{i:03d}" for i in range(20)]
    _, middle = planes[10]
    assert middle.dtype == np.uint8 and middle.shape == (1, 24, 18)
    assert np.array_equal(middle[0], np.round(head[10] * 255).astype(np.uint8))
    kept = volume_slices(volume, axes=(0,), min_fill=0.25)
    filled = [(head[i] > 0.05).mean() >= 0.25 for i in range(20)]
    assert len(kept) == sum(filled) and 0 < len(kept) < 20  # the empty ends are skipped
    shapes = {p.shape for p in volume_slices(volume, min_fill=0.0)}
    assert shapes == {(1, 24, 18), (1, 20, 18), (1, 20, 24)}  # one per axis


def test_volume_files_are_read_from_npz_and_npy_and_bad_ones_are_named(tmp_path, volume):
    assert is_volume_file(volume) and not is_volume_file(tmp_path)
    npy = tmp_path / "head.npy"
    np.save(npy, _head())
    assert np.array_equal(read_volume(npy), read_volume(volume))
    assert read_volume(npy).max() == 1.0
    cases = {
        "flat.npy": (np.zeros((4, 4)), "expected 3-D"),
        "two.npz": ({"a": np.ones((2, 2, 2)), "b": np.ones((2, 2, 2))}, "name the volume"),
        "neg.npy": (-np.ones((2, 3, 4)), "negative"),
        "zero.npy": (np.zeros((2, 3, 4)), "all zeros"),
        "nan.npy": (np.full((2, 3, 4), np.nan), "NaN"),
        "cplx.npy": (np.ones((2, 3, 4), complex), "real numbers"),
    }
    for name, (array, message) in cases.items():
        path = tmp_path / name
        if isinstance(array, dict):
            np.savez(path, **array)
        else:
            np.save(path, array)
        with pytest.raises(ValueError, match=message):
            read_volume(path)
    with pytest.raises(ValueError, match=r"not an \.npz, \.npy or fastMRI \.h5 file"):
        read_volume(tmp_path / "head.png")
    with pytest.raises(ValueError, match="does not exist"):
        read_volume(tmp_path / "absent.npz")
    assert is_volume_file(tmp_path / "absent.npz")  # named as one: its absence is reported
    with pytest.raises(ValueError, match="lower min_fill"):
        volume_slices(volume, min_fill=0.99)
    with pytest.raises(ValueError, match="axes"):
        volume_slices(volume, axes=(3,))


def _mri_config(train_source, **data) -> ExperimentConfig:
    return ExperimentConfig.from_dict(
        {
            "model": {"cell": "mri", "channels": 2, "features": 4, "hidden": 4, "train_steps": 2},
            "data": {
                "train": train_source,
                "val_images": 2,
                "val_patches": 4,
                "patch_size": 16,
                "stride": 4,
                **data,
            },
            "tasks": [{"name": "mri", "acceleration": [2, 4], "sigma": [0, 5]}],
            "optim": {"iterations": 2, "batch_size": 2, "val_every": 2, "checkpoint_every": 2},
        }
    )


def test_an_mri_model_trains_on_a_volume_and_on_a_volume_pooled_with_a_folder(
    volume, image_folder, tmp_path
):
    alone = train(_mri_config(str(volume)), tmp_path / "alone", progress=False)
    assert alone["iteration"] == 2 and np.isfinite(alone["val_psnr_final"])
    pooled = train(
        _mri_config([str(volume), str(image_folder)]), tmp_path / "pooled", progress=False
    )
    assert pooled["iteration"] == 2
    alone_patches, alone_val = load_patches(_mri_config(str(volume)))
    pooled_patches, pooled_val = load_patches(_mri_config([str(volume), str(image_folder)]))
    folder_patches, _ = load_patches(_mri_config(str(image_folder)))
    assert torch.equal(alone_val, pooled_val)  # held out from the first source only
    extra = len(pooled_patches) - len(alone_patches)
    assert extra > len(folder_patches)  # all of the folder's images, none held out


def test_a_training_source_list_that_mixes_gray_and_colour_is_refused(volume, tmp_path):
    from PIL import Image

    colour = tmp_path / "colour"
    colour.mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(colour / "a.png")
    cfg = _mri_config([str(volume), str(colour)], gray=False)
    with pytest.raises(ValueError, match="mix gray and colour"):
        train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="empty list"):
        train(_mri_config([]), tmp_path / "run2", progress=False)


def test_mri_protocol_measures_the_whole_image_and_scores_its_magnitude():
    image = np.round(np.random.default_rng(1).random((24, 32)) * 255) / 255
    protocol = MRIProtocol(4.0, sigma=5, seed=3)
    case = protocol.cases(image, 2, "slice")[0]
    again = MRIProtocol(4.0, sigma=5, seed=3).cases(image, 2, "slice")[0]
    assert torch.equal(case.y, again.y) and case.y.is_complex()
    assert case.setting == "R=4,sigma=5" and case.task == "mri"
    assert case.truth.shape == (1, 2, 24, 32) and not case.truth[:, 1].any()
    assert case.score(case.truth)["psnr"] == np.inf
    mask = case.operator.op.mask
    assert mask.sum() / mask.numel() == pytest.approx(1 / 4, abs=0.02)
    assert runner.tuned_setting(case) == ("mri", pytest.approx(4.0, rel=0.05))
    flipped = case.truth * torch.tensor([-1.0, 0.0]).view(1, 2, 1, 1)  # -x: the same magnitude
    assert case.score(flipped)["psnr"] == np.inf
    zero_filled = case.operator.adjoint(case.y)
    assert 10 < case.score(zero_filled)["psnr"] < 40
    assert case.display.shape == (24, 32)
    assert MRIProtocol(8.0, mask="points").setting == "R=8,points"
    with pytest.raises(ValueError, match="acceleration"):
        MRIProtocol(0.5)
    with pytest.raises(ValueError, match="unknown MRI mask"):
        MRIProtocol(4.0, mask="radial")
    with pytest.raises(ValueError, match="gray magnitude"):
        protocol.cases(np.zeros((8, 8, 3)), 0, "rgb")


def _mri_model(tmp_path) -> str:
    cfg = RIMConfig(cell="mri", channels=2, features=4, hidden=4, train_steps=2)
    torch.manual_seed(0)
    model = cfg.build()
    torch.nn.init.normal_(model.cell.out.weight, 0, 0.01)
    path = tmp_path / "mri.safetensors"
    export_weights(path, model, {"config": {"model": cfg.to_dict()}})
    return str(path)


def _eval(capsys, *argv):
    status = main(["eval", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_eval_mri_runs_a_model_and_baselines_on_the_slices_of_a_volume(volume, tmp_path, capsys):
    out = tmp_path / "e"
    status, _, err = _eval(
        capsys, "--model", _mri_model(tmp_path), "--task", "mri", "--data", volume,
        "--acceleration", 2, 4, "--limit", 3, "--baselines", "zero-filled,tv",
        "--baseline-option", "tv.iterations=5", "--out", out, "-q",
    )  # fmt: skip
    assert status == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"] == ["R=2", "R=4"]
    assert summary["methods"] == ["rim", "zero-filled", "tv"]
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 2 * 3 and rows[0]["image"] == "head/axis2-000"
    psnr = {(r["setting"], r["method"]): float(r["psnr"]) for r in rows if r["image"][-1] == "2"}
    assert psnr[("R=2", "zero-filled")] > psnr[("R=4", "zero-filled")]  # fewer samples, worse
    assert "--acceleration 2 4 --mask columns" in (out / "summary.md").read_text()
    assert list(out.glob("grid-*.png"))


@pytest.mark.parametrize("task", ["mri", "denoise"])
def test_eval_refuses_a_model_of_the_other_kind(task, volume, image_folder, tmp_path, capsys):
    if task == "mri":
        cfg = RIMConfig(channels=3, features=4, hidden=4, train_steps=2)
        model = tmp_path / "rgb.safetensors"
        export_weights(model, cfg.build(), {"config": {"model": cfg.to_dict()}})
        data, wanted = volume, "restores RGB images"
    else:
        model, data, wanted = _mri_model(tmp_path), image_folder, "is an MRI model"
    status, _, err = _eval(
        capsys, "--model", model, "--task", task, "--data", data, "--out", tmp_path / "x"
    )
    assert status == 2 and wanted in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_a_gray_model_reconstructs_mri_taking_the_image_as_real(volume, tmp_path, capsys):
    from rimkit.operators import RealImages
    from rimkit.reconstruct import RIMReconstructor

    cfg = RIMConfig(features=4, hidden=4, train_steps=3)
    torch.manual_seed(0)
    model = cfg.build()
    torch.nn.init.normal_(model.cell.out.weight, 0, 0.1)
    path = tmp_path / "gray.safetensors"
    export_weights(path, model, {"config": {"model": cfg.to_dict()}})
    out = tmp_path / "e"
    status, _, err = _eval(
        capsys, "--model", path, "--task", "mri", "--data", volume, "--limit", 1,
        "--baselines", "none", "--out", out, "-q",
    )  # fmt: skip
    assert status == 0, err
    assert "reconstructs the images as real" in (out / "summary.md").read_text()
    with open(out / "results.csv") as handle:
        reported = float(next(csv.DictReader(handle))["psnr"])
    image = runner.load_images(volume, limit=1)[0][1]
    case = MRIProtocol(4.0).cases(image, 0, "head")[0]
    by_hand = RIMReconstructor(model)(case.y, RealImages(case.operator.op), case.sigma).final
    assert by_hand.shape == (1, 1, 20, 24)
    assert reported == pytest.approx(case.score(torch.cat([by_hand, 0 * by_hand], 1))["psnr"])


def test_mri_tuning_scores_the_magnitude_of_the_estimate():
    from rimkit.solvers import baseline

    x = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(0))
    m = Setting("mri", 4.0, crop=24).measure(x, torch.Generator().manual_seed(1))
    assert m.name == "mri" and m.y.is_complex() and m.target.shape == (2, 2, 24, 24)
    result = grid_search("tv", m, grid=[1e-4, 1e-2], iterations=4, level=4.0)
    assert result.task == "mri" and result.level == 4.0
    solver = baseline("tv", weight=1e-2, iterations=4, keep_estimates=False)
    final = solver(m.y, m.operator, m.sigma, x0=m.x0).final
    magnitude = channels_to_complex(final).abs().clamp(0, 1)
    by_hand = -10 * torch.log10((magnitude - x).pow(2).flatten(1).mean(1))
    assert result.psnr[1] == pytest.approx(float(by_hand.mean()), abs=1e-9)


def test_bart_arrays_are_read_in_fortran_order_and_bad_pairs_are_named(tmp_path):
    from rimkit.io import read_cfl

    array = (np.arange(24) + 1j * np.arange(24)[::-1]).astype(np.complex64).reshape(2, 3, 4)
    (tmp_path / "a.hdr").write_text("# Dimensions\n2 3 4 1 1\n# Command\nphantom\n")
    array.ravel(order="F").tofile(tmp_path / "a.cfl")
    for name in ("a", "a.cfl", "a.hdr"):
        assert np.array_equal(read_cfl(tmp_path / name), array)
    with pytest.raises(ValueError, match="does not exist"):
        read_cfl(tmp_path / "b")
    (tmp_path / "c.hdr").write_text("# Dimensions\n5 5\n")
    array.ravel().tofile(tmp_path / "c.cfl")
    with pytest.raises(ValueError, match="holds 24 values but its header says"):
        read_cfl(tmp_path / "c")
    (tmp_path / "d.hdr").write_text("nothing here\n")
    array.ravel().tofile(tmp_path / "d.cfl")
    with pytest.raises(ValueError, match="Dimensions"):
        read_cfl(tmp_path / "d")
