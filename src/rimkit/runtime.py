"""Process-wide settings for faster CPU inference, for programs that own their process;
:func:`check_device`, which says plainly when a requested device is missing; a command's thread
count (:func:`set_threads`) and its one-line notes (:func:`note_printer`).

:func:`reuse_freed_memory` asks glibc's ``malloc`` to keep large freed blocks for reuse. PyTorch
takes every CPU tensor from ``malloc``; glibc serves blocks above its mmap threshold (from 128 KiB,
adapting upwards) with fresh ``mmap`` pages and unmaps them on free, so a tensor of a few MB
allocated again at every RIM step page-faults in every page again. Three reconstructions of a
481 x 321 image with ``denoise-gray`` on one thread spent 1.05 s in the kernel (258 k minor
page faults) without it and 0.15 s (48 k) with it, of about 7 s of CPU time.

The ``rimkit`` command and the benchmark scripts call it at start; a library user may call it
once in a program of their own. It changes how the whole process allocates memory (freed
memory stays with the process), which is why importing rimkit does not do it.

Example:
    >>> from rimkit.runtime import reuse_freed_memory
    >>> took_effect = reuse_freed_memory()    # once, at the start; False off glibc
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import re
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["check_device", "check_threads", "note_printer", "reuse_freed_memory", "set_threads"]

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 1 << 30


def reuse_freed_memory() -> bool:
    """Serve blocks up to 32 MiB from the heap and trim it only past 1 GiB free; returns
    whether glibc took both settings.

    Example:
        >>> isinstance(reuse_freed_memory(), bool)  # once, at a program's start
        True
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


DEVICE_FORM = re.compile(r"cpu(:0)?|mps(:0)?|cuda(:\d+)?")


def check_device(device: str, what: str = "optim.device") -> None:
    """Refuse a device this machine lacks, or a name that is no device, with what to use
    instead; ``what`` names the setting in the message (``"optim.device"``, ``"device"``).

    Example:
        >>> check_device("cpu")
        >>> check_device("gpu", "device")
        Traceback (most recent call last):
        ...
        ValueError: device 'gpu' is not a device; give cpu, cuda, cuda:N or mps
    """
    import torch

    device = str(device)
    if not DEVICE_FORM.fullmatch(device):
        raise ValueError(f"{what} {device!r} is not a device; give cpu, cuda, cuda:N or mps")
    kind, _, index = device.partition(":")
    fix = f"use {what}=cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            why = (
                f"torch {torch.__version__} has no CUDA"
                if torch.version.cuda is None
                else f"torch {torch.__version__} finds no CUDA device"
            )
            raise ValueError(f"{what} {device!r} is not available here ({why}); {fix}")
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise ValueError(
                f"{what} {device!r} is not available here ({count} CUDA device(s): "
                f"cuda:0 .. cuda:{count - 1}); use one of those, or {what}=cpu"
            )
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{what} {device!r} is not available here (no MPS device); {fix}")


def check_threads(threads: int | None) -> None:
    """A ``--threads`` count: ``None`` (torch's default) or at least 1, else a ``ValueError``."""
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")


def set_threads(args: argparse.Namespace) -> None:
    """A command's ``--threads``: torch's CPU threads (BM3D takes torch's count), checked; the
    count before is kept in ``args.threads_before`` for :func:`rimkit.cli.main` to set back
    after the command."""
    check_threads(args.threads)
    if args.threads is not None:
        import torch

        args.threads_before = torch.get_num_threads()
        torch.set_num_threads(args.threads)


def note_printer(command: str) -> Callable[..., None]:
    """``warnings.showwarning`` for the command line: one line, ``rimkit CMD: note: ...``, each
    distinct note once (``compare`` restores once per method, each call noting alike)."""
    shown: set[str] = set()

    def show(message: Warning | str, *args: Any, **kwargs: Any) -> None:
        if str(message) not in shown:
            shown.add(str(message))
            print(f"rimkit {command}: note: {message}", file=sys.stderr)

    return show
