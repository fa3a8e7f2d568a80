"""Scaling: known points, saturation and the rounding rule (ties away from 992)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sbus_twins import no_deadline

from pipilot.sbus import SbusError, unit_to_value, us_to_value, value_to_unit, value_to_us
from pipilot.sbus.scale import fraction_to_value


@pytest.mark.parametrize(
    ("us", "value"),
    [(1000, 192), (1500, 992), (2000, 1792), (880, 0), (2159.375, 2047), (1000.3, 192),
     (1000.4, 193), (0, 0), (-1e9, 0), (3000, 2047), (math.inf, 2047), (-math.inf, 0)],
)
def test_us_to_value(us: float, value: int) -> None:
    assert us_to_value(us) == value


def test_us_ties_round_away_from_centre() -> None:
    # 0.3125 us is exactly half a step
    assert us_to_value(1500.3125) == 993
    assert us_to_value(1499.6875) == 991
    assert us_to_value(1000.3125) == 192  # 192.5 below the centre: down
    assert us_to_value(2000.3125) == 1793  # 1792.5 above the centre: up


@pytest.mark.parametrize(("value", "us"), [(0, 880.0), (192, 1000.0), (992, 1500.0),
                                           (1792, 2000.0), (2047, 2159.375), (-5, 880.0),
                                           (5000, 2159.375)])
def test_value_to_us(value: int, us: float) -> None:
    assert value_to_us(value) == us


def test_value_us_round_trip_exhaustive() -> None:
    assert all(us_to_value(value_to_us(v)) == v for v in range(2048))


@pytest.mark.parametrize(
    ("unit", "value"),
    [(-1.0, 172), (0.0, 992), (1.0, 1811), (-2.0, 172), (7.0, 1811), (math.inf, 1811),
     (-math.inf, 172), (0.5, 1402), (-0.5, 582), (-0.125, 889), (0.125, 1094), (-0.0, 992)],
)
def test_unit_to_value(unit: float, value: int) -> None:
    # 0.5 * 819 = 409.5 -> 410 (away from the centre); -0.125 * 820 = -102.5 -> -103
    assert unit_to_value(unit) == value


@pytest.mark.parametrize(("value", "unit"), [(172, -1.0), (992, 0.0), (1811, 1.0), (0, -1.0),
                                             (2047, 1.0), (582, -0.5), (1402, 410 / 819)])
def test_value_to_unit(value: int, unit: float) -> None:
    assert value_to_unit(value) == unit


def test_unit_round_trip_exhaustive() -> None:
    assert all(unit_to_value(value_to_unit(v)) == v for v in range(172, 1812))


@no_deadline
@given(a=st.floats(-2, 2), b=st.floats(-2, 2))
def test_unit_monotonic_and_close(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert 172 <= unit_to_value(lo) <= unit_to_value(hi) <= 1811
    clamped = min(max(a, -1.0), 1.0)
    assert abs(value_to_unit(unit_to_value(a)) - clamped) <= 0.5 / 819 + 1e-12


@no_deadline
@given(us=st.floats(allow_nan=False))
def test_us_saturates(us: float) -> None:
    v = us_to_value(us)
    assert 0 <= v <= 2047
    if 880 <= us <= 2159.375:
        assert abs(value_to_us(v) - us) <= 0.3125 + 1e-9


@pytest.mark.parametrize("fn", [us_to_value, unit_to_value])
def test_nan_rejected(fn: object) -> None:
    with pytest.raises(SbusError, match="NaN"):
        fn(math.nan)  # type: ignore[operator]


def test_wrong_types_rejected() -> None:
    with pytest.raises(TypeError):
        value_to_us(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        value_to_unit(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        us_to_value("1500")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        unit_to_value("0.5")  # type: ignore[arg-type]


def test_unit_to_value_follows_a_channel_calibration() -> None:
    # a GCS calibration: 300 / 1000 / 1700, both halves reached exactly
    span = {"low": 300, "center": 1000, "high": 1700}
    assert [unit_to_value(u, **span) for u in (-1.0, -0.5, 0.0, 0.5, 1.0, 5.0)] == \
        [300, 650, 1000, 1350, 1700, 1700]
    # an odd half rounds away from the calibrated centre, not from 992
    assert unit_to_value(0.5, low=0, center=1001, high=2001) == 1501
    assert unit_to_value(-0.5, low=0, center=1001, high=2001) == 500


@pytest.mark.parametrize(("fraction", "value"),
                         [(0.0, 172), (1.0, 1811), (0.5, 992), (-1.0, 172), (2.0, 1811),
                          (math.inf, 1811)])
def test_fraction_to_value(fraction: float, value: int) -> None:
    # 0.5 * 1639 = 819.5 -> 820 (up, away from the low end)
    assert fraction_to_value(fraction) == value


def test_fraction_to_value_spans_a_calibration_and_refuses_nan() -> None:
    assert fraction_to_value(0.25, low=200, high=1000) == 400
    with pytest.raises(SbusError):
        fraction_to_value(math.nan)
