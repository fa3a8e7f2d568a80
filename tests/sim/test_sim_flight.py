"""Hover equilibrium and drift under mounting tilt and wind, in virtual time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipilot.sim import LockstepSim
from pipilot.sim.dynamics import G, QuadParams

QUIET = QuadParams(gyro_bias_dps=0.0, accel_bias=0.0)


def take_off(sim: LockstepSim, climb_s: float = 2.0) -> None:
    sim.run(1.0)
    sim.set_sticks(yaw=-1.0)
    sim.run(1.2)
    sim.set_sticks(yaw=0.0)
    sim.set_sticks(throttle=0.6)
    sim.run(climb_s)
    sim.set_sticks(throttle=sim.model.hover_throttle())


def test_hover_equilibrium() -> None:
    sim = LockstepSim(seed=4, params=QUIET)
    take_off(sim, climb_s=1.0)
    sim.run(10.0)
    alt = sim.truth.altitude
    sim.run(4.0)
    assert sim.truth.altitude > 1.0
    assert abs(sim.truth.altitude - alt) / 4.0 < 0.1  # m/s
    roll, pitch, _ = sim.truth.euler_deg()
    assert abs(roll) < 1.0 and abs(pitch) < 1.0
    assert sim.model.quad.thrust == pytest.approx(QUIET.mass * G, rel=0.03)


def steady_velocity(sim: LockstepSim, settle: float = 8.0, measure: float = 5.0) -> np.ndarray:
    take_off(sim)
    sim.run(settle)
    p0 = sim.truth.position.copy()
    sim.run(measure)
    return (sim.truth.position - p0) / measure


def test_mount_tilt_drifts_the_way_the_frame_leans() -> None:
    tilt = 3.0
    v = steady_velocity(LockstepSim(seed=5, params=QUIET, mount_tilt_deg=(0.0, tilt)))
    # board nose-up -> frame nose-down -> forward (north); speed g*tan(tilt)*m/drag
    expected = G * math.tan(math.radians(tilt)) * QUIET.mass / QUIET.drag_xy
    assert v[0] == pytest.approx(expected, rel=0.2)
    assert abs(v[1]) < 0.2 * expected
    v = steady_velocity(LockstepSim(seed=5, params=QUIET, mount_tilt_deg=(tilt, 0.0)))
    # board right side up -> frame rolls left -> drifts west
    assert v[1] == pytest.approx(-expected, rel=0.2)
    assert abs(v[0]) < 0.2 * expected


def test_wind_carries_the_craft() -> None:
    v = steady_velocity(LockstepSim(seed=6, params=QUIET, wind=(0.0, 2.0)))
    assert v[1] == pytest.approx(2.0, rel=0.15)
    assert abs(v[0]) < 0.3


def test_sensor_bias_alone_gives_a_slow_drift() -> None:
    sim = LockstepSim(seed=7)
    v = steady_velocity(sim)
    speed = math.hypot(v[0], v[1])
    assert 0.02 < speed < 1.0
    assert sim.model.drift_m() > 0.1


def test_same_seed_same_flight_other_seed_other_flight() -> None:
    def flight(seed: int) -> np.ndarray:
        sim = LockstepSim(seed=seed)
        take_off(sim, climb_s=1.0)
        sim.run(2.0)
        return sim.truth.position.copy()

    a, b, c = flight(11), flight(11), flight(12)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def hovering(seed: int) -> LockstepSim:
    sim = LockstepSim(seed=seed, params=QUIET)
    take_off(sim, climb_s=1.5)
    sim.run(2.0)
    return sim


def test_attitude_mode_response_time() -> None:
    sim = hovering(8)
    t0 = sim.now
    sim.set_sticks(roll=0.5)  # 21 deg with RollMax 42
    reached: dict[float, float] = {}
    while sim.now - t0 < 1.5:
        sim.run(0.01)
        roll = sim.truth.euler_deg()[0]
        for level in (10.0, 19.0):
            if roll >= level and level not in reached:
                reached[level] = sim.now - t0
    # outer loop 2.5 (deg/s)/deg: a time constant near 0.4 s plus the inner loop's lag
    assert 0.15 < reached[10.0] < 0.5
    assert 0.5 < reached[19.0] < 1.2


def test_axis_lock_yaw_turns_at_the_stick_rate_and_holds_heading() -> None:
    sim = hovering(9)
    sim.set_sticks(yaw=0.4)  # 70 deg/s with ManualRate 175
    sim.run(0.5)
    y0 = sim.truth.euler_deg()[2]
    sim.run(0.5)
    rate = (sim.truth.euler_deg()[2] - y0) / 0.5
    assert rate == pytest.approx(70.0, rel=0.15)
    sim.set_sticks(yaw=0.0)
    sim.run(1.0)
    held = sim.truth.euler_deg()[2]
    sim.run(5.0)
    assert abs(sim.truth.euler_deg()[2] - held) < 3.0
