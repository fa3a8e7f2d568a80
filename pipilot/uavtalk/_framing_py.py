"""Packet framing, pure-Python twin of ``_framing.pyx`` (same function, same results).

``scan`` walks a receive buffer from the start and returns the packets found,
how many bytes are consumed, and the error counts, so that PacketParser keeps
all bookkeeping in one place. See packets.py for the rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pipilot.uavtalk._crc import crc8

IMPLEMENTATION = "python"

D = TypeVar("D")
P = TypeVar("P")
ScanCounts = tuple[int, int, int, int, int, int, int]
"""Sync, type, length, size and CRC errors, object bytes, unknown objects."""

_VALID = frozenset((0x20, 0x21, 0x22, 0x23, 0x24, 0xA0, 0xA2))
_NO_DATA = frozenset((0x21, 0x23, 0x24))


def scan(buf: bytearray, sizes: dict[int, int], defs: dict[int, D], max_len: int,
         packet: Callable[[int, int, int, int | None, bytes, D | None], P],
         ) -> tuple[list[P], int, ScanCounts]:
    """Returns (packets, consumed, (sync, type, length, size, crc, object_bytes, unknown));
    each packet is ``packet(type, object_id, instance_id, timestamp, data, definition)``."""
    out: list[P] = []
    n = len(buf)
    pos = 0
    sync_e = type_e = len_e = size_e = crc_e = obj_bytes = unknown = 0
    find = buf.find
    while True:
        i = find(0x3C, pos)
        if i < 0:
            sync_e += n - pos
            pos = n
            break
        sync_e += i - pos
        pos = i
        if n - i < 4:
            break
        ptype = buf[i + 1]
        if ptype not in _VALID:
            type_e += 1
            pos = i + 1
            continue
        length = buf[i + 2] | buf[i + 3] << 8
        hlen = 12 if ptype & 0x80 else 10
        if length < hlen or length > max_len or (ptype in _NO_DATA and length != hlen):
            len_e += 1
            pos = i + 1
            continue
        if n - i < 8:
            break
        oid = buf[i + 4] | buf[i + 5] << 8 | buf[i + 6] << 16 | buf[i + 7] << 24
        if ptype not in _NO_DATA:
            size = sizes.get(oid)
            if size is not None and size != length - hlen:
                size_e += 1
                pos = i + 1
                continue
        end = i + length
        if end >= n:
            break
        if crc8(buf, i, end) != buf[end]:
            crc_e += 1
            pos = i + 1
            continue
        defn = defs.get(oid)
        if defn is None:
            unknown += 1
        obj_bytes += length - hlen
        out.append(packet(ptype, oid, buf[i + 8] | buf[i + 9] << 8,
                          buf[i + 10] | buf[i + 11] << 8 if hlen == 12 else None,
                          bytes(buf[i + hlen:end]), defn))
        pos = end + 1
    return out, pos, (sync_e, type_e, len_e, size_e, crc_e, obj_bytes, unknown)
