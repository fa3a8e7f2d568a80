"""Packet encoding and the stream parser: resync, rejection, statistics."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipilot.uavtalk import Packet, PacketParser, PacketType, Registry, encode_packet
from pipilot.uavtalk import packets as packets_mod
from pipilot.uavtalk._crc import crc8, crc8_bytewise
from pipilot.uavtalk.packets import PacketError
from tests.uavtalk.reference import ByteParser

from .strategies import packets

ATT = 0xD7E0D964


@pytest.fixture(scope="module", params=["python", "cython"])
def impl(request: pytest.FixtureRequest) -> str:
    """Every parser test runs on both framing twins."""
    if request.param == "cython" and packets_mod.IMPLEMENTATION != "cython":
        if os.environ.get("PIPILOT_REQUIRE_CYTHON") == "1":
            pytest.fail("the compiled framing twin (pipilot.uavtalk._framing) is not built")
        pytest.skip("compiled framing twin not built (python setup.py build_ext --inplace)")
    return str(request.param)


def _crc_bitwise(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


@settings(deadline=None)
@given(st.binary(max_size=300), st.integers(0, 5))
def test_crc8_forms_agree(data: bytes, skip: int) -> None:
    assert crc8(data) == crc8_bytewise(data) == _crc_bitwise(data)
    assert crc8(data, skip) == _crc_bitwise(data[skip:])
    assert crc8(b"123456789") == 0xF4  # CRC-8 (poly 0x07) check value


def test_encode_packet_layout(registry: Registry) -> None:
    att = registry["AttitudeState"]
    data = att.encode(att.defaults())
    pkt = encode_packet(PacketType.OBJ, ATT, 0, data)
    assert pkt[:4] == bytes([0x3C, 0x20, 38, 0])
    assert struct.unpack_from("<IH", pkt, 4) == (ATT, 0)
    assert pkt[10:-1] == data
    assert pkt[-1] == _crc_bitwise(pkt[:-1])
    ts = encode_packet(PacketType.OBJ_TS, ATT, 3, data, timestamp=0x1234)
    assert ts[1] == 0xA0 and ts[2] == 40 and ts[10:12] == b"\x34\x12" and ts[12:-1] == data
    req = encode_packet(PacketType.OBJ_REQ, ATT, 0xFFFF)
    assert len(req) == 11 and req[2] == 10
    with pytest.raises(PacketError, match="no data"):
        encode_packet(PacketType.ACK, ATT, 0, b"x")
    with pytest.raises(PacketError, match="timestamp"):
        encode_packet(PacketType.OBJ, ATT, 0, data, timestamp=5)
    with pytest.raises(PacketError, match="type"):
        encode_packet(0x25, ATT)


def test_parser_decodes_known_and_passes_unknown(impl: str, registry: Registry) -> None:
    att = registry["AttitudeState"]
    values = att.defaults() | {"Roll": 12.5}
    stream = (encode_packet(PacketType.OBJ, ATT, 0, att.encode(values))
              + encode_packet(PacketType.OBJ, 0x12345678, 2, b"abc"))
    parser = PacketParser(registry, implementation=impl)
    got = parser.feed(stream)
    assert [p.name for p in got] == ["AttitudeState", None]
    assert got[0].values == values
    assert got[1].values is None and got[1].data == b"abc" and got[1].instance_id == 2
    assert parser.stats.rx_objects == 2 and parser.stats.rx_unknown_objects == 1
    assert parser.stats.rx_bytes == len(stream) and parser.stats.rx_errors == 0


def test_byte_by_byte_and_split_feeds(impl: str, registry: Registry) -> None:
    att = registry["AttitudeState"]
    stream = b"".join(
        encode_packet(t, ATT, i, att.encode(att.defaults()) if t in (0x20, 0xA0) else b"",
                      i if t & 0x80 else None)
        for i, t in enumerate([0x20, 0xA0, 0x21, 0x23, 0x24, 0x20])
    )
    whole = PacketParser(registry, implementation=impl).feed(stream)
    assert len(whole) == 6
    for cut in range(len(stream)):
        p = PacketParser(registry, implementation=impl)
        assert p.feed(stream[:cut]) + p.feed(stream[cut:]) == whole
    p = PacketParser(registry, implementation=impl)
    assert [x for b in stream for x in p.feed(bytes([b]))] == whole
    assert whole[1].timestamp == 1 and whole[0].timestamp is None


def test_rejections_are_counted(impl: str, registry: Registry) -> None:
    att = registry["AttitudeState"]
    good = encode_packet(PacketType.OBJ, ATT, 0, att.encode(att.defaults()))
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0xFF
    wrong_size = encode_packet(PacketType.OBJ, ATT, 0, bytes(27))
    bad_type = bytes([0x3C, 0x30]) + good[2:]
    bad_len = bytes([0x3C, 0x21, 11, 0]) + good[4:10] + b"\x00"
    parser = PacketParser(registry, implementation=impl)
    out = parser.feed(b"\x01\x02" + bytes(bad_crc) + wrong_size + bad_type + bad_len + good)
    assert out == [Packet(0x20, ATT, 0, None, good[10:-1])]
    s = parser.stats
    assert s.rx_crc_errors == 1
    assert s.rx_size_errors == 1
    assert s.rx_type_errors == 1
    assert s.rx_length_errors == 1
    assert s.rx_errors == 4
    assert s.rx_sync_errors > 2


def test_false_sync_in_garbage_does_not_swallow_next_packet(impl: str, registry: Registry) -> None:
    att = registry["AttitudeState"]
    good = encode_packet(PacketType.OBJ, ATT, 0, att.encode(att.defaults()))
    # A plausible header for an unknown object whose claimed length covers `good`.
    garbage = bytes([0x3C, 0x20, 60, 0]) + struct.pack("<IH", 0x11111110, 0)
    p = PacketParser(registry, implementation=impl)
    # The candidate is held until its claimed length has arrived, then refuted.
    assert p.feed(garbage + good) == []
    expected = [Packet(0x20, ATT, 0, None, good[10:-1])] * 2
    assert p.feed(good) == expected
    assert p.stats.rx_crc_errors == 1
    # The firmware-style parser, which never looks back, loses them.
    assert ByteParser(registry).feed(garbage + good + good) == []


def test_buffer_is_bounded_by_largest_object(impl: str, registry: Registry) -> None:
    p = PacketParser(registry, implementation=impl)
    header = bytes([0x3C, 0x20, 0xFF, 0x7F]) + bytes(6)
    p.feed(header)
    assert p.stats.rx_length_errors == 1
    assert p.max_payload == registry.largest
    assert len(p._buf) < 4


def _stream_strategy(registry: Registry) -> st.SearchStrategy[tuple[list[bytes], bytes]]:
    objs = [registry[n] for n in ("AttitudeState", "FlightStatus", "GCSTelemetryStats",
                                  "SystemAlarms", "HwSettings", "ManualControlCommand")]
    no_sync = st.binary(max_size=40).map(lambda b: b.replace(b"\x3c", b""))
    corrupt = st.tuples(packets(objs), st.integers(0, 500), st.integers(1, 255)).map(
        lambda t: t[0][: t[1] % len(t[0])] + bytes([t[0][t[1] % len(t[0])] ^ t[2]])
        + t[0][t[1] % len(t[0]) + 1:])

    @st.composite
    def build(draw: st.DrawFn) -> tuple[list[bytes], bytes]:
        parts = draw(st.lists(st.tuples(packets(objs), no_sync, st.booleans(), corrupt),
                              max_size=12))
        good, chunks = [], []
        for pkt, junk, with_corrupt, bad in parts:
            chunks.append(junk)
            if with_corrupt:
                chunks.append(bad)
            chunks.append(pkt)
            good.append(pkt)
        return good, b"".join(chunks)

    return build()


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_recovers_every_valid_packet(impl: str, registry: Registry, data: st.DataObject) -> None:
    """Valid packets among sync-free junk and single-byte-corrupted packets all come out."""
    good, stream = data.draw(_stream_strategy(registry))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    parser = PacketParser(registry, implementation=impl)
    out: list[Packet] = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += parser.feed(stream[a:b])
    assert [p.to_bytes() for p in out] == good
    assert parser.stats.rx_objects == len(good)
    assert parser.stats.rx_bytes == len(stream)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes_never_crash(impl: str, registry: Registry, junk: bytes,
                                  with_registry: bool) -> None:
    parser = PacketParser(registry if with_registry else None, implementation=impl)
    out = parser.feed(junk)
    for p in out:
        raw = p.to_bytes()
        assert raw in junk
        if p.definition is not None:
            assert len(p.data) in (0, p.definition.size)
            assert p.values is None or isinstance(p.values, dict)
    s = parser.stats
    assert s.rx_bytes == len(junk)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(min_size=1, max_size=30), max_size=20))
def test_clean_streams_match_the_bytewise_parser(impl: str, registry: Registry,
                                                 blobs: list[bytes]) -> None:
    stream = b"".join(encode_packet(PacketType.OBJ, 0x1000 + 2 * i, i, b) for i, b in
                      enumerate(blobs))
    a, b = PacketParser(registry, implementation=impl), ByteParser(registry)
    assert a.feed(stream) == b.feed(stream)
    assert a.stats == b.stats


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_twins_agree_on_any_stream(registry: Registry, data: st.DataObject) -> None:
    """Fragments of packets, junk full of sync bytes, any chunking: both twins say the same."""
    if packets_mod.IMPLEMENTATION != "cython":
        pytest.skip("compiled framing twin not built")
    objs = [registry[n] for n in ("AttitudeState", "FlightStatus", "SystemAlarms")]
    pieces = data.draw(st.lists(st.one_of(
        packets(objs), packets(objs).map(lambda b: b[: len(b) // 2]),
        st.binary(max_size=20), st.just(b"\x3c\x20"), st.just(b"\x3c")), max_size=30))
    stream = b"".join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    a = PacketParser(registry, implementation="python")
    b = PacketParser(registry, implementation="cython")
    for lo, hi in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        assert a.feed(stream[lo:hi]) == b.feed(stream[lo:hi])
    assert a.stats == b.stats


def test_encode_packet_range_checks() -> None:
    with pytest.raises(PacketError, match="instance id 65536"):
        encode_packet(PacketType.OBJ_REQ, ATT, 0x10000)
    with pytest.raises(PacketError, match="out of range"):
        encode_packet(PacketType.OBJ_REQ, -2, 0)
