"""rimkit: Recurrent Inference Machines for solving inverse problems ``y = A x + n``.

Example:
    >>> import rimkit
    >>> callable(rimkit.load_pretrained) and callable(rimkit.list_models)
    True
"""

__version__ = "0.1.0"

__all__ = ["__version__", "list_models", "load_pretrained"]


def __dir__() -> list[str]:
    return sorted({*globals(), *("load_pretrained", "list_models")})


def __getattr__(name: str):
    """``rimkit.load_pretrained`` and ``rimkit.list_models`` without importing torch early."""
    if name in ("load_pretrained", "list_models"):
        from rimkit import zoo

        return getattr(zoo, name)
    raise AttributeError(f"module 'rimkit' has no attribute {name!r}")
