"""Horizontal velocity from the flight controller's IMU telemetry.

The rig has no GPS, no flow sensor and no barometer, so drift has to be seen
in the accelerometer. Two facts make that possible:

1. Kinematics. Rotating the specific force (AccelState, body axes) into the
   NED frame with the attitude (AttitudeState, propagated to the accelerometer
   sample with the body rates of GyroState) and adding gravity gives the
   horizontal acceleration; integrated from a standstill on the ground it is
   the ground velocity.
2. Rotor drag. A multirotor's thrust is along its body z axis, so the
   horizontal body components of the specific force are the rotor drag, about
   ``-k_drag`` times the air-relative velocity (Martin and Salaun, ICRA 2010;
   Leishman et al., IEEE Control Systems 2014). Steady drift is therefore
   visible, and it pins down the quantities that pure integration cannot.

The flight controller's own attitude estimate is a complementary filter that
slowly turns its idea of "down" towards the measured specific force, so the
acceleration computed from AttitudeState and AccelState is high-passed: in a
steady push the attitude error grows until the apparent horizontal
acceleration is gone. With the filter's known gain ``K`` (AttitudeSettings
AccelKp / the attitude period) that error ``d`` is modelled: the true
acceleration is ``a_est + g d`` and ``d' = K a_est / g``.

A ten-state linear Kalman filter per sample combines it all. State, NED
horizontal: ground velocity ``v`` (2), wind ``w`` (2); body axes: the drag
measurement's bias ``b`` (2): accelerometer bias plus a flight controller
board mounted at a tilt to the rotor plane; NED horizontal: the FC's attitude
error ``d`` (2, radians); body axes: the accelerometer's own share ``beta``
of ``b`` (2), which unlike the mount share does not scale with thrust and so
matters in climbs. ``b`` is calibrated on the ground (the frame
standing level, disarmed) and then tracked as a slow random walk; it scales
with thrust, since the tilted board sees a share of it. While the craft is on
the ground the velocity is known to be zero (zero-velocity update); right
after take-off the drag is the wind itself, which is how the wind, and with it
the ground velocity, becomes known.

Conventions are LibrePilot's: NED world, body x forward, y right, z down,
AccelState in m/s^2 (about -9.81 on z at rest), attitude in degrees, gyro
rates in deg/s. This module is pure computation: no I/O, no clock reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipilot.core.clock import Clock
from pipilot.core.tomlconf import check_fields, setting
from pipilot.errors import ConfigError, PipilotError

GRAVITY = 9.80665
N_STATES = 10


def rotation_body_to_ned(roll_deg: float, pitch_deg: float, yaw_deg: float) -> np.ndarray:
    """Direction cosine matrix of a ZYX (yaw, pitch, roll) attitude."""
    r, p, y = (math.radians(a) for a in (roll_deg, pitch_deg, yaw_deg))
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), \
        math.sin(y)
    return np.array([
        [cp * cy, sr * sp * cy - cr * sy, cr * sp * cy + sr * sy],
        [cp * sy, sr * sp * sy + cr * cy, cr * sp * sy - sr * cy],
        [-sp, sr * cp, cr * cp],
    ])


def _rotate_small(rot: np.ndarray, rates_dps: np.ndarray, dt: float) -> np.ndarray:
    """Propagate a body-to-NED rotation by body rates over dt (Rodrigues)."""
    theta = np.radians(rates_dps) * dt
    angle = float(np.linalg.norm(theta))
    if angle < 1e-12:
        return rot
    k = theta / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    step = np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx
    rotated: np.ndarray = rot @ step
    return rotated


@dataclass(frozen=True)
class EstimatorConfig:
    """Model and noise parameters of the drift estimator."""

    drag_coeff: float = setting(0.35, gt=0.0)
    """k_drag (1/s): horizontal body specific force per m/s of air speed."""
    accel_noise: float = setting(0.15, gt=0.0)
    """Density of the kinematic acceleration's noise (m/s^2/sqrt(Hz))."""
    drag_noise: float = setting(0.25, gt=0.0)
    """Standard deviation of one drag measurement (m/s^2): vibration."""
    wind_walk: float = setting(0.02, gt=0.0)
    """How fast the wind may change (m/s/sqrt(s))."""
    bias_walk: float = setting(0.002, gt=0.0)
    """How fast the drag bias may change (m/s^2/sqrt(s))."""
    bias_sigma0: float = setting(0.03, gt=0.0)
    """Trust in the ground calibration of the bias (m/s^2)."""
    wind_sigma0: float = setting(2.0, gt=0.0)
    """Prior spread of the wind at take-off (m/s)."""
    calibration_tau: float = setting(5.0, gt=0.0)
    """Averaging time of the ground calibration (s)."""
    max_gap: float = setting(0.5, gt=0.0)
    """A longer pause between samples is not integrated across (s)."""
    accel_bias_sigma: float = setting(0.1, gt=0.0)
    """Prior spread of the accelerometer's own bias (m/s^2), part of b."""
    liftoff_margin: float = setting(0.03, gt=0.0)
    """Lift-off shows as a vertical specific force this much above 1 g."""
    liftoff_timeout: float = setting(1.5, gt=0.0)
    """Or is assumed this long (s) after the motors were asked to fly."""
    vertical_leak_tau: float = setting(10.0, gt=0.0)
    """Leak (s) of the vertically integrated velocity, which has no other reference."""
    fc_accel_kp: float = setting(0.05, gt=0.0)
    """The FC's AttitudeSettings.AccelKp (16.09 default)."""
    fc_attitude_dt: float = setting(0.002, gt=0.0)
    """Period of the FC's attitude loop (s); K = AccelKp / dT in deg/s per rad."""
    fc_error_walk: float = setting(0.0005, gt=0.0)
    """Unmodelled change of the FC's attitude error (rad/sqrt(s))."""

    def __post_init__(self) -> None:
        check_fields(self, "drift.estimator")

    @property
    def fc_gain(self) -> float:
        """K (1/s): how fast the FC's attitude follows the specific force."""
        return self.fc_accel_kp / self.fc_attitude_dt * math.pi / 180.0



