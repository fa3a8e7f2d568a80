"""A minimal ground side of UAVTalk on virtual time, for the lock-step runner.

It does what a ground station must (NOTES.md, "Telemetry connection"):
GCSTelemetryStats.Status = HandshakeReq until the flight side answers
HandshakeAck, then Connected, then GCSTelemetryStats again every
``keepalive_s`` so the flight side's 8 s connection timeout never fires. It
starts over when the flight side reports Disconnected. Bytes in both
directions take their wire time at the link's baud.

The asyncio TelemetrySession is what pipilot runs against real or pty links;
this one exists because lock-step time cannot drive an asyncio session.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
from collections.abc import Callable
from typing import Any

from pipilot.errors import ProtocolError
from pipilot.sim.telemetry import FlightTelemetry
from pipilot.uavtalk import PacketParser, PacketType, encode_packet

log = logging.getLogger(__name__)

RETRY_S = 1.0


class GroundState(enum.Enum):
    DISCONNECTED = "Disconnected"
    HANDSHAKE_REQ = "HandshakeReq"
    CONNECTED = "Connected"


class LockstepGround:
    """Ground endpoint wired to a FlightTelemetry; call ``tick(now)`` as time advances."""

    def __init__(self, flight: FlightTelemetry, *, handshake: bool = True,
                 keepalive_s: float = 2.0) -> None:
        self.flight = flight
        self.registry = flight.registry
        self.byte_time = flight.byte_time
        self.parser = PacketParser(self.registry)
        self.handshake = handshake
        self.link_cut = False
        self.keepalive_s = keepalive_s
        self.state = GroundState.DISCONNECTED
        self._latest: dict[str, tuple[dict[str, Any], float]] = {}
        self.received: dict[str, int] = {}
        self.acks = 0
        self.nacks = 0
        self._tx = bytearray()
        self._tx_free_at = 0.0
        self._next_stats = 0.0
        self.now = 0.0
        #: advances the whole lock-step simulation by dt (set by LockstepSim)
        self.advance: Callable[[float], None] | None = None

    # -- public ---------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.state is GroundState.CONNECTED and not self.link_cut

    @connected.setter
    def connected(self, value: bool) -> None:
        """False cuts the link (nothing passes either way); True restores it."""
        self.link_cut = not value
        if not value:
            self._set_state(GroundState.DISCONNECTED)

    def latest(self, name: str) -> tuple[dict[str, Any], float] | None:
        got = self._latest.get(name)
        if got is None:
            return None
        return got[0], self.now - got[1]

    @property
    def objects_received(self) -> int:
        return sum(self.received.values())

    def send_now(self, name: str, values: dict[str, Any], *, ack: bool = False) -> None:
        """Queue an object for the flight side without waiting."""
        d = self.registry[name]
        self._write(encode_packet(PacketType.OBJ_ACK if ack else PacketType.OBJ,
                                  d.object_id, 0, d.encode(values)))

    def request_now(self, name: str, instance: int = 0) -> None:
        """Queue a request without waiting; the answer shows in ``latest``."""
        self._write(encode_packet(PacketType.OBJ_REQ, self.registry[name].object_id, instance))

    async def request(self, name: str, instance: int = 0,
                      timeout: float = 1.0) -> dict[str, Any]:
        """Request ``name`` and advance virtual time until it arrives (TelemetrySession-like)."""
        before = self.received.get(name, 0)
        self.request_now(name, instance)
        await self._wait(lambda: self.received.get(name, 0) > before, timeout, f"{name} request")
        got = self._latest[name]
        return got[0]

    async def send(self, name: str, values: dict[str, Any], ack: bool = True,
                   timeout: float = 1.0) -> None:
        """Send ``name``; with ``ack`` advance virtual time until the ACK (NACK raises)."""
        acks, nacks = self.acks, self.nacks
        self.send_now(name, values, ack=ack)
        if ack:
            await self._wait(lambda: self.acks > acks or self.nacks > nacks, timeout,
                             f"{name} ACK")
            if self.nacks > nacks:
                raise ProtocolError(f"{name}: NACK from the flight side")

    async def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        if self.advance is None:
            raise RuntimeError("no driver to advance virtual time")
        t_end = self.now + timeout
        while not done():
            if self.now >= t_end:
                raise TimeoutError(f"{what}: no answer in {timeout:g} s of virtual time")
            self.advance(0.005)
            await asyncio.sleep(0)

    # -- time -------------------------------------------------------------------
    def tick(self, now: float) -> None:
        self.now = now
        if self.link_cut:
            self.flight.pop_tx(now)  # the bytes leave the FC and are lost
            self._tx.clear()
            return
        self._deliver(now)
        for p in self.parser.feed(self.flight.pop_tx(now)):
            self._handle(p, now)
        if self.handshake and now >= self._next_stats:
            self._send_stats(now)

    def _set_state(self, state: GroundState) -> None:
        if state is not self.state:
            log.info("ground telemetry: %s -> %s", self.state.value, state.value)
            self.state = state

    def _send_stats(self, now: float) -> None:
        if self.state is GroundState.DISCONNECTED:
            self._set_state(GroundState.HANDSHAKE_REQ)
        d = self.registry["GCSTelemetryStats"]
        v = d.defaults()
        v["Status"] = self.state.value
        self._write(encode_packet(PacketType.OBJ, d.object_id, 0, d.encode(v)))
        self._next_stats = now + (self.keepalive_s if self.connected else RETRY_S)

    def _handle(self, p: Any, now: float) -> None:
        if p.type == PacketType.ACK:
            self.acks += 1
            return
        if p.type == PacketType.NACK:
            self.nacks += 1
            return
        name = p.name
        if name is None or p.values is None:
            return
        self.received[name] = self.received.get(name, 0) + 1
        self._latest[name] = (p.values, now)
        if name == "FlightTelemetryStats" and self.handshake:
            status = p.values["Status"]
            if status == "HandshakeAck" and self.state is GroundState.HANDSHAKE_REQ:
                self._set_state(GroundState.CONNECTED)
                self._send_stats(now)
            elif status == "Disconnected" and self.state is GroundState.CONNECTED:
                self._set_state(GroundState.DISCONNECTED)
                self._send_stats(now)

    # -- the wire, ground -> flight ---------------------------------------------
    def _write(self, pkt: bytes) -> None:
        start = max(self.now, self._tx_free_at)
        self._tx_free_at = start + len(pkt) * self.byte_time
        self._tx += pkt
        self._deliver(self.now)

    def _deliver(self, now: float) -> None:
        pending = max(0, math.ceil((self._tx_free_at - now) / self.byte_time - 1e-6))
        n = len(self._tx) - pending
        if n > 0:
            chunk = bytes(self._tx[:n])
            del self._tx[:n]
            self.flight.feed(chunk, now)
