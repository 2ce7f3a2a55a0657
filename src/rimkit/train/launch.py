"""Start a training run in this process, under torchrun, or in ``nproc`` spawned processes.

Example:
    >>> free_port() > 0
    True
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

from rimkit.runtime import check_device
from rimkit.train.config import ExperimentConfig
from rimkit.train.data import check_data, refuse_run_inside_data
from rimkit.train.loop import TrainingDiverged, train
from rimkit.train.run_folder import LOCKED_BY_LAUNCHER, run_lock
from rimkit.train.runlog import check_tensorboard
from rimkit.train.warm_start import load_init


def free_port() -> int:
    """A free TCP port on the loopback interface for the process group's rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(
    rank: int,
    world: int,
    port: int,
    cfg: ExperimentConfig,
    out: Path,
    resume: bool,
    progress: bool,
    force: bool = False,
) -> None:
    from rimkit.runtime import note_printer

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops them all
    signal.signal(signal.SIGTERM, _exit_quietly)  # the parent's stop: exit, cleaning up
    _die_with_parent()
    warnings.showwarning = note_printer("train")  # one line each, as in a single process
    if rank > 0:  # the same notes as the first process's: told once
        warnings.simplefilter("ignore")
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            LOCKED_BY_LAUNCHER: "1",
        }
    )
    train(cfg, out, resume=resume, progress=progress, force=force)


def _exit_quietly(signum: int, frame: object) -> None:
    sys.exit(128 + signum)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_sigterm() -> Any:
    """SIGTERM to the launching process stops the workers as Ctrl-C does (``kill PID``, a
    scheduler); returns the handler it replaced, ``None`` off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _interrupt)


def _die_with_parent() -> None:
    """Linux: this worker gets SIGTERM when the launching process dies, even by SIGKILL, so
    no worker trains on orphaned."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1
"""Linux's ``prctl`` option that signals a process when its parent dies."""


def launch(
    cfg: ExperimentConfig,
    out: str | os.PathLike,
    resume: bool = False,
    nproc: int = 1,
    progress: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """Train in this process (``nproc == 1``, or already under torchrun) or spawn ``nproc``."""
    if nproc == 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return train(cfg, out, resume=resume, progress=progress, force=force)
    check_device(cfg.optim.device)
    if cfg.optim.device.startswith("cuda") and nproc > torch.cuda.device_count():
        raise ValueError(
            f"--nproc {nproc} with optim.device={cfg.optim.device} runs one process per GPU, "
            f"but this machine has {torch.cuda.device_count()}: give --nproc "
            f"{torch.cuda.device_count()} or fewer (or optim.device=cpu)"
        )
    check_data(cfg)
    check_tensorboard(cfg)
    if not resume:
        refuse_run_inside_data(cfg, out)
    if cfg.optim.init and not resume:
        load_init(cfg.optim.init)  # its error here, before any worker starts
    created = not Path(out).exists()
    Path(out).mkdir(parents=True, exist_ok=True)
    try:
        with run_lock(Path(out)):
            return _spawn(cfg, Path(out), resume, nproc, progress, force)
    except ValueError:
        if created and not any(Path(out).iterdir()):  # a start that failed leaves no folder
            Path(out).rmdir()
        raise


def _spawn(
    cfg: ExperimentConfig,
    out: Path,
    resume: bool,
    nproc: int,
    progress: bool,
    force: bool,
) -> dict[str, Any]:
    """:func:`launch`'s ``nproc`` workers, started, waited for and stopped with it."""
    context = mp.start_processes(
        _worker,
        args=(nproc, free_port(), cfg, out, resume, progress, force),
        nprocs=nproc,
        join=False,
        start_method="spawn",
    )
    previous = _stop_on_sigterm()
    try:
        while not context.join():
            pass
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM to this process
        for process in context.processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: no atexit tracebacks from the workers
        for process in context.processes:
            process.join()
        raise KeyboardInterrupt(
            f"interrupted; the run in {str(out)!r} resumes from its last checkpoint: "
            f"rimkit train --resume {out} --nproc {nproc}"
        ) from None
    except mp.ProcessRaisedException as err:  # the worker's own message, not its traceback
        last = str(err).strip().splitlines()[-1]
        kind, _, message = last.partition(": ")
        raise (ValueError if kind.endswith("ValueError") else TrainingDiverged)(message) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    from rimkit.train.checkpoint import read_meta

    return read_meta(Path(out) / "last")
