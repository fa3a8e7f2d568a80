"""What the flight controller's S.Bus decoder makes of a frame period.

Stock LibrePilot 16.09 (pios_sbus.c) only starts a frame after three of its
1.6 ms supervisor ticks pass without a byte. A UART reports a byte when its
stop bits end, so the silence between frames is P - 24 byte times
(P - 2.88 ms). With the tick phase uniformly random relative to the frames,
the probability that three ticks fit into a silence s is
clamp((s - 3.2 ms) / 1.6 ms, 0, 1): about 57 % at 7 ms, 100 % from 7.68 ms,
0 below 6.08 ms. A patched decoder accepts every frame.

The phase is not random frame to frame, though: it moves by P mod 1.6 ms per
frame. Near a multiple of the tick (6.4 ms) it barely moves, so an unlucky
phase loses every frame for far longer than the firmware's 102.4 ms receiver
timeout; such periods are refused like those with no frame at all.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from pipilot.errors import ConfigError
from pipilot.sbus.frame import BYTE_TIME as BYTE_TIME_S
from pipilot.sbus.frame import FRAME_LEN as FRAME_BYTES

TICK_S = 1.6e-3          # the decoder's supervisor tick (625 Hz RTC)
SILENT_TICKS = 3         # ticks without a byte before the decoder re-arms
FIRMWARES = ("stock", "patched")
MIN_PERIOD_S = 4e-3      # a frame is 3 ms on the wire: keep a gap even when patched
MAX_PERIOD_S = 50e-3     # the firmware declares failsafe after 102.4 ms without a frame
RECEIVER_TIMEOUT_S = 64 * TICK_S
PHASE_STEPS = 1600       # tick phases tried by `stock_longest_loss` (1 us apart)


def inter_frame_silence(period_s: float) -> float:
    """Silence the decoder sees between the last byte of a frame and the next one."""
    return period_s - (FRAME_BYTES - 1) * BYTE_TIME_S


def stock_acceptance(period_s: float) -> float:
    """Fraction of frames the stock decoder finds at this period (random tick phase)."""
    s = inter_frame_silence(period_s)
    frac = (s - (SILENT_TICKS - 1) * TICK_S) / TICK_S
    return max(0.0, min(1.0, frac))


@functools.lru_cache(maxsize=64)
def stock_longest_loss(period_s: float) -> float:
    """The longest time the stock decoder can go without a frame at this period,
    over every tick phase (the clocks taken as exact): inf when some phase loses
    frames for longer than the receiver timeout."""
    s = inter_frame_silence(period_s)
    if s - (SILENT_TICKS - 1) * TICK_S >= TICK_S:
        return period_s                      # every phase finds every frame
    frames = int(RECEIVER_TIMEOUT_S / period_s) + 1
    step = period_s % TICK_S
    worst = 0
    for i in range(PHASE_STEPS):
        # time from the end of a frame to the next tick; a frame is found when
        # the third tick after it comes no later than the next frame's first byte
        phase = (i + 0.5) * TICK_S / PHASE_STEPS
        run = 0
        while run < frames and phase + (SILENT_TICKS - 1) * TICK_S > s:
            run += 1
            phase = (phase - step) % TICK_S
        worst = max(worst, run)
    return float("inf") if worst >= frames else (worst + 1) * period_s


@dataclass(frozen=True)
class RateEstimate:
    period_s: float
    firmware: str
    acceptance: float          # fraction of frames the decoder accepts
    accepted_per_s: float      # expected accepted frames per second
    sent_per_s: float

    def describe(self) -> str:
        return (f"{self.firmware} firmware at {self.period_s * 1e3:.2f} ms: "
                f"{self.sent_per_s:.0f} frames/s sent, about {self.accepted_per_s:.0f}/s "
                f"accepted ({self.acceptance:.0%})")


def estimate(period_s: float, firmware: str) -> RateEstimate:
    """Expected accepted-frame rate of `firmware` ("stock" | "patched") at `period_s`."""
    acc = stock_acceptance(period_s) if firmware == "stock" else 1.0
    return RateEstimate(period_s, firmware, acc, acc / period_s, 1.0 / period_s)


def check_period(period_s: float, firmware: str, key: str = "link.period_ms") -> RateEstimate:
    """Validate a period for a firmware: ConfigError when no frame could be accepted."""
    if firmware not in FIRMWARES:
        raise ConfigError("link.firmware", f"must be one of {', '.join(FIRMWARES)}, "
                                           f"got {firmware!r}")
    if not MIN_PERIOD_S <= period_s <= MAX_PERIOD_S:
        raise ConfigError(key, f"must be {MIN_PERIOD_S * 1e3:g}..{MAX_PERIOD_S * 1e3:g} ms, "
                               f"got {period_s * 1e3:g}")
    est = estimate(period_s, firmware)
    if est.acceptance <= 0.0:
        lowest = (SILENT_TICKS - 1) * TICK_S + (FRAME_BYTES - 1) * BYTE_TIME_S
        raise ConfigError(key, f"{period_s * 1e3:g} ms: the stock LibrePilot decoder finds no "
                               f"frame below {lowest * 1e3:.2f} ms (the craft would be in "
                               "failsafe); use a longer period or firmware = \"patched\"")
    if firmware == "stock" and stock_longest_loss(period_s) > RECEIVER_TIMEOUT_S:
        raise ConfigError(key, f"{period_s * 1e3:g} ms is too close to a multiple of the stock "
                               "LibrePilot decoder's 1.6 ms tick: at some phases it finds no "
                               f"frame for longer than its {RECEIVER_TIMEOUT_S * 1e3:.1f} ms "
                               "receiver timeout; use e.g. 7 or 8 ms or firmware = \"patched\"")
    return est
