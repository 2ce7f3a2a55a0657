"""The background (sky) level of an astronomical image, for ``restore(background="auto")``.

The models learned images whose dark is 0; an observation keeps a sky level (or a residual of
its subtraction) under its sources. Sources stand above the sky, so the sky is the median of
the pixels left after clipping those far from it, a few rounds over (as astropy's
``sigma_clipped_stats`` estimates it).

Example:
    >>> rng = np.random.default_rng(0)
    >>> field = 100 + rng.normal(0, 5, (64, 64))
    >>> field[20:40, 20:40] += 300  # a galaxy
    >>> round(sky_level(field))
    100
"""

from __future__ import annotations

import numpy as np

MAD_TO_STD = 1.4826
"""The standard deviation of Gaussian noise over its median absolute deviation."""


def robust_std(values: np.ndarray) -> float:
    """``1.4826 * median(|v - median(v)|)``: the standard deviation of Gaussian values,
    unmoved by a few outliers.

    Example:
        >>> robust_std(np.array([-1.0, 0.0, 1.0, 100.0]))
        1.4826
    """
    values = np.asarray(values, dtype=np.float64)
    return MAD_TO_STD * float(np.median(np.abs(values - np.median(values))))


def sky_level(image: np.ndarray, clip: float = 3.0, rounds: int = 5) -> float:
    """The median of ``image``'s values after ``rounds`` of clipping those beyond ``clip``
    robust standard deviations (``1.4826 * MAD``) of the median; NaN values are left out.

    Example:
        >>> sky_level(np.array([1.0, 1.0, 1.0, 50.0]))
        1.0
    """
    values = np.asarray(image, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("the image has no finite value to read a background level from")
    if not (clip > 0 and rounds >= 1):
        raise ValueError(f"clip must be > 0 and rounds >= 1, got {clip}, {rounds}")
    for _ in range(rounds):
        centre, spread = float(np.median(values)), robust_std(values)
        kept = values[np.abs(values - centre) <= clip * spread] if spread > 0 else values
        if kept.size == values.size or kept.size == 0:
            break
        values = kept
    return float(np.median(values))
