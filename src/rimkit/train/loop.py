"""The training loop: back-propagation through time on patches, validation, checkpoints.

Each iteration ``i`` draws its batch and its measurement from generators seeded by
``(seed, i, rank)`` only, so a resumed run repeats exactly the batches and noise draws it
would have seen without the stop. Under ``torchrun`` (or ``rimkit train --nproc N``) the model
is wrapped in DistributedDataParallel (gloo on CPU, nccl on GPU); each process trains on its
own shard of every global batch and only rank 0 validates, logs and writes checkpoints.

Files in the run folder: ``config.yaml`` (the resolved config), ``log.csv`` (every metric of
every iteration), ``last.safetensors``/``last.json`` and ``best.safetensors``/``best.json``
(see :mod:`rimkit.train.checkpoint`) and, at the end, ``model.safetensors`` (weights alone).
With ``optim.ema`` the loop keeps a moving average of the weights beside them: it is what
validation scores, ``best`` holds and ``model.safetensors`` ships; ``last`` holds both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from rimkit.data import PatchSampler, seeded
from rimkit.evaluate.metrics import psnr_per_sample
from rimkit.models import RIM, measurement_fit_loss, trajectory_loss
from rimkit.operators import magnitude
from rimkit.precision import apply_precision
from rimkit.tasks import Measurement, Task
from rimkit.train.checkpoint import (
    export_weights,
    read_meta,
    save_checkpoint,
    weights_digest,
)
from rimkit.train.config import (
    ExperimentConfig,
    build_tasks,
)
from rimkit.train.data import (
    check_data,
    load_patches,
    pixels_digest,
    refuse_run_inside_data,
)
from rimkit.train.distributed import Distributed, mean_over_processes, setup_process
from rimkit.train.run_folder import (
    LOCKED_BY_LAUNCHER,
    check_same_data,
    check_same_recipe,
    clear_run,
    refuse_existing_run,
    restore_last,
    run_files,
    run_lock,
)
from rimkit.train.runlog import CsvLog, check_tensorboard, progress_bar
from rimkit.train.schedule import lr_at, unrolled_steps
from rimkit.train.warm_start import load_init, start_from
from rimkit.writing import atomic_write

__all__ = [  # with names of the modules split from this one, still importable from here
    "LOCKED_BY_LAUNCHER",
    "StopRequest",
    "TrainingDiverged",
    "TrainingInterrupted",
    "check_data",
    "check_same_recipe",
    "check_tensorboard",
    "load_init",
    "lr_at",
    "psnr_per_step",
    "run_files",
    "run_lock",
    "start_from",
    "train",
    "unrolled_steps",
    "validate",
    "weight_average",
    "weights_digest",
]


class TrainingDiverged(RuntimeError):
    """Too many iterations had a non-finite loss or gradient."""


def psnr_per_step(estimates: list[Tensor], target: Tensor, complex_images: bool = False) -> Tensor:
    """PSNR (peak 1) of every estimate, per sample: ``(T, B)``; estimates clipped to [0, 1].

    ``complex_images``: images held as two channels (real, imaginary; MRI) are scored by their
    magnitudes, as the evaluation scores them (their parts may be negative).

    Example:
        >>> target = torch.full((2, 1, 4, 4), 0.5)
        >>> psnr_per_step([target + 0.1, target + 0.01], target).round().tolist()
        [[20.0, 20.0], [40.0, 40.0]]
    """
    if complex_images:
        estimates, target = [magnitude(x) for x in estimates], magnitude(target)
    return torch.stack([psnr_per_sample(x, target) for x in estimates])


@torch.no_grad()
def validate(
    model: RIM, patches: Tensor, task: Task, seed: int, steps: int, batch_size: int
) -> Tensor:
    """Mean PSNR at every step ``t`` over fixed validation patches and fixed task draws. A
    mixture's tasks of positive weight take the batches in turn, so each is validated (the
    batches made smaller where there would be fewer than tasks)."""
    was_training = model.training
    model.eval()
    scores = []
    weights = getattr(task, "weights", [1.0])
    picks = [i for i, w in enumerate(weights) if w > 0] if len(weights) > 1 else [None]
    batch_size = min(batch_size, max(1, math.ceil(len(patches) / len(picks))))
    for k, start in enumerate(range(0, len(patches), batch_size)):
        x = patches[start : start + batch_size]
        pick = picks[k % len(picks)]
        generator = seeded(seed, 10**9 + k)
        m = task.sample(x, generator) if pick is None else task.sample(x, generator, pick=pick)
        traj = model(m.likelihood(), x0=m.x0, steps=steps)
        scores.append(psnr_per_step(traj.estimates, m.target, complex_images=m.name == "mri"))
    model.train(was_training)
    return torch.cat(scores, dim=1).mean(dim=1)  # (T,)


def train(
    cfg: ExperimentConfig,
    out_dir: str | os.PathLike,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Train ``cfg`` into ``out_dir``; with ``resume`` continue from ``out_dir/last``.

    ``cfg`` is checked first as :meth:`ExperimentConfig.from_dict` checks a YAML recipe. A
    folder that already holds a run is refused unless ``resume`` continues it or ``force``
    starts over in it (removing the old run's files). ``stop_after`` ends the run (with a
    checkpoint) after that many iterations in total, as a kill right after a checkpoint would.
    Returns the final metadata. The caller's thread count and random state are as they were
    afterwards (the run seeds its own from ``optim.seed``).
    """
    threads = torch.get_num_threads()
    try:
        with torch.random.fork_rng(devices=_rng_devices(cfg)), contextlib.ExitStack() as held:
            return _train(cfg, out_dir, resume, stop_after, progress, force=force, held=held)
    finally:
        torch.set_num_threads(threads)


