"""The simulated CC3D's flight side as a test's UAVTalk peer, on the test's virtual time.

`SimFlight` is the flight side that flies in every simulation
(pipilot.sim.telemetry on a SimulatedCC3D): bytes from the ground in, bytes
paced at the telemetry baud out. Tests that need a flight side talk to it, so
that what they check is the firmware's behaviour as the simulator models it,
not a script's; a peer that misbehaves on purpose (tests.uavtalk.flightpeer)
is only for tests whose subject is the misbehaviour.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pipilot.sim.model import SimulatedCC3D
from pipilot.sim.telemetry import FlightTelemetry, attach
from pipilot.uavtalk import Packet, PacketParser, load_definitions

REG = load_definitions()


class SimFlight:
    """A SimulatedCC3D with its telemetry port, moved to the caller's time on every call."""

    def __init__(self, *, start: float = 0.0, baud: int = 9600,
                 model: SimulatedCC3D | None = None) -> None:
        self.model = model or SimulatedCC3D(seed=0, start=start)
        self.flight: FlightTelemetry = attach(self.model, baud=baud)

    def _to(self, now: float) -> None:
        if now > self.model.now:
            self.model.step(now - self.model.now)

    def feed(self, data: bytes, now: float) -> bytes:
        """Ground bytes complete at ``now``; returns the flight bytes complete by then."""
        self._to(now)
        self.flight.feed(data, now)
        return self.flight.pop_tx(now)

    def tick(self, now: float) -> bytes:
        """The flight bytes complete by ``now``."""
        self._to(now)
        return self.flight.pop_tx(now)

    @property
    def status(self) -> str:
        """FlightTelemetryStats.Status as the flight side holds it."""
        return self.flight.status

    @property
    def gcs_status(self) -> str:
        """The ground's status as the flight side last heard it."""
        return self.flight.gcs_status


def packets(data: bytes) -> list[Packet]:
    """The UAVTalk packets in a byte stream (what one side sent the other)."""
    return PacketParser(REG).feed(data)


async def tick_in_real_time(flight: SimFlight, write: Callable[[bytes], None],
                            period_s: float = 0.005) -> None:
    """Move ``flight`` on the running loop's clock (its ``start`` on that clock too),
    writing what it sends; for tests over real sockets, cancelled when done."""
    loop = asyncio.get_running_loop()
    while True:
        data = flight.tick(loop.time())
        if data:
            write(data)
        await asyncio.sleep(period_s)
