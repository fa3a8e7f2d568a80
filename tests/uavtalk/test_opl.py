"""GCS .opl logs: write, read back, and clear errors for damaged files."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from pipilot.uavtalk.opl import OplError, OplRecord, OplWriter, read_opl, read_records


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "a.opl"
    with OplWriter.open(path, start=100.0) as w:
        w.write(b"\x3c\x20abc", 100.0)
        w.write(b"", 100.5)  # nothing to record
        w.write(b"xyz", 101.2345)
    assert w.records == 2 and w.bytes == 8
    raw = path.read_bytes()
    assert raw[:12] == struct.pack("<Iq", 0, 5)
    assert list(read_opl(path)) == [OplRecord(0, b"\x3c\x20abc"), OplRecord(1234, b"xyz")]


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (struct.pack("<Iq", 0, 3) + b"ab", "truncated record at byte 0"),
        (struct.pack("<Iq", 0, 1) + b"a" + b"\x01\x02", "truncated record header at byte 13"),
        (struct.pack("<Iq", 0, -1), "bad record length -1"),
    ],
)
def test_damaged_files(blob: bytes, message: str) -> None:
    with pytest.raises(OplError, match=message):
        list(read_records(io.BytesIO(blob)))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OplError, match="cannot read log"):
        list(read_opl(tmp_path / "nope.opl"))
    with pytest.raises(OplError, match="cannot write log"):
        OplWriter.open(tmp_path / "no" / "dir.opl", 0.0)
