"""The one check of what a stalled core puts on the wire, shared by the core
and HIL suites: fresh frames, then failsafe frames, then silence, in bounds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipilot.sbus import Frame


def assert_stall_tail(core: Any, frames: Sequence[Frame], stats: Any, period_s: float) -> str:
    """Frames carry accessory 0 at 0.5 while fresh; returns the m/F tail checked."""
    acc0 = core.mixer.calibration.calibration_for("accessory0").bipolar(0.5)
    first = next(i for i, f in enumerate(frames) if f.channels[4] == acc0)
    tail = "".join("F" if f.failsafe else "m" if f.channels[4] == acc0 else "?"
                   for f in frames[first:])
    wd = core.config.watchdog
    assert tail.startswith("m") and "?" not in tail
    # failsafe frames fill the slots from stale_ms to silent_ms (10 ms by default): a
    # pump that wakes late (a loaded machine; seen in a fresh-clone run) misses them
    # all, and then it must say so in its missed slots
    assert "F" in tail or stats.missed_slots > 0, (tail, stats)
    assert "F" not in tail or "m" not in tail[tail.index("F"):]
    assert tail.count("m") <= round(wd.stale_ms * 1e-3 / period_s) + 1
    assert tail.count("F") <= round((wd.silent_ms - wd.stale_ms) * 1e-3 / period_s) + 1
    assert stats.mode == "silent" and stats.silent_slots > 0
    return tail
