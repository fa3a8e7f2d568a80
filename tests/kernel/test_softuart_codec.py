"""The soft-UART bit codec, exercised through the same C the module builds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from softuart_sim import BREAK, FE, NOISE, PE, Codec

BAUDS = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200]
shapes = st.tuples(st.integers(5, 8), st.sampled_from("NOE"), st.integers(1, 2))


def reference_frame(byte: int, data_bits: int, parity: str, stop_bits: int) -> list[int]:
    """Line levels of one frame, written straight from the UART definition."""
    d = [(byte >> i) & 1 for i in range(data_bits)]
    bits = [0, *d]
    if parity != "N":
        ones = sum(d) % 2
        bits.append(ones if parity == "E" else 1 - ones)
    return bits + [1] * stop_bits


def waveform(levels: list[int], bit_ns: int, t0: int = 1_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Edges (time, new level) of a bit sequence that starts from idle mark."""
    t, lv, cur = [], [], 1
    for i, b in enumerate(levels):
        if b != cur:
            t.append(t0 + i * bit_ns)
            lv.append(b)
            cur = b
    return np.array(t, np.int64), np.array(lv, np.uint8)


@settings(deadline=None)
@given(byte=st.integers(0, 255), shape=shapes)
def test_encode_matches_the_definition(codec: Codec, byte: int, shape: tuple) -> None:
    fmt = codec.fmt(9600, *shape)
    frame = codec.encode(fmt, byte)
    ref = reference_frame(byte & ((1 << shape[0]) - 1), *shape)
    assert codec.frame_bits(fmt) == len(ref)
    assert [(frame >> i) & 1 for i in range(len(ref))] == ref


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=1, max_size=64), shape=shapes, baud=st.sampled_from(BAUDS))
def test_any_bytes_and_settings_round_trip(codec: Codec, data: bytes, shape: tuple,
                                           baud: int) -> None:
    fmt = codec.fmt(baud, *shape)
    t, lv, aborts, dropped = codec.tx(fmt, data)
    assert (aborts, dropped) == (0, 0)
    assert lv[-1] == 1, "line must end idle at mark"
    got = codec.rx_edges(fmt, t, lv)
    mask = (1 << shape[0]) - 1
    assert got.flags.tolist() == [0] * len(data)
    assert bytes(got.data) == bytes(b & mask for b in data)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=1, max_size=32), shape=shapes, baud=st.sampled_from(BAUDS),
       seed=st.integers(0, 2**32 - 1), floor_frac=st.floats(0.0, 0.9))
