"""Training: typed configs, the BPTT loop, checkpoints and distributed runs."""

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
