"""The drift loop closed around the independent multirotor model."""

from __future__ import annotations

import numpy as np
import pytest

from pipilot.control.drift import CompensatorConfig, DriftController
from pipilot.core.clock import VirtualClock
from pipilot.core.tomlconf import load
from pipilot.errors import ConfigError
from pipilot.mission.spec import DriftTable

from .quadmodel import QuadModel

DT = 0.05


def fly(compensate: bool, seconds: float = 60.0, noise: float = 0.0):
    clock = VirtualClock()
    ctl = DriftController(clock=clock)
    model = QuadModel(mount_pitch_deg=2.0, mount_roll_deg=-1.0, wind=(0.5, 0.2),
                      accel_noise=noise)
    model.att[:] = [-1.0, 2.0, 30.0]  # standing level: the board shows the mount tilt
    trims = []
    for _ in range(round(5 / DT)):  # disarmed on the ground: calibration
        model.step(DT, -1.0, 2.0)
        clock.advance(DT)
        trim = ctl.step(model.sample(), armed=False, flying=False)
        assert trim.roll == trim.pitch == 0.0
    model.take_off()
    speeds = []
    for _ in range(round(seconds / DT)):
        trim = ctl.step(model.sample(), armed=True, flying=True)
        cmd = (trim.roll_deg, trim.pitch_deg) if compensate else (0.0, 0.0)
        model.step(DT, *cmd)
        clock.advance(DT)
        trims.append(cmd)
        speeds.append(np.hypot(*model.v[:2]))
    return np.hypot(*model.p[:2]), np.array(speeds), np.array(trims), ctl


def test_compensation_cuts_drift_tenfold_and_settles():
    drift_off, _, _, _ = fly(False)
    drift_on, speeds, trims, _ = fly(True)
    assert drift_off > 30.0
    assert drift_on < drift_off / 10
    # settled: no oscillation in the last 20 s
    assert speeds[-400:].max() < 0.05
    assert np.abs(np.diff(trims[-400:], axis=0)).max() < 0.05
    assert np.abs(trims).max() <= 8.0


def test_compensation_with_vibration_noise():
    drift_off, _, _, _ = fly(False, noise=0.3)
    drift_on, speeds, _, _ = fly(True, noise=0.3)
    assert drift_on < drift_off / 5
    assert np.median(speeds[-400:]) < 0.3


def test_trims_are_bounded_and_off_when_disarmed():
    clock = VirtualClock()
    ctl = DriftController(CompensatorConfig(max_trim_deg=3.0), clock=clock)
    model = QuadModel(mount_pitch_deg=10.0, wind=(3.0, 0.0))
    for _ in range(20):
        model.step(DT)
        clock.advance(DT)
        ctl.step(model.sample(), armed=False, flying=False)
    model.take_off()
    for _ in range(400):
        trim = ctl.step(model.sample(), armed=True, flying=True)
        assert abs(trim.roll_deg) <= 3.0 and abs(trim.pitch_deg) <= 3.0
        model.step(DT, trim.roll_deg, trim.pitch_deg)
        clock.advance(DT)
    assert trim.active and abs(trim.pitch_deg) == pytest.approx(3.0)
    trim = ctl.step(model.sample(), armed=False, flying=True)
    assert not trim.active and trim.roll == trim.pitch == 0.0
    assert trim.pitch == 0.0


def test_config_validation():
    # the [drift] table: the gains are its own keys, beside enabled and [drift.estimator]
    assert load(DriftTable, {"kp": 2, "estimator": {}}, "drift").loop.kp == 2.0
    with pytest.raises(ConfigError, match=r"drift\.gain"):
        load(DriftTable, {"gain": 1}, "drift")
    with pytest.raises(ConfigError, match=r"drift\.max_trim_deg"):
        load(DriftTable, {"max_trim_deg": 90}, "drift")
    with pytest.raises(ConfigError, match=r"drift\.kp"):
        load(DriftTable, {"kp": -1}, "drift")


def test_hold_keeps_the_trims_and_resumes_without_a_jump():
    clock = VirtualClock()
    ctl = DriftController(clock=clock)
    model = QuadModel(mount_pitch_deg=2.0, wind=(0.5, 0.0))
    for _ in range(40):
        model.step(DT)
        clock.advance(DT)
        ctl.step(model.sample(), armed=False, flying=False)
    model.take_off()
    for _ in range(400):
        trim = ctl.step(model.sample(), armed=True, flying=True)
        model.step(DT, trim.roll_deg, trim.pitch_deg)
        clock.advance(DT)
    before = (trim.roll_deg, trim.pitch_deg)
    for _ in range(40):  # a commanded move: the craft speeds up, the trims stay
        trim = ctl.step(model.sample(), armed=True, flying=True, hold=True)
        assert (trim.roll_deg, trim.pitch_deg) == before
        model.step(DT, trim.roll_deg + 5.0, trim.pitch_deg)
        clock.advance(DT)
    resumed = ctl.step(model.sample(), armed=True, flying=True)
    assert resumed.roll_deg == pytest.approx(before[0], abs=1e-9)
    assert resumed.pitch_deg == pytest.approx(before[1], abs=1e-9)
