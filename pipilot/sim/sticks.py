"""Turning stick positions into S.Bus frames the way the rig's transmitter side does.

Used by the lock-step runner and the tests when no pipilot mixer drives the
simulator. Values follow the rig calibration the model uses (NOTES.md channel
map; sticks 172..1811 around 992; throttle 0..1 over 172..1811).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipilot.sim.manual import STICK_MAX, STICK_MIN, STICK_NEUTRAL
from pipilot.sim.receiver import FLAG_CH17, FLAG_CH18, FLAG_FAILSAFE, FLAG_FRAME_LOST, SOF


def pack_frame(channels: list[int], *, ch17: bool = False, ch18: bool = False,
               frame_lost: bool = False, failsafe: bool = False) -> bytes:
    """A 25-byte S.Bus frame (own packer, independent of pipilot.sbus, to cross-check it)."""
    if len(channels) != 16:
        raise ValueError("16 channels")
    bits = 0
    for i, c in enumerate(channels):
        if not 0 <= c <= 2047:
            raise ValueError(f"channel {i + 1} out of range: {c}")
        bits |= c << (11 * i)
    flags = ((FLAG_CH17 if ch17 else 0) | (FLAG_CH18 if ch18 else 0)
             | (FLAG_FRAME_LOST if frame_lost else 0) | (FLAG_FAILSAFE if failsafe else 0))
    return bytes([SOF]) + bits.to_bytes(22, "little") + bytes([flags, 0])


def stick_value(x: float) -> int:
    x = max(-1.0, min(1.0, x))
    span = (STICK_MAX - STICK_NEUTRAL) if x >= 0 else (STICK_NEUTRAL - STICK_MIN)
    return round(STICK_NEUTRAL + x * span)


def throttle_value(x: float) -> int:
    x = max(0.0, min(1.0, x))
    return round(STICK_MIN + x * (STICK_MAX - STICK_MIN))


@dataclass
class Sticks:
    """Throttle 0..1; roll, pitch, yaw -1..1 (yaw -1 = full left)."""

    throttle: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0
    accessories: list[float] = field(default_factory=lambda: [0.0] * 4)

    def channels(self) -> list[int]:
        ch = [STICK_NEUTRAL] * 16
        ch[0] = throttle_value(self.throttle)
        ch[1] = stick_value(self.yaw)
        ch[2] = stick_value(self.roll)
        ch[3] = stick_value(self.pitch)
        for i, a in enumerate(self.accessories[:4]):
            ch[4 + i] = stick_value(a)
        return ch

    def frame(self) -> bytes:
        return pack_frame(self.channels())
