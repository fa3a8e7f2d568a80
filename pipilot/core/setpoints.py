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
        set_(self, "throttle", _check("throttle", self.throttle, 0.0, 1.0))
        for axis in ("roll", "pitch", "yaw"):
            set_(self, axis, _check(axis, getattr(self, axis), -1.0, 1.0))
        acc = tuple(self.accessories)
        if len(acc) != 4:
            raise SetpointError(f"setpoint accessories must have 4 values, got {len(acc)}")
        set_(self, "accessories",
             tuple(_check(f"accessories[{i}]", a, -1.0, 1.0) for i, a in enumerate(acc)))
        if not isinstance(self.arm, ArmRequest):
            try:
                set_(self, "arm", ArmRequest(self.arm))
            except ValueError:
                raise SetpointError(f"setpoint arm must be none|arm|disarm, got {self.arm!r}") \
                    from None


NEUTRAL = Setpoint()
