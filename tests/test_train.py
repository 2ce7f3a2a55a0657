"""Training: configs, resumable deterministic runs, checkpoints, non-finite steps, DDP, CLI."""

from __future__ import annotations

import csv
import functools
import json
import math

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from rimkit.cli import main
from rimkit.likelihood import GaussianLikelihood
from rimkit.operators import Identity
from rimkit.train import (
    ExperimentConfig,
    TrainingDiverged,
    apply_overrides,
    join_checkpoint,
    load_checkpoint,
    load_config,
    lr_at,
    split_checkpoint,
    train,
)
from rimkit.train.launch import launch
from rimkit.train.loop import start_from, weights_digest
from rimkit.zoo import load_model


def tiny_config(folder, **optim) -> ExperimentConfig:
    return ExperimentConfig.from_dict(
        {
            "model": {"features": 4, "hidden": 4, "train_steps": 2},
            "data": {
                "train": str(folder),
                "val_images": 2,
                "val_patches": 8,
                "patch_size": 16,
                "stride": 8,
            },
            "tasks": [{"name": "denoise", "sigma": [5, 50]}, {"name": "sr", "scales": [2]}],
            "optim": {
                "iterations": 6,
                "batch_size": 4,
                "val_every": 3,
                "checkpoint_every": 3,
                **optim,
            },
        }
    )


def test_n_iterations_equal_two_halves_with_a_stop_between(image_folder, tmp_path):
    cfg = tiny_config(image_folder)
    whole = train(cfg, tmp_path / "whole", progress=False)
    first = train(cfg, tmp_path / "halves", stop_after=3, progress=False)
    assert first["iteration"] == 3
    second = train(cfg, tmp_path / "halves", resume=True, progress=False)
    assert second["iteration"] == 6
    assert whole["weights_sha256"] == second["weights_sha256"]
    assert whole["val_psnr_per_step"] == second["val_psnr_per_step"]
    log = (tmp_path / "halves" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["1", "2", "3", "4", "5", "6"]


def test_run_folder_holds_config_log_and_checkpoints(image_folder, tmp_path):
    cfg = tiny_config(image_folder)
    meta = train(cfg, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("config.yaml", "log.csv", "last.safetensors", "last.json", "best.json"):
        assert (run / name).is_file(), name
    assert ExperimentConfig.from_dict(yaml.safe_load((run / "config.yaml").read_text())) == cfg
    saved = json.loads((run / "last.json").read_text())
    assert saved["iteration"] == 6 and len(saved["val_psnr_per_step"]) == 2
    assert all(10 < v < 60 for v in meta["val_psnr_per_step"])
    model = cfg.model.build()
    load_checkpoint(run / "last", model)
    assert weights_digest(model) == meta["weights_sha256"]


def test_a_corrupt_checkpoint_is_named_and_kept(image_folder, tmp_path):
    cfg = tiny_config(image_folder)
    train(cfg, tmp_path / "run", stop_after=3, progress=False)
    last = tmp_path / "run" / "last.safetensors"
    last.write_bytes(b"garbage" * 10)
    with pytest.raises(ValueError, match="corrupt"):
        train(cfg, tmp_path / "run", resume=True, progress=False)
    assert last.read_bytes() == b"garbage" * 10


def test_non_finite_steps_are_skipped_then_stop_the_run(image_folder, tmp_path, monkeypatch):
    import rimkit.train.loop as loop

    real = loop.trajectory_loss
    calls = {"n": 0}

    def sometimes_nan(*args, **kwargs):
        calls["n"] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if calls["n"] in (2, 4, 5) else value

    monkeypatch.setattr(loop, "trajectory_loss", sometimes_nan)
    meta = train(tiny_config(image_folder, max_nonfinite=3), tmp_path / "a", progress=False)
    assert meta["skipped"] == 3
    calls["n"] = 0
    with pytest.raises(TrainingDiverged, match="non-finite"):
        train(tiny_config(image_folder, max_nonfinite=2), tmp_path / "b", progress=False)


def test_two_processes_train_in_step(image_folder, tmp_path, capfd):
    cfg = tiny_config(image_folder, iterations=3, batch_size=2, warmup=5)
    meta = launch(cfg, tmp_path / "ddp", nproc=2, progress=False)
    assert meta["world_size"] == 2 and meta["iteration"] == 3
    err = capfd.readouterr().err  # a worker's note: one line, as in a single process
    assert "rimkit train: note: optim.warmup=5 is longer" in err and "UserWarning" not in err
    digests = _rank_digests(cfg, tmp_path / "ddp2")
    assert len(set(digests)) == 1  # every rank holds the same weights after every step
    assert digests[0] == weights_digest(_load(cfg, tmp_path / "ddp"))  # and runs repeat


def test_a_distributed_runs_logged_loss_is_the_mean_of_its_processes():

    cases = [(1.0, True), (4.0, False)]  # rank 1's step was not finite
    results = _two_processes(_mean_worker, cases)
    assert sorted(results) == [(0, 2.5, False), (1, 2.5, False)]


def _mean_worker(rank, port, cases, queue):
    import torch.distributed

    from rimkit.train.distributed import mean_over_processes

    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
    )
    loss, finite = cases[rank]
    mean, all_finite = mean_over_processes(torch.tensor(loss), finite)
    queue.put((rank, float(mean), all_finite))
    torch.distributed.destroy_process_group()


def _load(cfg, run):
    model = cfg.model.build()
    load_checkpoint(run / "last", model)
    return model


def _rank_digests(cfg, out):
    return _two_processes(_digest_worker, cfg, out)


def _two_processes(target, *args):
    """What ``target(rank, port, *args, queue)`` puts in the queue, run as ranks 0 and 1 of a
    two-process group (spawned, as ``rimkit train --nproc 2`` starts its workers)."""
    import torch.multiprocessing as mp

    from rimkit.train.launch import free_port

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=target, args=(r, port, *args, queue)) for r in (0, 1)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def _digest_worker(rank, port, cfg, out, queue):
    import os

    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    queue.put(train(cfg, out, progress=False)["weights_sha256"])


