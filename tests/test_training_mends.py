"""Mends from an audit of training on one's own images: 16-bit images keep their precision,
nearly black images and left-out files are noted, and the recipe mistakes it found are
named where they are made."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import yaml
from PIL import Image

from rimkit.data import ImageFolder, list_images
from rimkit.data.patches import PatchSet


def _ramp(height: int = 40, width: int = 48) -> np.ndarray:
    return np.linspace(0, 1, height * width).reshape(height, width)


def test_16_bit_images_keep_their_precision(tmp_path):
    deep = np.round(_ramp() * 65535).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    Image.fromarray(np.round(_ramp() * 255).astype(np.uint8)).save(tmp_path / "flat.png")
    folder = ImageFolder(tmp_path)
    kept = {f.name: img for f, img in zip(folder.files, folder.images, strict=True)}
    assert kept["deep.png"].dtype == np.uint16 and kept["flat.png"].dtype == np.uint8
    restored = folder[0].numpy()[0]  # deep.png, sorted first
    assert np.abs(restored - deep / 65535).max() < 1e-6  # 8 bits would be off by up to 2e-3
    patch = PatchSet(folder.images, size=16, stride=8).patch(0)
    assert np.abs(patch.numpy()[0] - deep[:16, :16] / 65535).max() < 1e-6
    colour = np.stack([_ramp(), _ramp()[::-1], np.full((40, 48), 0.3)], -1)
    Image.fromarray(np.round(colour * 255).astype(np.uint8)).save(tmp_path / "rgb.png")
    gray = ImageFolder(tmp_path, gray=True)  # luminance of an 8-bit file: rounded, as before
    assert {img.dtype for img in gray.images} == {np.dtype(np.uint8), np.dtype(np.uint16)}
    assert gray.images[[f.name for f in gray.files].index("rgb.png")].dtype == np.uint8


def test_nearly_black_images_and_left_out_files_are_noted(tmp_path):
    twelve_bit = np.round(_ramp() * 4080).astype(np.uint16)  # 12-bit data in a 16-bit file
    Image.fromarray(twelve_bit).save(tmp_path / "dim.png")
    Image.fromarray(np.round(_ramp() * 255).astype(np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "notes.txt").write_text("labels")  # not an image: no note
    (tmp_path / "photo.heic").write_bytes(b"HEIC")  # a format Pillow does not read
    (tmp_path / "._ok.png").write_bytes(b"\x00\x05\x16\x07")  # macOS AppleDouble: skipped
    with pytest.warns(UserWarning, match=r"1 image\(s\) in .* of a format not read here .*photo"):
        files = list_images(tmp_path)
    assert [f.name for f in files] == ["dim.png", "ok.png"]
    with pytest.warns(UserWarning, match=r"1 of 2 image\(s\) in .* are nearly black .*'dim.png'"):
        ImageFolder(tmp_path, files=files)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ImageFolder(tmp_path, files=files[1:])


def _recipe(folder, **optim) -> dict:
    return {
        "model": {"features": 4, "hidden": 4, "train_steps": 2},
        "data": {"train": str(folder), "val_images": 2, "val_patches": 8, "patch_size": 16},
        "tasks": [{"name": "denoise", "sigma": [5, 50]}],
        "optim": {"iterations": 4, "batch_size": 4, "val_every": 2, "checkpoint_every": 2} | optim,
    }


def test_recipe_mistakes_are_named_where_they_are_made(image_folder, tmp_path):
    from rimkit.train import ExperimentConfig, train
    from rimkit.train.config import load_config

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model: {features: 4, hidden: 4}\ndata: {train: x}\n"
        "tasks: [{name: denoise, sigma: [0, 50]}]\noptim: {lr: 1e-3}\n"
    )
    assert load_config(recipe).optim.lr == 1e-3  # YAML 1.1 reads 1e-3 as a string
    with pytest.raises(ValueError, match=r"sigma must be a list, got 25 \(one value as a range"):
        load_config(recipe, ["tasks.0.sigma=25"])
    mixed = _recipe(image_folder) | {"tasks": [{"name": "denoise"}, {"name": "mri"}]}
    with pytest.raises(ValueError, match=r"mri \(complex images as 2 channels\) cannot share"):
        ExperimentConfig.from_dict(mixed)
    with pytest.raises(ValueError, match=r"set model.channels: 2 \(and model.cell: mri\), not 1"):
        ExperimentConfig.from_dict(_recipe(image_folder) | {"tasks": [{"name": "mri"}]})
    with pytest.raises(ValueError, match=r"optim.init: unknown model .*working folder"):
        train(ExperimentConfig.from_dict(_recipe(image_folder, init="no/such.safetensors")),
              tmp_path / "init", progress=False)  # fmt: skip


def test_training_or_validating_on_an_evaluation_set_is_noted(image_folder, tmp_path):
    import shutil

    from rimkit.evaluate.request import _training_overlap
    from rimkit.train import ExperimentConfig, train

    root = tmp_path / "data"
    shutil.copytree(image_folder, root / "eval" / "Set6")
    shutil.copytree(image_folder, root / "train" / "own")
    recipe = _recipe("eval/Set6")
    recipe["data"] = recipe["data"] | {"root": str(root)}
    with pytest.warns(UserWarning, match=r"data.train 'eval/Set6' is an evaluation set"):
        train(ExperimentConfig.from_dict(recipe), tmp_path / "a", stop_after=1, progress=False)
    recipe["data"] = recipe["data"] | {"train": "train/own", "val": "eval/Set6"}
    with pytest.warns(UserWarning, match=r"data.val 'eval/Set6' is an evaluation set"):
        train(ExperimentConfig.from_dict(recipe), tmp_path / "b", stop_after=1, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        recipe["data"] = recipe["data"] | {"val": None, "val_images": 2}
        train(ExperimentConfig.from_dict(recipe), tmp_path / "c", stop_after=1, progress=False)
    found = _training_overlap(root / "eval" / "Set6", {"train": "train/own", "val": "eval/Set6",
                                                       "root": str(root)})  # fmt: skip
    assert found == "eval/Set6"  # rimkit eval notes a model validated on its --data


def test_invalid_yaml_is_one_line_with_its_place(tmp_path):
    from rimkit.train.config import load_config

    (tmp_path / "bad.yaml").write_text("model:\n  features: 4\n   hidden: 3\n")
    with pytest.raises(ValueError, match=r"not valid YAML at line 3, column 10: mapping") as err:
        load_config(tmp_path / "bad.yaml")
    assert "\n" not in str(err.value)


def test_a_resume_with_another_data_setting_names_the_setting(image_folder, tmp_path):
    from rimkit.train import ExperimentConfig, train

    train(ExperimentConfig.from_dict(_recipe(image_folder)), tmp_path / "run", stop_after=2,
          progress=False)  # fmt: skip
    recipe = _recipe(image_folder)
    recipe["data"] = recipe["data"] | {"val_patches": 4}
    with pytest.raises(ValueError, match=r"data.val_patches") as err:
        train(ExperimentConfig.from_dict(recipe), tmp_path / "run", resume=True, progress=False)
    assert "other images" not in str(err.value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("clip_grad", -1.0, r"optim.clip_grad is the norm .* a number > 0"),
        ("clip_grad", 0.0, r"optim.clip_grad"),
        ("min_lr_ratio", -1.0, r"optim.min_lr_ratio must be in \[0, 1\]"),
        ("min_lr_ratio", 3.0, r"optim.min_lr_ratio"),
        ("warmup", -5, r"optim.warmup must be >= 0"),
        ("seed", -1, r"optim.seed must be >= 0"),
        ("val_steps", 0, r"optim.val_steps must be >= 1 or null"),
        ("threads", -2, r"optim.threads must be >= 1 or null"),
        ("lr", float("inf"), r"optim.lr must be a finite number > 0"),
        ("weight_decay", -1.0, r"optim.weight_decay must be >= 0"),
        ("fit_weight", -1.0, r"optim.fit_weight weighs the measurement-fit loss, a number >= 0"),
        ("fit_weight", float("nan"), r"optim.fit_weight"),
    ],
)
def test_optimiser_values_out_of_range_are_named(image_folder, key, value, message):
    from rimkit.train import ExperimentConfig

    with pytest.raises(ValueError, match=message):
        ExperimentConfig.from_dict(_recipe(image_folder, **{key: value})).check()


def test_a_resumed_run_may_only_grow_and_a_stretched_schedule_is_noted(image_folder, tmp_path):
    from rimkit.train import ExperimentConfig, train

    cfg = ExperimentConfig.from_dict(_recipe(image_folder, iterations=8, schedule="cosine"))
    train(cfg, tmp_path / "run", stop_after=4, progress=False)
    shorter = ExperimentConfig.from_dict(_recipe(image_folder, iterations=6, schedule="cosine"))
    with pytest.raises(ValueError, match=r"optim.iterations 6 is below the run's 8; a resumed"):
        train(shorter, tmp_path / "run", resume=True, progress=False)
    longer = ExperimentConfig.from_dict(_recipe(image_folder, iterations=16, schedule="cosine"))
    with pytest.warns(UserWarning, match=r"8 -> 16 stretches the cosine schedule: the learning"):
        assert train(longer, tmp_path / "run", resume=True, progress=False)["iteration"] == 16


def test_a_finished_run_resumed_with_another_recipe_is_refused(image_folder, tmp_path, capsys):
    import yaml

    from rimkit.cli import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(_recipe(image_folder)))
    assert main(["-q", "train", str(recipe), "--out", str(tmp_path / "run"), "--threads", "1"]) == 0
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["optim"]["threads"] == 1
    assert main(["-q", "train", "--resume", str(tmp_path / "run"), str(recipe)]) == 0  # done
    status = main(["train", "--resume", str(tmp_path / "run"), str(recipe), "--set",
                   "optim.lr=0.01"])  # fmt: skip
    assert status == 2 and "optim.lr differ" in capsys.readouterr().err


def test_ctrl_c_saves_the_iteration_under_way_and_the_run_resumes_to_the_same_weights(
    image_folder, tmp_path, monkeypatch
):
    import os
    import signal

    from rimkit.train import ExperimentConfig, loop, train
    from rimkit.train.checkpoint import read_meta

    cfg = ExperimentConfig.from_dict(_recipe(image_folder, iterations=6, checkpoint_every=4))
    whole = train(cfg, tmp_path / "whole", progress=False)
    steps = loop.unrolled_steps

    def interrupting(config, iteration):  # Ctrl-C while iteration 3 runs
        if iteration == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return steps(config, iteration)

    monkeypatch.setattr(loop, "unrolled_steps", interrupting)
    outside = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:  # (a background job, as under nohup, ignores Ctrl-C, and so does training there)
        with pytest.raises(loop.TrainingInterrupted, match=r"saved at iteration 3: continue it"):
            train(cfg, tmp_path / "cut", progress=False)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, outside)
    assert read_meta(tmp_path / "cut" / "last")["iteration"] == 3  # not a checkpoint iteration
    monkeypatch.setattr(loop, "unrolled_steps", steps)
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed["weights_sha256"] == whole["weights_sha256"]


def test_sigterm_stops_after_the_iteration_under_way_and_saves_it(
    image_folder, tmp_path, monkeypatch
):
    import os
    import signal

    from rimkit.train import ExperimentConfig, loop, train
    from rimkit.train.checkpoint import read_meta

    cfg = ExperimentConfig.from_dict(_recipe(image_folder, iterations=6, checkpoint_every=4))
    steps = loop.unrolled_steps

    def terminating(config, iteration):  # what timeout(1) sends, while iteration 2 runs
        if iteration == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return steps(config, iteration)

    monkeypatch.setattr(loop, "unrolled_steps", terminating)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(loop.TrainingInterrupted, match=r"saved at iteration 2"):
        train(cfg, tmp_path / "cut", progress=False)
    assert signal.getsignal(signal.SIGTERM) == before  # restored
    assert read_meta(tmp_path / "cut" / "last")["iteration"] == 2


def test_validation_covers_every_task_of_a_mixture():
    from dataclasses import dataclass

    import torch

    from rimkit.models import build_rim
    from rimkit.tasks import DenoiseTask, TaskMixture
    from rimkit.train.loop import validate

    seen = []

    @dataclass
    class Recording:
        label: str

        def sample(self, x, generator):
            seen.append((self.label, len(x)))
            return DenoiseTask((10.0, 10.0)).sample(x, generator)

    mixture = TaskMixture([Recording("a"), Recording("b"), Recording("c"), Recording("off")],
                          [1.0, 1.0, 0.1, 0.0])  # fmt: skip
    model = build_rim("restoration", 1, features=4, hidden=4, train_steps=2)
    curve = validate(model, torch.rand(8, 1, 16, 16), mixture, seed=0, steps=2, batch_size=16)
    assert curve.shape == (2,)
    assert sorted({label for label, _ in seen}) == ["a", "b", "c"]  # one batch of 16 before
    assert sum(n for _, n in seen) == 8


def test_task_weights_validation_images_and_a_short_validation_set_are_named(
    image_folder, tmp_path
):
    from rimkit.train import ExperimentConfig, train

    def entries(*weights):
        return [{"name": "denoise", "weight": w} for w in weights]

    with pytest.raises(ValueError, match=r"tasks\[1\].weight must be a number >= 0, got -1"):
        ExperimentConfig.from_dict(_recipe(image_folder) | {"tasks": entries(1, -1)})
    with pytest.raises(ValueError, match=r"every task's weight is 0; give at least one"):
        ExperimentConfig.from_dict(_recipe(image_folder) | {"tasks": entries(0, 0)})
    recipe = _recipe(image_folder)
    with pytest.raises(ValueError, match=r"data.val_images must be >= 1, got 0"):
        ExperimentConfig.from_dict(recipe | {"data": recipe["data"] | {"val_images": 0}})
    many = ExperimentConfig.from_dict(recipe | {"data": recipe["data"] | {"val_patches": 500}})
    with pytest.warns(UserWarning, match=r"data.val_patches is 500, but the validation images"):
        train(many, tmp_path / "run", stop_after=1, progress=False)


def test_a_run_resumed_on_other_images_is_refused(image_folder, tmp_path):
    import shutil

    from rimkit.train import ExperimentConfig, train

    train(ExperimentConfig.from_dict(_recipe(image_folder)), tmp_path / "run", stop_after=2,
          progress=False)  # fmt: skip
    moved = tmp_path / "moved"
    shutil.copytree(image_folder, moved)  # the same images, moved: resumes
    recipe = _recipe(moved)
    train(ExperimentConfig.from_dict(recipe), tmp_path / "run", resume=True, stop_after=3,
          progress=False)  # fmt: skip
    first = np.asarray(Image.open(moved / "00.png"))
    Image.fromarray(255 - first).save(moved / "00.png")  # other pixels, as many patches
    with pytest.raises(ValueError, match=r"trained on other images \(train pixels differ\)"):
        train(ExperimentConfig.from_dict(recipe), tmp_path / "run", resume=True, progress=False)
    (moved / "05.png").unlink()  # one image fewer: other data
    with pytest.raises(ValueError, match=r"trained on other images \(train_patches \d+ then"):
        train(ExperimentConfig.from_dict(recipe), tmp_path / "run", resume=True, progress=False)


def test_validation_on_a_training_source_is_noted(image_folder, tmp_path):
    from rimkit.train import ExperimentConfig, train

    recipe = _recipe(image_folder)
    recipe["data"] = recipe["data"] | {"val": f"{image_folder}/"}  # the same folder, written so
    with pytest.warns(UserWarning, match=r"data.val .* is one of the training sources"):
        train(ExperimentConfig.from_dict(recipe), tmp_path / "run", stop_after=1, progress=False)


def test_evaluating_on_the_training_images_is_noted(image_folder, tmp_path):
    from rimkit.evaluate.request import _training_overlap

    assert _training_overlap(image_folder, {"train": str(image_folder)}) == str(image_folder)
    assert _training_overlap(image_folder, {"train": [str(tmp_path), "x"]}) == str(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    assert _training_overlap(other, {"train": str(image_folder)}) is None
    assert _training_overlap(other, {"train": "nowhere/at/all", "root": str(tmp_path)}) is None


def test_review_mends_of_recipes_folders_and_interrupts(image_folder, tmp_path):
    import signal

    from rimkit.train import ExperimentConfig
    from rimkit.train.loop import StopRequest

    recipe = _recipe(image_folder)
    recipe["data"] = recipe["data"] | {"val": str(image_folder), "val_images": 0}
    ExperimentConfig.from_dict(recipe)  # data.val validates: val_images is unused
    hidden = tmp_path / "imgs" / ".ipynb_checkpoints"
    hidden.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(hidden / "a-checkpoint.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "imgs" / "a.png")
    (tmp_path / "imgs" / "paper.pdf").write_bytes(b"%PDF")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a PDF is no image: no note
        assert [f.name for f in list_images(tmp_path / "imgs")] == ["a.png"]
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:  # a background job that ignores Ctrl-C keeps ignoring it, and stops on SIGTERM
        with StopRequest() as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert stop.active and signal.getsignal(signal.SIGTERM) == stop._handle
        terminated = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with StopRequest() as stop:  # both ignored: nothing to handle
            assert not stop.active
        signal.signal(signal.SIGTERM, terminated)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_fine_tune_logs_the_validation_of_its_start_as_iteration_0(image_folder, tmp_path):
    import csv

    from rimkit.train import ExperimentConfig, train

    base = train(ExperimentConfig.from_dict(_recipe(image_folder)), tmp_path / "base",
                 progress=False)  # fmt: skip
    tune = ExperimentConfig.from_dict(_recipe(image_folder, init=str(tmp_path / "base")))
    train(tune, tmp_path / "tune", progress=False)
    with open(tmp_path / "tune" / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["iteration"] == "0" and rows[0]["loss"] == ""
    assert float(rows[0]["val_psnr_final"]) == base["val_psnr_final"]  # the same weights
    assert [r["iteration"] for r in rows[1:]] == ["1", "2", "3", "4"]


def test_ctrl_c_stops_a_distributed_run_with_one_line(image_folder, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    recipe = _recipe(image_folder, iterations=100000, batch_size=2, checkpoint_every=2)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    argv = [sys.executable, "-m", "rimkit", "-q", "train", "r.yaml", "--out", "run", "--nproc", "2"]
    proc = subprocess.Popen(
        argv,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # not a background's
    )
    try:
        deadline = time.time() + 120
        while not (tmp_path / "run" / "last.safetensors").exists() and time.time() < deadline:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the parent and its workers
        status = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = proc.stderr.read()
    assert status == 130, err
    assert "resumes from its last checkpoint: rimkit train --resume run --nproc 2" in err
    assert "Traceback" not in err and "Exception ignored" not in err and "leaked" not in err, err


def test_a_plain_ctrl_c_says_interrupted(monkeypatch, capsys):
    from rimkit import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run_models", interrupted)
    assert cli.main(["models"]) == 130
    assert capsys.readouterr().err == "rimkit: interrupted\n"


def test_bf16_for_a_model_that_is_no_rim_trains_in_fp32_with_a_note(image_folder, tmp_path):
    from rimkit.train import ExperimentConfig, train

    recipe = _recipe(image_folder, iterations=2, precision="bf16")
    recipe["model"] = {"variant": "unrolled", "features": 4, "hidden": 2, "train_steps": 2}
    with pytest.warns(UserWarning, match="UnrolledProximalGradient trains in fp32"):
        train(ExperimentConfig.from_dict(recipe), tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_a_gpu_run_may_continue_on_the_cpu(image_folder, tmp_path, capsys):
    import json

    import yaml

    from rimkit.cli import main
    from rimkit.train import ExperimentConfig, train
    from rimkit.train.checkpoint import read_meta

    run = tmp_path / "run"
    train(ExperimentConfig.from_dict(_recipe(image_folder, iterations=2)), run, progress=False)
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(run / "last.safetensors"), "pt") as handle:  # as scripts/gpu/ trains
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        meta = json.loads(handle.metadata()["meta"])
    meta["config"]["optim"] |= {"device": "cuda", "precision": "bf16"}
    save_file(tensors, str(run / "last.safetensors"), {"meta": json.dumps(meta)})
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["optim"] |= {"device": "cuda", "precision": "bf16"}
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    argv = ["train", "--resume", str(run), "-q", "--set", "optim.iterations=4"]
    status = main([*argv, "--set", "optim.device=cpu", "--set", "optim.precision=fp32"])
    assert status == 0, capsys.readouterr().err
    assert read_meta(run / "last")["iteration"] == 4


def test_a_run_folder_inside_the_training_images_is_refused(image_folder, tmp_path, capsys):
    from rimkit.cli import main
    from rimkit.train import ExperimentConfig, train

    cfg = ExperimentConfig.from_dict(_recipe(image_folder))
    refused = r"is (inside )?the image folder of data.train .* give a run folder outside"
    for out in (image_folder, image_folder / "runs" / "a"):
        with pytest.raises(ValueError, match=refused):
            train(cfg, out, progress=False)
    assert sorted(p.name for p in image_folder.iterdir()) == [f"{i:02d}.png" for i in range(6)]
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(_recipe(image_folder)))
    assert main(["train", str(recipe), "--out", str(image_folder / "run"), "--nproc", "2"]) == 2
    assert "is inside the image folder of data.train" in capsys.readouterr().err
    assert not (image_folder / "run").exists()  # refused before the launcher made the folder
    train(cfg, tmp_path / "beside", stop_after=1, progress=False)  # outside it: trained
