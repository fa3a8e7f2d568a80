"""The vehicle facade: one object for missions, the drift loop and the web server.

`vehicle.mixer` to publish setpoints, `vehicle.telemetry` for the flight
controller's state (None until a TelemetrySession is attached),
`vehicle.clock` for time, `vehicle.core` for the link and its failsafe, and
`vehicle.sim` (None on a real craft) for simulator ground truth only.
"""

from __future__ import annotations

from typing import Any

from pipilot.core.clock import Clock
from pipilot.core.config import CoreConfig
from pipilot.core.flightcore import FlightCore
from pipilot.core.mixer import Mixer
from pipilot.link.transport import SbusTransport


class Vehicle:
    """Wraps a FlightCore; `start()`/`stop()` run it (and nothing else yet)."""

    def __init__(self, core: FlightCore, telemetry: Any | None = None,
                 sim: Any | None = None) -> None:
        self.core = core
        self.telemetry = telemetry
        self.sim = sim

    @classmethod
    def create(cls, transport: SbusTransport | str, config: CoreConfig | None = None,
               clock: Clock | None = None, sim: Any | None = None) -> Vehicle:
        """A vehicle whose core will stream through `transport` (see FlightCore)."""
        return cls(FlightCore(transport, config, clock), sim=sim)

    @property
    def mixer(self) -> Mixer:
        return self.core.mixer

    @property
    def clock(self) -> Clock:
        return self.core.clock

    def attach_telemetry(self, session: Any) -> None:
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