def test_learning_rate_schedules():
    from rimkit.train import OptimConfig

    cosine = OptimConfig(lr=1.0, iterations=100, warmup=10, min_lr_ratio=0.0)
    assert lr_at(cosine, 0) == pytest.approx(0.1)
    assert lr_at(cosine, 10) == pytest.approx(1.0)
    assert lr_at(cosine, 55) == pytest.approx(0.5)
    assert lr_at(cosine, 100) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(OptimConfig(lr=0.3, schedule="constant"), 500) == 0.3


def test_configs_reject_unknown_keys_and_wrong_types(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['lr'\] in config"):
        ExperimentConfig.from_dict({"lr": 1})
    with pytest.raises(ValueError, match=r"optim\.iterations must be an integer"):
        ExperimentConfig.from_dict({"optim": {"iterations": "many"}})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \[.widht.\] in model"):
        ExperimentConfig.from_dict({"model": {"widht": 3}})
    with pytest.raises(ValueError, match="unknown task 'paint'"):
        ExperimentConfig.from_dict({"tasks": [{"name": "paint"}]})
    with pytest.raises(ValueError, match=r"tasks\[0\] \(denoise\).sigma"):
        ExperimentConfig.from_dict({"tasks": [{"name": "denoise", "sigma": "loud"}]})
    with pytest.raises(ValueError, match="unknown key"):
        ExperimentConfig.from_dict({"tasks": [{"name": "denoise", "scale": 2}]})
    with pytest.raises(
        ValueError, match=r"unknown optim\.loss 'huber'; known: mse, l1, ssim, psnr"
    ):
        ExperimentConfig.from_dict({"optim": {"loss": "huber"}})
    with pytest.raises(ValueError, match=r"unknown optim\.step_weights 'last'"):
        ExperimentConfig.from_dict({"optim": {"step_weights": "last"}})
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides({}, ["optim.lr"])
    one_task = {"tasks": [{"name": "denoise"}]}
    assert apply_overrides(one_task, ["tasks.0.name=sr"])["tasks"][0]["name"] == "sr"
    for key in ("tasks.1.name=sr", "tasks.1=sr"):
        with pytest.raises(ValueError, match=r"'1' is no entry of a list of 1 \(entries 0 to 0\)"):
            apply_overrides(one_task, [key])
    path = tmp_path / "c.yaml"
    path.write_text("optim: {iterations: 5}\n")
    assert load_config(path, ["optim.batch_size=8"]).optim.batch_size == 8


def test_every_shipped_recipe_is_a_valid_config():
    from pathlib import Path

    recipes = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert recipes, "configs/ holds no recipes"
    for path in recipes:
        load_config(path)


def test_data_folder_too_small_for_validation_is_named(image_folder, tmp_path):
    cfg = tiny_config(image_folder)
    cfg = ExperimentConfig.from_dict(apply_overrides(cfg.to_dict(), ["data.val_images=6"]))
    with pytest.raises(ValueError, match="too few to hold out"):
        train(cfg, tmp_path / "run", progress=False)


def _cli(capsys, *argv):
    status = main([str(a) for a in argv])
    return status, capsys.readouterr().err


def test_cli_train_and_resume(image_folder, tmp_path, capsys):
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(image_folder).to_dict()))
    out = tmp_path / "run"
    args = ("train", cfg_path, "--out", out, "-q", "--set", "optim.iterations=3")
    assert _cli(capsys, *args)[0] == 0
    status, err = _cli(capsys, *args)
    assert status == 2 and "--resume" in err
    status, _ = _cli(capsys, "train", "--resume", out, "-q", "--set", "optim.iterations=4")
    assert status == 0
    assert json.loads((out / "last.json").read_text())["iteration"] == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train"], "give a CONFIG"),
        (["train", "{missing}"], "does not exist"),
        (["train", "{bad}"], "unknown key"),
        (["train", "--resume", "{empty}"], "nothing to resume"),
        (["train", "{good}", "--set", "data.train={empty}", "--out", "{out}"], "no images"),
        (["train", "{blank}", "--out", "{out}"], "is empty; a config is a mapping of sections"),
        (["train", "{empty}"], "is a folder, not a YAML file"),
        (["train", "{good}", "--out", "{file}"], "is a file; --out must be a folder"),
        (["train", "{good}", "--out", "{file}/run"], "a file; --out must be a folder"),
        (["train", "{good}", "--set", "optim.device=tpu"], "unknown optim.device 'tpu'; give"),
    ],
)
def test_cli_train_bad_input_exits_2(tmp_path, capsys, argv, message):
    (tmp_path / "bad.yaml").write_text("optim: {iterations: 2, speed: 9}\n")
    (tmp_path / "good.yaml").write_text("optim: {iterations: 2}\n")
    (tmp_path / "blank.yaml").write_text("# nothing but a comment\n")
    (tmp_path / "taken.png").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    names = {
        "missing": tmp_path / "missing.yaml",
        "bad": tmp_path / "bad.yaml",
        "good": tmp_path / "good.yaml",
        "blank": tmp_path / "blank.yaml",
        "empty": tmp_path / "empty",
        "file": tmp_path / "taken.png",
        "out": tmp_path / "out",
    }
    status, err = _cli(capsys, *[a.format(**names) for a in argv])
    assert status == 2 and message in err and "Traceback" not in err