class SampleError(PipilotError, ValueError):
    """An IMU sample the estimator cannot use: non-finite, or older than the last."""


@dataclass(frozen=True)
class Sample:
    """One set of IMU telemetry, at time ``t`` (s)."""

    t: float
    accel: tuple[float, float, float]
    attitude: tuple[float, float, float]
    """Roll, pitch, yaw (degrees), measured at ``attitude_t``."""
    gyro: tuple[float, float, float] | None = None
    """Body rates (deg/s) to carry the attitude forward to ``t``, if fresh."""
    attitude_t: float | None = None
    attitude_rate: tuple[float, float, float] | None = None
    """Euler angle rates (deg/s) from successive attitudes; preferred to a stale gyro."""


@dataclass(frozen=True)
class DriftEstimate:
    """What the estimator knows after a sample."""

    t: float
    velocity_ned: tuple[float, float]
    air_velocity_ned: tuple[float, float]
    wind_ned: tuple[float, float]
    bias_body: tuple[float, float]
    velocity_heading: tuple[float, float]
    """Ground velocity along the heading: (forward, right), m/s."""
    velocity_sigma: float
    on_ground: bool
    yaw_deg: float = 0.0


class DriftEstimator:
    """Feed it ``Sample``s in time order; read ``estimate``."""

    def __init__(self, config: EstimatorConfig | None = None) -> None:
        self.config = config or EstimatorConfig()
        self.x = np.zeros(N_STATES)
        self.P = self._ground_covariance()
        self._ground_bias = np.zeros(2)  # drag bias at 1 g, from the ground
        self._ground_kin = np.zeros(3)  # body-axes residual of the kinematics at rest
        self._calibrated_for = 0.0
        self._calibration_samples = 0
        self._last_t: float | None = None
        self._on_ground = True
        self._motors_up_for: float | None = None
        self._vz = 0.0  # vertical velocity (NED, down), a leaky integral
        self.estimate: DriftEstimate | None = None

    @property
    def calibrated_seconds(self) -> float:
        """How long the ground calibration has averaged."""
        return self._calibrated_for

    def update(self, sample: Sample, *, on_ground: bool, at_rest: bool | None = None) -> (
            DriftEstimate):
        """Take one sample. ``on_ground``: not flying (velocity is zero).

        ``at_rest`` (default: ``on_ground``) says the frame stands still and
        level with the motors off, so the sample may refine the calibration.
        """
        cfg = self.config
        if at_rest is None:
            at_rest = on_ground
        f_b = np.asarray(sample.accel, dtype=float)
        if not np.all(np.isfinite(f_b)) or not all(math.isfinite(a) for a in sample.attitude):
            raise SampleError("non-finite IMU sample")
        # the attitude is sent less often than the acceleration: carry it forward
        lag = 0.0 if sample.attitude_t is None else sample.t - sample.attitude_t
        lag = lag if 0 < lag <= cfg.max_gap else 0.0
        if lag and sample.attitude_rate is not None:
            att = [a + r * lag for a, r in zip(sample.attitude, sample.attitude_rate,
                                               strict=True)]
            rot = rotation_body_to_ned(*att)
        elif lag and sample.gyro is not None:
            rot = _rotate_small(rotation_body_to_ned(*sample.attitude),
                                np.asarray(sample.gyro, dtype=float), lag)
        else:
            rot = rotation_body_to_ned(*sample.attitude)

        dt = 0.0 if self._last_t is None else sample.t - self._last_t
        if dt < 0:
            raise SampleError(f"samples out of order ({sample.t} after {self._last_t})")
        self._last_t = sample.t
        if dt > cfg.max_gap:
            dt = 0.0

        a_ned = rot @ f_b + np.array([0.0, 0.0, GRAVITY])
        if at_rest:
            self._calibrate(f_b, rot, a_ned, dt)
        a_h = a_ned[:2] - (rot @ self._ground_kin)[:2]

        if on_ground:
            self._motors_up_for = None
        elif self._motors_up_for is None:
            self._motors_up_for = 0.0
        else:
            self._motors_up_for += dt
        # Throttle up is not lift-off: until the craft leaves the ground its
        # accelerometer shows no drag, and a wind learnt then would be wrong.
        lifting = -f_b[2] > GRAVITY * (1.0 + cfg.liftoff_margin)
        airborne = not on_ground and (
            not self._on_ground or lifting
            or (self._motors_up_for or 0.0) >= cfg.liftoff_timeout)
        if not airborne:
            self._ground_update()
            self._vz = 0.0
        else:
            a_z = a_ned[2] - (rot @ self._ground_kin)[2]
            self._vz += (a_z - self._vz / cfg.vertical_leak_tau) * dt
            share = -f_b[2] / GRAVITY
            self._predict(a_h, dt, rot, share)
            self._drag_update(f_b, rot)
        self._on_ground = not airborne
        self.estimate = self._make_estimate(sample.t, rot, sample.attitude[2])
        return self.estimate

    # -- the pieces ---------------------------------------------------------

    def _calibrate(self, f_b: np.ndarray, rot: np.ndarray, a_ned: np.ndarray, dt: float) -> None:
        # a running mean at first, an exponential average once tau is covered
        self._calibration_samples += 1
        weight = max(1.0 / self._calibration_samples, min(1.0, dt / self.config.calibration_tau))
        self._ground_bias += weight * (f_b[:2] * GRAVITY / max(-f_b[2], 1.0) - self._ground_bias)
        self._ground_kin += weight * (rot.T @ a_ned - self._ground_kin)
        self._calibrated_for += dt

    def _ground_covariance(self) -> np.ndarray:
        cfg = self.config
        return np.diag([1e-6, 1e-6, cfg.wind_sigma0**2, cfg.wind_sigma0**2,
                        cfg.bias_sigma0**2, cfg.bias_sigma0**2, 1e-6, 1e-6,
                        cfg.accel_bias_sigma**2, cfg.accel_bias_sigma**2])

    def _ground_update(self) -> None:
        self.x[:] = 0.0
        self.x[4:6] = self._ground_bias
        self.P = self._ground_covariance()

    def _predict(self, a_h: np.ndarray, dt: float, rot: np.ndarray, share: float) -> None:
        if dt <= 0:
            return
        cfg = self.config
        f = np.eye(N_STATES)
        # v' = a_est + s g d - (1 - s) R beta: the FC's tilt error d shows in
        # proportion to the specific force (s g), the bias it absorbed on the
        # ground (at 1 g) only in the share that is not cancelled
        f[0:2, 6:8] = share * GRAVITY * dt * np.eye(2)
        f[0:2, 8:10] = -(1.0 - share) * dt * rot[0:2, 0:2]
        self.x = f @ self.x
        self.x[0:2] += a_h * dt
        # d' = K a_est / |f|: the FC turns towards the direction of the specific force
        k_fc = cfg.fc_gain / (GRAVITY * max(share, 0.3))
        self.x[6:8] += k_fc * a_h * dt
        # the acceleration's noise enters v and, through the FC model, d: correlated
        g_in = np.zeros((N_STATES, 2))
        g_in[0:2] = np.eye(2)
        g_in[6:8] = k_fc * np.eye(2)
        q_in = g_in @ g_in.T * cfg.accel_noise**2 * dt
        q = np.array([0.0, 0.0, cfg.wind_walk**2, cfg.wind_walk**2, cfg.bias_walk**2,
                      cfg.bias_walk**2, cfg.fc_error_walk**2, cfg.fc_error_walk**2,
                      cfg.bias_walk**2, cfg.bias_walk**2]) * dt
        self.P = f @ self.P @ f.T + q_in + np.diag(q)

    def _drag_update(self, f_b: np.ndarray, rot: np.ndarray) -> None:
        cfg = self.config
        thrust_share = max(-f_b[2], 0.0) / GRAVITY  # the tilted board sees this much of b
        if thrust_share < 0.3:
            return  # free fall or a sensor glitch: the drag model does not hold
        m = rot.T[0:2, 0:2]  # NED horizontal -> body x, y (attitude is small)
        k = cfg.drag_coeff
        # The rotor plane leans by about b/g against the board, so a vertical
        # air speed shows up as (b/g) v_z of horizontal air speed to the rotors.
        vertical = k * self._vz / GRAVITY
        # b = mount share + accelerometer bias beta; only the first scales with thrust
        h = np.hstack([-k * m, k * m, (thrust_share - vertical) * np.eye(2),
                       np.zeros((2, 2)), (1.0 - thrust_share + vertical) * np.eye(2)])
        innovation = f_b[:2] - h @ self.x
        r = np.eye(2) * cfg.drag_noise**2
        s = h @ self.P @ h.T + r
        gain = self.P @ h.T @ np.linalg.inv(s)
        self.x = self.x + gain @ innovation
        ikh = np.eye(N_STATES) - gain @ h
        self.P = ikh @ self.P @ ikh.T + gain @ r @ gain.T

    def _make_estimate(self, t: float, rot: np.ndarray, yaw_deg: float) -> DriftEstimate:
        v = self.x[0:2]
        w = self.x[2:4]
        cy, sy = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
        forward = cy * v[0] + sy * v[1]
        right = -sy * v[0] + cy * v[1]
        return DriftEstimate(
            t=t,
            velocity_ned=(float(v[0]), float(v[1])),
            air_velocity_ned=(float(v[0] - w[0]), float(v[1] - w[1])),
            wind_ned=(float(w[0]), float(w[1])),
            bias_body=(float(self.x[4]), float(self.x[5])),
            velocity_heading=(float(forward), float(right)),
            velocity_sigma=float(math.sqrt(max(self.P[0, 0], self.P[1, 1]))),
            on_ground=self._on_ground,
            yaw_deg=yaw_deg,
        )


