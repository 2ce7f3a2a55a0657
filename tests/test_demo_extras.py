"""`rimkit demo` without optional extras: a missing baseline is skipped with a note."""

from __future__ import annotations

import json
import sys

import pytest

from rimkit import demo
from rimkit.demo import SETTINGS, baselines, run_demo

DENOISE = next(s for s in SETTINGS if "bm3d" in s.baselines)


@pytest.fixture
def no_bm3d(monkeypatch):
    """``import bm3d`` raises ImportError, as on an install without the ``bm3d`` extra."""
    monkeypatch.setitem(sys.modules, "bm3d", None)


def test_a_baseline_whose_extra_is_missing_is_skipped_with_a_note(no_bm3d):
    methods, notes = baselines(DENOISE)
    assert [name for name, _ in methods] == [n for n in DENOISE.baselines if n != "bm3d"]
    assert len(notes) == 1 and "bm3d skipped" in notes[0]
    assert "pip install 'rimkit[bm3d]'" in notes[0]


def test_the_demo_runs_on_without_bm3d(no_bm3d, monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "SETTINGS", (DENOISE,))
    result = run_demo(tmp_path / "out", crop=24, progress=False)
    methods = {row["method"] for row in result["rows"]}
    assert "bm3d" not in methods and "tv" in methods
    assert any("bm3d skipped" in note for note in result["notes"])
    assert json.loads((tmp_path / "out" / "results.json").read_text())["rows"]


def test_a_failed_demo_leaves_no_empty_folder_of_its_own(monkeypatch, tmp_path):
    def fail(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(demo, "_measure", fail)
    with pytest.raises(RuntimeError, match="boom"):
        run_demo(tmp_path / "out", crop=24, progress=False)
    assert not (tmp_path / "out").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(RuntimeError, match="boom"):
        run_demo(kept, crop=24, progress=False)
    assert kept.is_dir()  # a folder the user made stays


def test_a_colour_image_is_noted_gray_and_every_file_is_named(monkeypatch, tmp_path, capsys):
    from rimkit.cli import main

    monkeypatch.setattr(demo, "SETTINGS", (DENOISE,))
    monkeypatch.setitem(sys.modules, "bm3d", None)
    result = run_demo(tmp_path / "out", "example:astronaut", crop=24, progress=False)
    assert any("converted to gray" in note for note in result["notes"])
    assert all((tmp_path / "out" / name).is_file() for name in result["files"])
    assert {"results.json", "convergence.csv", "report.html"} <= set(result["files"])
    gray = run_demo(tmp_path / "gray", "example:camera", crop=24, progress=False)
    assert not any("converted to gray" in note for note in gray["notes"])
    assert main(["demo", "--out", str(tmp_path / "t"), "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "t"), "--threads", "1"]) == 0
    assert f"and report.html to {tmp_path / 't'}" in capsys.readouterr().out


def test_main_sets_the_thread_count_back_after_a_command(tmp_path):
    import torch

    from rimkit.cli import main

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        argv = ["degrade", "example:camera", str(tmp_path / "n.png"), "--task", "denoise"]
        assert main([*argv, "--sigma", "25", "-q"]) == 0
        argv = ["reconstruct", str(tmp_path / "n.png"), str(tmp_path / "o.png"), "--task"]
        assert main([*argv, "denoise", "--sigma", "25", "--baseline", "tv", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_demo_runs_each_baseline_for_at_least_the_steps_its_weight_was_tuned_for():
    by_name = {setting.name: setting for setting in SETTINGS}
    lensing = dict(baselines(by_name["lensing"])[0])
    denoise = dict(baselines(by_name["denoise sigma 25"])[0])
    assert lensing["tv"].iterations == 1000  # TV's lensing weight is tuned for 1000 steps
    assert denoise["tv"].iterations == 100
    assert lensing["fista-wavelet"].iterations == 100
