"""The S.Bus decoder model against the firmware's frame-finding facts (NOTES.md)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipilot import sbus
from pipilot.sbus.frame import BYTE_TIME
from pipilot.sim.receiver import TICK_S, Firmware, SbusReceiver
from pipilot.sim.sticks import pack_frame

NEUTRAL = pack_frame([992] * 16)
PHASES = [(k + 0.5) / 32 * TICK_S for k in range(32)]


def accepted_fraction(firmware: Firmware, period_ms: float, frames: int = 150) -> float:
    """Accepted / sent over all tick phases, the first frame (no silence before it) excluded."""
    accepted = sent = 0
    for phase in PHASES:
        rx = SbusReceiver(firmware, phase=phase)
        t = 0.010
        for i in range(frames):
            rx.feed_paced(NEUTRAL, t + BYTE_TIME)
            t += period_ms * 1e-3
            if i == 0:
                first = rx.stats.frames_accepted
        accepted += rx.stats.frames_accepted - first
        sent += frames - 1
    return accepted / sent


@pytest.mark.parametrize(
    ("firmware", "period_ms", "lo", "hi"),
    [
        (Firmware.STOCK, 6.0, 0.0, 0.0),
        (Firmware.STOCK, 7.0, 0.45, 0.65),
        (Firmware.STOCK, 8.0, 0.99, 1.0),
        (Firmware.STOCK, 14.0, 0.99, 1.0),
        (Firmware.PATCHED, 7.0, 0.99, 1.0),
        (Firmware.PATCHED, 8.0, 0.99, 1.0),
    ],
)
def test_accepted_fraction_against_period(firmware: Firmware, period_ms: float,
                                          lo: float, hi: float) -> None:
    assert lo <= accepted_fraction(firmware, period_ms) <= hi


def test_stock_7ms_matches_the_tick_arithmetic() -> None:
    # silence 4.12 ms; a frame is found when three ticks fit in it: 57 % of phases
    assert accepted_fraction(Firmware.STOCK, 7.0) == pytest.approx(0.57, abs=0.03)


def test_patched_back_to_back_frames_after_one_silence() -> None:
    rx = SbusReceiver(Firmware.PATCHED, phase=0.3e-3)
    t = rx.feed_paced(NEUTRAL * 20, 0.010)
    assert rx.stats.frames_accepted == 20
    stock = SbusReceiver(Firmware.STOCK, phase=0.3e-3)
    stock.feed_paced(NEUTRAL * 20, 0.010)
    assert stock.stats.frames_accepted == 1
    assert stock.stats.rejected_by_reason()["unsynced"] == 19
    assert t > 0


def test_patched_falls_back_to_silence_after_a_wrong_byte() -> None:
    rx = SbusReceiver(Firmware.PATCHED, phase=0.3e-3)
    t = rx.feed_paced(NEUTRAL + b"\x55" + NEUTRAL, 0.010)
    assert rx.stats.frames_accepted == 1  # the second frame follows garbage without silence
    rx.feed_paced(NEUTRAL, t + 0.006)
    assert rx.stats.frames_accepted == 2


def test_channels_decoded_and_digital_channels() -> None:
    rx = SbusReceiver(phase=0.5e-3)
    chans = list(range(100, 1700, 100))
    frame = bytearray(pack_frame(chans))
    frame[23] |= 0x01  # ch17 on
    rx.feed_paced(bytes(frame), 0.010)
    assert rx.channels[:16] == chans
    assert rx.channels[16:] == [1696, 352]


def test_bad_start_and_bad_end_are_counted() -> None:
    rx = SbusReceiver(phase=0.5e-3)
    bad_end = NEUTRAL[:-1] + b"\x01"
    t = rx.feed_paced(bad_end, 0.010)
    t = rx.feed_paced(b"\x0e" + NEUTRAL[1:], t + 0.008)
    t = rx.feed_paced(NEUTRAL[:-1] + b"\x34", t + 0.008)  # R7008SB counter bits allowed
    reasons = rx.stats.rejected_by_reason()
    assert reasons["bad_end"] == 1
    assert reasons["bad_start"] == 1
    assert rx.stats.frames_accepted == 1
    assert rx.stats.frames_seen == 3


def test_flags_frame_lost_ignored_failsafe_resets() -> None:
    rx = SbusReceiver(phase=0.5e-3)
    t = rx.feed_paced(NEUTRAL, 0.010)
    t = rx.feed_paced(pack_frame([500] * 16, frame_lost=True), t + 0.010)
    assert rx.channels[0] == 992
    rx.feed_paced(pack_frame([500] * 16, failsafe=True), t + 0.010)
    assert rx.channels[0] is None
    reasons = rx.stats.rejected_by_reason()
    assert reasons["frame_lost"] == 1 and reasons["failsafe_flag"] == 1


def test_receiver_failsafe_after_64_ticks_without_a_good_frame() -> None:
    rx = SbusReceiver(phase=0.5e-3)
    t = rx.feed_paced(NEUTRAL, 0.010)
    assert rx.channels[0] == 992
    rx.advance_to(t + 64 * TICK_S - 2 * TICK_S)
    assert rx.channels[0] == 992
    rx.advance_to(t + 66 * TICK_S)
    assert rx.channels[0] is None
    assert rx.stats.failsafe_timeouts == 1


def test_frames_lost_to_silence_do_not_hold_off_failsafe() -> None:
    # at 6 ms the stock decoder finds only the frame after the start-up silence
    rx = SbusReceiver(Firmware.STOCK, phase=0.7e-3)
    t = 0.010
    for _ in range(100):
        rx.feed_paced(NEUTRAL, t)
        t += 0.006
    assert rx.channels[0] is None
    assert rx.stats.frames_accepted == 1
    assert rx.stats.rejected_by_reason()["unsynced"] == 99
    assert rx.stats.failsafe_timeouts >= 5


@settings(deadline=None)  # a shared, loaded machine
@given(st.lists(st.integers(0, 2047), min_size=16, max_size=16), st.booleans(), st.booleans())
def test_decoder_reads_what_pipilot_sbus_encodes(chans: list[int], ch17: bool, fl: bool) -> None:
    frame = sbus.encode(chans, ch17=ch17, frame_lost=fl)
    assert frame == pack_frame(chans, ch17=ch17, frame_lost=fl)
    rx = SbusReceiver(phase=0.2e-3)
    rx.feed_paced(frame, 0.010)
    if fl:
        assert rx.stats.rejected["frame_lost"] == 1
    else:
        assert rx.channels[:16] == chans
        assert rx.channels[16] == (1696 if ch17 else 352)
