"""rimkit: Recurrent Inference Machines for solving inverse problems ``y = A x + n``."""

__version__ = "0.1.0"
