"""The flow estimator against the flow deck's register models, and its outlier gates."""

from __future__ import annotations

import math
from collections import deque

import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from pipilot.control.flow import (
    COUNTS_PER_RAD,
    EstimatorInputError,
    FlowConfig,
    FlowEstimator,
)
from pipilot.core import tomlconf
from pipilot.errors import ConfigError
from pipilot.sensors.pmw3901 import FlowSample
from pipilot.sensors.reader import FlowDeckPoller, TimedFlow, TimedRange
from pipilot.sensors.vl53l1x import RangeSample
from tests.sensors.conftest import make_rig

DT = 0.01


def fly(est: FlowEstimator, seconds: float, *, height: float = 1.0,
        velocity: tuple[float, float] = (0.0, 0.0), yaw: float = 0.0,
        wobble_deg: float = 0.0, wobble_hz: float = 1.0, latency: float = 0.08,
        seed: int = 0) -> list[tuple[float, float, float, float, float]]:
    """Feed ``est`` from the register models for ``seconds``: the deck moves at
    ``velocity`` (body axes) at ``height`` while rolling and pitching by
    ``wobble_deg``; attitude and rates arrive every 50 ms, ``latency`` late.
    Returns (t, vn, ve, pn, pe) per 10 ms."""
    rig = make_rig(seed)
    poller = FlowDeckPoller(rig.flow, rig.ranger, rig.clock)
    t0 = rig.clock.now()
    w = 2 * math.pi * wobble_hz
    a = math.radians(wobble_deg)
    in_flight: deque[tuple[float, float, float, float, float]] = deque()
    out = []
    steps = round(seconds / DT)
    for i in range(1, steps + 1):
        t = i * DT
        roll, pitch = a * math.sin(w * t), a * math.sin(w * t + 1.0)
        p, q = a * w * math.cos(w * t), a * w * math.cos(w * t + 1.0)
        rig.truth.set(height_m=height, velocity_body=velocity, rates=(p, q, 0.0), roll=roll,
                      pitch=pitch)
        rig.clock.advance(DT)
        if i % 5 == 0:   # telemetry: measured now, handed over when it arrives
            in_flight.append((rig.clock.now() + latency, roll, pitch, p, q))
        while in_flight and in_flight[0][0] <= rig.clock.now():
            ta, r_, p_, rp, rq = in_flight.popleft()
            est.add_attitude(ta, math.degrees(r_), math.degrees(p_), yaw)
            est.add_rates(ta, (rp, rq, 0.0))
        for item in poller.poll():
            if isinstance(item, TimedFlow):
                est.add_flow(item.t, item.sample)
            elif isinstance(item, TimedRange):
                est.add_range(item.t, item.sample)
        est.update(rig.clock.now())
        e = est.estimate(rig.clock.now())
        if e is not None:
            out.append((rig.clock.now() - t0, *e.velocity, *e.position))
    return out


def test_translation_is_measured_in_ned() -> None:
    # the sensor model's noise is a random walk of about 2.4 counts/sqrt(s) at SQUAL
    # 144 (5 mm/sqrt(s) at 1 m): over 4 s the noise leaves a few mm/s in the mean
    est = FlowEstimator()
    rows = fly(est, 6.0, velocity=(0.3, -0.2))
    vn = sum(r[1] for r in rows[-400:]) / 400
    ve = sum(r[2] for r in rows[-400:]) / 400
    assert vn == pytest.approx(0.3, abs=0.03) and ve == pytest.approx(-0.2, abs=0.03)
    e = est.estimate(rows[-1][0])
    assert e is not None and e.height == pytest.approx(1.0, abs=0.03)
    assert est.flow_fused > 300 and est.range_fused >= 30


def test_yaw_turns_body_velocity_into_ned() -> None:
    est = FlowEstimator()
    rows = fly(est, 6.0, velocity=(0.3, 0.0), yaw=90.0)
    vn = sum(r[1] for r in rows[-400:]) / 400
    ve = sum(r[2] for r in rows[-400:]) / 400
    assert vn == pytest.approx(0.0, abs=0.03) and ve == pytest.approx(0.3, abs=0.03)


