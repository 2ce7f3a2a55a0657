"""Evaluation: metrics, the published protocols, the ``rimkit eval`` runner, figures, reports.

==================  ===========================================================================
module              what
==================  ===========================================================================
``metrics``         PSNR (peak stated), SSIM (Wang / MATLAB), MATLAB ``rgb2ycbcr`` Y, shaving,
                    8-bit rounding, NMSE and the fastMRI magnitude metrics
``protocols``       per image: ``(truth, operator, y, sigma)`` of the DnCNN denoising (plain and
                    8-bit quantised), super-resolution (Y, MATLAB bicubic), inpainting and
                    random-projection protocols, reproducible from a seed
``methods``         what is scored: a RIM, a tuned baseline, a blind variant, one's own
``runner``          :func:`evaluate` (methods x protocols x images): rows, curves, examples
``request``         :func:`run_eval` (``rimkit eval``): the request checked, models and images
                    loaded, :func:`evaluate` run, the files written
``outputs``         those files: CSV, Markdown, JSON, figures, HTML
``defaults``        the tasks, default baselines and noise levels of ``rimkit eval``
``figures``         crop grids (Pillow) and PSNR against step t (matplotlib, optional)
``report``          self-contained HTML reports, Markdown tables, atomic writes
``benchmarking``    machine / date / command provenance and ``BENCHMARKS.md`` sections
``cli``             ``register(subparsers, parents)``: the ``eval`` sub-command
==================  ===========================================================================

The names below are imported on first use, so ``rimkit --help`` (which registers the ``eval``
sub-command from :mod:`rimkit.evaluate.cli`) does not pay for torch.

Example:
    >>> import numpy as np
    >>> from rimkit.evaluate import DenoiseProtocol, baseline_method, evaluate
    >>> images = [("ramp", np.linspace(0, 1, 24 * 24).reshape(24, 24))]
    >>> tv = baseline_method("tv", "denoise", {"iterations": 5})
    >>> result = evaluate(images, [DenoiseProtocol(sigma=25)], [tv])
    >>> row = result.summary()[0]
    >>> row["setting"], row["method"], row["images"], row["psnr"] > 20
    ('sigma=25', 'tv', 1, True)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "machine_info": "benchmarking",
    "provenance": "benchmarking",
    "replace_section": "benchmarking",
    "crop_to_multiple": "metrics",
    "mri_metrics": "metrics",
    "nmse": "metrics",
    "psnr": "metrics",
    "quantize": "metrics",
    "rgb_to_y": "metrics",
    "shave": "metrics",
    "ssim": "metrics",
    "to_8bit": "metrics",
    "y_channel": "metrics",
    "Case": "protocols",
    "DeblurProtocol": "protocols",
    "DenoiseProtocol": "protocols",
    "InpaintProtocol": "protocols",
    "LensingProtocol": "protocols",
    "MRIProtocol": "protocols",
    "OperatorProtocol": "protocols",
    "ProjectionProtocol": "protocols",
    "SuperResolutionProtocol": "protocols",
    "add_noise": "protocols",
    "psnr_curve": "protocols",
    "score": "protocols",
    "sr_measurement": "protocols",
    "markdown_table": "report",
    "write_report": "report",
    "EvalSpec": "request",
    "Evaluation": "runner",
    "Method": "methods",
    "baseline_method": "methods",
    "evaluate": "runner",
    "load_images": "request",
    "rim_method": "methods",
    "run_eval": "request",
}
"""Public name -> the submodule that defines it."""

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rimkit.evaluate' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"rimkit.evaluate.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
