"""Velocity, position and height from the flow deck and the flight controller's attitude.

Measurement models (facts from the PMW3901 and VL53L1X datasheets and from
how optical-flow estimators are commonly built, e.g. the Crazyflie's Kalman
flow update and PX4's EKF2 flow fusion):

- The PMW3901 reports image motion in counts; ``COUNTS_PER_RAD`` (a count
  is a tenth of one of 35 pixels over a 42 degree field of view, see
  `pipilot.sensors.pmw3901`) turns it into an angle. Along body x the
  image moves by ``v_x / d + q`` rad/s and along y by ``v_y / d - p``, with
  ``d`` the distance along the view axis and ``p``, ``q`` the body roll and
  pitch rates. So the translation over a sample is ``d * (angle - rotation)``:
  a craft that only rotates sees flow but no velocity.
- The VL53L1X ranges along the same axis: ``d`` is the range, the height is
  ``d cos(roll) cos(pitch)``. A result is the mean over its timing budget, so
  it is stamped half a budget before it was read.
- The rotation comes from a rates input (`RateSample`: body rates with the
  time they were measured), which the CC3D's GyroState, rates derived from
  its AttitudeState, or an IMU on the Pi can feed. Telemetry is stamped on
  arrival and is older than that by the link's latency, which is not known
  exactly: ``latency_s`` is a nominal figure, bounded by ``latency_max_s``.
  Flow waits (in a queue) until rates covering its interval have arrived, so
  the filter runs on a delayed time horizon, and its output is predicted
  forward to the present.
- Horizontal dynamics: the thrust tilted by the attitude accelerates the
  craft (``-g R[:2, 2] / R[2, 2]`` with the vertical thrust balancing
  gravity), plus an unknown, slowly changing acceleration ``b`` (wind drag,
  a board mounted off level). State per axis (north, east): position,
  velocity, ``b``. Vertical: height, climb rate.
- Outliers: flow with a low SQUAL (``FlowSample.valid``), ranges whose
  status is not valid, and any measurement whose innovation exceeds
  ``gate_sigma`` standard deviations are rejected; a long run of rejected
  innovations (the estimate, not the sensor, is wrong, e.g. after a
  dropout) resets that part of the state to the measurement.

Pure computation: no I/O, no clock reads; every input carries its time.
Conventions are LibrePilot's: NED, body x forward, y right, z down, angles
in degrees in AttitudeState, rates here in rad/s.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from pipilot.control.drift import GRAVITY, rotation_body_to_ned
from pipilot.control.holdconfig import FlowConfig as FlowConfig
from pipilot.errors import PipilotError
from pipilot.sensors.pmw3901 import COUNTS_PER_RAD as COUNTS_PER_RAD
from pipilot.sensors.pmw3901 import FlowSample
from pipilot.sensors.vl53l1x import RangeSample

REST_BLIND_S = 0.2
"""Below the rest height, no flow fused this long: the craft is taken as at rest."""
REST_EXIT_SIGMA = 0.3
"""m/s: how fast a craft leaving the floor may be going (the wind's first push). The
first flow after a rest is weighed against it, so a burst that says much more is
gated out, as anywhere else."""


class EstimatorInputError(PipilotError, ValueError):
    """A sample the flow estimator cannot use (non-finite values)."""


@dataclass(frozen=True)
class RateSample:
    """Body rates p, q, r (rad/s), measured at ``t`` (on the estimator's time line)."""

    t: float
    rates: tuple[float, float, float]


@dataclass(frozen=True)
class AttitudeSample:
    """Roll, pitch, yaw (degrees) measured at ``t``."""

    t: float
    roll: float
    pitch: float
    yaw: float


@dataclass(frozen=True)
class FlowEstimate:
    """The estimate at ``t`` (predicted forward from the fused horizon ``horizon_t``)."""

    t: float
    horizon_t: float
    position: tuple[float, float]
    """North, east, m, from where the estimate began."""
    velocity: tuple[float, float]
    """North, east, m/s."""
    accel_bias: tuple[float, float]
    """The unknown horizontal acceleration (wind drag, mount tilt), m/s^2."""
    height: float
    climb: float
    """Up positive, m/s."""
    position_sigma: float
    velocity_sigma: float
    height_sigma: float


def _tilt_ok(att: AttitudeSample, max_deg: float) -> bool:
    return abs(att.roll) <= max_deg and abs(att.pitch) <= max_deg


class FlowEstimator:
    """Feed it flow, range, attitude and rates as they arrive; read `estimate(now)`.

    ``add_*`` take samples stamped on the Pi's clock: flow and range when they
    were read, attitude and rates when they arrived (``telemetry=True``: they
    are then moved back by ``latency_s``; an IMU on the Pi passes False).
    """

    def __init__(self, config: FlowConfig | None = None) -> None:
        self.config = config or FlowConfig()
        self.x = np.zeros(6)     # pn, pe, vn, ve, bn, be
        self.P = np.diag([1e-4, 1e-4, 1.0, 1.0, 0.5, 0.5])
        self.z = np.zeros(2)     # height, climb (up)
        self.Pz = np.diag([1.0, 1.0])
        self.t: float | None = None   # the fused horizon
        self.height_known = False
        self.horizontal_known = False
        self._rates: deque[RateSample] = deque(maxlen=400)
        self._attitudes: deque[AttitudeSample] = deque(maxlen=200)
        self._pending: list[tuple[float, int, FlowSample | RangeSample, float]] = []
        self._seq = 0
        self._flow_prev_t: float | None = None
        self._p_at_flow: np.ndarray | None = None
        self._rejected_flow = 0
        self._rejected_range = 0
        self.flow_fused = 0
        self.flow_rejected = 0
        self.range_fused = 0
        self.range_rejected = 0
        self.last_flow_valid_t: float | None = None
        self.last_range_valid_t: float | None = None
        self.last_flow: FlowSample | None = None
        self.last_range: RangeSample | None = None
        self._flow_seen_t: float | None = None
        self.resting = False
        """Low and blind: the speed is held at zero (see `_rest`)."""

    # -- inputs -------------------------------------------------------------

    def add_attitude(self, t: float, roll: float, pitch: float, yaw: float, *,
                     telemetry: bool = True) -> None:
        vals = (t, roll, pitch, yaw)
        if not all(math.isfinite(v) for v in vals):
            raise EstimatorInputError("non-finite attitude sample")
        ts = t - self.config.latency_s if telemetry else t
        if self._attitudes and ts <= self._attitudes[-1].t:
            return
        self._attitudes.append(AttitudeSample(ts, roll, pitch, yaw))

    def add_rates(self, t: float, rates: tuple[float, float, float], *,
                  telemetry: bool = True) -> None:
        if not all(math.isfinite(v) for v in (t, *rates)):
            raise EstimatorInputError("non-finite rate sample")
        ts = t - self.config.latency_s if telemetry else t
        if self._rates and ts <= self._rates[-1].t:
            return
        self._rates.append(RateSample(ts, rates))

    def add_flow(self, t: float, sample: FlowSample) -> None:
        """A motion burst read at ``t``: the counts since the previous burst."""
        if not math.isfinite(t):
            raise EstimatorInputError("non-finite flow time")
        self.last_flow = sample
        if sample.valid:
            self.last_flow_valid_t = t
        self._queue(t, sample, t)

    def add_range(self, t: float, sample: RangeSample) -> None:
        """A range read at ``t`` (measured over the budget before it)."""
        if not math.isfinite(t) or not math.isfinite(sample.range_m):
            raise EstimatorInputError("non-finite range sample")
        self.last_range = sample
        if sample.valid:
            self.last_range_valid_t = t
        self._queue(t - self.config.range_budget_s / 2, sample, t)

    def _queue(self, t_meas: float, sample: FlowSample | RangeSample, t_read: float) -> None:
        self._seq += 1
        bisect.insort(self._pending, (t_meas, self._seq, sample, t_read))

    # -- the filter ----------------------------------------------------------

    def update(self, now: float) -> None:
        """Fuse every queued sample that the rates now cover (or that waited too long)."""
        covered = self._rates[-1].t if self._rates else -math.inf
        limit = now - self.config.latency_max_s
        while self._pending:
            t_meas, _, sample, _ = self._pending[0]
            if t_meas > covered and t_meas > limit:
                break
            self._pending.pop(0)
            self._predict(t_meas)
            att = self._attitude_at(t_meas)
            if isinstance(sample, RangeSample):
                self._fuse_range(sample, att)
            else:
                self._fuse_flow(t_meas, sample, att)

    def _predict(self, t: float) -> None:
        cfg = self.config
        if self.t is None or t - self.t > cfg.max_gap_s:
            self.t = t
            return
        dt = t - self.t
        if dt <= 0:
            return
        self.t = t
        self.resting = (self.height_known and float(self.z[0]) < cfg.rest_height_m
                        and (self._flow_seen_t is None or t - self._flow_seen_t > REST_BLIND_S))
        if self.resting:
            self._rest(dt)
            return
        acc = self._tilt_accel(self._attitude_at(t))
        f = np.eye(6)
        f[0:2, 2:4] = dt * np.eye(2)
        f[0:2, 4:6] = 0.5 * dt * dt * np.eye(2)
        f[2:4, 4:6] = dt * np.eye(2)
        self.x = f @ self.x
        self.x[0:2] += 0.5 * dt * dt * acc
        self.x[2:4] += dt * acc
        qa = cfg.accel_noise ** 2 * dt
        qb = cfg.bias_walk ** 2 * dt
        q = np.zeros((6, 6))
        g = np.array([0.5 * dt, 1.0])
        for i in range(2):
            q[np.ix_([i, i + 2], [i, i + 2])] = np.outer(g, g) * qa
            q[i + 4, i + 4] = qb
        self.P = f @ self.P @ f.T + q
        fz = np.array([[1.0, dt], [0.0, 1.0]])
        self.z = fz @ self.z
        self.Pz = fz @ self.Pz @ fz.T + np.outer(g, g) * cfg.vertical_accel_noise ** 2 * dt

    def _rest(self, dt: float) -> None:
        """Below ``rest_height_m``, with no flow to see by, the craft stands on the
        floor, or is just leaving or reaching it: the floor, not a thrust that balances
        gravity, holds it there, so the tilt says nothing of its acceleration. The
        horizontal speed is taken as zero and the position stays; the first flow it
        sees by again is weighed against a speed of up to `REST_EXIT_SIGMA`."""
        cfg = self.config
        self.x[2:4] = 0.0
        self.P[2:4, :] = 0.0
        self.P[:, 2:4] = 0.0
        self.P[2, 2] = self.P[3, 3] = cfg.rest_speed_sigma ** 2
        self.P[4, 4] += cfg.bias_walk ** 2 * dt
        self.P[5, 5] += cfg.bias_walk ** 2 * dt
        fz = np.array([[1.0, dt], [0.0, 1.0]])
        g = np.array([0.5 * dt, 1.0])
        self.z = fz @ self.z
        self.Pz = fz @ self.Pz @ fz.T + np.outer(g, g) * cfg.vertical_accel_noise ** 2 * dt

    @staticmethod
    def _tilt_accel(att: AttitudeSample | None) -> np.ndarray:
        """Horizontal acceleration (NED) of a thrust that holds the height at ``att``."""
        if att is None:
            return np.zeros(2)
        rot = rotation_body_to_ned(att.roll, att.pitch, att.yaw)
        if rot[2, 2] <= 0.3:
            return np.zeros(2)
        acc: np.ndarray = -GRAVITY * rot[:2, 2] / rot[2, 2]
        return acc

    def _attitude_at(self, t: float) -> AttitudeSample | None:
        """The attitude at ``t``, interpolated; the nearest one outside the samples."""
        atts = self._attitudes
        if not atts:
            return None
        if t <= atts[0].t:
            return atts[0]
        if t >= atts[-1].t:
            return atts[-1]
        i = bisect.bisect_left([a.t for a in atts], t)
        a0, a1 = atts[i - 1], atts[i]
        f = (t - a0.t) / (a1.t - a0.t)
        dyaw = ((a1.yaw - a0.yaw + 180.0) % 360.0) - 180.0
        return AttitudeSample(t, a0.roll + f * (a1.roll - a0.roll),
                              a0.pitch + f * (a1.pitch - a0.pitch), a0.yaw + f * dyaw)

    def _rotation(self, t0: float, t1: float) -> tuple[float, float]:
        """Roll and pitch turned through (rad) between t0 and t1, from the rates."""
        rates = self._rates
        if not rates or t1 <= t0:
            return 0.0, 0.0
        ts = [r.t for r in rates]

        def rate_at(t: float) -> np.ndarray:
            if t <= ts[0]:
                return np.asarray(rates[0].rates[:2])
            if t >= ts[-1]:
                return np.asarray(rates[-1].rates[:2])
            i = bisect.bisect_left(ts, t)
            r0, r1 = rates[i - 1], rates[i]
            f = (t - r0.t) / (r1.t - r0.t)
            return (1 - f) * np.asarray(r0.rates[:2]) + f * np.asarray(r1.rates[:2])

        knots = [t0] + [t for t in ts if t0 < t < t1] + [t1]
        total = np.zeros(2)
        prev = rate_at(t0)
        for a, b in itertools.pairwise(knots):
            cur = rate_at(b)
            total += 0.5 * (prev + cur) * (b - a)
            prev = cur
        return float(total[0]), float(total[1])

    def _fuse_range(self, sample: RangeSample, att: AttitudeSample | None) -> None:
        cfg = self.config
        if not sample.valid or (att is not None and not _tilt_ok(att, cfg.max_tilt_deg)):
            self.range_rejected += 1
            return
        tilt = 1.0 if att is None else (math.cos(math.radians(att.roll))
                                        * math.cos(math.radians(att.pitch)))
        h = sample.range_m * tilt
        r = (cfg.range_noise_m * max(1.0, sample.range_m) ** 2) ** 2
        if not self.height_known:
            self.z = np.array([h, 0.0])
            self.Pz = np.diag([r, 0.25])
            self.height_known = True
            self.range_fused += 1
            return
        hm = np.array([1.0, 0.0])
        s = float(hm @ self.Pz @ hm) + r
        innov = h - float(self.z[0])
        if innov * innov > cfg.gate_sigma ** 2 * s:
            self._rejected_range += 1
            self.range_rejected += 1
            if self._rejected_range < cfg.gate_reset:
                return
            self.z = np.array([h, 0.0])
            self.Pz = np.diag([r, 0.25])
            self._rejected_range = 0
            return
        self._rejected_range = 0
        k = self.Pz @ hm / s
        self.z = self.z + k * innov
        a = np.eye(2) - np.outer(k, hm)
        self.Pz = a @ self.Pz @ a.T + np.outer(k, k) * r
        self.range_fused += 1

    def _fuse_flow(self, t: float, sample: FlowSample, att: AttitudeSample | None) -> None:
        cfg = self.config
        t_prev, self._flow_prev_t = self._flow_prev_t, t
        if t_prev is None or not 0 < t - t_prev <= cfg.max_gap_s:
            self._p_at_flow = self.x[0:2].copy()
            return   # the counts cover an unknown interval
        dt = t - t_prev
        # rates are not extrapolated past the newest: a flow they do not cover is unused
        uncovered = bool(self._rates) and t > self._rates[-1].t
        if (not sample.valid or not self.height_known or att is None or uncovered
                or not _tilt_ok(att, cfg.max_tilt_deg)):
            self.flow_rejected += 1
            self._p_at_flow = self.x[0:2].copy()   # dead reckoning over this interval
            return
        cr, cp = math.cos(math.radians(att.roll)), math.cos(math.radians(att.pitch))
        d = max(float(self.z[0]), 0.05) / (cr * cp)
        droll, dpitch = self._rotation(t_prev, t)
        ax = sample.dx / COUNTS_PER_RAD - dpitch
        ay = sample.dy / COUNTS_PER_RAD + droll
        v_body = np.array([d * ax / dt, d * ay / dt])
        yaw = math.radians(att.yaw)
        c, s_ = math.cos(yaw), math.sin(yaw)
        v_ned = np.array([c * v_body[0] - s_ * v_body[1], s_ * v_body[0] + c * v_body[1]])
        counts = cfg.flow_noise_counts * 100.0 / max(sample.squal, 1)
        sigma = counts * d / COUNTS_PER_RAD / dt
        r = np.eye(2) * sigma ** 2
        hm = np.zeros((2, 6))
        hm[0, 2] = hm[1, 3] = 1.0
        s = hm @ self.P @ hm.T + r
        innov = v_ned - self.x[2:4]
        was_resting, self.resting = self.resting, False
        if was_resting:   # the rest's zero is a speed known to a take-off's push
            for i in (2, 3):
                self.P[i, i] = max(self.P[i, i], REST_EXIT_SIGMA ** 2)
            s = hm @ self.P @ hm.T + r
        elif not self.horizontal_known:
            self._reset_velocity(v_ned, r)
            self.horizontal_known = True
            self.flow_fused += 1
            self._flow_seen_t = t
            self._p_at_flow = self.x[0:2].copy()
            return
        m2 = float(innov @ np.linalg.solve(s, innov))
        if m2 > cfg.gate_sigma ** 2:
            self._rejected_flow += 1
            self.flow_rejected += 1
            if self._rejected_flow < cfg.gate_reset:
                self._p_at_flow = self.x[0:2].copy()
                return
            self._reset_velocity(v_ned, r)
            self.horizontal_known = True
            self._rejected_flow = 0
            self._flow_seen_t = t
            self._p_at_flow = self.x[0:2].copy()
            return
        self._rejected_flow = 0
        k = self.P @ hm.T @ np.linalg.inv(s)
        k[0:2] = 0.0   # the position is set from the flow's displacement below
        self.x = self.x + k @ innov
        a = np.eye(6) - k @ hm
        self.P = a @ self.P @ a.T + k @ r @ k.T   # Joseph form: stays symmetric, positive
        # the position follows the flow's own displacement over the interval (the
        # sensor's odometry), not the filtered velocity, whose model errors would add up
        if self._p_at_flow is not None:
            self.x[0:2] = self._p_at_flow + v_ned * dt
        self._p_at_flow = self.x[0:2].copy()
        self._flow_seen_t = t
        self.horizontal_known = True
        self.flow_fused += 1

    def _reset_velocity(self, v_ned: np.ndarray, r: np.ndarray) -> None:
        """Take the measured velocity as it is, forgetting what it was correlated with."""
        self.x[2:4] = v_ned
        self.P[2:4, :] = 0.0
        self.P[:, 2:4] = 0.0
        self.P[2:4, 2:4] = r

    # -- output ---------------------------------------------------------------

    def estimate(self, now: float) -> FlowEstimate | None:
        """The estimate predicted from the fused horizon to ``now`` (None before any)."""
        if self.t is None or not self.height_known:
            return None
        ahead = min(max(now - self.t, 0.0), self.config.latency_max_s)
        # forward to now with the newest attitude's thrust tilt (the FC flies it already)
        acc = self.x[4:6] + self._tilt_accel(self._attitudes[-1] if self._attitudes else None)
        if self.resting:
            acc = np.zeros(2)
        vel = self.x[2:4] + acc * ahead
        pos = self.x[0:2] + self.x[2:4] * ahead + 0.5 * acc * ahead * ahead
        return FlowEstimate(
            t=now, horizon_t=self.t,
            position=(float(pos[0]), float(pos[1])),
            velocity=(float(vel[0]), float(vel[1])),
            accel_bias=(float(self.x[4]), float(self.x[5])),
            height=float(self.z[0] + self.z[1] * ahead), climb=float(self.z[1]),
            position_sigma=float(math.sqrt(max(self.P[0, 0], self.P[1, 1], 0.0))),
            velocity_sigma=float(math.sqrt(max(self.P[2, 2], self.P[3, 3], 0.0))),
            height_sigma=float(math.sqrt(max(self.Pz[0, 0], 0.0))))

    def reset_position(self, north: float = 0.0, east: float = 0.0) -> None:
        """Move the position origin (the velocity and everything else stay)."""
        if self._p_at_flow is not None:   # the next flow's odometry starts from there
            self._p_at_flow += np.array([north, east]) - self.x[0:2]
        self.x[0], self.x[1] = north, east

