"""SimulatedCC3D: the whole flight controller and airframe, advanced explicitly in time.

The model knows nothing of wall clocks or file descriptors. Its owner feeds it
S.Bus bytes with the times the UART reports them, telemetry bytes from the
ground, and time itself (``advance_to`` / ``step``); it hands back telemetry
bytes (``read_telemetry``). Feeding a byte first advances the model to that
byte's time, so time only moves forwards.

Tasks and their periods follow the firmware: S.Bus supervisor every 1.6 ms
(own phase), receiver and arm handler every 20 ms, attitude and stabilisation
every physics step (2 ms), telemetry objects at their metadata periods.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipilot.core.truth import SimLock, TruthSnapshot
from pipilot.sbus.frame import BYTE_TIME
from pipilot.sim.dynamics import QuadParams, Quadrotor, TruthState
from pipilot.sim.flight import AttitudeEstimator, Stabilizer
from pipilot.sim.manual import Armed, ManualControl
from pipilot.sim.objects import alarm_levels
from pipilot.sim.receiver import Firmware, SbusReceiver

if TYPE_CHECKING:
    from pipilot.sim.flowdeck import SensorTruth
    from pipilot.sim.mpu6050 import ImuTruth
    from pipilot.sim.telemetry import FlightTelemetry

log = logging.getLogger(__name__)

PHYSICS_DT = 0.002
RECEIVER_PERIOD = 0.020


@dataclass
class Task:
    """A periodic task of the model; ``cancel()`` stops it."""

    name: str
    period: float
    next_t: float
    fn: Callable[[float], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class SimulatedCC3D:
    """A CC3D with LibrePilot 16.09 on a small quadrotor, deterministic given ``seed``."""

    def __init__(
        self, *, seed: int = 0, firmware: Firmware | str = Firmware.STOCK,
        mount_tilt_deg: tuple[float, float] = (0.0, 0.0),
        wind: tuple[float, float] = (0.0, 0.0), params: QuadParams | None = None,
        start: float = 0.0, texture: float = 1.0,
    ) -> None:
        self.seed = seed
        self.texture = texture
        """Floor quality under the craft, 0..1: for the optical-flow sensor model."""
        self.firmware = Firmware(firmware)
        rnd = random.Random(seed)
        self.rng = np.random.default_rng(seed)
        self._now = start
        self.receiver = SbusReceiver(self.firmware, rng=rnd, start=start)
        self.manual = ManualControl(self.receiver)
        self.params = params or QuadParams()
        self.quad = Quadrotor(self.params, self.rng, mount_tilt_deg=mount_tilt_deg, wind=wind)
        self.estimator = AttitudeEstimator()
        self._power_up()
        self.stabilizer = Stabilizer(np.array(self.params.inertia), self.params.max_thrust)
        self.start_position = self.quad.truth.position.copy()
        self.telemetry_alarm = "Uninitialised"  # OK once a ground station has connected
        self.injected_alarms: dict[str, str] = {}
        """SystemAlarms elements raised on purpose (`pipilot.sim.faults`), element -> level."""
        self.manual.alarms = self.alarm_levels
        self.telemetry_baud = 9600
        self.telemetry: FlightTelemetry | None = None  # the endpoint once attached
        self._heap: list[tuple[float, int, Task]] = []
        self._seq = 0
        self.add_task("physics", PHYSICS_DT, self._physics_step, first=start + PHYSICS_DT)
        self.add_task("receiver", RECEIVER_PERIOD, self._receiver_task,
                      first=start + rnd.uniform(0, RECEIVER_PERIOD))

    # -- time ----------------------------------------------------------------
    @property
    def now(self) -> float:
        return self._now

    def add_task(self, name: str, period: float, fn: Callable[[float], None],
                 first: float | None = None) -> Task:
        """Run ``fn(t)`` every ``period`` seconds from ``first`` (default: one period from now)."""
        if period <= 0:
            raise ValueError(f"task {name}: period must be positive")
        task = Task(name, period, self._now + period if first is None else first, fn)
        self._push(task)
        return task

    def _push(self, task: Task, *, replacing_top: bool = False) -> None:
        """Schedule `task` at its next_t (in place of the heap's top when it is that task)."""
        self._seq += 1
        entry = (task.next_t, self._seq, task)
        if replacing_top:
            heapq.heapreplace(self._heap, entry)
        else:
            heapq.heappush(self._heap, entry)

    def advance_to(self, t: float) -> None:
        """Run every task due up to time ``t``, in time order."""
        heap, receiver = self._heap, self.receiver
        while heap and heap[0][0] <= t:
            due, _, task = heap[0]
            if task.cancelled:
                heapq.heappop(heap)
                continue
            task.next_t = due + task.period
            self._push(task, replacing_top=True)
            receiver.advance_to(due)
            if due > self._now:
                self._now = due
            task.fn(due)
        self.receiver.advance_to(t)
        if t > self._now:
            self._now = t

    def step(self, dt: float) -> None:
        self.advance_to(self._now + dt)

    # -- S.Bus -----------------------------------------------------------------
    def feed_sbus(self, data: bytes, times: Iterable[float]) -> None:
        """Bytes on the S.Bus input with the times the UART reports them."""
        for b, t in zip(data, times, strict=True):
            self.advance_to(t)
            self.receiver.feed_byte(b, t)

    def feed_sbus_paced(self, data: bytes, t_first: float,
                        byte_time: float = BYTE_TIME) -> float:
        """Bytes back to back at wire pacing; the first is reported at ``t_first``."""
        self.feed_sbus(data, (t_first + i * byte_time for i in range(len(data))))
        return t_first + (len(data) - 1) * byte_time

    # -- telemetry ---------------------------------------------------------------
    def _telemetry(self) -> FlightTelemetry:
        if self.telemetry is None:
            from pipilot.sim.telemetry import attach

            return attach(self, baud=self.telemetry_baud)
        return self.telemetry

    def feed_telemetry(self, data: bytes, t: float) -> None:
        """Bytes from the ground station, complete on the wire at time ``t``."""
        self.advance_to(t)
        self._telemetry().feed(data, t)

    def read_telemetry(self) -> bytes:
        """Telemetry bytes the FC has finished sending by now (paced at the baud)."""
        return bytes(self._telemetry().pop_tx(self._now))

    # -- tasks -------------------------------------------------------------------
    def _power_up(self) -> None:
        # t = 0 is when the firmware leaves its start-up stage: the board sat still on
        # the ground for init_time_s with fast attitude convergence and gyro-bias zeroing
        for _ in range(round(self.estimator.s.init_time_s / PHYSICS_DT)):
            gyro, accel = self.quad.imu()
            self.estimator.update(PHYSICS_DT, gyro, accel, fast=True)

    def _receiver_task(self, now: float) -> None:
        was = self.manual.armed
        self.manual.receiver_task(now)
        if was is not self.manual.armed and self.manual.armed is Armed.ARMED:
            self.stabilizer.reset()

    def _physics_step(self, now: float) -> None:
        dt = PHYSICS_DT
        gyro, accel = self.quad.imu()
        fast = self.manual.armed is Armed.ARMING  # ZeroDuringArming
        self.estimator.update(dt, gyro, accel, fast=fast)
        c = self.manual.cmd
        motors_on = self.manual.armed is Armed.ARMED and c.throttle > 0.0
        thrust, torque = self.stabilizer.update(
            dt, self.estimator, roll=c.roll, pitch=c.pitch, yaw=c.yaw,
            throttle=c.throttle, motors_on=motors_on)
        self.quad.step(dt, thrust, torque)

    # -- views -------------------------------------------------------------------
    def alarm_levels(self) -> dict[str, str]:
        """SystemAlarms.Alarm as the firmware holds it now (element -> level)."""
        return alarm_levels(self)

    def hover_throttle(self) -> float:
        """Throttle stick (0..1 over the calibrated channel range) that holds a level hover."""
        cal = self.manual.settings
        lo, mid, hi = (cal.channel_min["Throttle"], cal.channel_neutral["Throttle"],
                       cal.channel_max["Throttle"])
        scaled = self.params.mass * 9.80665 / self.params.max_thrust
        return (mid + scaled * (hi - mid) - lo) / (hi - lo)

    @property
    def armed(self) -> bool:
        return self.manual.armed is Armed.ARMED

    @property
    def truth(self) -> TruthState:
        """Ground truth, for tests and the sim panel only."""
        return self.quad.truth

    @property
    def lock(self) -> SimLock | None:
        """None: the model is stepped by its owner, in the owner's thread."""
        return None

    def truth_snapshot(self) -> TruthSnapshot:
        """An immutable copy of the ground truth (`pipilot.core.truth.GroundTruth`)."""
        t = self.quad.truth
        p, v = t.position, t.velocity
        return TruthSnapshot(
            time=self._now,
            position=(float(p[0]), float(p[1]), float(p[2])),
            velocity=(float(v[0]), float(v[1]), float(v[2])),
            attitude_deg=t.euler_deg(), on_ground=bool(t.on_ground))

    def flowdeck_truth(self, *, texture: float = 1.0, light: float = 1.0,
                       ambient: float = 0.0, clearance_m: float = 0.03) -> SensorTruth:
        """What a flow deck under the airframe sees now: the truth provider of
        `pipilot.sim.flowdeck`'s register models (they turn it into bytes; the
        flight path sees only those). ``clearance_m`` is the deck's height when landed."""
        from pipilot.sim.flowdeck import SensorTruth

        t = self.quad.truth
        v_x, v_y, _ = (t.r.T @ t.velocity).tolist()
        roll, pitch, _ = (math.radians(a) for a in t.euler_deg())
        p, q, r = t.rate.tolist()
        return SensorTruth(
            height_m=t.altitude + clearance_m, velocity_body=(v_x, v_y), rates=(p, q, r),
            roll=roll, pitch=pitch, texture=texture, light=light, ambient=ambient)

    def imu_truth(self) -> ImuTruth:
        """What an IMU fixed to the airframe feels now (body rates, specific force): the
        truth provider of `pipilot.sim.mpu6050.Mpu6050Model`, which alone reads it."""
        from pipilot.sim.mpu6050 import ImuTruth

        p, q, r = self.quad.truth.rate.tolist()
        fx, fy, fz = self.quad.specific_force.tolist()
        return ImuTruth(rates=(p, q, r), specific_force=(fx, fy, fz))

    def drift_m(self) -> float:
        d = self.quad.truth.position[:2] - self.start_position[:2]
        return float(math.hypot(d[0], d[1]))

    def ground_truth(self) -> dict[str, object]:
        """What the sim panel shows: truth (NED metres, m/s, degrees) and receiver figures.

        ``vehicle.sim.ground_truth()`` gives this dict in both modes; it must never
        feed pipilot's control code.
        """
        t = self.quad.truth
        roll, pitch, yaw = t.euler_deg()
        return {
            "time": self._now,
            "position": [float(x) for x in t.position],
            "velocity": [float(x) for x in t.velocity],
            "altitude": t.altitude,
            "attitude_deg": [roll, pitch, yaw],
            "on_ground": t.on_ground,
            "drift_m": self.drift_m(),
            "wind": [float(x) for x in self.quad.wind[:2]],
            "thrust_n": self.quad.thrust,
            "armed": self.armed,
            "receiver": self.receiver.stats.as_dict(),
        }