@settings(max_examples=4, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate])
@given(wobble=st.floats(1.0, 5.0), hz=st.floats(0.5, 2.0), latency=st.floats(0.04, 0.12),
       height=st.floats(0.5, 1.5), seed=st.integers(0, 50))
# a window of 1.46 wobble periods once read a partial period's leak as a bias
@example(wobble=4.92719860592095, hz=0.710783775009626, latency=0.12,
         height=1.0771092953969852, seed=21)
@example(wobble=5.0, hz=2.0, latency=0.04, height=1.5, seed=0)
def test_rotation_without_translation_gives_no_velocity(wobble: float, hz: float,
                                                        latency: float, height: float,
                                                        seed: int) -> None:
    # The sensor model's noise is a random walk (a few mm/sqrt(s)), so a craft
    # standing still is the reference: same seed, same noise, no wobble. What
    # differs is what the rotation leaks into the estimate. The leak oscillates
    # with the wobble, so it is averaged over whole periods of it.
    cfg = FlowConfig(latency_s=0.08)
    still = fly(FlowEstimator(cfg), 5.0, height=height, latency=latency, seed=seed)
    rows = fly(FlowEstimator(cfg), 5.0, height=height, wobble_deg=wobble, wobble_hz=hz,
               latency=latency, seed=seed)
    assert len(still) == len(rows)
    span = math.floor(3.0 * hz) / hz
    pairs = [(r, s) for r, s in zip(rows, still, strict=True) if r[0] > rows[-1][0] - span + 1e-9]
    n = len(pairs)

    def mean_diff(i: int) -> float:
        return sum(r[i] - s[i] for r, s in pairs) / n

    # no bias in the velocity, and the position does not walk off: with rates at
    # 20 Hz up to 40 ms off the nominal latency, a 5 degree wobble at 2 Hz leaves
    # an oscillation of about 0.1 m in the position, around the still flight's
    assert math.hypot(mean_diff(1), mean_diff(2)) < 0.06
    assert math.hypot(mean_diff(3), mean_diff(4)) < 0.1


def test_uncompensated_rotation_would_show_as_velocity() -> None:
    """The test above can fail: without the rates the same wobble is a velocity."""
    still = fly(FlowEstimator(), 5.0)
    est = FlowEstimator()
    est.add_rates = lambda *a, **k: None  # type: ignore[method-assign]
    rows = fly(est, 5.0, wobble_deg=5.0, wobble_hz=1.0)
    peak = max(math.hypot(r[1] - s[1], r[2] - s[2]) for r, s in zip(rows[-200:], still[-200:],
                                                                   strict=True))
    assert peak > 0.2


def _flow(dx: int = 0, dy: int = 0, squal: int = 120) -> FlowSample:
    return FlowSample(dx=dx, dy=dy, motion=bool(dx or dy), squal=squal, shutter=0x100,
                      raw_sum=0, raw_max=0, raw_min=0)


def _steady(est: FlowEstimator, t0: float, seconds: float, height: float = 1.0) -> float:
    """Hover still at ``height``: zero flow at 100 Hz, ranges at 10 Hz."""
    t = t0
    for i in range(round(seconds / DT)):
        t = t0 + (i + 1) * DT
        est.add_attitude(t, 0.0, 0.0, 0.0, telemetry=False)
        est.add_rates(t, (0.0, 0.0, 0.0), telemetry=False)
        est.add_flow(t, _flow())
        if i % 10 == 0:
            est.add_range(t, RangeSample(height, 0, 20.0))
        est.update(t)
    return t


