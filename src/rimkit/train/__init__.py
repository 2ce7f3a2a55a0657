"""Training: typed configs, the BPTT loop, checkpoints and distributed runs.

===============  =============================================================================
module           what
===============  =============================================================================
``config``       typed recipes (data, model, tasks, optimiser), YAML in and out, overrides
``loop``         :func:`train`: the iterations, validation, checkpoints, Ctrl-C and resume
``data``         the training and validation patches of ``data.train`` / ``data.val``
``schedule``     the learning rate and the unrolled steps at an iteration
``distributed``  a process's place in a multi-process run, the mean loss over processes
``launch``       ``rimkit train --nproc N``: the processes, their lock and their notes
``run_folder``   a run folder's lock, files and the checks a resume passes
``warm_start``   ``optim.init``: a fine-tune from a shipped model or another run
``runlog``       ``log.csv``, TensorBoard and the progress bar
``checkpoint``   safetensors checkpoints (weights, Adam moments, meta), split for transport
===============  =============================================================================
"""

from rimkit.train.checkpoint import (
    export_weights,
    join_checkpoint,
    load_checkpoint,
    read_meta,
    save_checkpoint,
    split_checkpoint,
)
from rimkit.train.config import (
    DataConfig,
    ExperimentConfig,
    OptimConfig,
    apply_overrides,
    build_tasks,
    load_config,
)
from rimkit.train.loop import TrainingDiverged, psnr_per_step, train, validate
from rimkit.train.schedule import lr_at

__all__ = [
    "DataConfig",
    "ExperimentConfig",
    "OptimConfig",
    "TrainingDiverged",
    "apply_overrides",
    "build_tasks",
    "export_weights",
    "join_checkpoint",
    "load_checkpoint",
    "load_config",
    "lr_at",
    "psnr_per_step",
    "read_meta",
    "save_checkpoint",
    "split_checkpoint",
    "train",
    "validate",
]