def test_cli_resume_of_a_finished_run_says_it_is_complete(image_folder, tmp_path, capsys):
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(image_folder, iterations=3).to_dict()))
    out = tmp_path / "run"
    assert _cli(capsys, "train", cfg_path, "--out", out, "-q")[0] == 0
    assert main(["train", "--resume", str(out)]) == 0
    said = capsys.readouterr().out
    assert "already complete at iteration 3" in said and "--set optim.iterations=N" in said
    assert "None" not in said
    status, err = _cli(capsys, "train", out)  # the run folder given as CONFIG
    assert status == 2 and f"continue it with --resume {out}" in err


def test_an_unknown_device_is_refused_when_the_config_is_read():
    for device in ("tpu", "cuda:x", "gpu"):
        with pytest.raises(ValueError, match=rf"unknown optim\.device '{device}'; give one of cpu"):
            ExperimentConfig.from_dict({"optim": {"device": device}})
    for device in ("cpu", "cuda", "cuda:1", "mps"):  # a GPU recipe loads on any machine
        assert ExperimentConfig.from_dict({"optim": {"device": device}}).optim.device == device


def test_a_device_this_machine_lacks_is_a_usage_error(image_folder, tmp_path, capsys, monkeypatch):
    from rimkit.runtime import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(image_folder).to_dict()))
    for device in ("cuda", "cuda:0", "mps"):
        args = ("train", cfg_path, "--out", tmp_path / "run", "--set", f"optim.device={device}")
        status, err = _cli(capsys, *args)
        assert status == 2 and "internal error" not in err, err
        assert f"optim.device '{device}' is not available here" in err
        assert "use optim.device=cpu" in err
    assert not (tmp_path / "run" / "last.safetensors").exists()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_device("cuda:1")
    with pytest.raises(ValueError, match=r"'cuda:2' is not available here \(2 CUDA device"):
        check_device("cuda:2")
    args = ("train", cfg_path, "--out", tmp_path / "run", "--set", "optim.device=cuda")
    status, err = _cli(capsys, *args, "--nproc", "3")
    assert status == 2 and "--nproc 3 with optim.device=cuda" in err and "this machine has 2" in err


def test_a_data_root_named_but_missing_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    from rimkit.train.config import DataConfig, resolve_data_root

    monkeypatch.chdir(tmp_path)
    (tmp_path / "shared" / "data").mkdir(parents=True)  # the implicit default
    (tmp_path / "mine").mkdir()
    monkeypatch.delenv("RIMKIT_DATA", raising=False)
    assert resolve_data_root(DataConfig()).resolve() == tmp_path / "shared" / "data"
    monkeypatch.setenv("RIMKIT_DATA", str(tmp_path / "nonexist"))
    with pytest.raises(ValueError, match=r"\$RIMKIT_DATA '.*nonexist' does not exist"):
        resolve_data_root(DataConfig())
    monkeypatch.setenv("RIMKIT_DATA", str(tmp_path / "mine"))
    assert resolve_data_root(DataConfig()) == tmp_path / "mine"
    with pytest.raises(ValueError, match=r"data\.root 'typo' does not exist"):
        resolve_data_root(DataConfig(root="typo"))  # not the valid $RIMKIT_DATA instead
    assert resolve_data_root(DataConfig(root="mine")).name == "mine"


