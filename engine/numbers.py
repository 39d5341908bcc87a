"""Exact arithmetic on JSON numbers: every score and every numeric answer goes through ``exact``."""

from __future__ import annotations

import math
from fractions import Fraction


def exact(v: object) -> Fraction | None:
    """The exact value of a JSON number (a float by its shortest repr), or None if ``v`` is not a finite number.

    ``bool`` is not a number here, although Python says it is an ``int``.
    """
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return Fraction(v)
    if isinstance(v, float) and math.isfinite(v):
        return Fraction(str(v))
    return None
