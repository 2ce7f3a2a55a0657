"""reuse_freed_memory: glibc serves activation-sized blocks from its heap and keeps them freed.

Page-fault counts show the effect (see rimkit.runtime) but vary with what else runs on the
machine, so the test checks the mechanism through glibc's ``mallinfo2`` instead.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAM = """
import ctypes, sys, torch
from rimkit.runtime import reuse_freed_memory
took = reuse_freed_memory() if sys.argv[1] == "on" else None
fields = ("arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost").split()
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in fields]
try:
    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
except (OSError, AttributeError):
    print("no-mallinfo2 0 0")
    sys.exit()
mallinfo2.restype = MallInfo2
before = mallinfo2().hblkhd
activation = torch.ones(1, 64, 256, 256)  # 16 MiB, a state of a 512 x 512 image
mapped = mallinfo2().hblkhd - before
del activation
print(took, mapped, mallinfo2().fordblks)
"""

MIB = 1 << 20


def _malloc(mode: str) -> tuple[str, int, int]:
    cmd = [sys.executable, "-c", PROGRAM, mode]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1]), int(out[2])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_activations_come_from_the_heap_and_stay_there_when_freed():
    took, mapped, kept = _malloc("on")
    if took != "True":
        pytest.skip("this C library is not glibc (2.33 or later)")
    assert mapped == 0  # not a fresh mmap ...
    assert kept >= 16 * MIB  # ... and kept for the next step once freed
    _, mapped_off, _ = _malloc("off")
    assert mapped_off >= 16 * MIB  # glibc's default: a fresh mmap, unmapped on free