def test_cli_train_with_a_missing_rimkit_data_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RIMKIT_DATA", str(tmp_path / "nonexist"))
    (tmp_path / "good.yaml").write_text("optim: {iterations: 2}\n")
    status, err = _cli(capsys, "train", tmp_path / "good.yaml", "--out", tmp_path / "run")
    assert status == 2 and "$RIMKIT_DATA" in err and "nonexist' does not exist" in err


def test_model_weights_change_and_loss_is_logged(image_folder, tmp_path):
    cfg = tiny_config(image_folder)
    torch.manual_seed(cfg.optim.seed)
    before = weights_digest(cfg.model.build())
    meta = train(cfg, tmp_path / "run", progress=False)
    assert meta["weights_sha256"] != before


def test_tensorboard_scalars_are_written_when_asked(image_folder, tmp_path):
    pytest.importorskip("torch.utils.tensorboard", reason="the tensorboard extra is absent")
    cfg = tiny_config(image_folder, iterations=3, tensorboard=True)
    train(cfg, tmp_path / "run", progress=False)
    events = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 100


def test_resume_refuses_another_recipe_but_may_train_longer(image_folder, tmp_path):
    cfg = tiny_config(image_folder)
    train(cfg, tmp_path / "run", stop_after=3, progress=False)
    other = ExperimentConfig.from_dict(apply_overrides(cfg.to_dict(), ["optim.lr=0.01"]))
    with pytest.raises(ValueError, match=r"optim\.lr differ"):
        train(other, tmp_path / "run", resume=True, progress=False)
    longer = ExperimentConfig.from_dict(apply_overrides(cfg.to_dict(), ["optim.iterations=7"]))
    assert train(longer, tmp_path / "run", resume=True, progress=False)["iteration"] == 7


def test_resuming_a_finished_run_returns_what_it_ended_with(image_folder, tmp_path):
    cfg = tiny_config(image_folder, iterations=3)
    first = train(cfg, tmp_path / "run", progress=False)
    again = train(cfg, tmp_path / "run", resume=True, progress=False)
    assert again["iteration"] == 3 and again["val_psnr_final"] == first["val_psnr_final"]
    assert again["weights_sha256"] == first["weights_sha256"]


def test_resume_fills_keys_a_saved_config_predates(image_folder, tmp_path):
    cfg = tiny_config(image_folder)
    train(cfg, tmp_path / "run", stop_after=3, progress=False)
    meta_path = tmp_path / "run" / "last.json"
    meta = json.loads(meta_path.read_text())
    del meta["config"]["optim"]["precision"]  # as written before the key existed
    meta_path.write_text(json.dumps(meta))
    assert train(cfg, tmp_path / "run", resume=True, progress=False)["iteration"] == 6


def test_bf16_precision_autocasts_the_cell_and_keeps_the_estimate_float32(image_folder, tmp_path):
    cfg = tiny_config(image_folder, precision="bf16", iterations=2, val_every=2)
    result = train(cfg, tmp_path / "run", progress=False)
    assert all(math.isfinite(v) for v in result["val_psnr_per_step"])
    rim = cfg.model.build()
    rim.cell_dtype = torch.bfloat16
    seen = []
    rim.cell.register_forward_hook(lambda cell, args, out: seen.append(out[0].dtype))
    x = torch.rand(1, 1, 8, 8)
    out = rim(GaussianLikelihood(Identity(), x, 0.1), x0=x)
    assert seen == [torch.bfloat16] * rim.train_steps
    assert out.final.dtype == torch.float32
    with pytest.raises(ValueError, match=r"unknown optim\.precision"):
        tiny_config(image_folder, precision="fp16")


def test_checkpoint_split_into_pieces_and_joined_resumes_identically(image_folder, tmp_path):
    cfg = tiny_config(image_folder)
    whole = train(cfg, tmp_path / "whole", progress=False)
    train(cfg, tmp_path / "run", stop_after=3, progress=False)
    pieces = split_checkpoint(tmp_path / "run" / "last", tmp_path / "pieces")
    assert [p.name for p in pieces] == [
        "last.model.safetensors",
        "last.optim.exp_avg.safetensors",
        "last.optim.exp_avg_sq.safetensors",
    ]
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("config.yaml", "log.csv"):
        (moved / name).write_bytes((tmp_path / "run" / name).read_bytes())
    join_checkpoint(tmp_path / "pieces", "last", moved / "last")
    assert (
        train(cfg, moved, resume=True, progress=False)["weights_sha256"]
        == (whole["weights_sha256"])
    )
    with pytest.raises(ValueError, match="no checkpoint pieces"):
        join_checkpoint(tmp_path / "pieces", "best", moved / "best")


