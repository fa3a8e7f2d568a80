"""A scripted flight-side UAVTalk peer (sans-IO), for tests of ground-side code.

It behaves like the firmware's Telemetry module where the ground can see it:
the FlightTelemetryStats handshake with its 8 s connection timeout, answers to
object requests (one instance, all instances in reverse order, metaobjects),
ACK or NACK for acknowledged objects, and periodic objects while connected.
Knobs let a test drop bytes, stay silent, refuse objects or withhold ACKs.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from pipilot.uavtalk.definitions import Registry, load_definitions
from pipilot.uavtalk.handshake import CONNECTED, DISCONNECTED, HANDSHAKE_ACK, HANDSHAKE_REQ
from pipilot.uavtalk.packets import ALL_INSTANCES, PacketParser, PacketType, encode_packet

CONNECTION_TIMEOUT = 8.0  # s without an object from the ground (telemetry.c)
STATS_PERIOD = 4.0        # s between the firmware's stats updates


class FlightPeer:
    """``feed(data, now) -> bytes`` and ``tick(now) -> bytes``; no I/O of its own."""

    def __init__(self, registry: Registry | None = None, *, seed: int = 0,
                 periodic: dict[str, float] | None = None) -> None:
        self.registry = registry or load_definitions()
        self.parser = PacketParser(self.registry)
        self.status = DISCONNECTED
        self.gcs_status = DISCONNECTED
        #: (object id, instance) -> object data, as the flight's object manager holds it
        self.objects: dict[tuple[int, int], bytes] = {}
        self.periodic = dict(periodic or {})
        self.rng = random.Random(seed)
        # knobs
        self.silent = False          # receive but never answer (a hung flight side)
        self.rx_drop = 0.0           # probability of losing each received chunk
        self.tx_drop = 0.0           # probability of losing each sent packet
        self.nack_ids: set[int] = set()
        self.withhold_acks = 0       # swallow this many OBJ_ACKs without answering
        self.periodic_stats = True   # send FlightTelemetryStats every 4 s once connected
        # record
        self.received: list[Any] = []
        self._last_rx_object = 0.0
        self._next_stats = 0.0
        self._next_periodic: dict[str, float] = {}
        self.set("FlightTelemetryStats", self._defaults("FlightTelemetryStats"))

    # ------------------------------------------------------------------ objects
    def _defaults(self, name: str) -> dict[str, Any]:
        return dict(self.registry[name].defaults())

    def set(self, name: str, values: dict[str, Any], instance: int = 0) -> None:
        obj = self.registry[name]
        self.objects[(obj.object_id, instance)] = obj.encode(values)

    def get(self, name: str, instance: int = 0) -> dict[str, Any] | None:
        obj = self.registry[name]
        data = self.objects.get((obj.object_id, instance))
        return None if data is None else obj.decode(data)

    def _data(self, oid: int, inst: int) -> bytes | None:
        data = self.objects.get((oid, inst))
        if data is None:
            defn = self.registry.get_by_id(oid)
            if defn is not None and inst == 0:
                data = defn.encode(defn.defaults())  # every object exists from boot
        return data

    def _packet(self, ptype: int, oid: int, inst: int, data: bytes = b"") -> bytes:
        if self.tx_drop and self.rng.random() < self.tx_drop:
            return b""
        return encode_packet(ptype, oid, inst, data)

    def packet(self, name: str) -> bytes:
        """An OBJ packet of ``name`` as the flight side holds it (it sends it now)."""
        return self._send_object(name)

    def _send_object(self, name: str) -> bytes:
        obj = self.registry[name]
        data = self._data(obj.object_id, 0)
        assert data is not None
        return self._packet(PacketType.OBJ, obj.object_id, 0, data)

    # ---------------------------------------------------------------- receiving
    def feed(self, data: bytes, now: float) -> bytes:
        if self.rx_drop and self.rng.random() < self.rx_drop:
            return b""
        out = []
        for pkt in self.parser.feed(data):
            self.received.append(pkt)
            self._last_rx_object = now
            reply = self._handle(pkt, now)
            if not self.silent:
                out.append(reply)
        return b"".join(out)

    def _handle(self, pkt: Any, now: float) -> bytes:
        oid, inst, t = pkt.object_id, pkt.instance_id, pkt.type
        known = pkt.definition is not None and oid not in self.nack_ids
        if t in (PacketType.OBJ, PacketType.OBJ_TS, PacketType.OBJ_ACK, PacketType.OBJ_ACK_TS):
            acked = t in (PacketType.OBJ_ACK, PacketType.OBJ_ACK_TS)
            if not known or inst == ALL_INSTANCES:
                return self._packet(PacketType.NACK, oid, inst) if acked else b""
            self.objects[(oid, inst)] = pkt.data
            reply = b""
            if pkt.name == "GCSTelemetryStats":
                self.gcs_status = pkt.values["Status"]
                if self.status != CONNECTED or self.gcs_status != CONNECTED:
                    reply = self._update_stats(now)
            if acked:
                if self.withhold_acks:
                    self.withhold_acks -= 1
                else:
                    reply = self._packet(PacketType.ACK, oid, inst) + reply
            return reply
        if t == PacketType.OBJ_REQ:
            if not known:
                return self._packet(PacketType.NACK, oid, inst)
            defn = pkt.definition
            if inst == ALL_INSTANCES:
                insts = sorted({i for (o, i) in self.objects if o == oid} | {0}, reverse=True)
                if defn.single_instance:
                    insts = [0]
                return b"".join(self._packet(PacketType.OBJ, oid, i, self._data(oid, i) or b"")
                                for i in insts)
            data = self._data(oid, inst)
            if data is None:
                return self._packet(PacketType.NACK, oid, inst)
            return self._packet(PacketType.OBJ, oid, inst, data)
        return b""

    # ------------------------------------------------------------ telemetry.c
    def _update_stats(self, now: float) -> bytes:
        timeout = now - self._last_rx_object > CONNECTION_TIMEOUT
        force = True
        if self.status == DISCONNECTED:
            if self.gcs_status == HANDSHAKE_REQ:
                self.status = HANDSHAKE_ACK
        elif self.status == HANDSHAKE_ACK:
            if self.gcs_status == CONNECTED:
                self.status = CONNECTED
            elif self.gcs_status == DISCONNECTED:
                self.status = DISCONNECTED
        elif self.status == CONNECTED:
            if self.gcs_status != CONNECTED or timeout:
                self.status = DISCONNECTED
            else:
                force = False
        stats = self.get("FlightTelemetryStats") or {}
        stats["Status"] = self.status
        self.set("FlightTelemetryStats", stats)
        return self._send_object("FlightTelemetryStats") if force else b""

    def tick(self, now: float) -> bytes:
        """Advance timers: stats every 4 s, periodic objects while connected."""
        if self.silent:
            return b""
        out = []
        if now >= self._next_stats:
            self._next_stats = now + STATS_PERIOD
            out.append(self._update_stats(now))
            if self.status == CONNECTED and self.periodic_stats:
                out.append(self._send_object("FlightTelemetryStats"))
        if self.status == CONNECTED:
            for name, period in self.periodic.items():
                due = self._next_periodic.get(name, now)
                if now >= due:
                    self._next_periodic[name] = now + period
                    out.append(self._send_object(name))
        return b"".join(out)

    def received_names(self) -> Iterable[str | None]:
        return (p.name for p in self.received)
