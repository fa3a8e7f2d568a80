"""What the CC3D computes from its IMU: attitude estimate, stabilisation, motor thrust.

* Attitude: the CC3D's complementary filter. Gyro integration corrected
  towards the low-passed accelerometer (AccelTau 0.05 s) at AccelKp / dT
  deg/s per radian of error (dT = 2 ms, so about 25 deg/s per rad), an
  integral gyro-bias term (AccelKi), and fast convergence with gyro-bias
  zeroing for the first seconds after power-up and while arming
  (ZeroDuringArming). Yaw has no absolute reference: its bias is learnt slowly
  (YawBiasRate) and the heading drifts.
* Stabilised1 = Attitude / Attitude / AxisLock / CruiseControl: stick -> angle
  (RollMax / PitchMax 42 deg), outer P loop 2.5 (deg/s)/deg limited to
  MaximumRate, inner rate loop; yaw stick -> rate (ManualRate 175 deg/s) with
  the accumulated rate error held up to MaxAxisLock 30 deg (AxisLockKp 2.5);
  thrust = throttle / (cos roll cos pitch), factor at most 3, zero above 105
  deg, boost only above CruiseControlMinThrust 5 %.
* Motors stop while disarmed or with the throttle low (stick below neutral),
  as with MotorsSpinWhileArmed = False.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipilot.sim.dynamics import (
    cross_floats,
    euler_to_r,
    orthonormalize,
    r_to_euler,
    rotate_small,
)

DEG = math.pi / 180.0
FW_DT = 0.002
_UP = np.array([0.0, 0.0, -1.0])  # NED


@dataclass
class StabilizationSettings:
    roll_max_deg: float = 42.0
    pitch_max_deg: float = 42.0
    attitude_kp: float = 2.5               # (deg/s) per deg
    maximum_rate_dps: tuple[float, float, float] = (300.0, 300.0, 50.0)
    manual_rate_yaw_dps: float = 175.0
    axis_lock_kp: float = 2.5
    max_axis_lock_deg: float = 30.0
    rate_bandwidth: tuple[float, float, float] = (22.0, 22.0, 8.0)  # rad/s per rad/s
    rate_ki: tuple[float, float, float] = (40.0, 40.0, 10.0)
    cruise_min_thrust: float = 0.05
    cruise_max_thrust: float = 1.0
    cruise_max_angle_deg: float = 105.0
    cruise_max_power_factor: float = 3.0
    cruise_power_trim: float = 1.0


@dataclass
class AttitudeSettings:
    accel_kp: float = 0.05
    accel_ki: float = 0.0001
    accel_tau: float = 0.05
    yaw_bias_rate: float = 0.000001
    init_time_s: float = 2.0


class AttitudeEstimator:
    """Board attitude from gyro and accelerometer (the firmware's complementary filter)."""

    def __init__(self, settings: AttitudeSettings | None = None) -> None:
        self.s = settings or AttitudeSettings()
        self.r = np.eye(3)               # board -> world, estimated
        self.bias = np.zeros(3)          # rad/s, subtracted from the gyro
        self.accel_filt = np.array([0.0, 0.0, -9.81])
        self.gyro = np.zeros(3)          # corrected rate (GyroState)
        self.accel = self.accel_filt.copy()
        self.board_rotation = np.eye(3)  # AttitudeSettings.BoardRotation: sensor -> board
        self._rotate = False
        self._n = 0

    def set_board_rotation(self, roll_deg: float, pitch_deg: float, yaw_deg: float) -> None:
        """Compensate a known mounting rotation (the GCS's board level calibration)."""
        self.board_rotation = euler_to_r(roll_deg * DEG, pitch_deg * DEG, yaw_deg * DEG)
        self._rotate = bool(roll_deg or pitch_deg or yaw_deg)

    def update(self, dt: float, gyro: np.ndarray, accel: np.ndarray, *, fast: bool) -> None:
        s = self.s
        if self._rotate:
            gyro = self.board_rotation @ gyro
            accel = self.board_rotation @ accel
        # The 3-vector arithmetic runs on Python floats: the operations numpy's
        # elementwise ones would do, in the same order (so the same results), without
        # numpy's per-call overhead. Matrix products and the norm stay numpy's.
        alpha = math.exp(-dt / s.accel_tau) if s.accel_tau > 0 else 0.0
        self.accel_filt = np.array([f * alpha + x * (1 - alpha) for f, x in
                                    zip(self.accel_filt.tolist(), accel.tolist(), strict=True)])
        self.accel = accel
        kp, ki = (1.0, 0.0) if fast else (s.accel_kp, s.accel_ki)
        steps = dt / FW_DT
        gx, gy, gz = gyro.tolist()
        bx, by, bz = self.bias.tolist()
        if fast:
            # stationary by assumption: the bias integrator chases the raw gyro
            k = 1 - (1 - 0.01) ** steps
            bx, by, bz = bx + k * (gx - bx), by + k * (gy - by), bz + k * (gz - bz)
        else:
            bz += s.yaw_bias_rate * steps * (gz - bz)
        grot = (self.r.T @ _UP).tolist()
        a = self.accel_filt
        n = math.sqrt(a.dot(a))  # np.linalg.norm(a), computed as it computes it
        if n > 1e-3:
            ax, ay, az = a.tolist()
            ex, ey, ez = cross_floats((ax / n, ay / n, az / n), grot)
        else:
            ex, ey, ez = 0.0, 0.0, 0.0
        k_bias = ki * DEG * steps
        bx, by = bx - k_bias * ex, by - k_bias * ey
        self.bias[:] = bx, by, bz
        self.gyro = np.array([gx - bx, gy - by, gz - bz])
        k_err = kp / FW_DT
        w = np.array([gx - bx + ex * k_err * DEG, gy - by + ey * k_err * DEG,
                      gz - bz + ez * k_err * DEG])
        self.r = rotate_small(self.r, w, dt)
        self._n += 1
        if self._n % 200 == 0:
            self.r = orthonormalize(self.r)

    def euler(self) -> tuple[float, float, float]:
        return r_to_euler(self.r)


class Stabilizer:
    """Stabilised1 with the rig's modes; output is body torque and total thrust."""

    def __init__(self, inertia: np.ndarray, max_thrust: float,
                 settings: StabilizationSettings | None = None) -> None:
        self.s = settings or StabilizationSettings()
        self.inertia = inertia
        self.max_thrust = max_thrust
        self.rate_int = np.zeros(3)
        self.axis_lock = 0.0
        self.desired = (0.0, 0.0, 0.0, 0.0)   # roll deg, pitch deg, yaw rate dps, thrust
        self.thrust_fraction = 0.0

    def reset(self) -> None:
        self.rate_int[:] = 0.0
        self.axis_lock = 0.0

    def update(self, dt: float, est: AttitudeEstimator, *, roll: float, pitch: float,
               yaw: float, throttle: float, motors_on: bool) -> tuple[float, np.ndarray]:
        """Sticks in -1..1 (throttle as ManualControlCommand.Throttle) -> (thrust N, torque N m)."""
        s = self.s
        roll_est, pitch_est, _ = est.euler()
        roll_sp = roll * s.roll_max_deg
        pitch_sp = pitch * s.pitch_max_deg
        yaw_rate_sp = yaw * s.manual_rate_yaw_dps
        gyro = est.gyro.tolist()
        if motors_on:
            self.axis_lock += (yaw_rate_sp - gyro[2] / DEG) * dt
            self.axis_lock = max(-s.max_axis_lock_deg, min(s.max_axis_lock_deg, self.axis_lock))
        rate_sp = (s.attitude_kp * (roll_sp - roll_est / DEG),
                   s.attitude_kp * (pitch_sp - pitch_est / DEG),
                   yaw_rate_sp + s.axis_lock_kp * self.axis_lock)
        lim_roll, lim_pitch, lim_yaw = s.maximum_rate_dps
        lim = (lim_roll, lim_pitch, max(lim_yaw, s.manual_rate_yaw_dps))
        # elementwise on Python floats, as numpy would (np.clip is min(max(x, -lim), lim))
        err = [min(max(r, -m), m) * DEG - g for r, m, g in
               zip(rate_sp, lim, gyro, strict=True)]
        thrust_frac = self._cruise(throttle, roll_est, pitch_est)
        self.desired = (roll_sp, pitch_sp, yaw_rate_sp, thrust_frac)
        if not motors_on or thrust_frac <= 0.0:
            self.reset()
            self.thrust_fraction = 0.0
            return 0.0, np.zeros(3)
        rate_int = [min(max(i + e * dt, -0.5), 0.5) for i, e in
                    zip(self.rate_int.tolist(), err, strict=True)]
        self.rate_int = np.array(rate_int)
        self.thrust_fraction = thrust_frac
        return thrust_frac * self.max_thrust, np.array([
            inertia * (bandwidth * e + ki * i) for inertia, bandwidth, e, ki, i in
            zip(self.inertia.tolist(), s.rate_bandwidth, err, s.rate_ki, rate_int, strict=True)])

    def _cruise(self, throttle: float, roll: float, pitch: float) -> float:
        s = self.s
        if throttle <= 0.0:
            return 0.0
        tilt = math.acos(max(-1.0, min(1.0, math.cos(roll) * math.cos(pitch))))
        if tilt > s.cruise_max_angle_deg * DEG:
            return 0.0
        factor = 1.0
        if throttle >= s.cruise_min_thrust:
            c = math.cos(roll) * math.cos(pitch)
            factor = min(1.0 / c if c > 1e-3 else s.cruise_max_power_factor,
                         s.cruise_max_power_factor)
            factor = 1.0 + (factor - 1.0) * s.cruise_power_trim
        return min(throttle * factor, s.cruise_max_thrust)
