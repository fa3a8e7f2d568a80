"""LibrePilot GCS log files (.opl): timestamped chunks of the raw UAVTalk stream.

A file is a sequence of records, with no header: uint32 LE milliseconds since
the start of the log, int64 LE byte count, then that many stream bytes. The
GCS replays such files; ``pipilot log dump`` reads them back through the
packet parser.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pipilot.errors import PipilotError

_RECORD = struct.Struct("<Iq")
#: A record larger than this is taken as file corruption rather than data.
MAX_RECORD = 1 << 24


class OplError(PipilotError):
    """A .opl file is truncated or corrupt."""


@dataclass(frozen=True)
class OplRecord:
    time_ms: int
    data: bytes


class OplWriter:
    """Appends records to a binary file; times are clock seconds, stored as ms since ``start``."""

    def __init__(self, fileobj: BinaryIO, start: float, path: str | None = None) -> None:
        self._f = fileobj
        self.start = start
        self.path = path
        self.records = 0
        self.bytes = 0

    @classmethod
    def open(cls, path: str | Path, start: float) -> OplWriter:
        try:
            f = open(path, "wb")  # noqa: SIM115 - owned by the writer, closed by close()
        except OSError as exc:
            raise OplError(f"{path}: cannot write log: {exc.strerror}") from None
        return cls(f, start, str(path))

    def write(self, data: bytes, now: float) -> None:
        if not data:
            return
        ms = max(0, int((now - self.start) * 1000)) & 0xFFFFFFFF  # elapsed ms, truncated
        self._f.write(_RECORD.pack(ms, len(data)) + bytes(data))
        self.records += 1
        self.bytes += len(data)

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> OplWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_records(fileobj: BinaryIO, name: str = "log") -> Iterator[OplRecord]:
    """Every record in order; OplError names the offset of a truncated or bad record."""
    offset = 0
    while True:
        head = fileobj.read(_RECORD.size)
        if not head:
            return
        if len(head) < _RECORD.size:
            raise OplError(f"{name}: truncated record header at byte {offset}")
        ms, size = _RECORD.unpack(head)
        if not 0 <= size <= MAX_RECORD:
            raise OplError(f"{name}: bad record length {size} at byte {offset}")
        data = fileobj.read(size)
        if len(data) < size:
            raise OplError(f"{name}: truncated record at byte {offset} "
                           f"({len(data)} of {size} bytes)")
        yield OplRecord(ms, data)
        offset += _RECORD.size + size


def read_opl(path: str | Path) -> Iterator[OplRecord]:
    """Records of a .opl file (see :func:`read_records`)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed when the generator finishes
    except OSError as exc:
        raise OplError(f"{path}: cannot read log: {exc.strerror}") from None
    with f:
        yield from read_records(f, str(path))