def test_outliers_are_rejected() -> None:
    est = FlowEstimator()
    t = _steady(est, 0.0, 2.0)
    before = est.estimate(t)
    assert before is not None and abs(before.velocity[0]) < 0.02
    rejected = est.flow_rejected
    # a burst of 2000 counts in 10 ms (400 m/s at 1 m) does not pass the gate
    t += DT
    est.add_attitude(t, 0, 0, 0, telemetry=False)
    est.add_rates(t, (0, 0, 0), telemetry=False)
    est.add_flow(t, _flow(dx=2000))
    est.update(t)
    assert est.flow_rejected == rejected + 1
    # low SQUAL: rejected whatever it says
    t += DT
    est.add_attitude(t, 0, 0, 0, telemetry=False)
    est.add_rates(t, (0, 0, 0), telemetry=False)
    est.add_flow(t, _flow(dx=30, squal=5))
    est.update(t)
    assert est.flow_rejected == rejected + 2
    after = est.estimate(t)
    assert after is not None and abs(after.velocity[0]) < 0.05
    # a range with a bad status, and a valid-looking spike, leave the height alone
    r_rejected = est.range_rejected
    est.add_range(t, RangeSample(0.2, 2, 1.0))
    est.add_range(t + 0.001, RangeSample(3.5, 0, 5.0))
    t = _steady(est, t + 0.002, 0.05)
    assert est.range_rejected == r_rejected + 2
    e = est.estimate(t)
    assert e is not None and e.height == pytest.approx(1.0, abs=0.02)
    assert est.last_range_valid_t is not None and est.last_flow_valid_t is not None


def test_a_lasting_step_in_height_is_taken_after_the_gate_gives_up() -> None:
    est = FlowEstimator(FlowConfig(gate_reset=5))
    t = _steady(est, 0.0, 2.0, height=1.0)
    t = _steady(est, t, 1.0, height=0.4)   # flew over a table
    e = est.estimate(t)
    assert e is not None and e.height == pytest.approx(0.4, abs=0.05)


def test_flow_waits_for_the_rates_that_cover_it() -> None:
    est = FlowEstimator(FlowConfig(latency_s=0.1, latency_max_s=0.3))
    _steady(est, 0.0, 1.0)
    fused = est.flow_fused
    est.add_flow(1.01, _flow())
    est.update(1.01)       # rates reach 1.0 only: the flow waits
    assert est.flow_fused == fused
    rejected = est.flow_rejected
    est.update(1.5)        # waited beyond latency_max_s: no rates cover it, not used
    assert est.flow_fused == fused and est.flow_rejected == rejected + 1


def test_rates_are_not_extrapolated_past_the_newest() -> None:
    est = FlowEstimator(FlowConfig(latency_s=0.1, latency_max_s=0.3))
    t = _steady(est, 0.0, 1.0)
    fused, rejected = est.flow_fused, est.flow_rejected
    # the rates stop (telemetry lost); a turning craft's flow is not turned back with
    # the last rate held for ever: it is not used
    for i in range(1, 51):
        est.add_flow(t + i * DT, _flow(dx=30))
        est.update(t + i * DT + 0.5)
    assert est.flow_fused == fused and est.flow_rejected == rejected + 50
    e = est.estimate(t + 1.0)
    assert e is not None and abs(e.velocity[0]) < 0.05


def test_bad_inputs_raise_clear_errors() -> None:
    est = FlowEstimator()
    with pytest.raises(EstimatorInputError):
        est.add_attitude(0.0, math.nan, 0.0, 0.0)
    with pytest.raises(EstimatorInputError):
        est.add_rates(0.0, (0.0, math.inf, 0.0))
    with pytest.raises(EstimatorInputError):
        est.add_range(0.0, RangeSample(math.nan, 0, 1.0))
    assert est.estimate(0.0) is None
    with pytest.raises(ConfigError, match=r"hold\.estimator\.latency_s"):
        tomlconf.load(FlowConfig, {"latency_s": -1}, "hold.estimator")
    with pytest.raises(ConfigError, match=r"hold\.estimator\.bogus"):
        tomlconf.load(FlowConfig, {"bogus": 1}, "hold.estimator")


def test_counts_per_radian_from_the_optics() -> None:
    # a count is a tenth of one of 35 pixels over 42 degrees; PX4's driver takes
    # 385-500 counts a radian, Bitcraze's 10 x 35 / 0.717 = 488
    assert pytest.approx(10 * 35 / math.radians(42)) == COUNTS_PER_RAD
    assert 385 <= COUNTS_PER_RAD <= 500


