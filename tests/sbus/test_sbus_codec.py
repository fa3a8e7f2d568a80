"""Round trips, twin agreement and bad input for encode/decode."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sbus_twins import no_deadline

from pipilot.errors import ProtocolError
from pipilot.sbus import Frame, SbusError

channel_vectors = st.lists(st.integers(0, 2047), min_size=16, max_size=16)
flag_sets = st.fixed_dictionaries(
    {name: st.booleans() for name in ("ch17", "ch18", "frame_lost", "failsafe")}
)
valid_frames = st.builds(
    lambda body, end: b"\x0f" + body + bytes([end]),
    st.binary(min_size=23, max_size=23),
    st.sampled_from([0x00, 0x04, 0x14, 0x24, 0x34]),
)


@no_deadline
@given(channels=channel_vectors, flags=flag_sets)
def test_round_trip(impl: ModuleType, channels: list[int], flags: dict[str, bool]) -> None:
    frame = impl.encode(channels, **flags)
    assert len(frame) == 25 and frame[0] == 0x0F and frame[24] == 0
    assert impl.decode(frame) == Frame(tuple(channels), **flags)


@no_deadline
@given(frame=valid_frames)
def test_decode_then_encode(impl: ModuleType, frame: bytes) -> None:
    decoded = impl.decode(frame)
    assert isinstance(decoded, Frame)
    assert all(type(v) is int for v in decoded.channels)
    again = impl.encode(decoded.channels, ch17=decoded.ch17, ch18=decoded.ch18,
                        frame_lost=decoded.frame_lost, failsafe=decoded.failsafe)
    assert again == frame[:23] + bytes([frame[23] & 0x0F, 0])


@no_deadline
@given(channels=channel_vectors, flags=flag_sets)
def test_twins_encode_identically(
    twins: tuple[ModuleType, ModuleType], channels: list[int], flags: dict[str, bool]
) -> None:
    compiled, python = twins
    assert compiled.encode(channels, **flags) == python.encode(channels, **flags)
    assert compiled.encode(tuple(channels)) == python.encode(tuple(channels))


@no_deadline
@given(frame=valid_frames)
def test_twins_decode_identically(twins: tuple[ModuleType, ModuleType], frame: bytes) -> None:
    compiled, python = twins
    assert compiled.decode(frame) == python.decode(frame)
    assert compiled.decode(bytearray(frame)) == python.decode(memoryview(frame))


@no_deadline
@given(data=st.binary(max_size=30))
def test_twins_agree_on_any_bytes(twins: tuple[ModuleType, ModuleType], data: bytes) -> None:
    results = []
    for twin in twins:
        try:
            results.append(twin.decode(data))
        except ValueError as exc:
            results.append(str(exc))
    assert results[0] == results[1]


@no_deadline
@given(values=st.lists(st.one_of(st.integers(-5000, 5000), st.floats(), st.none()), max_size=20))
def test_twins_agree_on_any_channels(
    twins: tuple[ModuleType, ModuleType], values: list[Any]
) -> None:
    results = []
    for twin in twins:
        try:
            results.append(twin.encode(values))
        except ValueError as exc:
            results.append(str(exc))
    assert results[0] == results[1]


def test_other_sequences(impl: ModuleType) -> None:
    channels = list(range(0, 2048, 128))
    expected = impl.encode(channels)
    assert impl.encode(tuple(channels)) == expected
    assert impl.encode(iter(channels)) == expected
    assert impl.encode(np.array(channels, dtype=np.uint16)) == expected
    assert impl.encode([np.int64(v) for v in channels]) == expected
    assert impl.encode(range(0, 2048, 128)) == expected


def test_flags_take_truthiness(impl: ModuleType) -> None:
    assert impl.encode([0] * 16, failsafe=1)[23] == 0x08
    assert impl.encode([0] * 16, ch17=0, ch18=[1])[23] == 0x02


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        ([0] * 15, "expected 16 channels, got 15"),
        ([0] * 17, "expected 16 channels, got 17"),
        ([], "expected 16 channels, got 0"),
        ([0] * 4 + [-1] + [0] * 11, "channel 5: -1 is outside 0..2047"),
        ([0] * 15 + [2048], "channel 16: 2048 is outside 0..2047"),
        ([0] * 15 + [1 << 70], "channel 16: .* is outside 0..2047"),
        ([0, 0, 1.0] + [0] * 13, "channel 3: 1.0 is not an integer"),
        ([0] * 7 + ["5"] + [0] * 8, "channel 8: '5' is not an integer"),
        ([None] * 16, "channel 1: None is not an integer"),
        ([0] * 10 + [99999] + [0] * 6, "channel 11: 99999 is outside"),
        (5, "channels must be a sequence of 16 ints, got int"),
    ],
)
def test_bad_channels(impl: ModuleType, channels: Any, message: str) -> None:
    with pytest.raises(SbusError, match=message) as info:
        impl.encode(channels)
    assert isinstance(info.value, ProtocolError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"", "25 bytes, got 0"),
        (b"\x0f" + bytes(23), "25 bytes, got 24"),
        (b"\x0f" + bytes(25), "25 bytes, got 26"),
        (b"\x0e" + bytes(24), "start byte 0x0E"),
        (b"\x0f" + bytes(23) + b"\x01", "end byte 0x01"),
        (bytearray(b"\x0f" + bytes(23) + b"\x80"), "end byte 0x80"),
        (None, "must be bytes, got NoneType"),
        (25, "must be bytes, got int"),
        ([15] + [0] * 24, "must be bytes, got list"),
        ("\x0f" + "\x00" * 24, "must be bytes, got str"),
    ],
)
def test_bad_frames(impl: ModuleType, frame: Any, message: str) -> None:
    with pytest.raises(SbusError, match=message) as info:
        impl.decode(frame)
    assert isinstance(info.value, ProtocolError) and isinstance(info.value, ValueError)
