"""The flight controller's S.Bus receiver, modelled on the LibrePilot 16.09 decoder.

Behaviour (facts from the firmware's S.Bus driver, see NOTES.md):

* A supervisor runs every 1.6 ms (the 625 Hz RTC tick) at a phase of its own.
  Each received byte clears ``receive_timer``; a tick that finds it above 2
  (three ticks without a byte) arms the decoder for a new frame.
* An armed decoder drops the frame unless its first byte is 0x0F, stores 23
  bytes, and accepts the 25th if it is 0x00 or ``b & 0xCB == 0``. Whatever the
  outcome, it disarms until the supervisor arms it again.
* Flags: frame lost -> frame ignored; failsafe -> channels reset to "timeout".
* 64 ticks (102.4 ms) without a good frame reset the channels to "timeout".

The ``PATCHED`` firmware also arms the decoder right after a frame that ended
with a valid end byte, so a start byte directly following a good frame starts
the next frame; any other byte falls back to the silence rule.

Bytes are fed with the time at which the UART reports them (the end of their
stop bits). Frames the decoder never saw are counted by a wire observer that
splits the byte stream at inter-byte gaps, so that ``stats`` can say why each
frame on the wire did or did not reach the channels.
"""

from __future__ import annotations

import enum
import logging
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipilot.sbus.frame import (
    BYTE_TIME,
    END_MASK,
    FLAG_CH17,
    FLAG_CH18,
    FLAG_FAILSAFE,
    FLAG_FRAME_LOST,
    FRAME_LEN,
    START_BYTE,
)

log = logging.getLogger(__name__)

TICK_S = 1.6e-3
RECEIVE_TIMER_LIMIT = 2
FAILSAFE_TIMER_LIMIT = 64
DIGITAL_MIN = 352
DIGITAL_MAX = 1696
NUM_CHANNELS = 18
#: the firmware's PIOS_RCVR_TIMEOUT as the receiver reports it
TIMEOUT = None

# a gap this long between two bytes means a new burst on the wire
_BURST_GAP_S = 1.5 * BYTE_TIME

REJECT_REASONS = ("unsynced", "bad_start", "bad_end", "frame_lost", "failsafe_flag")


class Firmware(enum.Enum):
    STOCK = "stock"
    PATCHED = "patched"


@dataclass
class ReceiverStats:
    """What happened to the frames on the wire."""

    frames_seen: int = 0
    frames_accepted: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECT_REASONS, 0))
    failsafe_timeouts: int = 0
    bytes_received: int = 0

    def rejected_by_reason(self) -> dict[str, int]:
        """Rejections by reason; frames the decoder never armed for are "unsynced"."""
        decided = self.frames_accepted + sum(v for k, v in self.rejected.items() if k != "unsynced")
        out = dict(self.rejected)
        out["unsynced"] = max(0, self.frames_seen - decided)
        return out

    @property
    def frames_rejected(self) -> int:
        return sum(self.rejected_by_reason().values())

    def as_dict(self) -> dict[str, object]:
        return {
            "frames_seen": self.frames_seen,
            "frames_accepted": self.frames_accepted,
            "frames_rejected": self.rejected_by_reason(),
            "failsafe_timeouts": self.failsafe_timeouts,
            "bytes_received": self.bytes_received,
        }


def unpack_channels(payload: bytes) -> list[int]:
    """16 x 11-bit channels packed LSB first in 22 bytes."""
    bits = int.from_bytes(payload[:22], "little")
    return [(bits >> (11 * i)) & 0x7FF for i in range(16)]


