"""FrameDecoder: any chunking, resynchronisation after garbage, counters."""

from __future__ import annotations

import random
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sbus_twins import no_deadline

from pipilot.sbus import FrameDecoder, SyncState

channel_vectors = st.lists(st.integers(0, 2047), min_size=16, max_size=16)


def feed_in_chunks(dec: FrameDecoder, data: bytes, cuts: list[int]) -> list:
    frames = []
    last = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        frames += dec.feed(data[last:cut])
        last = cut
    frames += dec.feed(data[last:])
    return frames


@no_deadline
@given(vectors=st.lists(channel_vectors, max_size=6), cuts=st.lists(st.integers(0, 10**6)))
def test_clean_stream_any_chunking(impl: ModuleType, vectors: list, cuts: list[int]) -> None:
    stream = b"".join(impl.encode(v, failsafe=i % 2 == 1) for i, v in enumerate(vectors))
    dec = FrameDecoder(decode=impl.decode)
    frames = feed_in_chunks(dec, stream, cuts)
    assert [f.channels for f in frames] == [tuple(v) for v in vectors]
    assert [f.failsafe for f in frames] == [i % 2 == 1 for i in range(len(vectors))]
    assert (dec.good_frames, dec.discarded_bytes, dec.pending) == (len(vectors), 0, 0)


@no_deadline
@given(
    garbage=st.binary(max_size=80).map(lambda b: b.replace(b"\x0f", b"")),
    vectors=st.lists(channel_vectors, min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 10**6), max_size=8),
)
def test_resync_after_garbage(
    impl: ModuleType, garbage: bytes, vectors: list, cuts: list[int]
) -> None:
    # Garbage without a start byte cannot hide a frame: all of it is dropped.
    stream = garbage + b"".join(impl.encode(v) for v in vectors)
    dec = FrameDecoder(decode=impl.decode)
    frames = feed_in_chunks(dec, stream, cuts)
    assert [f.channels for f in frames] == [tuple(v) for v in vectors]
    assert dec.discarded_bytes == len(garbage)
    assert dec.state is SyncState.SYNCED


@no_deadline
@given(garbage=st.binary(max_size=120), vectors=st.lists(channel_vectors, min_size=1, max_size=3),
       cuts=st.lists(st.integers(0, 10**6), max_size=8))
def test_gap_resyncs_after_any_garbage(
    impl: ModuleType, garbage: bytes, vectors: list, cuts: list[int]
) -> None:
    # Any bytes at all, then the silence a receiver re-arms on, then frames.
    dec = FrameDecoder(decode=impl.decode)
    early = feed_in_chunks(dec, garbage, cuts)
    dec.gap()
    assert dec.pending == 0
    assert dec.good_frames * 25 + dec.discarded_bytes == len(garbage)
    assert len(early) == dec.good_frames
    frames = dec.feed(b"".join(impl.encode(v) for v in vectors))
    assert [f.channels for f in frames] == [tuple(v) for v in vectors]


@no_deadline
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 10**6), max_size=10))
def test_random_bytes_accounting(impl: ModuleType, data: bytes, cuts: list[int]) -> None:
    chunked = FrameDecoder(decode=impl.decode)
    frames = feed_in_chunks(chunked, data, cuts)
    whole = FrameDecoder(decode=impl.decode)
    assert whole.feed(data) == frames  # chunking never changes the result
    assert chunked.good_frames == len(frames)
    assert chunked.good_frames * 25 + chunked.discarded_bytes + chunked.pending == len(data)
    assert chunked.pending < 25


def test_truncated_frame_then_frames(impl: ModuleType) -> None:
    good = [impl.encode([i * 100] * 16) for i in range(1, 4)]
    stream = good[0][:11] + b"".join(good[1:])
    dec = FrameDecoder(decode=impl.decode)
    frames = dec.feed(stream)
    # The 0x0F of the truncated frame looks 24 bytes ahead into frame 2,
    # finds no valid end byte there and moves on.
    assert [f.channels[0] for f in frames] == [200, 300]
    assert dec.discarded_bytes == 11


def test_state_and_logging(impl: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="pipilot.sbus.stream")
    dec = FrameDecoder(decode=impl.decode)
    assert dec.state is SyncState.SEARCHING
    dec.feed(impl.encode([0] * 16))
    assert dec.state is SyncState.SYNCED
    dec.feed(b"\x01\x02")
    assert dec.state is SyncState.SEARCHING
    assert "searching -> synced" in caplog.text and "synced -> searching" in caplog.text


def test_default_decoder_uses_selected_twin() -> None:
    from pipilot import sbus

    dec = FrameDecoder()
    frame = sbus.encode(list(range(16)))
    assert dec.feed(frame + frame) == [sbus.decode(frame)] * 2


def test_long_noisy_stream(impl: ModuleType) -> None:
    # Frames separated by noise bursts that are followed by a gap (as a
    # timing-aware caller would report), fed in random chunks.
    rng = random.Random(7)
    dec = FrameDecoder(decode=impl.decode)
    expected = []
    got = []
    for _ in range(200):
        if rng.random() < 0.2:
            got += dec.feed(rng.randbytes(rng.randrange(1, 60)))
            dec.gap()
            expected += [None] * (len(got) - len(expected))  # false frames, if any
        v = [rng.randrange(2048) for _ in range(16)]
        expected.append(tuple(v))
        frame = impl.encode(v)
        cut = rng.randrange(26)
        got += dec.feed(frame[:cut]) + dec.feed(frame[cut:])
    assert len(got) == len(expected)
    assert all(e is None or f.channels == e for f, e in zip(got, expected, strict=True))


def test_resync_without_gap_on_hostile_garbage(impl: ModuleType) -> None:
    # No timing at all, garbage full of start bytes: false frames may appear,
    # but the decoder must be back on the real frame boundaries soon after.
    rng = random.Random(11)
    for _ in range(300):
        garbage = bytes(0x0F if rng.random() < 0.25 else rng.randrange(256)
                        for _ in range(rng.randrange(100)))
        vectors = [tuple(rng.randrange(2048) for _ in range(16)) for _ in range(6)]
        dec = FrameDecoder(decode=impl.decode)
        frames = dec.feed(garbage + b"".join(impl.encode(v) for v in vectors))
        assert [f.channels for f in frames[-3:]] == vectors[-3:]
