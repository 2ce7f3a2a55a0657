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
import csv
import dataclasses
import hashlib
import math
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from rimkit.data import ImageFolder, PatchSampler, PatchSet, list_images, seeded, validation_patches
from rimkit.data.volumes import (
    fastmri_folder,
    is_volume_file,
    read_volume,
    volume_axes,
    volume_slices,
)
from rimkit.io import atomic_write
from rimkit.models import RIM, RIMConfig, trajectory_loss
from rimkit.models.opponent import SplitOpponentColorRIM
from rimkit.models.utils import load_widened
from rimkit.operators import magnitude
from rimkit.runtime import check_device
from rimkit.tasks import Measurement, Task
from rimkit.train.checkpoint import export_weights, load_checkpoint, read_meta, save_checkpoint
from rimkit.train.config import (
    DataConfig,
    ExperimentConfig,
    OptimConfig,
    build_tasks,
    resolve_data_root,
    resolve_folder,
)
from rimkit.zoo import load_model


class TrainingDiverged(RuntimeError):
    """Too many iterations had a non-finite loss or gradient."""


def lr_at(optim: OptimConfig, iteration: int) -> float:
    """Learning rate at ``iteration``: linear warm-up, then constant, cosine or step decay."""
    if iteration < optim.warmup:
        return optim.lr * (iteration + 1) / optim.warmup
    progress = (iteration - optim.warmup) / max(1, optim.iterations - optim.warmup)
    floor = optim.min_lr_ratio
    if optim.schedule == "cosine":
        return optim.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1))))
    if optim.schedule == "step":
        return optim.lr * (0.1 ** int(progress * 3 // 1) if progress < 1 else 0.001)
    return optim.lr


def psnr_per_step(estimates: list[Tensor], target: Tensor, complex_images: bool = False) -> Tensor:
    """PSNR (peak 1) of every estimate, per sample: ``(T, B)``; estimates clipped to [0, 1].

    ``complex_images``: images held as two channels (real, imaginary; MRI) are scored by their
    magnitudes, as the evaluation scores them (their parts may be negative).
    """
    if complex_images:
        estimates, target = [magnitude(x) for x in estimates], magnitude(target)
    mse = torch.stack([(x.clamp(0, 1) - target).pow(2).flatten(1).mean(1) for x in estimates])
    return -10 * torch.log10(mse.clamp_min(1e-12))


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


@dataclasses.dataclass
class Distributed:
    """This process's place in a distributed run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        return self.rank == 0


def check_data(cfg: ExperimentConfig) -> None:
    """Fail early, with the usual message, when a data folder or volume is missing or empty."""
    for source in (*_sources(cfg.data.train), cfg.data.val):
        if source is None:
            continue
        path = resolve_folder(cfg.data, source)
        volumes = [path] if is_volume_file(path) else fastmri_folder(path)
        for volume in volumes or []:
            read_volume(volume)
        if not volumes:
            list_images(path)


def _sources(train: str | tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(train, str):
        return (train,)
    if not train:
        raise ValueError("data.train is an empty list; give a folder of images or a volume file")
    return tuple(train)


def _same_folder(data: DataConfig, source: str, others: tuple[str, ...]) -> bool:
    """Whether ``source`` names the folder of one of ``others``, or one inside it, however
    the paths are written (``imgs/``, ``./imgs``, absolute, in the data root)."""
    try:
        folder = resolve_folder(data, source).resolve()
        return any(
            resolve_folder(data, other).resolve() in (folder, *folder.parents) for other in others
        )
    except (ValueError, OSError):
        return source in others


def _warn_if_eval_set(data: DataConfig, source: str, key: str) -> None:
    """A note where a training or validation source lies in the data root's ``eval/`` folder,
    which holds the benchmark sets (``../shared/data``'s layout): scores on them would then
    measure images the run has seen."""
    try:
        root = resolve_data_root(data).resolve()
        folder = resolve_folder(data, source).resolve()
    except (ValueError, OSError):
        return
    if root / "eval" in (folder, *folder.parents):
        warnings.warn(
            f"{key} {source!r} is an evaluation set (in the data root's eval/ folder): the "
            "benchmarks then score images this run has seen; train and validate on train/",
            UserWarning,
            stacklevel=5,
        )


def _source_images(data: DataConfig, source: str) -> list[np.ndarray]:
    """The uint8 (or uint16) ``(C, H, W)`` images of a folder, or the 2-D slices of a volume
    file or of a folder of fastMRI files (their reference images)."""
    path = resolve_folder(data, source)
    if is_volume_file(path):
        return volume_slices(path, volume_axes(path))
    files = fastmri_folder(path)
    if files:
        return [plane for f in files for plane in volume_slices(f, volume_axes(f))]
    folder = ImageFolder(path, gray=data.gray)
    small = [
        f"{f.name} ({img.shape[1]}x{img.shape[2]})"
        for f, img in zip(folder.files, folder.images, strict=True)
        if min(img.shape[1:]) < data.patch_size
    ]
    if small:
        names = ", ".join(small[:3]) + (", ..." if len(small) > 3 else "")
        raise ValueError(
            f"{len(small)} image(s) in {source!r} are smaller than data.patch_size "
            f"{data.patch_size}: {names}; leave them out or lower data.patch_size"
        )
    return folder.images


def _load_patches(cfg: ExperimentConfig) -> tuple[PatchSet, Tensor]:
    data = cfg.data
    first, *others = _sources(data.train)
    for source in _sources(data.train):
        _warn_if_eval_set(data, source, "data.train")
    if data.val is not None:
        _warn_if_eval_set(data, data.val, "data.val")
    images = _source_images(data, first)
    if data.val is not None:
        if _same_folder(data, data.val, _sources(data.train)):
            warnings.warn(
                f"data.val {data.val!r} is one of the training sources: validation then scores "
                "images the model trains on; give held-out images",
                UserWarning,
                stacklevel=4,
            )
        train, val = images, _source_images(data, data.val)
    else:
        if len(images) <= data.val_images or data.val_images < 1:
            raise ValueError(
                f"{len(images)} image(s) in {first!r}: too few to hold out "
                f"data.val_images={data.val_images} for validation and train on the rest"
            )
        train, val = images[: -data.val_images], images[-data.val_images :]
    for source in others:
        train = train + _source_images(data, source)
    if len({img.shape[0] for img in train + val}) > 1:
        raise ValueError(
            f"the sources {list(_sources(data.train))} mix gray and colour images; "
            "set data.gray to convert them"
        )
    channels = train[0].shape[0]
    if channels != cfg.model.channels and not _is_mri(cfg):
        raise ValueError(
            f"the images have {channels} channel(s) but model.channels is "
            f"{cfg.model.channels}; set data.gray accordingly"
        )
    val_source = f"data.val {data.val!r}" if data.val is not None else f"data.train {first!r}"
    patches = _patch_set(train, data.patch_size, data.stride, f"data.train {data.train!r}")
    val_set = _patch_set(val, data.patch_size, data.patch_size, val_source)
    if len(val_set) < data.val_patches:
        warnings.warn(
            f"data.val_patches is {data.val_patches}, but the validation images ({val_source}) "
            f"hold {len(val_set)} non-overlapping patches: it validates on those; hold out more "
            "images (data.val_images) or give data.val_patches <= that",
            UserWarning,
            stacklevel=4,
        )
    return patches, validation_patches(val_set, data.val_patches, cfg.optim.seed)


def _patch_set(images: list[np.ndarray], size: int, stride: int, source: str) -> PatchSet:
    """:class:`PatchSet` whose refusal names the config entry the images came from."""
    try:
        return PatchSet(images, size, stride)
    except ValueError as err:
        raise ValueError(f"{source}: {err} (or leave such images out)") from None


def _is_mri(cfg: ExperimentConfig) -> bool:
    return any(t.get("name") == "mri" for t in cfg.tasks)


class CsvLog:
    """Append rows of metrics to a CSV file (the header is fixed by the first row) and, with
    ``tensorboard``, to TensorBoard scalars in the same folder."""

    def __init__(self, path: Path, columns: list[str], tensorboard: bool = False) -> None:
        self.path = path
        self.columns = columns
        if not path.exists():
            with path.open("w", newline="") as handle:
                csv.writer(handle).writerow(columns)
        self.board = _tensorboard(path.parent) if tensorboard else None

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as handle:
            csv.writer(handle).writerow([_fmt(row.get(c)) for c in self.columns])
        if self.board is not None:
            for name, value in row.items():
                if name != "iteration" and isinstance(value, (int, float)):
                    self.board.add_scalar(name, value, row["iteration"])
            self.board.flush()

    def truncate_after(self, iteration: int) -> None:
        """Drop rows past ``iteration`` (written after the checkpoint a resume starts from)."""
        with self.path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= iteration]

        def rewrite(tmp: str) -> None:
            with open(tmp, "w", newline="") as handle:
                csv.writer(handle).writerows(kept)

        atomic_write(self.path, rewrite)


def check_tensorboard(cfg: ExperimentConfig) -> None:
    """With ``optim.tensorboard``, fail before anything is written when TensorBoard is missing.

    Example:
        >>> check_tensorboard(ExperimentConfig())  # tensorboard off: nothing to check
    """
    if cfg.optim.tensorboard:
        _summary_writer()


def _summary_writer() -> type:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError(
            "optim.tensorboard needs TensorBoard, which is not installed: "
            "pip install 'rimkit[tensorboard]' (or set optim.tensorboard=false)"
        ) from None
    return SummaryWriter


def _tensorboard(folder: Path):
    return _summary_writer()(str(folder / "tensorboard"))


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


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


LOCKED_BY_LAUNCHER = "RIMKIT_RUN_LOCKED"
"""Set in the processes :func:`rimkit.train.launch.launch` spawns: it holds the run's lock."""


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` while a run trains in ``out``, so that a second run there (a
    resume started twice) is refused instead of writing the same files; released (and the
    file removed) at the end, and by the system when the process dies.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with run_lock(folder):
        ...     with run_lock(folder):
        ...         pass
        Traceback (most recent call last):
        ...
        ValueError: ... is being trained by another process (PID ...): wait for it ...
    """
    try:
        import fcntl
    except ImportError:  # not on Linux or macOS: no lock
        yield
        return
    path = out / ".lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not _still_named(handle, path):  # removed by a holder leaving as we came: busy
                raise BlockingIOError
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            raise ValueError(
                f"{str(out)!r} is being trained by another process (PID {pid}): wait for it or "
                "stop it, then resume"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            (out / ".lock").unlink(missing_ok=True)  # a run folder keeps no lock file
            fcntl.flock(handle, fcntl.LOCK_UN)


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
    optim_cfg = cfg.optim
    if dist.main and optim_cfg.warmup > optim_cfg.iterations:
        warnings.warn(
            f"optim.warmup={optim_cfg.warmup} is longer than optim.iterations="
            f"{optim_cfg.iterations}: the learning rate never reaches optim.lr",
            UserWarning,
            stacklevel=3,
        )
    device = _setup_process(optim_cfg, dist)
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
        model.cell_dtype = torch.bfloat16
    optimizer = torch.optim.Adam(
        model.parameters(), lr=optim_cfg.lr, weight_decay=optim_cfg.weight_decay
    )
    task = build_tasks(cfg.tasks)
    patches, val_x = _load_patches(cfg)
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
        start, skipped, val_scores, best = _restore(out, model, optimizer, average, last)
        if dist.main and start < optim_cfg.iterations:  # the old final weights are stale now
            (out / "model.safetensors").unlink(missing_ok=True)
    elif dist.main:
        out.mkdir(parents=True, exist_ok=True)
        if locks:
            held.enter_context(run_lock(out))
        _clear_run(out)
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
    bar = _progress(start, optim_cfg.iterations, progress and dist.main)
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


def unrolled_steps(cfg: ExperimentConfig, iteration: int) -> int:
    """How many steps iteration ``iteration`` unrolls: ``model.train_steps``, or with
    ``optim.max_train_steps`` a draw from ``train_steps .. max_train_steps`` that depends only on
    the seed and the iteration (every process of a distributed run draws the same)."""
    low, high = cfg.model.train_steps, cfg.optim.max_train_steps
    if high is None:
        return low
    draw = torch.randint(low, high + 1, (1,), generator=seeded(cfg.optim.seed, iteration, 3))
    return int(draw)


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


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of all weights, to compare models bit for bit."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _setup_process(optim: OptimConfig, dist: Distributed) -> torch.device:
    """Threads, the device, and the process group of a distributed run."""
    check_device(optim.device)
    if optim.threads:
        torch.set_num_threads(optim.threads)
    device = torch.device(optim.device if dist.world == 1 else _ddp_device(optim, dist))
    if dist.world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend, rank=dist.rank, world_size=dist.world)
    return device


def _still_named(handle: Any, path: Path) -> bool:
    """Whether the open file ``handle`` is still the file at ``path`` (not removed since)."""
    try:
        return os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _restore(
    out: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    average: AveragedModel | None,
    meta: dict[str, Any],
) -> tuple[int, int, list[float], float]:
    """Load ``out/last`` (its ``meta``, the recipe checked already); returns the iteration,
    skipped count, scores and best score."""
    if meta.get("world_size", 1) != dist_world():
        raise ValueError(
            f"the run in {str(out)!r} used {meta.get('world_size')} process(es), this one "
            f"{dist_world()}; resume with the same number so batches repeat"
        )
    load_checkpoint(out / "last", model, optimizer, average)
    best_file = out / "best.safetensors"
    best = read_meta(out / "best")["val_psnr_final"] if best_file.exists() else -math.inf
    scores = list(meta.get("val_psnr_per_step") or [])
    return meta["iteration"], meta.get("skipped", 0), scores, best


def pixels_digest(arrays: list[np.ndarray]) -> str:
    """A short digest of arrays' shapes and values, in order: the same images give the same
    digest wherever they lie.

    Example:
        >>> a = np.zeros((1, 2, 2), np.uint8)
        >>> pixels_digest([a]) == pixels_digest([a.copy()]) != pixels_digest([a + 1])
        True
    """
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def check_same_data(out: Path, sizes: dict[str, int | str], meta: dict[str, Any]) -> None:
    """Refuse to resume the run in ``out`` (its last checkpoint's ``meta``) on other images:
    its data paths may change (the same images, moved), but not the training and validation
    patches they give, counted and by a digest of their pixels (what a run saved before either
    was recorded lacks is not checked)."""
    saved = meta.get("data")
    if not isinstance(saved, dict):
        return
    differ = [
        f"{k} {saved[k]} then, {v} now" if k.endswith("patches") else f"{k[:-7]} pixels differ"
        for k, v in sizes.items()
        if k in saved and saved[k] != v
    ]
    if differ:
        raise ValueError(
            f"the run in {str(out)!r} was trained on other images ({'; '.join(differ)}); a "
            "resumed run continues on the same ones (data.train / val may say where they now "
            "lie): start a new run from it with optim.init instead"
        )


def check_same_recipe(out: Path, cfg: ExperimentConfig, meta: dict[str, Any]) -> None:
    """Refuse to resume the run in ``out`` (its last checkpoint's ``meta``) with another recipe
    than it was made with, but for :data:`RESUMABLE_CHANGES`; ``optim.iterations`` may only
    grow."""
    saved = meta.get("config", {})
    try:  # a run saved before a config key existed gets that key's default
        saved = ExperimentConfig.from_dict(saved).to_dict()
    except ValueError:
        pass  # an unreadable saved config: compare it as stored, which names what differs
    changed = _changed_keys(saved, cfg.to_dict())
    if changed:
        raise ValueError(
            f"the run in {str(out)!r} was made with another config ({', '.join(changed)} "
            "differ); a resumed run must repeat the same recipe (only optim.iterations may grow, "
            "and data.train / val / root may say where the same images now lie)"
        )
    _check_iterations(saved.get("optim", {}), cfg.optim, int(meta.get("iteration", 0)))


def _check_iterations(saved: dict[str, Any], optim: OptimConfig, reached: int) -> None:
    """``optim.iterations`` of a resumed run may only grow; a stretched schedule is noted with
    the jump it makes in the learning rate at the iteration the run resumes from."""
    before = int(saved.get("iterations", optim.iterations))
    if optim.iterations < before:
        raise ValueError(
            f"optim.iterations {optim.iterations} is below the run's {before}; a resumed run may "
            f"only grow (it reached iteration {reached}); start a new run for a shorter recipe"
        )
    if optim.iterations > before and optim.schedule != "constant":
        old = dataclasses.replace(optim, iterations=before)
        warnings.warn(
            f"optim.iterations {before} -> {optim.iterations} stretches the {optim.schedule} "
            f"schedule: the learning rate at iteration {reached} goes from "
            f"{lr_at(old, reached):.3g} to {lr_at(optim, reached):.3g}",
            UserWarning,
            stacklevel=2,
        )


ARCHITECTURE_KEYS = ("variant", "cell", "cell_channels", "link")
"""What must match for ``optim.init``: a gray model's weights start an opponent-colour one (and
a guided one, whose guide inputs then start at zero)."""


def load_init(init: str) -> Any:
    """The model ``optim.init`` names, or the error that says where its path is read from."""
    try:
        return load_model(init)
    except ValueError as err:
        raise ValueError(
            f"optim.init: {err} (a path is read from the working folder; the recipes in "
            "rimkit's configs/ name theirs from the repository's root: run them from there, or "
            "--set optim.init=PATH)"
        ) from None


def start_from(model: nn.Module, init: str, model_cfg: RIMConfig) -> None:
    """Copy the weights of ``init`` (a shipped name, run folder or file) into ``model``."""
    source = load_init(init)
    theirs = RIMConfig.from_dict(source.config["model"])
    differ = [
        f"{key} {getattr(theirs, key)!r} there, {getattr(model_cfg, key)!r} here"
        for key in ARCHITECTURE_KEYS
        if getattr(theirs, key) != getattr(model_cfg, key)
    ]
    state = source.model.state_dict()
    split_cells = isinstance(model, SplitOpponentColorRIM)
    if split_cells and not isinstance(source.model, SplitOpponentColorRIM):  # e.g. guided -> split
        state = SplitOpponentColorRIM.state_from_one_cell(state)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    their_shapes = {k: tuple(v.shape) for k, v in state.items()}
    if not differ and shapes != their_shapes:
        sizes = ("channels", "features", "hidden", "color")
        differ = [
            f"{key} {getattr(theirs, key)!r} there, {getattr(model_cfg, key)!r} here"
            for key in sizes
            if getattr(theirs, key, None) != getattr(model_cfg, key, None)
        ] or [f"features {theirs.features} / hidden {theirs.hidden} there"]
        if _guides(model) > _guides(source.model):  # e.g. opponent -> opponent-guided
            with contextlib.suppress(ValueError):
                load_widened(model, state)
                return
    if differ:
        raise ValueError(
            f"optim.init {init!r} is another architecture ({'; '.join(differ)}); give the model "
            f"section of the run it came from: {source.config['model']}"
        )
    model.load_state_dict(state)


def _guides(model: nn.Module) -> int:
    return getattr(model, "guide_channels", 0)


def dist_world() -> int:
    return Distributed.from_env().world


RESUMABLE_CHANGES = {
    "optim.iterations",
    "optim.threads",
    "optim.tensorboard",
    "optim.device",
    "optim.precision",
    "data.train",
    "data.val",
    "data.root",
}
"""Config keys a resumed run may change: how long, how many threads, what it logs, what it
runs on (a GPU run continued on a CPU; its random projections are then drawn by the CPU's
generator, other draws stay those of the seed and iteration), and where its images now lie
(the same images, moved: a run resumed in another folder or machine)."""


def _changed_keys(saved: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(saved) | set(now)):
        name = f"{prefix}{key}"
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{name}.")
        elif a != b and name not in RESUMABLE_CHANGES:
            keys.append(name)
    return keys


RUN_FILES = ("log.csv", "model.safetensors", "last.safetensors", "last.json", "best.safetensors")


def run_files(out: str | os.PathLike) -> list[str]:
    """The files of a run that ``out`` holds (:data:`RUN_FILES`, ``best.json``)."""
    return [name for name in (*RUN_FILES, "best.json") if (Path(out) / name).exists()]


def refuse_existing_run(out: Path) -> None:
    """Refuse to start a fresh run in ``out`` when it holds another run's files.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> refuse_existing_run(folder)  # an empty folder is fine
        >>> _ = (folder / "last.json").write_text("{}")
        >>> try:
        ...     refuse_existing_run(folder)
        ... except ValueError as err:
        ...     print(str(err).split("; ")[1][:55])
        continue it with train(..., resume=True), or pass force
    """
    held = run_files(out)
    if held:
        raise ValueError(
            f"{str(out)!r} holds a run ({', '.join(held)}); continue it with "
            "train(..., resume=True), or pass force=True to start over in it (its files are "
            "removed)"
        )


def _clear_run(out: Path) -> None:
    """A fresh start in a run folder (``force``) removes the old run's outputs first."""
    for name in (*RUN_FILES, "best.json"):
        (out / name).unlink(missing_ok=True)
    if (out / "tensorboard").is_dir():
        shutil.rmtree(out / "tensorboard")


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
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), optim.clip_grad)
    finite = bool(torch.isfinite(loss) & torch.isfinite(grad_norm))
    if distributed:
        mean_loss, all_finite = mean_over_processes(loss.detach(), finite)
        return mean_loss, grad_norm, all_finite
    return loss, grad_norm, finite


def mean_over_processes(loss: Tensor, finite: bool) -> tuple[Tensor, bool]:
    """The mean of ``loss`` over a distributed run's processes, and whether every one of them
    had ``finite`` (one all-reduce of ``[loss, not finite]``)."""
    stats = torch.stack([loss.float(), torch.tensor(float(not finite), device=loss.device)])
    torch.distributed.all_reduce(stats)  # sum over processes
    return stats[0] / torch.distributed.get_world_size(), bool(stats[1] == 0)


def _ddp_device(optim: OptimConfig, dist: Distributed) -> str:
    if optim.device.startswith("cuda"):
        torch.cuda.set_device(dist.local_rank)
        return f"cuda:{dist.local_rank}"
    return "cpu"


def _progress(start: int, total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=start, disable=not enabled, unit="it", dynamic_ncols=True)
