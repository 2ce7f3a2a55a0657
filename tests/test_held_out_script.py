"""scripts/held_out.py: the held-out images the notes name, every 16th by file name."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "held_out.py"


def test_every_16th_image_by_name_is_linked(tmp_path):
    source = tmp_path / "data" / "train" / "BSDS500-test"
    source.mkdir(parents=True)
    for i in range(40):
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(source / f"{1000 + i}.png")
    out = tmp_path / "heldout"
    env = {"RIMKIT_DATA": str(tmp_path / "data"), "PATH": ""}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(out)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["1000.png", "1016.png", "1032.png"]
    assert all(p.is_symlink() for p in out.iterdir())
    again = subprocess.run([sys.executable, str(SCRIPT), str(out)], env=env, capture_output=True)
    assert again.returncode != 0 and b"exists; give a new folder" in again.stderr

    spec = importlib.util.spec_from_file_location("held_out", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert [p.name for p in module.held_out_images(source)][:2] == ["1000.png", "1016.png"]
