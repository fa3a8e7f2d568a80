"""Rigid-body quadrotor and its IMU: the physics behind hover drift.

Frames: the world is NED (x north, y east, z down, ground at z = 0); the body
is FRD. The flight-controller board sits in the body rotated by the mounting
tilt (``mount_tilt_deg`` = board roll, pitch relative to the frame), so a
board that reads level leaves the frame tilted the other way: a board pitched
nose-up by d degrees holds the frame d degrees nose-down and the craft drifts
forward. Rotor drag is linear in the air-relative velocity, so a constant tilt
gives a constant drift speed of about ``g * tilt * mass / drag``; wind adds to
it.

Everything random comes from one ``numpy.random.Generator``: a seed fixes the
biases, the noise and the gusts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

G = 9.80665
_EYE = np.eye(3)

Vec3 = tuple[float, float, float]


def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def euler_to_r(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Body-to-world rotation from ZYX Euler angles (radians)."""
    r: np.ndarray = rot_z(yaw) @ rot_y(pitch) @ rot_x(roll)
    return r


def r_to_euler(r: np.ndarray) -> tuple[float, float, float]:
    (r00, _, _), (r10, _, _), (r20, r21, r22) = r.tolist()
    pitch = -math.asin(max(-1.0, min(1.0, r20)))
    roll = math.atan2(r21, r22)
    yaw = math.atan2(r10, r00)
    return roll, pitch, yaw


def r_to_quat(r: np.ndarray) -> tuple[float, float, float, float]:
    """(q1..q4) = (w, x, y, z), as AttitudeState stores it."""
    tr = float(r[0, 0] + r[1, 1] + r[2, 2])
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        return (0.25 * s, float(r[2, 1] - r[1, 2]) / s, float(r[0, 2] - r[2, 0]) / s,
                float(r[1, 0] - r[0, 1]) / s)
    i = int(np.argmax(np.diag(r)))
    j, k = (i + 1) % 3, (i + 2) % 3
    s = math.sqrt(max(1e-12, 1.0 + r[i, i] - r[j, j] - r[k, k])) * 2
    q = [0.0, 0.0, 0.0, 0.0]
    q[0] = float(r[k, j] - r[j, k]) / s
    q[1 + i] = 0.25 * s
    q[1 + j] = float(r[j, i] + r[i, j]) / s
    q[1 + k] = float(r[k, i] + r[i, k]) / s
    return q[0], q[1], q[2], q[3]


def cross_floats(a: Vec3, b: Vec3) -> Vec3:
    """3-vector cross product on Python floats (numpy's is slow for a single pair)."""
    ax, ay, az = a
    bx, by, bz = b
    return ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx


def rotate_small(r: np.ndarray, w: np.ndarray, dt: float) -> np.ndarray:
    """R advanced by body rate w over dt (Rodrigues)."""
    theta = w * dt
    # np.linalg.norm of a vector is exactly this: the square root of its dot product
    a = math.sqrt(theta.dot(theta))
    if a < 1e-12:
        return r
    k0, k1, k2 = (x / a for x in theta.tolist())  # the axis, as theta / a
    kx = np.array([[0.0, -k2, k1], [k2, 0.0, -k0], [-k1, k0, 0.0]])
    d = _EYE + math.sin(a) * kx + (1 - math.cos(a)) * (kx @ kx)
    rotated: np.ndarray = r @ d
    return rotated


def orthonormalize(r: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(r)
    nearest: np.ndarray = u @ vt
    return nearest


@dataclass
class QuadParams:
    mass: float = 1.0                      # kg
    inertia: tuple[float, float, float] = (0.010, 0.010, 0.018)  # kg m^2
    thrust_to_weight: float = 2.2          # all motors at full power
    motor_tau: float = 0.035               # s, thrust and torque lag
    max_torque: tuple[float, float, float] = (0.6, 0.6, 0.12)  # N m
    drag_xy: float = 0.35                  # N per m/s of air-relative speed
    drag_z: float = 0.5
    gyro_noise_dps: float = 0.25           # rms per sample, with motor vibration
    accel_noise: float = 0.15              # m/s^2 rms per sample, with motor vibration
    gyro_bias_dps: float = 0.8             # 1-sigma of the per-axis bias drawn at power-up
    accel_bias: float = 0.08               # m/s^2, 1-sigma per axis
    gust_sigma: float = 0.0                # m/s rms of gusts around the mean wind
    gust_tau: float = 2.0                  # s, gust correlation time

    @property
    def max_thrust(self) -> float:
        return self.thrust_to_weight * self.mass * G


@dataclass
class TruthState:
    """Ground truth: only tests and the sim panel may look at it."""

    position: np.ndarray = field(default_factory=lambda: np.zeros(3))
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))
    r: np.ndarray = field(default_factory=lambda: np.eye(3))
    rate: np.ndarray = field(default_factory=lambda: np.zeros(3))
    on_ground: bool = True

    @property
    def altitude(self) -> float:
        return -float(self.position[2])

    def euler_deg(self) -> tuple[float, float, float]:
        roll, pitch, yaw = r_to_euler(self.r)
        return math.degrees(roll), math.degrees(pitch), math.degrees(yaw)


