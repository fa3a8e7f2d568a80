"""Normalised stick setpoints: what every control source publishes to the mixer."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from pipilot.errors import PipilotError


class SetpointError(PipilotError, ValueError):
    """A setpoint field is not a finite number in its range."""


class ArmRequest(enum.Enum):
    """What a source asks of the arming state while it holds the request."""

    NONE = "none"
    ARM = "arm"
    DISARM = "disarm"


N_ACCESSORIES = 4
#: The range of each stick, accessories alike.
STICK_RANGES: dict[str, tuple[float, float]] = {
    "throttle": (0.0, 1.0), "roll": (-1.0, 1.0), "pitch": (-1.0, 1.0), "yaw": (-1.0, 1.0),
    "accessories": (-1.0, 1.0),
}


def saturate(x: float, lo: float, hi: float) -> float:
    """`x` limited to lo..hi; a non-finite value gives the neutral one (0, or `lo`
    if 0 is out of range), never an end stop."""
    if not math.isfinite(x):
        return 0.0 if lo <= 0.0 <= hi else lo
    return lo if x < lo else hi if x > hi else x


def _check(name: str, value: float, lo: float, hi: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SetpointError(f"setpoint {name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or not lo <= v <= hi:
        raise SetpointError(f"setpoint {name} must be in {lo:g}..{hi:g}, got {value!r}")
    return v


@dataclass(frozen=True)
class Setpoint:
    """Stick positions: `throttle` 0..1; `roll`, `pitch`, `yaw` and the four
    `accessories` -1..1 (negative = left / forward-down / left / low); `arm`
    asks the mixer to hold the arming or disarming gesture.

    Construction validates every field and raises `SetpointError`, so a bad
    value is refused at the source and never reaches the flight loop.
    """

    throttle: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0
    accessories: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    arm: ArmRequest = field(default=ArmRequest.NONE)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for axis in ("throttle", "roll", "pitch", "yaw"):
            set_(self, axis, _check(axis, getattr(self, axis), *STICK_RANGES[axis]))
        acc = tuple(self.accessories)
        if len(acc) != N_ACCESSORIES:
            raise SetpointError(f"setpoint accessories must have {N_ACCESSORIES} values, "
                                f"got {len(acc)}")
        lo, hi = STICK_RANGES["accessories"]
        set_(self, "accessories",
             tuple(_check(f"accessories[{i}]", a, lo, hi) for i, a in enumerate(acc)))
        if not isinstance(self.arm, ArmRequest):
            try:
                set_(self, "arm", ArmRequest(self.arm))
            except ValueError:
                raise SetpointError(f"setpoint arm must be none|arm|disarm, got {self.arm!r}") \
                    from None


    @classmethod
    def saturated(cls, throttle: float = 0.0, roll: float = 0.0, pitch: float = 0.0,
                  yaw: float = 0.0, arm: ArmRequest = ArmRequest.NONE) -> Setpoint:
        """A setpoint from computed values (a mission's, a controller's): each one
        saturated to its range, a non-finite one neutral, so it never raises."""
        r = STICK_RANGES
        return cls(throttle=saturate(throttle, *r["throttle"]), roll=saturate(roll, *r["roll"]),
                   pitch=saturate(pitch, *r["pitch"]), yaw=saturate(yaw, *r["yaw"]), arm=arm)


NEUTRAL = Setpoint()