def test_round_trip_survives_latency_that_never_merges_edges(
        codec: Codec, data: bytes, shape: tuple, baud: int, seed: int, floor_frac: float) -> None:
    """Stamps late by any common floor (up to most of a bit) plus jitter of up to
    a quarter bit decode exactly: latency does not move the sampling points."""
    fmt = codec.fmt(baud, *shape)
    t, lv, _, _ = codec.tx(fmt, data)
    rng = np.random.default_rng(seed)
    floor = int(floor_frac * 0.7 * fmt.bit_ns)
    lat = floor + rng.integers(0, fmt.bit_ns // 4, len(t))
    st_, sl = codec.irq_stamp(t, lv, lat, cost_ns=0)
    assert len(st_) == len(t)
    got = codec.rx_edges(fmt, st_, sl)
    mask = (1 << shape[0]) - 1
    assert got.flags.tolist() == [0] * len(data)
    assert bytes(got.data) == bytes(b & mask for b in data)


@pytest.mark.parametrize("parity", ["O", "E"])
def test_parity_error_is_flagged(codec: Codec, parity: str) -> None:
    fmt = codec.fmt(9600, 8, parity, 1)
    levels = reference_frame(0x5A, 8, parity, 1)
    levels[9] ^= 1
    got = codec.rx_edges(fmt, *waveform([*levels, 1], fmt.bit_ns))
    assert got.data.tolist() == [0x5A]
    assert got.flags.tolist() == [PE]


def test_framing_error_is_flagged(codec: Codec) -> None:
    fmt = codec.fmt(9600, 8, "N", 2)
    levels = reference_frame(0x3C, 8, "N", 2)
    levels[-1] = 0  # second stop bit low
    got = codec.rx_edges(fmt, *waveform([*levels, 1, 1], fmt.bit_ns))
    assert got.data.tolist() == [0x3C]
    assert got.flags.tolist() == [FE]


def test_glitch_shorter_than_half_a_bit_is_not_a_character(codec: Codec) -> None:
    fmt = codec.fmt(9600)
    t = np.array([1_000_000, 1_000_000 + fmt.bit_ns // 3], np.int64)
    got = codec.rx_edges(fmt, t, np.array([0, 1], np.uint8))
    assert len(got.data) == 0
    assert got.false_starts == 1


def test_break_is_received_then_the_line_recovers(codec: Codec) -> None:
    fmt = codec.fmt(9600, 8, "E", 1)
    hold = 5 * codec.frame_bits(fmt) * fmt.bit_ns
    t, lv = codec.tx_break(fmt, b"ab", hold, b"cd")
    got = codec.rx_edges(fmt, t, lv)
    assert got.data.tolist() == [ord("a"), ord("b"), 0, ord("c"), ord("d")]
    assert got.flags.tolist() == [0, 0, BREAK | FE, 0, 0]


def test_merged_edges_flag_the_frame_not_the_next_one(codec: Codec) -> None:
    fmt = codec.fmt(57600)
    t, lv, _, _ = codec.tx(fmt, b"\x55\x55\x55")
    lat = np.full(len(t), 2000, np.int64)
    lat[3] = fmt.bit_ns + 3000  # this interrupt runs after the next edge
    st_, sl = codec.irq_stamp(t, lv, lat)
    got = codec.rx_edges(fmt, st_, sl)
    assert got.missed_edges == 1
    assert got.flags[0] & NOISE
    assert got.data[1:].tolist() == [0x55, 0x55]
    assert got.flags[1:].tolist() == [0, 0]


@pytest.mark.parametrize("baud", [9600, 57600])
def test_uniform_timer_lateness_costs_nothing(codec: Codec, baud: int) -> None:
    fmt = codec.fmt(baud)
    data = bytes(range(64))
    late = np.full(1, fmt.bit_ns * 9 // 10, np.int64)  # every callback 0.9 bit late
    t, lv, aborts, dropped = codec.tx(fmt, data, exact=False, lateness_ns=late)
    assert (aborts, dropped) == (0, 0)
    got = codec.rx_edges(fmt, t, lv)
    assert got.clean_bytes() == data


def test_late_edge_aborts_into_a_framing_error_and_resends(codec: Codec) -> None:
    """A stretched bit must never reach the receiver as a wrong byte."""
    fmt = codec.fmt(9600)
    data = b"\x55\xaa\x0f"
    tol = codec.tx_tolerance(fmt)
    late = np.zeros(64, np.int64)
    late[3] = tol + 5000  # third edge of the first frame
    t, lv, aborts, dropped = codec.tx(fmt, data, exact=False, lateness_ns=late)
    assert (aborts, dropped) == (1, 0)
    assert lv[-1] == 1
    got = codec.rx_edges(fmt, t, lv)
    assert got.flags[0] & FE
    assert got.clean_bytes() == data


def test_persistently_late_edges_give_up_after_one_retry(codec: Codec) -> None:
    fmt = codec.fmt(57600)
    late = np.array([0, 2 * fmt.bit_ns], np.int64)  # every other callback two bits late
    t, lv, aborts, dropped = codec.tx(fmt, b"\x55", exact=False, lateness_ns=late)
    assert aborts == 2 and dropped == 1
    assert lv[-1] == 1
    got = codec.rx_edges(fmt, t, lv)
    assert got.clean_bytes() == b""


def test_invalid_settings_are_refused(codec: Codec) -> None:
    for args in [(9600, 4, "N", 1), (9600, 9, "N", 1), (9600, 8, "N", 3), (10, 8, "N", 1)]:
        with pytest.raises(ValueError):
            codec.fmt(*args)


def test_late_start_edge_only_delays_the_frame(codec: Codec) -> None:
    fmt = codec.fmt(57600)
    late = np.zeros(200, np.int64)
    late[0] = 5 * fmt.bit_ns  # the callback that starts the first frame
    t, lv, aborts, dropped = codec.tx(fmt, b"\x00\xff\x55", exact=False, lateness_ns=late)
    assert (aborts, dropped) == (0, 0)
    assert t[0] == 1_000_000 + 5 * fmt.bit_ns
    assert codec.rx_edges(fmt, t, lv).clean_bytes() == b"\x00\xff\x55"
