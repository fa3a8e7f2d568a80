"""A scripted stand-in for the Vehicle facade, on a virtual-time event loop.

It honours the documented contracts (mixer sources, telemetry ``latest``),
models just enough flight controller behaviour (arming sequence, attitude
following the sticks) and lets a test break things on purpose.
"""

from __future__ import annotations

import asyncio
import selectors
from dataclasses import dataclass, field
from typing import Any

from pipilot.core.clock import VirtualClock
from pipilot.core.mixer import Mixer
from pipilot.core.setpoints import ArmRequest, Setpoint


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose time is a VirtualClock that jumps to the next timer."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        super().__init__(selector=_JumpingSelector(clock))

    def time(self) -> float:
        return self.clock.now()


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[Any]:
        events = super().select(0)
        if not events and timeout is not None and timeout > 0:
            self._clock.advance(timeout)
        return events


def run_virtual(coro_fn, clock: VirtualClock):
    loop = VirtualTimeLoop(clock)
    try:
        return loop.run_until_complete(coro_fn())
    finally:
        loop.close()


class LoggingMixer(Mixer):
    """The core's mixer, recording every publish for the tests to read."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock=clock)
        self.log: list[tuple[float, str, Setpoint]] = []

    def publish(self, source: str, setpoint: Setpoint, t: float | None = None) -> None:
        super().publish(source, setpoint, t)
        self.log.append((self.clock.now(), source, setpoint))


class FakeTelemetry:
    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.connected = True
        self.objects: dict[str, tuple[dict[str, Any], float]] = {}
        self.answer: Any = None  # the flight side, for requests
        self.requests: list[str] = []

    async def request(self, name: str) -> dict[str, Any]:
        self.requests.append(name)
        await asyncio.sleep(0.05)  # the round trip
        values = self.answer(name)
        self.put(name, values)
        return values

    def put(self, name: str, values: dict[str, Any]) -> None:
        self.objects[name] = (values, self.clock.now())

    def latest(self, name: str):
        got = self.objects.get(name)
        if got is None:
            return None
        return got[0], self.clock.now() - got[1]


@dataclass
class Faults:
    telemetry_dead_after: float | None = None
    disarm_at: float | None = None
    alarm_at: float | None = None
    flip_at: float | None = None
    refuse_arm: bool = False
    lose_flight_status: bool = False
    """FlightStatus changes never arrive by themselves (a full telemetry queue)."""


@dataclass
class FakeVehicle:
    clock: VirtualClock = field(default_factory=VirtualClock)
    faults: Faults = field(default_factory=Faults)
    sim: Any = None

    def __post_init__(self) -> None:
        self.mixer = LoggingMixer(self.clock)
        self.telemetry = FakeTelemetry(self.clock)
        self.core = None
        self.armed = "Disarmed"
        self._arm_held = 0.0
        self._disarm_held = 0.0
        self.failsafe_time: float | None = None
        self.telemetry.answer = lambda name: self._flight_status()
        self.max_throttle_after_abort = 0.0
        self._task: asyncio.Task[None] | None = None

    def _flight_status(self) -> dict[str, Any]:
        return {"Armed": self.armed, "FlightMode": "Stabilized1"}

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self, dt: float = 0.02) -> None:
        while True:
            self.step(dt)
            await asyncio.sleep(dt)

    def step(self, dt: float) -> None:
        now = self.clock.now()
        f = self.faults
        out = self.mixer.tick(now)
        sp = out.setpoint
        if out.source is None and self.failsafe_time is None and self.armed == "Armed":
            self.failsafe_time = now
        if sp.arm is ArmRequest.ARM and sp.throttle < 0.05 and not f.refuse_arm:
            # the gesture (yaw hard over) held for a second arms, as the firmware does
            self._arm_held += dt
            if self._arm_held >= 1.0:
                self.armed = "Armed"
        else:
            self._arm_held = 0.0
        if sp.arm is ArmRequest.DISARM and sp.throttle < 0.05:
            self._disarm_held += dt
            if self._disarm_held >= 1.0:
                self.armed = "Disarmed"
        else:
            self._disarm_held = 0.0
        if f.disarm_at is not None and now >= f.disarm_at:
            self.armed = "Disarmed"
            f.disarm_at = None
        alarm = "Critical" if f.alarm_at is not None and now >= f.alarm_at else "OK"
        roll = sp.roll * 55.0
        if f.flip_at is not None and now >= f.flip_at:
            roll = 80.0
        if f.telemetry_dead_after is not None and now >= f.telemetry_dead_after:
            return
        if not f.lose_flight_status or "FlightStatus" not in self.telemetry.objects:
            self.telemetry.put("FlightStatus", self._flight_status())
        self.telemetry.put("AttitudeState", {"Roll": roll, "Pitch": sp.pitch * 55.0,
                                             "Yaw": 0.0, "q1": 1.0, "q2": 0.0, "q3": 0.0,
                                             "q4": 0.0})
        self.telemetry.put("SystemAlarms", {"Alarm": {"Attitude": "OK", "Sensors": alarm}})
        self.telemetry.put("AccelState", {"x": 0.0, "y": 0.0, "z": -9.80665})
        self.telemetry.put("GyroState", {"x": 0.0, "y": 0.0, "z": 0.0})
