"""The README's Python example runs as written."""

import re
from pathlib import Path

import torch

from rimkit.evaluate.metrics import psnr


def test_readme_python_example_runs():
    from rimkit.tasks import TASKS

    text = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README.md has no Python example"
    built_in = dict(TASKS)
    try:
        for block in blocks:
            namespace: dict = {}
            exec(compile(block, "README.md", "exec"), namespace)
            assert "trajectory" in namespace and len(namespace["trajectory"].estimates) == 8
            clean, noisy, restored = (namespace[k] for k in ("clean", "noisy", "restored"))
            assert restored.shape == clean.shape == (512, 512)
            assert psnr(restored, clean) > psnr(noisy.clip(0, 1), clean) + 5
        assert set(TASKS) - set(built_in) == {"every-other-column"}  # the example's own task
        task = TASKS["every-other-column"]()
        m = task.sample(torch.rand(2, 1, 16, 16), torch.Generator().manual_seed(0))
        assert m.y.shape == (2, 1, 16, 8) and m.x0.shape == m.target.shape == (2, 1, 16, 16)
    finally:
        TASKS.clear()
        TASKS.update(built_in)
