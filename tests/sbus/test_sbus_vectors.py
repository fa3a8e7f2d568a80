"""Frames checked against bit strings built by hand, not by the encoder's method."""

from __future__ import annotations

from types import ModuleType

import pytest


def reference_frame(channels: list[int], flags: int = 0) -> bytes:
    """The frame as the spec words it: 11 bits a channel, LSB first, byte by byte."""
    bits = "".join(format(v, "011b")[::-1] for v in channels)  # LSB first
    assert len(bits) == 176
    body = bytes(int(bits[i : i + 8][::-1], 2) for i in range(0, 176, 8))
    return b"\x0f" + body + bytes([flags, 0])


HEX_VECTORS = {
    # all channels 0
    "zeros": ([0] * 16, "0f" + "00" * 22 + "0000"),
    # all channels 2047: every channel bit set
    "full": ([2047] * 16, "0f" + "ff" * 22 + "0000"),
    # 0x555 = 101 0101 0101, 0x2AA = 010 1010 1010: the bit stream reads 1010...
    "alternating-55": ([0x555, 0x2AA] * 8, "0f" + "55" * 22 + "0000"),
    "alternating-aa": ([0x2AA, 0x555] * 8, "0f" + "aa" * 22 + "0000"),
    # centre 992 = 0x3E0 everywhere: written out from the bit pattern
    # 00000111110 repeated, 8 channels in 11 bytes
    "centre": ([992] * 16, "0f" + "e0031ff8c0073ef0810f7c" * 2 + "0000"),
}


@pytest.mark.parametrize("name", sorted(HEX_VECTORS))
def test_literal_vectors(impl: ModuleType, name: str) -> None:
    channels, hexframe = HEX_VECTORS[name]
    frame = bytes.fromhex(hexframe)
    assert reference_frame(channels) == frame
    assert impl.encode(channels) == frame
    assert impl.decode(frame).channels == tuple(channels)


@pytest.mark.parametrize("channel", range(16))
@pytest.mark.parametrize("value", [1, 2047, 0x400])
def test_one_hot(impl: ModuleType, channel: int, value: int) -> None:
    channels = [0] * 16
    channels[channel] = value
    frame = impl.encode(channels)
    assert frame == reference_frame(channels)
    assert impl.decode(frame).channels == tuple(channels)


@pytest.mark.parametrize("channel", range(16))
def test_lowest_bit_position(impl: ModuleType, channel: int) -> None:
    # value 1 sets stream bit 11 * channel: byte 1 + bit // 8, bit bit % 8
    channels = [0] * 16
    channels[channel] = 1
    bit = 11 * channel
    expected = bytearray(25)
    expected[0] = 0x0F
    expected[1 + bit // 8] = 1 << (bit % 8)
    assert impl.encode(channels) == bytes(expected)


@pytest.mark.parametrize(
    ("flags", "kwargs"),
    [
        (0x01, {"ch17": True}),
        (0x02, {"ch18": True}),
        (0x04, {"frame_lost": True}),
        (0x08, {"failsafe": True}),
        (0x0F, {"ch17": True, "ch18": True, "frame_lost": True, "failsafe": True}),
    ],
)
def test_flag_bits(impl: ModuleType, flags: int, kwargs: dict[str, bool]) -> None:
    channels = [992] * 16
    frame = impl.encode(channels, **kwargs)
    assert frame == reference_frame(channels, flags)
    decoded = impl.decode(frame)
    for field in ("ch17", "ch18", "frame_lost", "failsafe"):
        assert getattr(decoded, field) is kwargs.get(field, False)


@pytest.mark.parametrize("end", [0x00, 0x04, 0x14, 0x24, 0x34, 0x10, 0x20, 0x30])
def test_accepted_end_bytes(impl: ModuleType, end: int) -> None:
    frame = reference_frame([5] * 16)[:-1] + bytes([end])
    assert impl.decode(frame).channels == (5,) * 16


@pytest.mark.parametrize("end", [0x01, 0x02, 0x08, 0x40, 0x80, 0x0F, 0xFF, 0x0C])
def test_rejected_end_bytes(impl: ModuleType, end: int) -> None:
    frame = reference_frame([5] * 16)[:-1] + bytes([end])
    with pytest.raises(ValueError, match="end byte"):
        impl.decode(frame)


def test_flags_high_nibble_ignored(impl: ModuleType) -> None:
    frame = reference_frame([7] * 16, 0xF0 | 0x08)
    decoded = impl.decode(frame)
    assert decoded.failsafe and not (decoded.ch17 or decoded.ch18 or decoded.frame_lost)
