"""UAVTalk packets: CRC-8, the packet encoder and a resynchronising stream parser.

Wire format (LibrePilot 15.09 and later)::

    0x3C | type | length u16 | object id u32 | instance id u16 | [timestamp u16] | data | crc8

``length`` counts header and data, not the CRC. The CRC (poly 0x07, init 0)
covers everything from the sync byte to the end of the data.

The parser is sans-IO: ``feed(bytes) -> list[Packet]``. The framing loop has
two twins, compiled (``_framing.pyx``) and pure Python (``_framing_py.py``;
PIPILOT_PURE_PYTHON=1 forces it). It finds sync bytes with memchr / ``find``;
a candidate that fails any check is dropped and the search restarts one byte
after its sync byte, so a false sync inside garbage can never swallow a real
packet that follows it.
"""

from __future__ import annotations

import enum
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from pipilot.errors import ProtocolError
from pipilot.uavtalk import _framing_py
from pipilot.uavtalk._crc import crc8
from pipilot.uavtalk._framing_py import ScanCounts

Scanner = Callable[
    [bytearray, dict[int, int], dict[int, Any], int, "type[Packet]"],
    tuple[list["Packet"], int, ScanCounts]]
"""`scan` of either framing twin, as PacketParser calls it."""


def _load_framing() -> tuple[str, Scanner]:
    """The compiled framing unless PIPILOT_PURE_PYTHON is set or it is not built."""
    if os.environ.get("PIPILOT_PURE_PYTHON", "") not in ("", "0"):
        return _framing_py.IMPLEMENTATION, _framing_py.scan
    try:
        from pipilot.uavtalk import _framing
    except ImportError:  # not built: the pure-Python twin does the same work
        return _framing_py.IMPLEMENTATION, _framing_py.scan
    return _framing.IMPLEMENTATION, _framing.scan


#: Which framing twin PacketParser uses by default: "cython" or "python".
IMPLEMENTATION, _default_scan = _load_framing()


def _scanner(implementation: str | None) -> Scanner:
    if implementation is None or implementation == IMPLEMENTATION:
        return _default_scan
    if implementation == "python":
        return _framing_py.scan
    raise ValueError(f"framing implementation {implementation!r} is not available")

SYNC = 0x3C
TIMESTAMPED = 0x80
ALL_INSTANCES = 0xFFFF
MIN_HEADER_LENGTH = 10
MAX_HEADER_LENGTH = 12
#: Payload bound when no registry is given (the 16.09 set's largest object is far smaller).
DEFAULT_MAX_PAYLOAD = 1024


class PacketType(enum.IntEnum):
    OBJ = 0x20
    OBJ_REQ = 0x21
    OBJ_ACK = 0x22
    ACK = 0x23
    NACK = 0x24
    OBJ_TS = 0xA0
    OBJ_ACK_TS = 0xA2


_NO_DATA = frozenset({PacketType.OBJ_REQ, PacketType.ACK, PacketType.NACK})
_VALID_TYPES = frozenset(int(t) for t in PacketType)


class PacketError(ProtocolError, ValueError):
    """Arguments that make no valid UAVTalk packet (a ValueError too)."""
_HEADER = struct.Struct("<BBHIH")
_HEADER_TS = struct.Struct("<BBHIHH")


def encode_packet(
    type: int,
    object_id: int,
    instance_id: int = 0,
    data: bytes = b"",
    timestamp: int | None = None,
) -> bytes:
    """One complete packet. A timestamp is written when the type has bit 0x80 set."""
    ptype = int(type)
    if ptype not in _VALID_TYPES:
        raise PacketError(f"not a UAVTalk packet type: 0x{ptype:02X}")
    if ptype in _NO_DATA and data:
        raise PacketError(f"{PacketType(ptype).name} packets carry no data")
    if not 0 <= object_id <= 0xFFFFFFFF or not 0 <= instance_id <= 0xFFFF:
        raise PacketError(f"object id 0x{object_id:X} / instance id {instance_id} out of range")
    if ptype & TIMESTAMPED:
        header = _HEADER_TS.pack(SYNC, ptype, MAX_HEADER_LENGTH + len(data), object_id,
                                 instance_id, (timestamp or 0) & 0xFFFF)
    else:
        if timestamp is not None:
            raise PacketError("a timestamp needs a timestamped packet type (OBJ_TS, OBJ_ACK_TS)")
        header = _HEADER.pack(SYNC, ptype, MIN_HEADER_LENGTH + len(data), object_id, instance_id)
    body = header + bytes(data)
    if len(body) > 0xFFFF:
        raise PacketError("packet too long")
    return body + bytes((crc8(body),))