class Quadrotor:
    """Physics (rigid body, motors, drag, wind, ground) and the IMU on the tilted board."""

    def __init__(self, params: QuadParams, rng: np.random.Generator, *,
                 mount_tilt_deg: tuple[float, float] = (0.0, 0.0),
                 wind: tuple[float, float] = (0.0, 0.0)) -> None:
        self.p = params
        self.rng = rng
        self.truth = TruthState()
        self.inertia = np.array(params.inertia)
        # board -> body
        self.mount = rot_y(math.radians(mount_tilt_deg[1])) @ rot_x(math.radians(mount_tilt_deg[0]))
        self.wind_mean = np.array([wind[0], wind[1], 0.0])
        self._gust = np.zeros(3)
        self.gyro_bias = rng.normal(0.0, math.radians(params.gyro_bias_dps), 3)
        self.accel_bias = rng.normal(0.0, params.accel_bias, 3)
        self.thrust = 0.0        # N, actual (lagged)
        self.torque = np.zeros(3)
        self._specific_force = np.array([0.0, 0.0, -G])  # body frame

    @property
    def wind(self) -> np.ndarray:
        return self.wind_mean + self._gust

    def step(self, dt: float, thrust_cmd: float, torque_cmd: np.ndarray) -> None:
        """Advance by dt with commanded total thrust (N) and body torque (N m)."""
        p, s = self.p, self.truth
        a = dt / (p.motor_tau + dt)
        self.thrust += a * (min(max(thrust_cmd, 0.0), p.max_thrust) - self.thrust)
        # The 3-vector arithmetic runs on Python floats: the operations numpy's
        # elementwise ones would do, in the same order (so the same results), without
        # numpy's per-call overhead; np.clip(x, -lim, lim) is min(max(x, -lim), lim).
        # Matrix products stay numpy's.
        torque = [q + a * (min(max(c, -lim), lim) - q) for q, c, lim in
                  zip(self.torque.tolist(), torque_cmd.tolist(), p.max_torque, strict=True)]
        self.torque[:] = torque
        if s.on_ground and self.thrust < p.mass * G:
            # resting on the ground: it holds the weight and keeps the craft level
            if any(s.rate.tolist()) or any(s.velocity.tolist()):  # ndarray.any(), faster
                s.velocity[:] = 0.0
                s.rate[:] = 0.0
                _, _, yaw = r_to_euler(s.r)
                s.r = rot_z(yaw)
                self._specific_force = s.r.T @ np.array([0.0, 0.0, -G])
            return
        if p.gust_sigma > 0:
            k = dt / p.gust_tau
            gust_x, gust_y, _ = self._gust.tolist()
            kick = p.gust_sigma * math.sqrt(2 * k)
            noise_x, noise_y = self.rng.standard_normal(2).tolist()
            self._gust[:2] = (gust_x + (-k * gust_x + kick * noise_x),
                              gust_y + (-k * gust_y + kick * noise_y))
        air = s.velocity - self.wind
        air_x, air_y, air_z = (s.r.T @ air).tolist()           # body frame
        # thrust along -z and linear drag, in the body frame (0.0 + keeps numpy's signed zeros)
        force_b = (0.0 + -p.drag_xy * air_x, 0.0 + -p.drag_xy * air_y,
                   -self.thrust + -p.drag_z * air_z)
        self._specific_force = np.array([f / p.mass for f in force_b])
        acc_x, acc_y, acc_z = (s.r @ self._specific_force).tolist()
        acc = (acc_x + 0.0, acc_y + 0.0, acc_z + G)              # world frame, with gravity
        w = s.rate.tolist()
        inertia = self.inertia.tolist()
        momentum = (inertia[0] * w[0], inertia[1] * w[1], inertia[2] * w[2])
        wdot = [(q - c) / i for q, c, i in
                zip(torque, cross_floats(w, momentum), inertia, strict=True)]
        s.on_ground = False
        velocity = [v + dv * dt for v, dv in zip(s.velocity.tolist(), acc, strict=True)]
        s.velocity[:] = velocity
        s.position[:] = [x + v * dt for x, v in zip(s.position.tolist(), velocity, strict=True)]
        s.rate = np.array([r + r_dot * dt for r, r_dot in zip(w, wdot, strict=True)])
        s.r = rotate_small(s.r, s.rate, dt)
        if s.position[2] >= 0.0:
            s.position[2] = 0.0
            s.on_ground = True
            s.velocity[:] = 0.0
            s.rate[:] = 0.0

    @property
    def specific_force(self) -> np.ndarray:
        """Non-gravitational acceleration in the body frame, m/s^2 (truth)."""
        return self._specific_force.copy()

    def imu(self) -> tuple[np.ndarray, np.ndarray]:
        """(gyro rad/s, accel m/s^2) in the board frame, with bias and noise."""
        p = self.p
        vib = 1.0 if self.thrust > 0.05 * p.max_thrust else 0.15
        m_t = self.mount.T
        gyro = m_t @ self.truth.rate + self.gyro_bias + \
            self.rng.normal(0.0, math.radians(p.gyro_noise_dps) * vib, 3)
        accel = m_t @ self._specific_force + self.accel_bias + \
            self.rng.normal(0.0, p.accel_noise * vib, 3)
        return gyro, accel