# -- the compensator: estimate -> two PIDs -> roll/pitch trims ---------------


@dataclass(frozen=True)
class CompensatorConfig:
    """Gains and bounds of the drift loop (the ``[drift]`` config table)."""

    kp: float = setting(6.0, ge=0.0)
    """Degrees of tilt per m/s of drift."""
    ki: float = setting(2.5, ge=0.0)
    """Degrees of tilt per metre of accumulated drift (brings the craft back)."""
    kd: float = setting(0.0, ge=0.0)
    derivative_tau: float = setting(0.2, ge=0.0)
    max_trim_deg: float = setting(8.0, ge=0.0)
    """Bound of each trim angle."""
    stick_angle_deg: float = setting(42.0, ge=0.0)
    """Angle the flight controller gives a full roll/pitch stick (RollMax/PitchMax)."""
    airborne_throttle: float = setting(0.3, ge=0.0)
    """Armed with the throttle at or above this counts as flying."""
    accel_period_ms: float = setting(100.0, ge=0.0)
    """AccelState period asked of the FC (16.09 default 1000): 230 bytes/s at 100 ms."""
    attitude_period_ms: float = setting(200.0, ge=0.0)
    """AttitudeState period asked of the FC (16.09 default 130): 195 bytes/s at 200 ms.

    The 9600 baud link carries 960 bytes/s; above about two thirds of that the
    FC's telemetry queue overflows and drops updates (FlightStatus among them)."""

    def __post_init__(self) -> None:
        check_fields(self, "drift")
        if self.stick_angle_deg <= 0 or self.max_trim_deg > self.stick_angle_deg:
            raise ConfigError("drift.max_trim_deg", "must be within stick_angle_deg (> 0)")


