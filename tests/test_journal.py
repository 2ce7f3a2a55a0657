"""Journals: a stopped evaluation resumes to the result of an uninterrupted one."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from rimkit.cli import main
from rimkit.evaluate import runner
from rimkit.evaluate.journal import Journal
from rimkit.evaluate.protocols import DenoiseProtocol, ProjectionProtocol
from rimkit.models import build_rim


def _images(count: int = 3) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 24 * 24).reshape(24, 24)
    return [(f"im{i}", np.clip(ramp + rng.normal(0, 0.05, ramp.shape), 0, 1)) for i in range(count)]


def _methods() -> list[runner.Method]:
    torch.manual_seed(0)
    rim = runner.rim_method(build_rim(features=4, hidden=4, train_steps=2), curve_steps=3)
    tv = runner.baseline_method("tv", "denoise", {"iterations": 3})
    return [rim, tv]


def _counting(methods: list[runner.Method], stop_after: int | None = None) -> list[int]:
    """Wrap each method's run: count the calls; raise KeyboardInterrupt at call ``stop_after``."""
    calls = [0]

    def wrap(run):
        def counted(case):
            calls[0] += 1
            if stop_after is not None and calls[0] == stop_after:
                raise KeyboardInterrupt
            return run(case)

        return counted

    for method in methods:
        method.run = wrap(method.run)
    return calls


def _scores(result: runner.Evaluation) -> str:
    """The scores exactly (``repr``, so that NaN SSIMs of small patches compare equal)."""
    return repr(
        [(r["image"], r["setting"], r["method"], r["psnr"], r["ssim"]) for r in result.rows]
    )


PROTOCOLS = [DenoiseProtocol(25), ProjectionProtocol("gaussian", 0.3, patch=8, patches=2)]


def test_a_stopped_run_resumes_to_the_uninterrupted_result(tmp_path):
    images = _images()
    reference = runner.evaluate(images, PROTOCOLS, _methods(), examples=False)
    path = tmp_path / "run.jsonl"

    methods = _methods()
    _counting(methods, stop_after=12)  # in the projection protocol's second image
    with pytest.raises(KeyboardInterrupt):
        runner.evaluate(images, PROTOCOLS, methods, examples=False, journal=path)
    finished = len(path.read_text().splitlines()) - 1  # less the header
    assert finished == 3 + 1  # three denoised images, one image's two projection patches

    methods = _methods()
    calls = _counting(methods)
    resumed = runner.evaluate(images, PROTOCOLS, methods, examples=False, journal=path)
    assert calls[0] == 2 * 2 * 2  # two images x two patches x two methods left to run
    assert _scores(resumed) == _scores(reference)
    assert resumed.curves == reference.curves  # averaged in the same order: bit-identical
    assert len(path.read_text().splitlines()) == 1 + 3 + 3

    other = _methods()
    torch.manual_seed(1)
    other[0] = runner.rim_method(build_rim(features=4, hidden=4, train_steps=2), curve_steps=3)
    with pytest.raises(ValueError, match="different evaluation"):  # same name, other weights
        runner.evaluate(images, PROTOCOLS, other, examples=False, journal=path)


def test_resumed_examples_are_recomputed_for_the_figures(tmp_path):
    images = _images(2)
    path = tmp_path / "run.jsonl"
    runner.evaluate(images, PROTOCOLS[:1], _methods(), journal=path)
    methods = _methods()
    calls = _counting(methods)
    resumed = runner.evaluate(images, PROTOCOLS[:1], methods, journal=path)
    assert calls[0] == 2  # the first case once more, for its crop grid; no rows added
    assert len(resumed.rows) == 2 * 2
    assert set(resumed.examples["sigma=25"]["results"]) == {"rim", "tv"}


def test_a_journal_of_another_run_is_refused_and_a_cut_line_dropped(tmp_path):
    path = tmp_path / "run.jsonl"
    run = {"settings": ["sigma=25"], "methods": ["tv"], "images": ["a", "b"]}
    log = Journal(path, run)
    log.record("sigma=25", "a", [{"psnr": 30.0}], [])
    log.close()
    with path.open("a") as f:
        f.write('{"setting": "sigma=25", "image": "b", "ro')  # stopped mid-write
    with pytest.raises(ValueError, match="different evaluation"):
        Journal(path, {**run, "methods": ["bm3d"]})
    log = Journal(path, run)
    assert len(log) == 1 and log.get("sigma=25", "b") is None
    log.record("sigma=25", "b", [{"psnr": 31.0}], [])
    log.close()
    assert len(Journal(path, run)) == 2
    (tmp_path / "other.txt").write_text("hello\n")
    with pytest.raises(ValueError, match="not an evaluation journal"):
        Journal(tmp_path / "other.txt", run)
    for cut in ("", '{"journal": 1, "ru'):  # a header never written whole: a fresh journal
        (tmp_path / "cut.jsonl").write_text(cut)
        assert len(Journal(tmp_path / "cut.jsonl", run)) == 0
        assert json.loads((tmp_path / "cut.jsonl").read_text())["run"] == run


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    for name, array in _images():
        Image.fromarray((array * 255).astype(np.uint8)).save(root / f"{name}.png")
    return root


def _results(out) -> list[tuple]:
    with open(out / "results.csv") as handle:
        return [(r["image"], r["setting"], r["method"], r["psnr"]) for r in csv.DictReader(handle)]


def test_rimkit_eval_resume_continues_a_stopped_run(tmp_path, folder, capsys, monkeypatch):
    argv = ["eval", "--task", "denoise", "--data", str(folder), "--sigma", "15", "25"]
    argv += ["--baselines", "tv", "--baseline-option", "tv.iterations=3", "-q"]
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    assert not (tmp_path / "whole" / runner.JOURNAL).exists()

    out = tmp_path / "stopped"
    run_case = runner._run_case
    calls = [0]

    def stop_at_the_fourth(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 4:
            raise KeyboardInterrupt
        return run_case(*args, **kwargs)

    monkeypatch.setattr(runner, "_run_case", stop_at_the_fourth)
    assert main([*argv, "--out", str(out)]) == 130
    monkeypatch.setattr(runner, "_run_case", run_case)
    assert not (out / "results.csv").exists()
    err = capsys.readouterr().err
    assert "images finished so far are kept in" in err and "same command with --resume" in err

    assert main([*argv, "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    kept = (out / runner.JOURNAL).read_bytes()
    other = [a if a != "15" else "20" for a in argv]  # a resume of another evaluation
    assert main([*other, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "is kept: rerun the command that started it with --resume" in err
    assert "--journal" not in err and (out / runner.JOURNAL).read_bytes() == kept
    assert main([*argv, "--out", str(out), "--resume"]) == 0
    assert _results(out) == _results(tmp_path / "whole")
    assert not (out / runner.JOURNAL).exists()
    summary = json.loads((out / "summary.json").read_text())
    assert "--resume" not in summary["command"]

    assert main([*argv, "--out", str(tmp_path / "fresh"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