def test_compact_pieces_hold_the_moments_in_bf16_and_resume(image_folder, tmp_path):
    cfg = tiny_config(image_folder)
    train(cfg, tmp_path / "run", stop_after=3, progress=False)
    stem = tmp_path / "run" / "last"
    pieces = split_checkpoint(stem, tmp_path / "pieces", moments_dtype=torch.bfloat16)
    assert [p.name for p in pieces] == ["last.model.safetensors", "last.optim.safetensors"]
    assert {v.dtype for v in load_file(str(pieces[1])).values()} == {torch.bfloat16}
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("config.yaml", "log.csv"):
        (moved / name).write_bytes((tmp_path / "run" / name).read_bytes())
    join_checkpoint(tmp_path / "pieces", "last", moved / "last")
    before = load_file(str(stem.with_suffix(".safetensors")))
    after = load_file(str(moved / "last.safetensors"))
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert after[key].dtype == value.dtype == torch.float32, key
        if key.startswith("model/"):
            assert torch.equal(after[key], value), key
        else:  # bf16 keeps 8 bits of mantissa
            assert torch.allclose(after[key], value, rtol=2**-8, atol=0), key
    assert train(cfg, moved, resume=True, progress=False)["iteration"] == 6


def test_a_fresh_start_clears_the_old_run(image_folder, tmp_path, capsys):
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(image_folder).to_dict()))
    out = tmp_path / "run"
    assert _cli(capsys, "train", cfg_path, "--out", out, "-q")[0] == 0
    args = ("train", cfg_path, "--out", out, "-q", "--force", "--set", "optim.iterations=3")
    assert _cli(capsys, *args)[0] == 0
    rows = (out / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]
    assert json.loads((out / "last.json").read_text())["iteration"] == 3
    train(tiny_config(image_folder), out, stop_after=2, progress=False, force=True)  # stopped early
    assert not (out / "model.safetensors").exists()  # the finished run's weights are gone
    for name in ("last.safetensors", "last.json"):  # a run with nothing to resume
        (out / name).unlink()
    status, err = _cli(capsys, "train", cfg_path, "--out", out, "-q")
    assert status == 2 and "holds a run (log.csv" in err
    assert "pass --force to start over in it" in err and "--resume" not in err


def test_init_fine_tunes_from_the_weights_of_another_run(image_folder, tmp_path):
    base = tiny_config(image_folder, iterations=3)
    train(base, tmp_path / "base", progress=False)
    tuned = tiny_config(image_folder, iterations=3, init=str(tmp_path / "base"), loss="psnr")
    model = tuned.model.build()
    start_from(model, tuned.optim.init, tuned.model)
    base_weights = load_model(tmp_path / "base").model.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, base_weights[key]), key
    meta = train(tuned, tmp_path / "tuned", progress=False)
    scratch = train(
        tiny_config(image_folder, iterations=3, loss="psnr"), tmp_path / "scratch", progress=False
    )
    assert meta["weights_sha256"] != scratch["weights_sha256"]
    saved = yaml.safe_load((tmp_path / "tuned" / "config.yaml").read_text())
    assert saved["optim"]["init"] == str(tmp_path / "base")
    assert math.isfinite(meta["val_psnr_final"])
    ruined = tiny_config(image_folder, iterations=3, init=str(tmp_path / "base"), lr=10.0)
    train(ruined, tmp_path / "ruined", progress=False)  # a learning rate that ruins it
    with open(tmp_path / "ruined" / "log.csv") as handle:
        log = [r for r in csv.DictReader(handle) if r["val_psnr_final"]]
    best = json.loads((tmp_path / "ruined" / "best.json").read_text())
    assert best["iteration"] == 0 and float(log[0]["val_psnr_final"]) > float(
        log[-1]["val_psnr_final"]
    )
    kept = load_file(tmp_path / "ruined" / "best.safetensors")  # best: the start's weights
    assert all(torch.equal(kept[f"model/{k}"], v) for k, v in base_weights.items())


def test_init_from_another_architecture_is_refused(image_folder, tmp_path):
    train(tiny_config(image_folder, iterations=3), tmp_path / "base", progress=False)
    wider = ExperimentConfig.from_dict(
        apply_overrides(
            tiny_config(image_folder, init=str(tmp_path / "base")).to_dict(), ["model.hidden=6"]
        )
    )
    with pytest.raises(ValueError, match=r"another architecture.*hidden 4 there"):
        train(wider, tmp_path / "wider", progress=False)
    color = ExperimentConfig.from_dict(
        apply_overrides(
            tiny_config(image_folder, init=str(tmp_path / "base")).to_dict(),
            ["model.channels=3", "data.gray=false"],
        )
    )
    with pytest.raises(ValueError, match="channels 1 there, 3 here"):
        train(color, tmp_path / "color", progress=False)
    with pytest.raises(ValueError, match="unknown model"):
        start_from(wider.model.build(), str(tmp_path / "nowhere"), wider.model)


