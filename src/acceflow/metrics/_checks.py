"""Argument checks shared by the statistics modules (declared once, as scikit-learn does)."""

from __future__ import annotations

import numbers


def check_alpha(alpha) -> float:
    """``alpha`` as a float in (0, 1) (0.05 for 95% intervals).

    Raises
    ------
    ValueError
        When ``alpha`` is not a real number strictly between 0 and 1.
    """
    if not (isinstance(alpha, numbers.Real) and not isinstance(alpha, bool) and 0 < alpha < 1):
        raise ValueError(f"alpha must be a number in (0, 1), e.g. 0.05 for 95% intervals; got {alpha!r}")
    return float(alpha)
