"""Conversions between S.Bus channel values, microseconds and -1..1 units.

Every conversion saturates: an input beyond the range gives the end value,
never an out-of-range channel. NaN raises SbusError (a ValueError).

The unit conversions take an optional calibration (`low`, `center`, `high`
channel values, as the flight controller stores per channel); the default is
the FrSky/Futaba span 172..992..1811.

Rounding rule: to the nearest channel value; an exact half rounds away from
the centre value 992, so that +u and -u land symmetrically about the centre.
"""

from __future__ import annotations

import math
import operator

from .frame import VALUE_MAX, SbusError

CENTER = 992
UNIT_MIN = 172  # -1.0
UNIT_MAX = 1811  # +1.0
US_OFFSET = 880.0
US_PER_VALUE = 0.625


def _round_from_center(offset: float) -> int:
    """`offset` (a distance from the centre, in values) rounded by the rule above."""
    a = abs(offset)
    whole = math.floor(a)
    n = whole + 1 if a - whole >= 0.5 else whole  # a - whole is exact
    return -n if offset < 0 else n


def _finite(x: float, what: str) -> float:
    if math.isnan(x):  # also a TypeError for what is not a real number, e.g. str
        raise SbusError(f"{what} is NaN")
    return float(x)


def us_to_value(us: float) -> int:
    """Pulse width in microseconds to a channel value (us = 880 + 0.625 v), 0..2047."""
    us = _finite(us, "pulse width")
    us = min(max(us, US_OFFSET), US_OFFSET + US_PER_VALUE * VALUE_MAX)
    return CENTER + _round_from_center((us - 1500.0) / US_PER_VALUE)


def value_to_us(value: int) -> float:
    """Channel value to microseconds; values beyond 0..2047 saturate."""
    v = min(max(operator.index(value), 0), VALUE_MAX)
    return US_OFFSET + US_PER_VALUE * v


def unit_to_value(unit: float, *, low: int = UNIT_MIN, center: int = CENTER,
                  high: int = UNIT_MAX) -> int:
    """-1..1 to low..high (default 172..1811) with 0 at `center` (992); beyond
    +-1 saturates.

    The two halves have their own scale (by default 820 values below the
    centre, 819 above) so that both ends are reached exactly.
    """
    u = _finite(unit, "unit value")
    u = min(max(u, -1.0), 1.0)
    span = center - low if u < 0 else high - center
    return center + _round_from_center(u * span)


def fraction_to_value(fraction: float, *, low: int = UNIT_MIN, high: int = UNIT_MAX) -> int:
    """0..1 to low..high linearly (a throttle); beyond 0..1 saturates. An exact
    half value rounds up, away from `low`."""
    f = _finite(fraction, "fraction")
    f = min(max(f, 0.0), 1.0)
    return low + _round_from_center(f * (high - low))


def value_to_unit(value: int) -> float:
    """172..1811 to -1..1 with 992 at 0; values beyond the ends saturate."""
    v = min(max(operator.index(value), UNIT_MIN), UNIT_MAX)
    if v < CENTER:
        return (v - CENTER) / (CENTER - UNIT_MIN)
    return (v - CENTER) / (UNIT_MAX - CENTER)