def test_a_gray_run_starts_an_opponent_colour_run(image_folder, tmp_path):
    train(tiny_config(image_folder, iterations=3), tmp_path / "gray", progress=False)
    values = tiny_config(image_folder, iterations=3, init=str(tmp_path / "gray")).to_dict()
    values["tasks"] = [{"name": "denoise", "sigma": [5, 50]}]
    overrides = ["model.channels=3", "model.color=opponent", "data.gray=false"]
    colour = ExperimentConfig.from_dict(apply_overrides(values, overrides))
    meta = train(colour, tmp_path / "colour", progress=False)
    assert math.isfinite(meta["val_psnr_final"])
    loaded = load_model(tmp_path / "colour")
    assert loaded.model.channels == 3 and loaded.model.cell.out_channels == 1
    gray = load_model(tmp_path / "gray").model.state_dict()
    assert gray.keys() == loaded.model.state_dict().keys()
    assert not torch.equal(gray["noise_floor.raw"], loaded.model.state_dict()["noise_floor.raw"])


def _colour_config(image_folder, color: str, **optim) -> ExperimentConfig:
    """A two-iteration colour denoising run with ``model.color`` set to ``color``."""
    values = tiny_config(image_folder, iterations=2, **optim).to_dict()
    values["tasks"] = [{"name": "denoise", "sigma": [5, 50]}]
    overrides = ["model.channels=3", f"model.color={color}", "data.gray=false"]
    return ExperimentConfig.from_dict(apply_overrides(values, overrides))


def test_an_opponent_run_starts_a_guided_run_that_restores_as_it_did(image_folder, tmp_path):
    colour = functools.partial(_colour_config, image_folder)

    train(colour("opponent"), tmp_path / "plain", progress=False)
    plain = load_model(tmp_path / "plain").model
    guided_cfg = colour("opponent-guided", init=str(tmp_path / "plain"))
    guided = guided_cfg.model.build()
    start_from(guided, str(tmp_path / "plain"), guided_cfg.model)
    assert torch.equal(guided.cell.down.weight[:, :2], plain.cell.down.weight)
    assert not guided.cell.down.weight[:, 2].any()  # the guide starts at zero
    y = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    lik = GaussianLikelihood(Identity(), y, 0.1)
    assert torch.allclose(guided(lik, x0=y).final, plain(lik, x0=y).final, atol=1e-6)

    meta = train(guided_cfg, tmp_path / "guided", progress=False)
    assert math.isfinite(meta["val_psnr_final"])
    assert load_model(tmp_path / "guided").model.cell.in_channels == 3
    with pytest.raises(ValueError, match="another architecture"):
        start_from(plain, str(tmp_path / "guided"), colour("opponent").model)


def test_a_one_cell_colour_run_starts_a_split_run_that_restores_as_it_did(image_folder, tmp_path):
    colour = functools.partial(_colour_config, image_folder)

    train(colour("opponent"), tmp_path / "plain", progress=False)
    plain = load_model(tmp_path / "plain").model
    split_cfg = colour("opponent-split", init=str(tmp_path / "plain"))
    split = split_cfg.model.build()
    start_from(split, str(tmp_path / "plain"), split_cfg.model)
    for part in (split.cell.luminance, split.cell.chroma):  # widened for the guide, then copied
        assert torch.equal(part.down.weight[:, :2], plain.cell.down.weight)
        assert not part.down.weight[:, 2].any()
    y = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    lik = GaussianLikelihood(Identity(), y, 0.1)
    assert torch.allclose(split(lik, x0=y).final, plain(lik, x0=y).final, atol=1e-6)

    train(split_cfg, tmp_path / "split", progress=False)
    trained = load_model(tmp_path / "split").model.cell
    assert not torch.equal(trained.luminance.out.weight, trained.chroma.out.weight)
    with pytest.raises(ValueError, match="another architecture"):
        start_from(plain, str(tmp_path / "split"), colour("opponent").model)


def test_weight_average_is_what_validates_and_ships_and_resumes_exactly(image_folder, tmp_path):
    cfg = tiny_config(image_folder, ema=0.9)
    whole = train(cfg, tmp_path / "whole", progress=False)
    train(cfg, tmp_path / "halves", stop_after=3, progress=False)
    pieces = split_checkpoint(tmp_path / "halves" / "last", tmp_path / "pieces")
    assert pieces[-1].name == "last.ema.safetensors"
    halves = train(cfg, tmp_path / "halves", resume=True, progress=False)
    assert halves["weights_sha256"] == whole["weights_sha256"]
    assert halves["val_psnr_per_step"] == whole["val_psnr_per_step"]

    shipped = load_model(tmp_path / "whole").model
    assert weights_digest(shipped) == whole["weights_sha256"]
    raw = cfg.model.build()
    load_checkpoint(tmp_path / "whole" / "last", raw)
    assert weights_digest(raw) != whole["weights_sha256"]  # the average, not the last step


