"""``rimkit eval --task mri --measured``: fastMRI's protocol on each file's own k-space."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from kspace_files import fft2c, ifft2c, phantom, write_file
from rimkit.cli import main
from rimkit.evaluate.measured import MeasuredMethod, evaluate_measured, volume_mask, volume_scores
from rimkit.fastmri import center_crop

h5py = pytest.importorskip("h5py")


def write_volume(path, slices: int, seed: int, coils: int = 1) -> np.ndarray:
    """A fastMRI training file of ``slices`` slices; returns its reference volume."""
    images = np.stack([phantom(seed=seed + s) for s in range(slices)])  # (S, 96, 40)
    if coils == 1:
        kspace = fft2c(images)
        reference, name = center_crop(np.abs(images), (32, 32)), "reconstruction_esc"
    else:
        xx = np.linspace(-1, 1, images.shape[-1])
        maps = np.stack([np.exp(1j * c + (-1) ** c * 0.5 * xx)[None, :] for c in range(coils)])
        maps = maps / np.sqrt((np.abs(maps) ** 2).sum(0))  # (coils, 1, W), sum |S|^2 = 1
        coil_images = images[:, None] * maps[None]  # (S, coils, 96, 40)
        kspace = fft2c(coil_images)
        rss = np.sqrt((np.abs(coil_images) ** 2).sum(1))
        reference, name = center_crop(rss, (32, 32)), "reconstruction_rss"
    write_file(path, kspace.astype(np.complex64), **{name: reference.astype(np.float32)})
    return reference


@pytest.fixture
def folder(tmp_path):
    data = tmp_path / "singlecoil_train"
    data.mkdir()
    for number, slices in ((1000, 3), (1001, 2)):
        write_volume(data / f"file{number}.h5", slices, seed=number)
    return data


def test_one_mask_per_file_and_acceleration_drawn_from_its_name():
    first = volume_mask("a/file1000.h5", (8, 64), 4, "random")
    assert np.array_equal(first, volume_mask("b/file1000.h5", (8, 64), 4, "random"))
    assert not np.array_equal(first, volume_mask("file1001.h5", (8, 64), 4, "random"))
    assert (first == first[:1]).all() and first[0, 30:35].all()  # whole columns, the centre 5
    assert int(volume_mask("file1000.h5", (8, 64), 4, "equispaced")[0].sum()) == 16
    with pytest.raises(ValueError, match="random or equispaced"):
        volume_mask("file1000.h5", (8, 64), 4, "columns")


def test_volume_scores_are_fastmri_s():
    rng = np.random.default_rng(0)
    reference = rng.random((3, 32, 32)) * np.array([1.0, 2.0, 0.5])[:, None, None]
    estimate = np.abs(reference + rng.normal(0, 0.05, reference.shape))  # a magnitude
    scores = volume_scores(estimate, reference)
    peak = reference.max()  # of the volume, not of each slice
    assert scores["psnr"] == pytest.approx(
        peak_signal_noise_ratio(reference, estimate, data_range=peak)
    )
    per_slice = [
        structural_similarity(r, e, data_range=peak)
        for r, e in zip(reference, estimate, strict=True)
    ]
    assert scores["ssim"] == pytest.approx(np.mean(per_slice), abs=1e-6)
    error = np.sum((reference - estimate) ** 2) / np.sum(reference**2)
    assert scores["nmse"] == pytest.approx(error)
    with pytest.raises(ValueError, match="zero everywhere"):
        volume_scores(estimate, 0 * reference)


def test_eval_measured_scores_each_volume_against_its_reference(folder, tmp_path):
    out = tmp_path / "ev"
    argv = ["eval", "--task", "mri", "--data", str(folder), "--measured", "--acceleration", "1",
            "4", "--baselines", "zero-filled", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    lines = list(csv.reader((out / "results.csv").open()))
    assert lines[0] == ["file", "setting", "method", "slices", "nmse", "psnr", "ssim", "seconds"]
    rows = lines[1:]
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("file1000.h5", "R=1,random", "3"), ("file1000.h5", "R=4,random", "3"),
        ("file1001.h5", "R=1,random", "2"), ("file1001.h5", "R=4,random", "2"),
    ]  # fmt: skip
    full, under = (float(r[5]) for r in rows[:2])
    assert full > 60 and 15 < under < 40  # every column sampled: the reference itself
    summary = json.loads((out / "summary.json").read_text())
    assert summary["volumes"] == 2 and "--measured" in summary["command"]
    mean = next(e for e in summary["summary"] if e["setting"] == "R=4,random")
    assert mean["psnr"] == pytest.approx((under + float(rows[3][5])) / 2, abs=1e-3)
    assert "fastMRI's" in (out / "summary.md").read_text()
    assert not (out / "journal.jsonl").exists()


def test_multi_coil_volumes_are_scored_against_their_root_sum_of_squares(tmp_path):
    data = tmp_path / "multicoil_val"
    data.mkdir()
    write_volume(data / "file2000.h5", 2, seed=5, coils=4)
    out = tmp_path / "ev"
    argv = ["eval", "--task", "mri", "--data", str(data / "file2000.h5"), "--measured",
            "--acceleration", "1", "--baselines", "zero-filled", "--out", str(out),
            "-q"]  # fmt: skip
    assert main(argv) == 0
    row = list(csv.reader((out / "results.csv").open()))[1]
    assert row[:4] == ["file2000.h5", "R=1,random", "zero-filled", "2"]
    assert float(row[5]) > 35  # coil maps estimated from the data: close to the RSS


def test_a_finished_volume_is_read_back_from_the_journal(folder, tmp_path):
    calls = []

    def zero_filled(kspace, mask):
        calls.append(1)
        return np.abs(ifft2c(kspace[0]))

    files = sorted(folder.glob("*.h5"))
    method = [MeasuredMethod("zf", zero_filled)]
    journal = tmp_path / "j.jsonl"
    first = evaluate_measured(files, [4], "equispaced", method, journal=journal)
    assert len(calls) == 5  # one per slice
    again = evaluate_measured(files, [4], "equispaced", method, journal=journal)
    assert len(calls) == 5 and again == first


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "denoise"], "applies to --task mri"),
        (["--mask", "columns"], "random or equispaced"),
        (["--sigma", "5"], "its own noise"),
        (["--coils", "4"], "leave it out"),
        (["--tile", "64"], "does not apply to --measured"),
    ],
)
def test_bad_measured_requests_are_one_line_errors(folder, tmp_path, capsys, extra, message):
    argv = ["eval", "--task", "mri", "--data", str(folder), "--measured", "--baselines",
            "zero-filled", "--out", str(tmp_path / "ev"), *extra]  # fmt: skip
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_measured_needs_fastmri_files_with_references(tmp_path, capsys):
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    (pngs / "a.png").write_bytes(b"")
    test_set = tmp_path / "test"
    test_set.mkdir()
    write_file(test_set / "file3000.h5", np.ones((1, 16, 16), np.complex64))
    for data, message in ((pngs, "reads fastMRI files"), (test_set, "holds no reference")):
        argv = ["eval", "--task", "mri", "--data", str(data), "--measured", "--baselines",
                "zero-filled", "--out", str(tmp_path / "ev"), "--force"]  # fmt: skip
        assert main(argv) == 2
        assert message in capsys.readouterr().err


def test_a_model_is_run_through_the_reconstruct_path_and_labelled(folder, tmp_path):
    out = tmp_path / "ev"
    argv = ["eval", "--task", "mri", "--data", str(folder / "file1001.h5"), "--measured",
            "--model", "mri", "--baselines", "none", "--out", str(out), "-q"]  # fmt: skip
    assert main(argv) == 0
    row = list(csv.reader((out / "results.csv").open()))[1]
    assert row[:4] == ["file1001.h5", "R=4,random", "mri", "2"]
    assert 15 < float(row[5]) < 60


def test_several_models_share_the_measured_table(folder, tmp_path):
    out = tmp_path / "ev"
    argv = ["eval", "--task", "mri", "--data", str(folder / "file1001.h5"), "--measured",
            "--model", "mri", "--model", "mri-measured", "--baselines", "zero-filled",
            "--out", str(out), "-q"]  # fmt: skip
    assert main(argv) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["method"] for r in rows] == ["mri", "mri-measured", "zero-filled"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == ["mri", "mri-measured"]
    assert summary["title"].endswith(", mri, mri-measured")
