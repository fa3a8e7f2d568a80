"""Streaming frame decoder: bytes in any chunking in, frames out.

S.Bus has no checksum. A receiver finds frames by the silence between them
(the flight controller re-arms after about 3.2 ms without a byte) and by the
start and end bytes. This decoder sees no time: it takes a frame wherever a
start byte is followed 24 bytes later by an acceptable end byte, and
otherwise drops one byte and looks again. A caller that knows the timing
calls `gap()` on a silence, which drops a partial frame just as the firmware
does. Random bytes can still form a false frame (as on the real wire).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

from .frame import END_MASK, FRAME_LEN, START_BYTE, Frame

log = logging.getLogger(__name__)


class SyncState(enum.Enum):
    SEARCHING = "searching"  # no frame yet, or bytes were dropped since the last one
    SYNCED = "synced"  # the last bytes seen ended a good frame


class FrameDecoder:
    """Resynchronising S.Bus stream decoder.

    `good_frames` counts frames returned, `discarded_bytes` the bytes dropped
    while looking for one. `decode` is the codec's decode function (default:
    the selected implementation's).
    """

    def __init__(self, *, decode: Callable[[bytes | bytearray], Frame] | None = None) -> None:
        if decode is None:
            from . import decode as default_decode

            decode = default_decode
        self._decode = decode
        self._buf = bytearray()
        self.good_frames = 0
        self.discarded_bytes = 0
        self.state = SyncState.SEARCHING

    @property
    def pending(self) -> int:
        """Bytes held back as the possible start of a frame (at most 24)."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Every complete frame in the stream so far, in order."""
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        n = len(buf)
        dropped = 0
        while True:
            start = buf.find(START_BYTE, pos)
            if start < 0:
                dropped += n - pos
                pos = n
                break
            dropped += start - pos
            pos = start
            if n - start < FRAME_LEN:
                break
            if buf[start + FRAME_LEN - 1] & END_MASK == 0:
                if dropped:
                    self._drop(dropped)
                    dropped = 0
                frames.append(self._decode(buf[start : start + FRAME_LEN]))
                self.good_frames += 1
                self._set_state(SyncState.SYNCED)
                pos = start + FRAME_LEN
            else:
                dropped += 1
                pos = start + 1
        if dropped:
            self._drop(dropped)
        del buf[:pos]
        return frames

    def gap(self) -> None:
        """The line went silent: a partial frame cannot continue, drop it."""
        if self._buf:
            self._drop(len(self._buf))
            self._buf.clear()

    def _drop(self, count: int) -> None:
        self.discarded_bytes += count
        self._set_state(SyncState.SEARCHING)

    def _set_state(self, new: SyncState) -> None:
        if new is not self.state:
            log.debug("sbus decoder %s -> %s (good=%d discarded=%d)", self.state.value,
                      new.value, self.good_frames, self.discarded_bytes)
            self.state = new
