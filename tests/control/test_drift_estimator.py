"""The drift estimator on synthetic data from an independent model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipilot.control.drift import (
    GRAVITY,
    DriftEstimator,
    EstimatorConfig,
    Sample,
    SampleError,
    rotation_body_to_ned,
)
from pipilot.core.tomlconf import load
from pipilot.errors import ConfigError
from pipilot.mission.spec import DriftTable

from .quadmodel import QuadModel

DT = 0.05  # 20 Hz telemetry


def run(model: QuadModel, est: DriftEstimator, seconds: float, cmd=(0.0, 0.0)):
    for _ in range(round(seconds / DT)):
        model.step(DT, *cmd)
        est.update(model.sample(), on_ground=not model.flying)


def test_rotation_matches_conventions():
    # nose up 90 degrees: body x points up (-z in NED)
    rot = rotation_body_to_ned(0, 90, 0)
    assert rot @ np.array([1, 0, 0]) == pytest.approx([0, 0, -1], abs=1e-12)
    # yaw 90: body x points east
    assert rotation_body_to_ned(0, 0, 90) @ np.array([1, 0, 0]) == pytest.approx(
        [0, 1, 0], abs=1e-12)
    # right side down 90: body y points down
    assert rotation_body_to_ned(90, 0, 0) @ np.array([0, 1, 0]) == pytest.approx(
        [0, 0, 1], abs=1e-12)


def test_at_rest_the_velocity_is_zero_and_the_mount_tilt_is_calibrated():
    model = QuadModel(mount_pitch_deg=2.0)
    model.att[:] = [0.0, 2.0, 0.0]  # level frame on the ground: the board shows its tilt
    est = DriftEstimator()
    run(model, est, 5.0, cmd=(0.0, 2.0))
    e = est.estimate
    assert e.on_ground
    assert e.velocity_ned == (0.0, 0.0)
    # the board sees +g sin(2 deg) along its x axis
    assert e.bias_body[0] == pytest.approx(GRAVITY * math.sin(math.radians(2)), abs=1e-3)


@pytest.mark.parametrize("noise", [0.0, 0.15])
def test_tracks_ground_and_air_velocity_in_a_drifting_hover(noise):
    model = QuadModel(mount_pitch_deg=2.0, wind=(0.5, -0.3), accel_noise=noise)
    model.att[:] = [0.0, 2.0, 0.0]
    est = DriftEstimator()
    run(model, est, 10.0, cmd=(0.0, 2.0))
    model.take_off()
    errors = []
    air_errors = []
    for _ in range(round(40 / DT)):
        model.step(DT)  # the FC holds the board level: the frame flies tilted
        e = est.update(model.sample(), on_ground=False)
        errors.append(np.hypot(*(np.array(e.velocity_ned) - model.v[:2])))
        air_errors.append(np.hypot(*(np.array(e.air_velocity_ned) - (model.v - model.wind)[:2])))
    # the craft really drifts (well above a metre per second)...
    assert np.hypot(*model.v[:2]) > 1.0
    # ...and the estimate follows it
    tol = 0.05 if noise == 0 else 0.2
    assert np.mean(errors[-200:]) < tol
    assert max(errors[-200:]) < 2 * tol
    assert np.mean(air_errors[-200:]) < tol
    assert est.estimate.wind_ned == pytest.approx((0.5, -0.3), abs=tol)


def test_accelerometer_bias_does_not_make_the_velocity_run_away():
    model = QuadModel(mount_pitch_deg=0.0, wind=(0.0, 0.0), accel_bias=(0.05, -0.04, 0.0))
    est = DriftEstimator()
    run(model, est, 3.0)
    model.take_off()
    run(model, est, 60.0)
    # truth: hovering still. Pure integration of a 0.05 m/s^2 bias would give 3 m/s.
    assert np.hypot(*model.v[:2]) < 1e-6
    assert np.hypot(*est.estimate.velocity_ned) < 0.1


def test_heading_frame_velocity():
    est = DriftEstimator()
    e = est.update(Sample(t=0, accel=(0, 0, -GRAVITY), attitude=(0, 0, 90)), on_ground=True)
    assert e.velocity_heading == (0.0, 0.0)
    est.x[0:2] = [0.0, 1.0]  # moving east while facing east: forward
    e = est._make_estimate(0.0, np.eye(3), 90.0)
    assert e.velocity_heading == pytest.approx((1.0, 0.0), abs=1e-12)


def test_rejects_bad_samples():
    est = DriftEstimator()
    with pytest.raises(SampleError, match="non-finite"):
        est.update(Sample(t=0, accel=(math.nan, 0, -9.8), attitude=(0, 0, 0)), on_ground=True)
    est.update(Sample(t=1, accel=(0, 0, -9.8), attitude=(0, 0, 0)), on_ground=True)
    with pytest.raises(SampleError, match="out of order"):
        est.update(Sample(t=0.5, accel=(0, 0, -9.8), attitude=(0, 0, 0)), on_ground=True)


def test_config_from_a_table():
    cfg = load(EstimatorConfig, {"drag_coeff": 0.4}, "drift.estimator")
    assert cfg.drag_coeff == 0.4
    with pytest.raises(ConfigError, match=r"drift\.estimator\.dragcoef"):
        load(EstimatorConfig, {"dragcoef": 0.4}, "drift.estimator")
    with pytest.raises(ConfigError, match="must be a number"):
        load(EstimatorConfig, {"drag_coeff": "high"}, "drift.estimator")
    with pytest.raises(ConfigError, match=r"drift\.estimator\.drag_coeff.*> 0"):
        load(EstimatorConfig, {"drag_coeff": 0}, "drift.estimator")  # a model scale: never zero


def test_compensator_config_allows_zero_gains_only():
    from pipilot.control.drift import CompensatorConfig

    assert load(CompensatorConfig, {"kd": 0}, "drift").kd == 0.0
    assert load(DriftTable, {"kd": 0, "enabled": True}, "drift").loop.kd == 0.0
    with pytest.raises(ConfigError, match=r"drift\.kd.*>= 0"):
        load(CompensatorConfig, {"kd": -1}, "drift")
    with pytest.raises(ConfigError, match=r"drift\.max_trim_deg"):
        load(CompensatorConfig, {"max_trim_deg": 50}, "drift")


def test_modelling_the_fc_attitude_filter_matters():
    """The FC's complementary filter hides sustained accelerations; ignoring it hurts."""

    def worst_error(cfg):
        model = QuadModel(mount_pitch_deg=2.0, wind=(0.5, -0.3))
        model.att[:] = [0.0, 2.0, 0.0]
        est = DriftEstimator(cfg)
        run(model, est, 5.0, cmd=(0.0, 2.0))
        model.take_off()
        errs = []
        for _ in range(round(30 / DT)):
            model.step(DT)
            e = est.update(model.sample(), on_ground=False)
            errs.append(np.hypot(*(np.array(e.velocity_ned) - model.v[:2])))
        return max(errs[-200:])

    modelled = worst_error(EstimatorConfig())
    ignored = worst_error(EstimatorConfig(fc_accel_kp=1e-9))
    assert modelled < 0.05
    assert ignored > 4 * modelled