def test_weight_average_follows_its_formula_and_tiny_decay_is_the_plain_run(image_folder, tmp_path):
    from rimkit.train.loop import weight_average

    net = torch.nn.Linear(2, 1)
    average = weight_average(net, 0.75)
    expected = [p.detach().clone() for p in net.parameters()]
    for _ in range(4):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        average.update_parameters(net)
        if average.n_averaged.item() == 1:
            expected = [p.detach().clone() for p in net.parameters()]
        else:
            pairs = zip(expected, net.parameters(), strict=True)
            expected = [0.75 * e + 0.25 * p.detach() for e, p in pairs]
    for e, p in zip(expected, average.module.parameters(), strict=True):
        torch.testing.assert_close(p, e)
    assert weight_average(net, 0.0) is None

    plain = train(tiny_config(image_folder), tmp_path / "plain", progress=False)
    tiny = train(tiny_config(image_folder, ema=1e-9), tmp_path / "tiny", progress=False)
    for a, b in zip(
        load_model(tmp_path / "plain").model.parameters(),
        load_model(tmp_path / "tiny").model.parameters(),
        strict=True,
    ):
        torch.testing.assert_close(a, b)
    assert plain["val_psnr_final"] == pytest.approx(tiny["val_psnr_final"], abs=1e-3)


@pytest.mark.parametrize("decay", [1.0, -0.1])
def test_weight_average_decay_outside_its_range_is_refused(image_folder, decay):
    with pytest.raises(ValueError, match=r"optim\.ema must be in \[0, 1\)"):
        tiny_config(image_folder, ema=decay)


def test_resuming_a_plain_run_with_a_weight_average_names_the_change(image_folder, tmp_path):
    train(tiny_config(image_folder), tmp_path / "run", stop_after=3, progress=False)
    with pytest.raises(ValueError, match=r"optim\.ema differ"):
        train(tiny_config(image_folder, ema=0.9), tmp_path / "run", resume=True, progress=False)


def test_max_train_steps_unrolls_a_seeded_number_of_steps_in_its_range(
    image_folder, tmp_path, monkeypatch
):
    import rimkit.train.loop as loop

    cfg = tiny_config(image_folder, max_train_steps=5, iterations=4, val_every=2)
    draws = [loop.unrolled_steps(cfg, it) for it in range(200)]
    assert set(draws) == {2, 3, 4, 5}
    assert draws == [loop.unrolled_steps(cfg, it) for it in range(200)]
    assert {loop.unrolled_steps(tiny_config(image_folder), it) for it in range(20)} == {2}

    lengths = []
    real = loop.trajectory_loss

    def record(traj, *args, **kwargs):
        lengths.append(len(traj.estimates))
        return real(traj, *args, **kwargs)

    monkeypatch.setattr(loop, "trajectory_loss", record)
    meta = train(cfg, tmp_path / "run", progress=False)
    assert lengths == draws[:4]
    assert len(meta["val_psnr_per_step"]) == 2  # validation runs the model's own T
    with pytest.raises(ValueError, match=r"max_train_steps \(1\) is below model\.train_steps"):
        tiny_config(image_folder, max_train_steps=1)