class SbusReceiver:
    """Byte-level model of the firmware decoder and its supervisor."""

    def __init__(
        self, firmware: Firmware = Firmware.STOCK, *, phase: float | None = None,
        rng: random.Random | None = None, start: float = 0.0,
    ) -> None:
        self.firmware = firmware
        if phase is None:
            phase = (rng or random.Random()).uniform(0.0, TICK_S)
        if not 0.0 <= phase < TICK_S:
            raise ValueError("tick phase must be in [0, 1.6 ms)")
        self.phase = phase
        self._next_tick = start + phase
        self.receive_timer = 0
        self.failsafe_timer = 0
        self.frame_found = False
        self.byte_count = 0
        self._speculative = False
        self._data = bytearray(FRAME_LEN - 2)
        self.channels: list[int | None] = [TIMEOUT] * NUM_CHANNELS
        self.quality = 0.0
        self.last_good_frame_time: float | None = None
        self.stats = ReceiverStats()
        self._now = start
        self._last_byte_time = -math.inf
        self._burst_index = 0

    # -- time ---------------------------------------------------------------
    @property
    def now(self) -> float:
        return self._now

    def advance_to(self, t: float) -> None:
        """Run every supervisor tick up to and including time ``t``."""
        while self._next_tick <= t:
            self._supervisor()
            self._next_tick += TICK_S
        if t > self._now:
            self._now = t

    def _supervisor(self) -> None:
        self.receive_timer += 1
        if self.receive_timer > RECEIVE_TIMER_LIMIT:
            self.frame_found = True
            self._speculative = False
            self.byte_count = 0
            self.receive_timer = 0
        self.failsafe_timer += 1
        if self.failsafe_timer > FAILSAFE_TIMER_LIMIT:
            if any(c is not TIMEOUT for c in self.channels):
                log.info("sbus: no good frame for 102.4 ms, channels to failsafe")
            self.channels = [TIMEOUT] * NUM_CHANNELS
            self.stats.failsafe_timeouts += 1
            self.failsafe_timer = 0

    # -- bytes --------------------------------------------------------------
    def feed(self, data: bytes, times: Iterable[float]) -> None:
        """Bytes with the times the UART reported them (non-decreasing)."""
        for b, t in zip(data, times, strict=True):
            self.feed_byte(b, t)

    def feed_paced(self, data: bytes, t_first: float, byte_time: float = BYTE_TIME) -> float:
        """Bytes sent back to back; the first is reported at ``t_first``. Returns the last time."""
        t = t_first
        for i, b in enumerate(data):
            t = t_first + i * byte_time
            self.feed_byte(b, t)
        return t

    def feed_byte(self, b: int, t: float) -> None:
        if t < self._now:
            t = self._now  # a byte cannot be reported before what was already processed
        self.advance_to(t)
        self.stats.bytes_received += 1
        self._observe(t)
        self._update(b, t)
        self.receive_timer = 0
        self._last_byte_time = t

    def _observe(self, t: float) -> None:
        if t - self._last_byte_time > _BURST_GAP_S:
            self._burst_index = 0
        if self._burst_index % FRAME_LEN == 0:
            self.stats.frames_seen += 1
        self._burst_index += 1

    def _update(self, b: int, t: float) -> None:
        if not self.frame_found:
            return
        if self.byte_count == 0:
            if b != START_BYTE:
                self.frame_found = False
                if not self._speculative:
                    self.stats.rejected["bad_start"] += 1
            else:
                self.byte_count = 1
            self._speculative = False
            return
        if self.byte_count < FRAME_LEN - 1:
            self._data[self.byte_count - 1] = b
            self.byte_count += 1
            return
        self.frame_found = False
        if b == 0x00 or (b & END_MASK) == 0:
            self._frame_complete(t)
            if self.firmware is Firmware.PATCHED:
                self.frame_found = True
                self._speculative = True
                self.byte_count = 0
        else:
            self.stats.rejected["bad_end"] += 1

    def _frame_complete(self, t: float) -> None:
        flags = self._data[FRAME_LEN - 3]
        trend = 0.0
        if flags & FLAG_FRAME_LOST:
            self.stats.rejected["frame_lost"] += 1
        else:
            trend = 100.0
            if flags & FLAG_FAILSAFE:
                self.channels = [TIMEOUT] * NUM_CHANNELS
                self.stats.rejected["failsafe_flag"] += 1
            else:
                chans: list[int | None] = list(unpack_channels(bytes(self._data[:22])))
                chans.append(DIGITAL_MAX if flags & FLAG_CH17 else DIGITAL_MIN)
                chans.append(DIGITAL_MAX if flags & FLAG_CH18 else DIGITAL_MIN)
                self.channels = chans
                self.failsafe_timer = 0
                self.stats.frames_accepted += 1
                self.last_good_frame_time = t
        self.quality = (self.quality * 25 + trend) / 26

    def read(self, channel: int) -> int | None:
        """Channel value (0-based), or None (the firmware's "timeout")."""
        if not 0 <= channel < NUM_CHANNELS:
            raise IndexError(channel)
        return self.channels[channel]
