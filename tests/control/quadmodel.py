"""A small multirotor model for estimator and controller tests.

Independent of pipilot.sim on purpose: it checks the estimator against the
physics it assumes (thrust along the rotor axis, linear rotor drag, a flight
controller board mounted at a tilt) and nothing else.
"""

from __future__ import annotations

import math

import numpy as np

from pipilot.control.drift import GRAVITY, Sample, rotation_body_to_ned


class QuadModel:
    def __init__(self, *, drag=0.35, wind=(0.5, 0.0), mount_pitch_deg=2.0,
                 mount_roll_deg=0.0, attitude_tau=0.15, accel_noise=0.0,
                 accel_bias=(0.0, 0.0, 0.0), fc_gain=0.05 / 0.002 * math.pi / 180, seed=1):
        self.k = drag
        self.wind = np.array([*wind, 0.0])
        self.mount = rotation_body_to_ned(mount_roll_deg, mount_pitch_deg, 0.0)
        self.tau = attitude_tau
        self.noise = accel_noise
        self.bias = np.array(accel_bias)
        self.rng = np.random.default_rng(seed)
        self.att = np.zeros(3)  # board roll, pitch, yaw (deg) as the FC estimates them
        self.fc_gain = fc_gain
        self.delta = np.zeros(2)  # FC attitude error: true accel = estimated + g * delta
        self.v = np.zeros(3)
        self.p = np.zeros(3)
        self.flying = False
        self.t = 0.0
        self.took_off_at: float | None = None

    def take_off(self, boost_s: float = 0.5) -> None:
        """Leave the ground: a short climb (more thrust) shows the lift-off."""
        self.flying = True
        self.took_off_at = self.t
        self._boost_s = boost_s

    def board_rotation(self) -> np.ndarray:
        """The true board attitude: the FC's estimate with its error removed."""
        phi = np.array([-self.delta[1], self.delta[0], 0.0])
        skew = np.array([[0, -phi[2], phi[1]], [phi[2], 0, -phi[0]], [-phi[1], phi[0], 0]])
        return (np.eye(3) - skew) @ rotation_body_to_ned(*self.att)

    def specific_force(self, rates=None) -> np.ndarray:
        """Body (board) axes specific force, without noise."""
        board = self.board_rotation()
        if not self.flying:
            return board.T @ np.array([0.0, 0.0, -GRAVITY])
        rotor = board @ self.mount.T  # the rotor plane is the board tilted back by the mount
        v_air_rotor = rotor.T @ (self.v - self.wind)
        thrust = GRAVITY / max(rotor[2, 2], 0.5)  # altitude held (vertical motion ignored)
        if self.took_off_at is not None and self.t - self.took_off_at < self._boost_s:
            thrust *= 1.15
        f_rotor = np.array([-self.k * v_air_rotor[0], -self.k * v_air_rotor[1], -thrust])
        return board.T @ (rotor @ f_rotor)

    def step(self, dt, roll_cmd_deg=0.0, pitch_cmd_deg=0.0):
        cmd = np.array([roll_cmd_deg, pitch_cmd_deg, self.att[2]])
        self.att += (cmd - self.att) * (1 - math.exp(-dt / self.tau))
        a = np.zeros(3)
        if self.flying:
            f = self.board_rotation() @ self.specific_force()
            a = f + np.array([0.0, 0.0, GRAVITY])
            a[2] = 0.0
            self.v += a * dt
            self.p += self.v * dt
        # the FC's complementary filter leans its "down" towards the specific force
        self.delta += self.fc_gain * (a[:2] / GRAVITY - self.delta) * dt
        self.t += dt

    def sample(self) -> Sample:
        f = self.specific_force() + self.bias + self.rng.normal(0, self.noise, 3)
        return Sample(t=self.t, accel=tuple(f), attitude=tuple(self.att), gyro=(0.0, 0.0, 0.0),
                      attitude_t=self.t)