class Packet:
    """A packet received from the stream; ``values`` decodes lazily when known."""

    __slots__ = ("_values", "data", "definition", "instance_id", "object_id", "timestamp", "type")

    def __init__(self, type: int, object_id: int, instance_id: int, timestamp: int | None,
                 data: bytes, definition: Any = None) -> None:
        self.type = type
        self.object_id = object_id
        self.instance_id = instance_id
        self.timestamp = timestamp
        self.data = data
        self.definition = definition
        self._values: dict[str, Any] | None = None

    @property
    def name(self) -> str | None:
        return self.definition.name if self.definition is not None else None

    @property
    def values(self) -> dict[str, Any] | None:
        """Decoded data for known objects carrying data, else None."""
        if self._values is None and self.definition is not None and self.data:
            self._values = self.definition.decode_unchecked(self.data)
        return self._values

    def to_bytes(self) -> bytes:
        return encode_packet(self.type, self.object_id, self.instance_id, self.data,
                             self.timestamp if self.type & TIMESTAMPED else None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Packet):
            return NotImplemented
        return (self.type, self.object_id, self.instance_id, self.timestamp, self.data) == (
            other.type, other.object_id, other.instance_id, other.timestamp, other.data)

    # equal by contents, which may change: unhashable (typeshed wants a method here)
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        try:
            tname = PacketType(self.type).name
        except ValueError:
            tname = f"0x{self.type:02X}"
        who = self.name or f"0x{self.object_id:08X}"
        return f"<Packet {tname} {who}[{self.instance_id}] {len(self.data)} bytes>"


@dataclass
class ParserStats:
    """Receive counters; the first six match the firmware's UAVTalkStats."""

    rx_bytes: int = 0
    rx_objects: int = 0
    rx_object_bytes: int = 0
    rx_errors: int = 0           # every rejected candidate packet, as the firmware counts
    rx_sync_errors: int = 0      # bytes skipped while looking for a sync byte
    rx_crc_errors: int = 0
    rx_type_errors: int = 0      # sync byte followed by an unknown type
    rx_length_errors: int = 0    # length field impossible for the type
    rx_size_errors: int = 0      # data size differs from the known object's size
    rx_unknown_objects: int = 0  # valid packets for ids missing from the registry

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class PacketParser:
    """Sans-IO stream parser: ``feed(data) -> list[Packet]``; ``stats`` counts errors."""

    def __init__(self, registry: Any = None, max_payload: int | None = None, *,
                 implementation: str | None = None) -> None:
        self.registry = registry
        self._scan = _scanner(implementation)
        self.implementation = implementation or IMPLEMENTATION
        self._defs: dict[int, Any] = registry._by_id if registry is not None else {}
        self._sizes: dict[int, int] = registry.sizes if registry is not None else {}
        if max_payload is None:
            max_payload = registry.largest if registry is not None else DEFAULT_MAX_PAYLOAD
        self.max_payload = max_payload
        self._buf = bytearray()
        self.stats = ParserStats()

    def reset(self) -> None:
        """Drop any partial packet (e.g. after the link was reopened)."""
        self._buf.clear()

    def feed(self, data: bytes | bytearray | memoryview) -> list[Packet]:
        """Add received bytes; return every complete valid packet in order."""
        st = self.stats
        st.rx_bytes += len(data)
        buf = self._buf
        buf += data
        out, pos, (sync_e, type_e, len_e, size_e, crc_e, obj_bytes, unknown) = self._scan(
            buf, self._sizes, self._defs, MAX_HEADER_LENGTH + self.max_payload, Packet)
        if pos:
            del buf[:pos]
        st.rx_sync_errors += sync_e
        if type_e or len_e or size_e or crc_e:
            st.rx_type_errors += type_e
            st.rx_length_errors += len_e
            st.rx_size_errors += size_e
            st.rx_crc_errors += crc_e
            st.rx_errors += type_e + len_e + size_e + crc_e
        st.rx_objects += len(out)
        st.rx_object_bytes += obj_bytes
        st.rx_unknown_objects += unknown
        return out
