"""Lock-step simulation: model and frame source in one process on a VirtualClock.

Fast and deterministic, for tests of control logic and missions::

    from pipilot.sim import LockstepSim

    sim = LockstepSim(seed=3, mount_tilt_deg=(0.0, 2.0), wind=(0.5, 0.0))
    sim.set_sticks(yaw=-1.0)        # arm: throttle low, yaw left
    sim.run(1.5)
    sim.set_sticks(yaw=0.0, throttle=0.5)
    sim.run(10.0)                   # advances virtual time, no waiting
    sim.truth.position              # ground truth (NED, m)
    sim.telemetry.latest("FlightStatus")  # as received over UAVTalk: (values, age_s)

Every ``period_ms`` a frame is built by the frame source and its 25 bytes are
fed to the model at 120 us per byte, the first reported 120 us after the
frame starts, exactly as a UART on the wire would. The default source
is ``sim.sticks`` (a :class:`~pipilot.core.setpoints.Setpoint`, which
``sim.set_sticks`` moves); pass
``frame_source=callable(now) -> bytes | None`` to drive it from anything else
(pipilot's mixer, for instance); ``None`` sends nothing for that period.

Telemetry goes over the real UAVTalk codec at ``telemetry_baud`` (9600 by
default): the flight side (pipilot.sim.telemetry) sends what the firmware
would, and ``sim.telemetry`` (a pipilot.sim.ground.LockstepTelemetry) runs
pipilot's own UAVTalk engine, the one that flies, on the model's virtual time:
handshake, keepalive, latest values, requests, ACK/NACK and retries.
``await sim.telemetry.send(...)`` and ``await sim.telemetry.request(...)``
talk back (advancing virtual time until the ACK or the answer).
``handshake=False`` leaves the engine unstarted (for tests of the handshake
itself); ``sim.faults`` (pipilot.sim.faults.SimFaults) cuts the line one way or
both, raises alarms, disarms the FC, kicks the airframe or drops an object's
updates; ``telemetry_latency_s`` delays every flight -> ground byte by that
much. The handshake takes a few hundred milliseconds of virtual time: code
that needs telemetry from its first step calls ``sim.wait_connected()`` first,
as it would await ``TelemetrySession.wait_connected`` on the rig.

With ``core=True`` (or a CoreConfig) pipilot's own FlightCore runs in
lock-step and mixes every frame at its deadline: ``sim.vehicle`` is then a
real pipilot.core.vehicle.Vehicle (``.mixer``, ``.core``, ``.clock``,
``.telemetry`` = the LockstepTelemetry, ``.sim`` = the model)::

    sim = LockstepSim(seed=1, core=True, period_ms=14.0)
    sim.vehicle.mixer.publish("pilot", Setpoint(arm=ArmRequest.ARM))
    sim.run(1.5)

Without a core, ``sim.vehicle`` offers ``.clock``, ``.telemetry`` and
``.sim`` only. ``.sim`` is ground truth and must never feed control code.

For asyncio code (missions), ``await sim.sleep(dt)`` advances virtual time by
``dt`` and returns at once; ``sim.clock`` is the VirtualClock the code under
test should read. Only one task may drive time this way; an event loop whose
clock is ``sim.clock`` and that calls ``sim.run_until`` when idle works too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from pipilot.core.clock import VirtualClock
from pipilot.core.setpoints import NEUTRAL, Setpoint
from pipilot.errors import PipilotError
from pipilot.link.transport import FrameSink
from pipilot.sbus.frame import BYTE_TIME, FRAME_LEN
from pipilot.sim.dynamics import QuadParams, TruthState
from pipilot.sim.faults import SimFaults
from pipilot.sim.ground import GROUND_TICK_S, LockstepTelemetry
from pipilot.sim.model import SimulatedCC3D
from pipilot.sim.receiver import Firmware
from pipilot.sim.sticks import stick_frame
from pipilot.sim.telemetry import FlightTelemetry, attach

if TYPE_CHECKING:
    from pipilot.core.config import CoreConfig
    from pipilot.core.flightcore import FlightCore
    from pipilot.core.vehicle import Vehicle

T = TypeVar("T")
FrameSource = Callable[[float], "bytes | None"]


class LockstepTimeout(PipilotError, TimeoutError):
    """The simulated link did not come up within its virtual-time budget."""


@dataclass
class LockstepVehicle:
    """``sim.vehicle`` without a flight core: time, telemetry and truth, no mixer."""

    clock: VirtualClock
    telemetry: LockstepTelemetry
    sim: SimulatedCC3D
    mixer: None = None


class LockstepSim:
    """A SimulatedCC3D fed frames at an exact period on virtual time."""

    def __init__(
        self, *, seed: int = 0, firmware: Firmware | str = Firmware.STOCK,
        mount_tilt_deg: tuple[float, float] = (0.0, 0.0), wind: tuple[float, float] = (0.0, 0.0),
        period_ms: float = 14.0, params: QuadParams | None = None,
        frame_source: FrameSource | None = None, first_frame_s: float = 0.010,
        telemetry_baud: int = 9600, handshake: bool = True,
        core: bool | CoreConfig | None = None, telemetry_latency_s: float = 0.0,
        texture: float = 1.0,
    ) -> None:
        if period_ms * 1e-3 < FRAME_LEN * BYTE_TIME:
            raise ValueError("a period shorter than one frame on the wire (3.0 ms)")
        self.clock = VirtualClock()
        self.model = SimulatedCC3D(seed=seed, firmware=firmware, mount_tilt_deg=mount_tilt_deg,
                                   wind=wind, params=params, texture=texture)
        self.period = period_ms * 1e-3
        #: the transmitter's sticks, sent when no `frame_source` is given
        self.sticks: Setpoint = NEUTRAL
        self.frame_source: FrameSource = frame_source or (lambda _now: stick_frame(self.sticks))
        self.frames_sent = 0
        self._next_frame = first_frame_s
        self.flight_telemetry: FlightTelemetry = attach(self.model, baud=telemetry_baud)
        self.telemetry = LockstepTelemetry(self.flight_telemetry, handshake=handshake,
                                           latency_s=telemetry_latency_s)
        self.telemetry.advance = self.run
        self.model.add_task("ground", GROUND_TICK_S, self.telemetry.tick, first=0.0)
        #: Faults to inject into the simulated FC (pipilot.sim.faults)
        self.faults = SimFaults(self.model, self.telemetry.wire)
        self.core: FlightCore | None = None
        self._frames_stopped = False
        self.vehicle: Vehicle | LockstepVehicle = LockstepVehicle(
            self.clock, self.telemetry, self.model)
        if core is not None and core is not False:
            self._attach_core(core, period_ms, Firmware(firmware))

    def _attach_core(self, core: bool | CoreConfig, period_ms: float,
                     firmware: Firmware) -> None:
        from pipilot.core.config import CoreConfig, LinkConfig
        from pipilot.core.vehicle import Vehicle

        cfg = core if isinstance(core, CoreConfig) else CoreConfig(
            link=LinkConfig(port="lockstep", period_ms=period_ms, firmware=firmware.value))
        vehicle = Vehicle.create(FrameSink(self._core_sink, "simulated CC3D"), cfg,
                                 clock=self.clock, sim=self.model)
        vehicle.attach_telemetry(self.telemetry)
        self.vehicle = vehicle
        self.core = vehicle.core
        self.period = cfg.period_s
        _run_sync(vehicle.core.start())

    def _core_sink(self, deadline: float, frame: bytes) -> None:
        self.model.feed_sbus_paced(frame, deadline + BYTE_TIME)
        self.frames_sent += 1

    @property
    def truth(self) -> TruthState:
        return self.model.truth

    @property
    def now(self) -> float:
        return self.clock.now()

    def run_until(self, t: float) -> None:
        """Advance virtual time to ``t``, sending every frame that starts before it."""
        if self.core is not None:
            # the core mixes each frame at its own deadline; step one period at a time
            while self.clock.now() < t:
                s = min(t, self.clock.now() + self.period)
                self.clock.set(s)
                if self.core.running and not self._frames_stopped:
                    self.core.advance(s)
                self.model.advance_to(s)
            return
        while self._next_frame <= t:
            start = self._next_frame
            if start > self.clock.now():
                self.clock.set(start)
            frame = self.frame_source(start)
            if frame:
                self.model.feed_sbus_paced(frame, start + BYTE_TIME)
                self.frames_sent += 1
            self._next_frame += self.period
        self.model.advance_to(t)
        if t > self.clock.now():
            self.clock.set(t)

    def run(self, seconds: float) -> None:
        self.run_until(self.clock.now() + seconds)

    def set_sticks(self, *, throttle: float | None = None, roll: float | None = None,
                   pitch: float | None = None, yaw: float | None = None) -> None:
        """Move the named sticks; the others stay where they are. A value out of
        range raises SetpointError (nothing is sent for it)."""
        sp = self.sticks
        self.sticks = replace(sp, throttle=sp.throttle if throttle is None else throttle,
                              roll=sp.roll if roll is None else roll,
                              pitch=sp.pitch if pitch is None else pitch,
                              yaw=sp.yaw if yaw is None else yaw)

    def wait_connected(self, timeout: float = 5.0) -> float:
        """Run until the telemetry handshake completes; returns the virtual time it took."""
        t0 = self.clock.now()
        while not self.telemetry.connected:
            if self.clock.now() - t0 >= timeout:
                raise LockstepTimeout(
                    f"telemetry not connected after {timeout:g} s of virtual time")
            self.run(0.01)
        return self.clock.now() - t0

    def stop_frames(self) -> None:
        """Stop sending (a dead link): the frame source then returns nothing."""
        self.frame_source = lambda _now: None
        self._frames_stopped = True  # with a core: as if the process died

    async def sleep(self, seconds: float) -> None:
        self.run(seconds)
        await asyncio.sleep(0)


def _run_sync(coro: Coroutine[object, None, T]) -> T:
    """Run a coroutine that never suspends (the core's lock-step start and stop)."""
    try:
        coro.send(None)
    except StopIteration as done:
        value: T = done.value  # what the coroutine returned
        return value
    coro.close()
    raise RuntimeError("coroutine suspended; it needs an event loop")
