"""A byte-at-a-time UAVTalk receiver, shaped like the firmware's state machine.

It is the baseline the benchmark compares :class:`PacketParser` against, and a
second opinion in the tests on clean streams. Like the firmware it never looks
back: after an error it goes on from the next byte, so a false sync in garbage
can swallow the start of a real packet.
"""

from __future__ import annotations

import enum
from typing import Any

from pipilot.uavtalk._crc import TABLE
from pipilot.uavtalk.packets import (
    DEFAULT_MAX_PAYLOAD,
    MAX_HEADER_LENGTH,
    MIN_HEADER_LENGTH,
    SYNC,
    TIMESTAMPED,
    Packet,
    PacketType,
    ParserStats,
)

_NO_DATA = (PacketType.OBJ_REQ, PacketType.ACK, PacketType.NACK)


class RxState(enum.Enum):
    SYNC = 0
    TYPE = 1
    SIZE = 2
    OBJID = 3
    INSTID = 4
    TIMESTAMP = 5
    DATA = 6
    CS = 7


class ByteParser:
    """``feed(data) -> list[Packet]``, one byte and one state step at a time."""

    def __init__(self, registry: Any = None) -> None:
        self.registry = registry
        self.stats = ParserStats()
        self.max_payload = registry.largest if registry is not None else DEFAULT_MAX_PAYLOAD
        self.state = RxState.SYNC
        self._reset()

    def _reset(self) -> None:
        self.cs = 0
        self.type = 0
        self.size = 0
        self.count = 0
        self.obj_id = 0
        self.inst_id = 0
        self.timestamp = 0
        self.length = 0
        self.data = bytearray()

    def feed(self, data: bytes) -> list[Packet]:
        out = []
        for b in data:
            pkt = self.step(b)
            if pkt is not None:
                out.append(pkt)
        return out

    def _error(self, counter: str | None = None) -> None:
        self.stats.rx_errors += 1
        if counter:
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        self.state = RxState.SYNC

    def step(self, b: int) -> Packet | None:
        st = self.stats
        st.rx_bytes += 1
        state = self.state
        if state is RxState.SYNC:
            if b != SYNC:
                st.rx_sync_errors += 1
                return None
            self._reset()
            self.cs = TABLE[b]
            self.state = RxState.TYPE
            return None
        self.cs = TABLE[self.cs ^ b] if state is not RxState.CS else self.cs
        if state is RxState.TYPE:
            if b not in PacketType._value2member_map_:
                self._error("rx_type_errors")
                return None
            self.type = b
            self.state = RxState.SIZE
        elif state is RxState.SIZE:
            self.size |= b << (8 * self.count)
            self.count += 1
            if self.count == 2:
                self.count = 0
                hlen = MAX_HEADER_LENGTH if self.type & TIMESTAMPED else MIN_HEADER_LENGTH
                if not hlen <= self.size <= MAX_HEADER_LENGTH + self.max_payload:
                    self._error("rx_length_errors")
                    return None
                self.state = RxState.OBJID
        elif state is RxState.OBJID:
            self.obj_id |= b << (8 * self.count)
            self.count += 1
            if self.count == 4:
                self.count = 0
                self.state = RxState.INSTID
        elif state is RxState.INSTID:
            self.inst_id |= b << (8 * self.count)
            self.count += 1
            if self.count == 2:
                self.count = 0
                self._header_done()
        elif state is RxState.TIMESTAMP:
            self.timestamp |= b << (8 * self.count)
            self.count += 1
            if self.count == 2:
                self.count = 0
                self.state = RxState.DATA if self.length else RxState.CS
        elif state is RxState.DATA:
            self.data.append(b)
            if len(self.data) == self.length:
                self.state = RxState.CS
        elif state is RxState.CS:
            self.state = RxState.SYNC
            if b != self.cs:
                self._error("rx_crc_errors")
                return None
            st.rx_objects += 1
            st.rx_object_bytes += self.length
            defn = self.registry.get_by_id(self.obj_id) if self.registry is not None else None
            if defn is None:
                st.rx_unknown_objects += 1
            ts = self.timestamp if self.type & TIMESTAMPED else None
            return Packet(self.type, self.obj_id, self.inst_id, ts, bytes(self.data), defn)
        return None

    def _header_done(self) -> None:
        hlen = MAX_HEADER_LENGTH if self.type & TIMESTAMPED else MIN_HEADER_LENGTH
        defn = self.registry.get_by_id(self.obj_id) if self.registry is not None else None
        if self.type in _NO_DATA:
            self.length = 0
        elif defn is not None:
            self.length = defn.size
        else:
            self.length = self.size - hlen
        if hlen + self.length != self.size:
            self._error("rx_size_errors" if defn is not None else "rx_length_errors")
            return
        if self.type & TIMESTAMPED:
            self.state = RxState.TIMESTAMP
        else:
            self.state = RxState.DATA if self.length else RxState.CS
