"""The lock-step simulator's ground side: pipilot's UAVTalk engine on virtual time.

`LockstepTelemetry` drives the very `GroundSession` that flies
(pipilot.uavtalk.session) against the simulated CC3D's flight side
(pipilot.sim.telemetry) over a `TelemetryWire`: a virtual serial line that
carries bytes at the link's baud in both directions and can be cut either way.
The model calls `tick(now)` every few milliseconds of virtual time; the engine
reads the model's time, so timers, ages and retries are the flying code's,
exactly.

``await request(...)`` / ``send(...)`` advance the simulation until the engine
reports the transaction done or failed (its own ACK timeout and retries bound
the wait), so they work from a plain event loop as from the lock-step one.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipilot.uavtalk.handshake import HandshakeTiming
from pipilot.uavtalk.session import (
    EngineDriver,
    GroundSession,
    ObjectUpdated,
    SessionOptions,
    TransactionDone,
    TransactionFailed,
)

if TYPE_CHECKING:
    from pipilot.sim.telemetry import FlightTelemetry

#: How often (virtual s) the ground side looks at the wire.
GROUND_TICK_S = 0.005


class ModelClock:
    """The model's own time as a `pipilot.core.clock.Clock` (exact inside a model step)."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def now(self) -> float:
        return float(self._model.now)


class TelemetryWire:
    """The telemetry line between ground and flight side, on virtual time.

    Ground bytes reach the flight side when their last stop bit would have;
    flight bytes are paced by the flight side itself and reach the ground
    ``latency_s`` after they are complete on the line (a slow adapter or
    driver). ``up`` / ``down`` False cut the ground -> flight / flight ->
    ground direction (bytes are lost)."""

    def __init__(self, flight: FlightTelemetry, *, latency_s: float = 0.0) -> None:
        if not (latency_s >= 0.0 and math.isfinite(latency_s)):
            raise ValueError(f"telemetry latency must be finite and >= 0, not {latency_s!r}")
        self.flight = flight
        self.byte_time = flight.byte_time
        self.latency_s = latency_s
        self.up = True
        self.down = True
        self._tx = bytearray()
        self._free_at = 0.0
        self._delayed: deque[tuple[float, bytes]] = deque()

    def write(self, data: bytes, now: float) -> None:
        """Ground bytes onto the line at ``now`` (behind those still on it)."""
        if not self.up or not data:
            return
        start = max(now, self._free_at)
        self._free_at = start + len(data) * self.byte_time
        self._tx += data

    def deliver(self, now: float) -> None:
        """Hand the flight side every ground byte complete by ``now``."""
        if not self.up:
            self._tx.clear()
            return
        pending = max(0, math.ceil((self._free_at - now) / self.byte_time - 1e-6))
        n = len(self._tx) - pending
        if n > 0:
            chunk = bytes(self._tx[:n])
            del self._tx[:n]
            self.flight.feed(chunk, now)

    def receive(self, now: float) -> bytes:
        """Flight bytes complete by ``now - latency_s`` (lost while ``down`` is False)."""
        data = self.flight.pop_tx(now)
        if not self.down:
            self._delayed.clear()
            return b""
        if self.latency_s <= 0.0:
            return data
        if data:
            self._delayed.append((now + self.latency_s, data))
        out = bytearray()
        while self._delayed and self._delayed[0][0] <= now + 1e-9:
            out += self._delayed.popleft()[1]
        return bytes(out)


class LockstepTelemetry(EngineDriver):
    """A GroundSession wired to the simulated flight side; the model calls `tick`."""

    def __init__(self, flight: FlightTelemetry, *, handshake: bool = True,
                 timing: HandshakeTiming | None = None, latency_s: float = 0.0) -> None:
        self.flight = flight
        self.registry = flight.registry
        self.clock = ModelClock(flight.model)
        self.engine = GroundSession(self.clock, self.registry,
                                    SessionOptions(timing or HandshakeTiming()))
        self.wire = TelemetryWire(flight, latency_s=latency_s)
        #: Objects received, by name.
        self.received: Counter[str] = Counter()
        #: Advances the whole simulation by dt (set by LockstepSim).
        self.advance: Callable[[float], None] | None = None
        self._awaited: set[int] = set()
        self._done: dict[int, TransactionDone | TransactionFailed] = {}
        if handshake:
            self.engine.start()

    @property
    def objects_received(self) -> int:
        return sum(self.received.values())

    def start(self) -> None:
        """Begin (or begin again) the handshake."""
        self.engine.start()
        self._flush()

    def stop(self) -> None:
        """Say Disconnected and stop the session."""
        self.engine.stop()
        self._flush()

    # ------------------------------------------------------------------- time
    def tick(self, now: float) -> None:
        """The model's task: bytes both ways, then the engine's timers when due."""
        self.wire.deliver(now)
        data = self.wire.receive(now)
        if data:
            self.engine.receive_data(data)
        due = self.engine.next_deadline()
        if due is not None and now >= due:
            self.engine.tick()
        self._flush()

    def _flush(self) -> None:
        self.wire.write(self.engine.data_to_send(), self.clock.now())
        for event in self.engine.events():
            if isinstance(event, ObjectUpdated):
                self.received[event.name] += 1
            elif (isinstance(event, TransactionDone | TransactionFailed)
                  and event.tid in self._awaited):
                self._done[event.tid] = event

    # ----------------------------------------------------------- transactions
    async def _result(self, tid: int) -> Any:
        self._awaited.add(tid)
        try:
            self._flush()
            while tid not in self._done:
                if self.advance is None:
                    raise RuntimeError("no driver to advance virtual time")
                self.advance(GROUND_TICK_S)
                await asyncio.sleep(0)
            event = self._done.pop(tid)
        except asyncio.CancelledError:  # the caller gave up: free the object's slot
            self.engine.abandon(tid)
            self._flush()
            raise
        finally:
            self._awaited.discard(tid)
        if isinstance(event, TransactionFailed):
            raise event.error
        return event.result
