"""CRC-8 as UAVTalk uses it: polynomial 0x07, initial value 0, no final xor.

The pure-Python form walks two bytes per step through a 65536-entry table
(built once from the 256-entry byte table), which halves the interpreter
overhead of the classic byte loop.
"""

from __future__ import annotations

import sys


def _byte_table() -> tuple[int, ...]:
    table = []
    for b in range(256):
        crc = b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


TABLE: tuple[int, ...] = _byte_table()
# Index: the two bytes read as one little-endian uint16, with the running CRC
# xored into its low byte (the first byte).
_LITTLE = sys.byteorder == "little"
_TABLE2: tuple[int, ...] = tuple(TABLE[TABLE[x & 0xFF] ^ (x >> 8)] for x in range(65536))


def crc8_bytewise(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """The reference form: one table lookup per byte."""
    t = TABLE
    for b in bytes(data):
        crc = t[crc ^ b]
    return crc


def crc8(data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None) -> int:
    """CRC-8 of ``data[start:end]``."""
    mv = memoryview(data)[start:end]
    n = len(mv)
    crc = 0
    t2 = _TABLE2
    if n >= 2 and _LITTLE:
        for w in mv[: n & ~1].cast("H"):
            crc = t2[w ^ crc]
    elif n >= 2:
        return crc8_bytewise(mv)
    if n & 1:
        crc = TABLE[crc ^ mv[n - 1]]
    return crc