def test_a_run_resumes_from_another_folder_told_where_its_images_now_lie(
    image_folder, tmp_path, capsys, monkeypatch
):
    (tmp_path / "mine").symlink_to(image_folder, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RIMKIT_DATA", raising=False)
    cfg = ExperimentConfig.from_dict(
        apply_overrides(tiny_config(image_folder, iterations=3).to_dict(), ["data.train=mine"])
    )
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    out = tmp_path / "run"
    assert _cli(capsys, "train", "mine.yaml", "--out", out, "-q")[0] == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["train"] == "mine"

    elsewhere = tmp_path / "elsewhere"  # another folder, or machine, without ./mine
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    status, err = _cli(capsys, "train", "--resume", out, "-q", "--set", "optim.iterations=5")
    assert status == 2 and f"'mine' is not in {str(elsewhere)!r} and no data folder found" in err
    moved = ["--set", "optim.iterations=5", "--set", f"data.train={image_folder}"]
    resumed = _cli(capsys, "train", "--resume", out, "-q", *moved)
    assert resumed[0] == 0, resumed
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["optim"]["iterations"] == 5 and saved["data"]["train"] == str(image_folder)
    assert main(["train", "--resume", str(out)]) == 0
    assert "already complete at iteration 5 (optim.iterations=5)" in capsys.readouterr().out


def test_a_missing_data_folder_is_named_when_no_data_root_is_found(tmp_path, monkeypatch):
    from rimkit.train.config import resolve_folder

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RIMKIT_DATA", raising=False)
    data = ExperimentConfig.from_dict({}).data
    with pytest.raises(ValueError, match=r"'imgz' is not in .* and no data folder found"):
        resolve_folder(data, "imgz")


def test_an_image_smaller_than_the_patch_names_the_config_entry(image_folder, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(small / "tiny.png")
    cfg = tiny_config(image_folder).to_dict()
    cfg = ExperimentConfig.from_dict(apply_overrides(cfg, [f"data.val={small}"]))
    match = r"1 image\(s\) in '.*small' are smaller than data.patch_size 16: tiny.png \(10x10\)"
    with pytest.raises(ValueError, match=match):
        train(cfg, tmp_path / "run", progress=False)


def test_eval_of_a_run_folder_names_the_weights_and_their_iteration(image_folder, tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_config(image_folder, iterations=3), out, progress=False)
    argv = ["eval", "--model", str(out), "--task", "denoise", "--data", str(image_folder)]
    argv += ["--sigma", "25", "--baselines", "none", "--limit", "1", "--out", str(tmp_path / "e")]
    assert main([*argv, "--quiet"]) == 0, capsys.readouterr().err
    summary = (tmp_path / "e" / "summary.md").read_text()
    assert f"RIM weights: {out / 'model.safetensors'} (iteration 3)" in summary


def test_a_warmup_longer_than_the_run_gets_a_note(image_folder, tmp_path):
    with pytest.warns(UserWarning, match=r"optim\.warmup=4 is longer than optim\.iterations=3"):
        train(tiny_config(image_folder, iterations=3, warmup=4), tmp_path / "run", progress=False)


def test_sigterm_to_the_launcher_stops_its_workers(image_folder, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    recipe = tiny_config(image_folder, iterations=100000, val_every=50000, checkpoint_every=5)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe.to_dict()))
    command = [sys.executable, "-m", "rimkit", "train", str(tmp_path / "r.yaml"), "--out", str(run)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen([*command, "--nproc", "2", "-q"], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (run / "last.json").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert (run / "last.json").exists(), "the workers never checkpointed"
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=60) == 130
        size = (run / "log.csv").stat().st_size
        time.sleep(3)
        assert (run / "log.csv").stat().st_size == size  # no orphaned worker trains on
        assert b"--resume" in launcher.stderr.read()
    finally:
        launcher.kill()


def test_a_launch_with_a_missing_init_fails_before_any_worker_or_folder(image_folder, tmp_path):
    cfg = tiny_config(image_folder, init=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"optim.init: unknown model"):
        launch(cfg, tmp_path / "run", nproc=2, progress=False)
    assert not (tmp_path / "run").exists()


def test_a_run_folder_being_trained_is_refused_to_a_second_run(image_folder, tmp_path):
    from rimkit.train.loop import run_lock

    cfg = tiny_config(image_folder, iterations=4)
    train(cfg, tmp_path / "run", stop_after=2, progress=False)
    with run_lock(tmp_path / "run"):  # as a run in another process holds it
        with pytest.raises(ValueError, match=r"is being trained by another process \(PID \d+\)"):
            train(cfg, tmp_path / "run", resume=True, progress=False)
        with pytest.raises(ValueError, match=r"is being trained by another process"):
            launch(cfg, tmp_path / "run", resume=True, nproc=2, progress=False)
    train(cfg, tmp_path / "run", resume=True, progress=False)  # free again
    assert not (tmp_path / "run" / ".lock").exists()


def test_fit_weight_adds_the_measurement_fit_of_each_batchs_operator(
    image_folder, tmp_path, monkeypatch
):
    import rimkit.train.loop as loop

    calls = []
    real = loop.measurement_fit_loss

    def record(traj, operator, target, weights):
        calls.append((len(traj.estimates), type(operator).__name__, weights))
        return real(traj, operator, target, weights)

    monkeypatch.setattr(loop, "measurement_fit_loss", record)
    train(tiny_config(image_folder), tmp_path / "plain", progress=False)
    assert calls == []
    meta = train(tiny_config(image_folder, fit_weight=2.0), tmp_path / "fit", progress=False)
    assert len(calls) == 6 and {c[0] for c in calls} == {2} and {c[2] for c in calls} == {"uniform"}
    assert {c[1] for c in calls} <= {"Identity", "BicubicDownsample"}
    assert math.isfinite(meta["val_psnr_per_step"][-1])
    with open(tmp_path / "fit" / "log.csv") as handle:
        losses = [float(r["loss"]) for r in csv.DictReader(handle) if r["loss"]]
    with open(tmp_path / "plain" / "log.csv") as handle:
        plain = [float(r["loss"]) for r in csv.DictReader(handle) if r["loss"]]
    assert losses[0] > plain[0]  # same seed, same first batch and weights: the fit term on top
