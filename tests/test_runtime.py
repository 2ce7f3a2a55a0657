"""reuse_freed_memory: RIM steps stop page-faulting their activations in afresh (glibc)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAM = """
import resource, sys, torch
from rimkit.runtime import reuse_freed_memory
took = reuse_freed_memory() if sys.argv[1] == "on" else None
torch.set_num_threads(1)
from rimkit.models.cells import RestorationCell
cell = RestorationCell(2, 1, features=32, hidden=64)
x = torch.rand(1, 2, 256, 256)
with torch.no_grad():
    update, state = cell(x, cell.initial_state(x))
    update, state = cell(x, state)  # the first step skips the state's convolutions
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        update, state = cell(x, state)
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> tuple[str, int]:
    cmd = [sys.executable, "-c", PROGRAM, mode]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_rim_steps_reuse_their_memory_instead_of_faulting_it_in_again():
    took, on = _faults("on")
    if took != "True":
        pytest.skip("this C library is not glibc")
    _, off = _faults("off")
    assert off > 5000  # five steps of a 256 x 256 image: thousands of fresh pages
    assert on < off / 4