@dataclass(frozen=True)
class Trim:
    """The loop's output: tilt to add, in degrees and in stick units."""

    roll_deg: float
    pitch_deg: float
    roll: float
    pitch: float
    active: bool
    estimate: DriftEstimate


class DriftController:
    """Sans-IO drift loop: feed samples and the flight state, get trims.

    Disarmed or on the ground the PIDs are off and the trims zero; when the
    craft flies they switch on without a jump (from zero).
    """

    def __init__(self, config: CompensatorConfig | None = None,
                 estimator: EstimatorConfig | None = None, *, clock: Clock) -> None:
        from pipilot.control.pid import PID, PIDGains

        self.config = config or CompensatorConfig()
        self.estimator = DriftEstimator(estimator)
        c = self.config
        gains = PIDGains(kp=c.kp, ki=c.ki, kd=c.kd, derivative_tau=c.derivative_tau,
                         out_min=-c.max_trim_deg, out_max=c.max_trim_deg)
        self.roll_pid = PID(gains, clock, enabled=False)
        self.pitch_pid = PID(gains, clock, enabled=False)

    def step(self, sample: Sample, *, armed: bool, flying: bool, hold: bool = False) -> Trim:
        """One sample. ``hold``: keep the trims as they are (a commanded move is
        under way, which the loop must not fight); the estimate still runs."""
        flying = armed and flying
        est = self.estimator.update(sample, on_ground=not flying, at_rest=not armed)
        forward, right = est.velocity_heading
        if flying and hold:
            pitch, roll = self.pitch_pid.output, self.roll_pid.output
            self.pitch_pid.disable(pitch)
            self.roll_pid.disable(roll)
        elif flying:
            for pid in (self.roll_pid, self.pitch_pid):
                if not pid.enabled:  # from the ground from zero, after a hold from there
                    start = pid.output
                    pid.reset()
                    pid.enable(start)
            # nose up (+pitch) pushes back against forward drift; right side
            # down (+roll) pushes right, so drift to the right needs -roll
            pitch = self.pitch_pid.update(0.0, -forward, now=sample.t)
            roll = self.roll_pid.update(0.0, right, now=sample.t)
        else:
            self.roll_pid.disable(0.0)
            self.pitch_pid.disable(0.0)
            roll = pitch = 0.0
        scale = 1.0 / self.config.stick_angle_deg
        return Trim(roll_deg=roll, pitch_deg=pitch, roll=roll * scale, pitch=pitch * scale,
                    active=flying, estimate=est)