def test_a_craft_on_the_floor_does_not_move_whatever_its_tilt() -> None:
    """On the floor the flow cannot focus and the floor, not the thrust, holds the
    craft: a board that sits off level must not read as an acceleration (in a
    simulated flight the estimate once reached 0.26 m/s in 3 s on the floor, a lurch
    at lift-off)."""
    est = FlowEstimator()
    t = 0.0
    for i in range(300):
        t = (i + 1) * DT
        est.add_attitude(t, 1.5, -1.0, 30.0, telemetry=False)
        est.add_rates(t, (0.0, 0.0, 0.0), telemetry=False)
        est.add_flow(t, _flow(squal=3))    # out of focus: invalid
        if i % 10 == 0:
            est.add_range(t, RangeSample(0.03, 0, 20.0))
        est.update(t)
    e = est.estimate(t)
    assert e is not None and e.height == pytest.approx(0.03, abs=0.01)
    assert math.hypot(*e.velocity) < 0.01
    assert math.hypot(*e.position) < 0.01
    # once off the floor the tilt is a thrust's again: the same lean accelerates it
    for i in range(100):
        t += DT
        est.add_attitude(t, 1.5, -1.0, 30.0, telemetry=False)
        est.add_rates(t, (0.0, 0.0, 0.0), telemetry=False)
        est.add_flow(t, _flow(squal=3))
        if i % 10 == 0:
            est.add_range(t, RangeSample(0.5, 0, 20.0))
        est.update(t)
    e = est.estimate(t)
    assert e is not None and math.hypot(*e.velocity) > 0.1


def _low(est: FlowEstimator, t: float, dx: int, squal: int, height: float = 0.06) -> float:
    t += DT
    est.add_attitude(t, 0.0, 0.0, 0.0, telemetry=False)
    est.add_rates(t, (0.0, 0.0, 0.0), telemetry=False)
    est.add_flow(t, _flow(dx=dx, squal=squal))
    if round(t / DT) % 10 == 0:
        est.add_range(t, RangeSample(height, 0, 20.0))
    est.update(t)
    return t


def test_low_and_seeing_the_flow_is_not_at_rest() -> None:
    """The rest rule is for a craft that cannot see: low but with valid flow (a
    deck in focus at 6 cm, a craft skimming the floor) the flow's speed is taken,
    from the first valid burst after a rest on."""
    est = FlowEstimator()
    t, moved, carry = 0.0, 0.0, 0.0
    for _ in range(200):                  # still and blind for 2 s
        t = _low(est, t, 0, squal=3)
    assert est.resting
    blind = est.flow_rejected
    for _ in range(200):                  # then it slides at 0.3 m/s (5 rad/s of flow)
        moved += 0.3 * DT
        carry += COUNTS_PER_RAD * 0.3 / 0.06 * DT
        dx = int(carry)
        carry -= dx
        t = _low(est, t, dx, squal=120)
    e = est.estimate(t)
    assert e is not None and not est.resting
    assert est.flow_rejected == blind     # every burst it saw was taken
    assert e.velocity[0] == pytest.approx(0.3, abs=0.03)
    assert e.position[0] == pytest.approx(moved, abs=0.03)


def test_a_burst_on_the_floor_is_not_taken_for_a_speed() -> None:
    """A lone valid burst after a rest that says 2 m/s is gated out, and the craft
    stays at rest: a take-off starts at the wind's push, not at a glitch's speed."""
    est = FlowEstimator()
    t = 0.0
    for _ in range(200):
        t = _low(est, t, 0, squal=3, height=0.05)
    assert est.resting
    rejected = est.flow_rejected
    t = _low(est, t, round(2.0 / 0.05 * DT * COUNTS_PER_RAD), squal=30, height=0.05)
    assert est.flow_rejected == rejected + 1
    for _ in range(50):
        t = _low(est, t, 0, squal=3, height=0.05)
    e = est.estimate(t)
    assert e is not None and est.resting
    assert math.hypot(*e.velocity) < 0.01 and math.hypot(*e.position) < 0.01


def test_reset_position_moves_the_origin_for_good() -> None:
    est = FlowEstimator()
    t = _steady(est, 0.0, 1.0)
    est.reset_position(2.0, -1.0)
    t = _steady(est, t, 0.5)
    e = est.estimate(t)
    assert e is not None
    assert e.position == pytest.approx((2.0, -1.0), abs=0.02)
