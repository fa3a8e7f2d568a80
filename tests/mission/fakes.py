"""A scripted stand-in for the Vehicle facade, on a virtual-time event loop.

It honours the documented contracts (mixer sources, telemetry), models just
enough flight controller behaviour (arming sequence, attitude following the
sticks) and lets a test break things on purpose. Its telemetry is the real
`TelemetrySession` (and so the session engine that flies), talking UAVTalk
over a socket pair to a scripted flight side (tests.uavtalk.flightpeer) that
publishes the scripted state.
"""

from __future__ import annotations

import asyncio
import selectors
import socket
from dataclasses import dataclass, field
from typing import Any

from pipilot.core.clock import VirtualClock
from pipilot.core.mixer import Mixer
from pipilot.core.setpoints import ArmRequest, Setpoint
from pipilot.core.telemetry import TelemetrySession
from pipilot.link.stream import FdStream
from pipilot.uavtalk import PacketType, load_definitions
from tests.uavtalk.flightpeer import FlightPeer

REG = load_definitions()


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
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()


class LoggingMixer(Mixer):
    """The core's mixer, recording every publish for the tests to read."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock=clock)
        self.log: list[tuple[float, str, Setpoint]] = []

    def publish(self, source: str, setpoint: Setpoint, t: float | None = None) -> None:
        super().publish(source, setpoint, t)
        self.log.append((self.clock.now(), source, setpoint))


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
        self.peer = FlightPeer(REG)
        self.telemetry: TelemetrySession | None = None
        self.core = None
        self.armed = "Disarmed"
        self._arm_held = 0.0
        self._disarm_held = 0.0
        self.failsafe_time: float | None = None
        self.max_throttle_after_abort = 0.0
        self._link: FdStream | None = None
        self._sent_flight_status = False
        self.silent = False
        """The flight side says nothing at all (a dead telemetry link)."""

    def _flight_status(self) -> dict[str, Any]:
        return {**REG["FlightStatus"].defaults(), "Armed": self.armed,
                "FlightMode": "Stabilized1"}

    def start(self) -> None:
        """Open the telemetry link and run the flight side (from the running loop)."""
        ground, flight = socket.socketpair()
        self.telemetry = TelemetrySession(FdStream(ground.detach(), "ground"), None, REG,
                                          clock=self.clock)
        self._link = FdStream(flight.detach(), "flight")
        asyncio.get_running_loop().create_task(self._run())

    async def _run(self, dt: float = 0.02) -> None:
        assert self.telemetry is not None and self._link is not None
        await self.telemetry.start()
        serve = asyncio.create_task(self._serve(self._link))
        try:
            while True:
                self.step(dt)
                await asyncio.sleep(dt)
        finally:
            serve.cancel()
            await self.telemetry.stop()
            self._link.close()

    async def _serve(self, link: FdStream) -> None:
        while data := await link.read():
            self._write(self.peer.feed(data, self.clock.now()))

    def _write(self, data: bytes) -> None:
        if data and not self.silent and self._link is not None:
            self._link.write(data)

    def requests(self) -> list[str | None]:
        """Names of the objects the ground asked the flight side for."""
        return [p.name for p in self.peer.received if p.type == PacketType.OBJ_REQ]

    def _publish(self, name: str, values: dict[str, Any]) -> None:
        self.peer.set(name, values)
        self._write(self.peer.packet(name))

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
        self.peer.set("FlightStatus", self._flight_status())  # what a request gets
        self._write(self.peer.tick(now))
        if f.telemetry_dead_after is not None and now >= f.telemetry_dead_after:
            self.silent = True
            return
        if not f.lose_flight_status or not self._sent_flight_status:
            self._publish("FlightStatus", self._flight_status())
            self._sent_flight_status = True
        self._publish("AttitudeState", {**REG["AttitudeState"].defaults(),
                                        "Roll": roll, "Pitch": sp.pitch * 55.0, "Yaw": 0.0,
                                        "q1": 1.0, "q2": 0.0, "q3": 0.0, "q4": 0.0})
        alarms = REG["SystemAlarms"].defaults()
        alarms["Alarm"] = {**alarms["Alarm"], "Attitude": "OK", "Sensors": alarm}
        self._publish("SystemAlarms", alarms)
        self._publish("AccelState", {**REG["AccelState"].defaults(),
                                     "x": 0.0, "y": 0.0, "z": -9.80665})
        self._publish("GyroState", {**REG["GyroState"].defaults(), "x": 0.0, "y": 0.0, "z": 0.0})