def _rng_devices(cfg: Any) -> list[int]:
    """The CUDA device a recipe (an :class:`ExperimentConfig`, or anything :func:`train`
    refuses) trains on, where this machine has it (one it lacks :func:`train` refuses)."""
    device = getattr(getattr(cfg, "optim", None), "device", "cpu")
    if not (isinstance(device, str) and device.startswith("cuda") and torch.cuda.is_available()):
        return []
    try:
        index = torch.device(device).index or 0
    except RuntimeError:
        return []
    return [index] if index < torch.cuda.device_count() else []


def _train(
    cfg: ExperimentConfig,
    out_dir: str | os.PathLike,
    resume: bool,
    stop_after: int | None,
    progress: bool,
    *,
    force: bool,
    held: contextlib.ExitStack,
) -> dict[str, Any]:
    """:func:`train`, which keeps the caller's threads and random state around it and closes
    ``held`` (the run's lock) after it."""
    if not isinstance(cfg, ExperimentConfig):
        raise TypeError(
            f"train takes an ExperimentConfig (e.g. load_config(path)), got {type(cfg).__name__}"
        )
    cfg.check()
    check_tensorboard(cfg)
    dist = Distributed.from_env()
    out = Path(out_dir)
    if not resume and not force:
        refuse_existing_run(out)
    if not resume:
        refuse_run_inside_data(cfg, out)
    optim_cfg = cfg.optim
    if dist.main and optim_cfg.warmup > optim_cfg.iterations:
        warnings.warn(
            f"optim.warmup={optim_cfg.warmup} is longer than optim.iterations="
            f"{optim_cfg.iterations}: the learning rate never reaches optim.lr",
            UserWarning,
            stacklevel=3,
        )
    device = setup_process(optim_cfg, dist)
    torch.manual_seed(optim_cfg.seed)
    model_cfg = dataclasses.replace(cfg.model, check_finite=False)
    model = model_cfg.build().to(device)
    if optim_cfg.init and not resume:
        start_from(model, optim_cfg.init, cfg.model)
    if optim_cfg.precision == "bf16" and not isinstance(model, RIM):
        warnings.warn(
            f"optim.precision bf16 runs a RIM's cell under autocast; this "
            f"{type(model).__name__} trains in fp32",
            UserWarning,
            stacklevel=3,
        )
    elif optim_cfg.precision == "bf16":
        apply_precision(model, "bf16", device, "optim.precision")
    optimizer = torch.optim.Adam(
        model.parameters(), lr=optim_cfg.lr, weight_decay=optim_cfg.weight_decay
    )
    task = build_tasks(cfg.tasks)
    patches, val_x = load_patches(cfg)
    val_x = val_x.to(device)  # (N, C, P, P), on the model's device for every validation
    sampler = PatchSampler(
        patches, optim_cfg.batch_size, optim_cfg.seed, rank=dist.rank, world=dist.world
    )
    val_steps = optim_cfg.val_steps or cfg.model.train_steps

    average = weight_average(model, optim_cfg.ema)
    scored = model if average is None else average.module  # what validates and ships
    start, best, skipped = 0, -math.inf, 0
    val_scores: list[float] = []
    sizes = {
        "train_patches": len(patches),
        "val_patches": len(val_x),
        "train_digest": pixels_digest(patches.images),
        "val_digest": pixels_digest([val_x.cpu().numpy()]),
    }
    locks = dist.main and os.environ.get(LOCKED_BY_LAUNCHER) != "1"
    if resume and locks and out.is_dir():
        held.enter_context(run_lock(out))
    if resume:
        last = read_meta(out / "last") if (out / "last.safetensors").exists() else {}
        if last:  # a changed data key: the recipe's, said so before the images are compared
            check_same_recipe(out, cfg, last)
        check_same_data(out, sizes, last)
        start, skipped, val_scores, best = restore_last(out, model, optimizer, average, last)
        if dist.main and start < optim_cfg.iterations:  # the old final weights are stale now
            (out / "model.safetensors").unlink(missing_ok=True)
    elif dist.main:
        out.mkdir(parents=True, exist_ok=True)
        if locks:
            held.enter_context(run_lock(out))
        clear_run(out)
    if dist.main:  # a resumed run's config.yaml takes its new optim.iterations
        text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
        atomic_write(out / "config.yaml", lambda tmp: Path(tmp).write_text(text))

    net: nn.Module = model
    if dist.world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    columns = ["iteration", "epoch", "loss", "grad_norm", "lr", "patches_per_s", "skipped"]
    columns += ["val_psnr_final"] + [f"val_psnr_t{t}" for t in range(1, val_steps + 1)]
    log = CsvLog(out / "log.csv", columns, optim_cfg.tensorboard) if dist.main else None
    if log is not None and resume:
        log.truncate_after(start)

    if log is not None and optim_cfg.init and not resume:  # where the fine-tune starts from
        curve = validate(scored, val_x, task, optim_cfg.seed, val_steps, optim_cfg.batch_size * 4)
        start_scores = [round(float(v), 4) for v in curve]
        log.write(
            {"iteration": 0, "val_psnr_final": start_scores[-1]}
            | {f"val_psnr_t{t}": v for t, v in enumerate(start_scores, 1)}
        )
        best = start_scores[-1]  # a fine-tune's best beats its start, or is its start
        start_meta = {"iteration": 0, "skipped": 0, "config": cfg.to_dict()}
        start_meta |= {"val_psnr_per_step": start_scores, "val_psnr_final": best}
        save_checkpoint(out / "best", scored, None, start_meta | {"world_size": dist.world})
    end = optim_cfg.iterations if stop_after is None else min(stop_after, optim_cfg.iterations)
    bar = progress_bar(start, optim_cfg.iterations, progress and dist.main)
    meta: dict[str, Any] = {}
    model.train()
    with StopRequest(active=dist.world == 1) as stop:
        for it in range(start, end):
            tic = time.perf_counter()
            lr = lr_at(optim_cfg, it)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = sampler.batch(it).to(device)  # (B, C, P, P)
            m = task.sample(x, seeded(optim_cfg.seed, it, dist.rank, 2))
            steps = unrolled_steps(cfg, it)
            loss, grad_norm, finite = _backward(
                net, model, optimizer, m, steps, cfg, dist.world > 1
            )
            if finite:
                optimizer.step()
                if average is not None:
                    average.update_parameters(model)
            else:
                skipped += 1
                if skipped > optim_cfg.max_nonfinite:
                    raise TrainingDiverged(
                        f"{skipped} iterations had a non-finite loss or gradient (the last at "
                        f"iteration {it + 1}); lower optim.lr or optim.clip_grad, or check the data"
                    )
            done = it + 1
            row: dict[str, Any] = {
                "iteration": done,
                "epoch": sampler.epoch_of(done),
                "loss": float(loss.detach()),
                "grad_norm": float(grad_norm),
                "lr": lr,
                "patches_per_s": optim_cfg.batch_size * dist.world / (time.perf_counter() - tic),
                "skipped": skipped,
            }
            at_val = done % optim_cfg.val_every == 0 or done == optim_cfg.iterations
            at_ckpt = done % optim_cfg.checkpoint_every == 0 or done == end
            if dist.main and at_val:
                curve = validate(
                    scored, val_x, task, optim_cfg.seed, val_steps, optim_cfg.batch_size * 4
                )
                val_scores = [round(float(v), 4) for v in curve]
                row["val_psnr_final"] = val_scores[-1]
                row.update({f"val_psnr_t{t}": v for t, v in enumerate(val_scores, 1)})
            meta = {
                "iteration": done,
                "skipped": skipped,
                "config": cfg.to_dict(),
                "val_psnr_per_step": val_scores,
                "val_psnr_final": val_scores[-1] if val_scores else None,
                "world_size": dist.world,
                "data": sizes,
            }
            if dist.main:
                log.write(row)
                if at_val and val_scores and val_scores[-1] > best:
                    best = val_scores[-1]
                    save_checkpoint(out / "best", scored, None, meta)
                if at_ckpt:
                    save_checkpoint(out / "last", model, optimizer, meta, average)
                bar.set_postfix(
                    loss=f"{row['loss']:.4g}",
                    val=meta["val_psnr_final"],
                    pps=f"{row['patches_per_s']:.0f}",
                )
                bar.update(1)
            if stop.requested and done < end:  # Ctrl-C: the iteration under way, now saved
                if dist.main and not at_ckpt:
                    save_checkpoint(out / "last", model, optimizer, meta, average)
                bar.close()
                raise TrainingInterrupted(done, out)
    bar.close()
    if not meta and resume and start >= end:  # a finished run resumed: what it ended with
        meta = read_meta(out / "last")
    if meta:
        meta["weights_sha256"] = weights_digest(scored)
    if dist.main and end == optim_cfg.iterations and meta:
        export_weights(out / "model.safetensors", scored, {"config": cfg.to_dict(), **meta})
    return meta


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the run was saved at ``iteration``; its message says how
    to continue."""

    def __init__(self, iteration: int, out: Path) -> None:
        super().__init__(
            f"interrupted; the run in {str(out)!r} is saved at iteration {iteration}: continue it "
            f"with rimkit train --resume {out} (Python: train(cfg, out, resume=True))"
        )
        self.iteration = iteration


class StopRequest:
    """While active (one process, the main thread), a first Ctrl-C (SIGINT) or SIGTERM (what
    ``timeout``, ``kill`` and cluster schedulers send) asks the training loop to stop after the
    iteration under way, which it saves (:class:`TrainingInterrupted`); a second stops at once.
    A signal the process ignores stays ignored (a background job ignores Ctrl-C). A distributed
    run stops at once, as before (its processes could stop at different iterations), and
    resumes from its last checkpoint.

    Example:
        >>> with StopRequest(active=False) as stop:
        ...     stop.requested
        False
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, active: bool = True) -> None:
        self.active = active and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        again = "Ctrl-C again" if signum == signal.SIGINT else "the signal again"
        print(
            f"\nstopping after this iteration, which is saved ({again} to stop now)",
            file=sys.stderr,
        )

    def __enter__(self) -> StopRequest:
        if self.active:
            for signum in self.SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
        self.active = bool(self._previous)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def weight_average(model: nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights (``None`` when ``decay`` is 0).

    Its ``module`` starts as a copy of ``model``; ``update_parameters(model)`` after each step
    sets ``w_avg <- decay * w_avg + (1 - decay) * w``.

    Example:
        >>> net = torch.nn.Linear(1, 1, bias=False)
        >>> avg = weight_average(net, 0.5)
        >>> _ = net.weight.data.fill_(1.0); avg.update_parameters(net)  # first: a copy
        >>> _ = net.weight.data.fill_(3.0); avg.update_parameters(net)
        >>> avg.module.weight.item()
        2.0
    """
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _backward(
    net: nn.Module,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    m: Measurement,
    steps: int,
    cfg: ExperimentConfig,
    distributed: bool,
) -> tuple[Tensor, Tensor, bool]:
    """Loss over a trajectory of ``steps``, its gradients (clipped), and whether all are finite.

    In a distributed run the loss returned is the mean over the processes (what the log shows)
    and "finite" holds on every process or on none, so they all skip an iteration together.
    """
    optim = cfg.optim
    traj = net(m.likelihood(), x0=m.x0, steps=steps)
    loss = trajectory_loss(traj, m.target, optim.step_weights, optim.loss)
    if optim.fit_weight:
        fit = measurement_fit_loss(traj, m.operator, m.target, optim.step_weights)
        loss = loss + optim.fit_weight * fit
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), optim.clip_grad)
    finite = torch.isfinite(loss) & torch.isfinite(grad_norm)  # on the device: no sync yet
    if distributed:
        mean_loss, all_finite = mean_over_processes(loss.detach(), finite)
        return mean_loss, grad_norm, all_finite
    return loss, grad_norm, bool(finite)
