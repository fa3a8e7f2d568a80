"""The vehicle facade: one object for missions, the drift loop and the web server.

`vehicle.mixer` to publish setpoints, `vehicle.telemetry` for the flight
controller's state (None until a telemetry link is attached),
`vehicle.clock` for time, `vehicle.core` for the link and its failsafe, and
`vehicle.sim` (None on a real craft) for simulator ground truth only.

The seams are typed as protocols, so that fakes and the lock-step simulator's
vehicle can stand in for `Vehicle`:

- `TelemetryLink`: the FC's telemetry as flight logic reads and writes it
  (`pipilot.core.telemetry.TelemetrySession`, the lock-step simulator's
  `pipilot.sim.ground.LockstepTelemetry`);
- `FlightVehicle`: what flight logic (the drift loop, a mission's commands)
  may use: mixer, clock, telemetry. It has no simulator: nothing that flies
  can read the ground truth;
- `ObservedVehicle`: a FlightVehicle plus `sim`, the ground truth
  (`pipilot.core.truth.GroundTruth`) that mission summaries record;
- `ServedVehicle`: an ObservedVehicle plus `core`, the link and its failsafe,
  which the web server reports (`pipilot.server.adapter.VehicleAdapter`), and
  `hold`, the flow-deck hold the page engages (None without a flow deck).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeAlias, runtime_checkable

from pipilot.control.holdapi import HoldControl
from pipilot.core.clock import Clock
from pipilot.core.config import CoreConfig
from pipilot.core.flightcore import FlightCore
from pipilot.core.mixer import Mixer
from pipilot.core.truth import GroundTruth
from pipilot.link.transport import SbusTransport

ObjectValues = Mapping[str, Any]
"""A decoded UAVObject: field name to value. The value's type is the field's
(a number, an enum option's name, a list or a mapping of elements), known only
from the object definition at run time."""

CorePort: TypeAlias = SbusTransport | str
"""What a FlightCore streams through: a transport (pipilot.link.transport), or a
device path as shorthand for one."""


class TelemetryLink(Protocol):
    """The flight controller's telemetry, as flight logic uses it."""

    @property
    def connected(self) -> bool:
        """The UAVTalk handshake is complete and the link is alive."""
        ...

    def latest(self, name: str) -> tuple[ObjectValues, float] | None:
        """The newest values of object ``name`` and their age in seconds, if any arrived."""
        ...

    async def request(self, name: str) -> ObjectValues:
        """Ask the flight side for ``name``; its answer also shows in ``latest``."""
        ...

    async def send(self, name: str, values: dict[str, Any], ack: bool = True) -> None:
        """Send ``name``; with ``ack``, wait for the flight side's acknowledgement."""
        ...

    async def set_update_period(self, name: str, period_ms: int, *,
                                mode: str = "periodic") -> None:
        """Have the flight side send ``name`` every ``period_ms``; the other metadata
        fields keep the values last received from it (acknowledged)."""
        ...


@runtime_checkable
class LinkStatistics(Protocol):
    """A telemetry link that also counts (`TelemetrySession` does; the lock-step
    simulator's ground side does not): what the web page's link panel shows."""

    @property
    def clock(self) -> Clock: ...

    @property
    def stats(self) -> Mapping[str, Any]:
        """Counters and state; the page reads ``connected``, ``connects`` (completed
        handshakes) and ``last_rx_age_s`` (None before the first packet)."""
        ...


class FlightVehicle(Protocol):
    """What flight logic may touch: setpoints out, telemetry in, time. No ground truth."""

    @property
    def mixer(self) -> Mixer: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def telemetry(self) -> TelemetryLink | None: ...


class ObservedVehicle(FlightVehicle, Protocol):
    """A FlightVehicle that may also be watched from outside: the simulator's truth
    (None on a real craft), for summaries and benchmarks."""

    @property
    def sim(self) -> GroundTruth | None: ...


class ServedVehicle(ObservedVehicle, Protocol):
    """What the web server shows: an ObservedVehicle and its flight core's state,
    and the hold its page may engage."""

    @property
    def core(self) -> FlightCore: ...

    @property
    def hold(self) -> HoldControl | None:
        """The flow-deck position and height hold; None when there is no flow deck."""
        ...


class Vehicle:
    """Wraps a FlightCore; `start()`/`stop()` run it (and nothing else yet)."""

    def __init__(self, core: FlightCore, telemetry: TelemetryLink | None = None,
                 sim: GroundTruth | None = None) -> None:
        self.core = core
        self.telemetry = telemetry
        self.sim = sim
        #: The flow-deck hold, once one is set up (`pipilot.control.holdapi`).
        self.hold: HoldControl | None = None

    @classmethod
    def create(cls, port: CorePort, config: CoreConfig | None = None,
               clock: Clock | None = None, sim: GroundTruth | None = None) -> Vehicle:
        """A vehicle whose core will stream through `port` (see FlightCore)."""
        return cls(FlightCore(port, config, clock), sim=sim)

    @property
    def mixer(self) -> Mixer:
        return self.core.mixer

    @property
    def clock(self) -> Clock:
        return self.core.clock

    def attach_telemetry(self, session: TelemetryLink) -> None:
        """Attach a started or unstarted `pipilot.core.telemetry.TelemetrySession`."""
        self.telemetry = session

    async def start(self) -> None:
        await self.core.start()

    async def stop(self) -> None:
        """Stop the core: failsafe frames, then the port closes."""
        await self.core.stop()

    async def __aenter__(self) -> Vehicle:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
