"""Safety monitors: small pure checks run on every tick of a mission.

Each looks at a ``FlightView`` (a snapshot of what the ground knows) and the
mission's expectations, and returns the reason to abort or None. They hold no
I/O, so each one is tested alone and the mission loop stays simple.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pipilot.uavtalk.fields import ALARM_LEVELS


@dataclass(frozen=True)
class FlightView:
    """What the ground station knows at ``now``."""

    now: float
    telemetry_connected: bool
    attitude_age: float | None
    """Seconds since the last AttitudeState; None if none ever came."""
    armed: str | None
    """FlightStatus.Armed: "Disarmed", "Arming", "Armed", or None if unknown."""
    roll_deg: float | None = None
    pitch_deg: float | None = None
    alarms: Mapping[str, str] = field(default_factory=dict)
    """SystemAlarms.Alarm, element name -> level name."""
    pilot_active: bool = False
    """The pilot's source (the web page) is commanding the craft."""


@dataclass(frozen=True)
class Expectations:
    """What the mission expects at this moment."""

    armed: bool = False
    """Armed by the mission and not yet asked to disarm."""
    step_label: str | None = None
    step_deadline: float | None = None
    elapsed: float = math.inf
    """Seconds since the mission started (monitors may give the link a moment)."""


class Monitor(Protocol):
    name: str

    def check(self, view: FlightView, expect: Expectations) -> str | None: ...


@dataclass
class TelemetryLost:
    timeout_s: float = 1.0
    name: str = "telemetry"

    def check(self, view: FlightView, expect: Expectations) -> str | None:
        if not view.telemetry_connected:
            return "telemetry lost: the link to the flight controller is down"
        if view.attitude_age is None:
            if expect.elapsed <= self.timeout_s:
                return None  # the first sample may still be on its way
            return "telemetry lost: no attitude received"
        if view.attitude_age > self.timeout_s:
            return f"telemetry lost: no attitude for {view.attitude_age:.1f} s"
        return None


@dataclass
class UnexpectedDisarm:
    name: str = "disarm"

    def check(self, view: FlightView, expect: Expectations) -> str | None:
        if expect.armed and view.armed is not None and view.armed != "Armed":
            return f"flight controller disarmed unexpectedly (FlightStatus.Armed={view.armed})"
        return None


@dataclass
class AlarmRaised:
    level: str = "Critical"
    ignore: Sequence[str] = ()
    name: str = "alarms"

    def __post_init__(self) -> None:
        if self.level not in ALARM_LEVELS[2:]:
            raise ValueError(f"alarm level must be one of {ALARM_LEVELS[2:]}, not {self.level!r}")

    def check(self, view: FlightView, expect: Expectations) -> str | None:
        threshold = ALARM_LEVELS.index(self.level)
        raised = [
            f"{name}={level}"
            for name, level in view.alarms.items()
            if name not in self.ignore and level in ALARM_LEVELS
            and ALARM_LEVELS.index(level) >= threshold
        ]
        if raised:
            return "alarm raised: " + ", ".join(sorted(raised))
        return None


@dataclass
class AttitudeLimit:
    max_tilt_deg: float = 35.0
    name: str = "attitude"

    def check(self, view: FlightView, expect: Expectations) -> str | None:
        for axis, value in (("roll", view.roll_deg), ("pitch", view.pitch_deg)):
            if value is None:
                continue
            if not math.isfinite(value) or abs(value) > self.max_tilt_deg:
                return (f"attitude beyond limits: {axis} {value:.1f} deg"
                        f" (limit {self.max_tilt_deg:g})")
        return None


@dataclass
class StepTimeout:
    name: str = "timeout"

    def check(self, view: FlightView, expect: Expectations) -> str | None:
        if expect.step_deadline is not None and view.now > expect.step_deadline:
            return f"step timed out: {expect.step_label}"
        return None


@dataclass
class PilotTakeover:
    name: str = "takeover"

    def check(self, view: FlightView, expect: Expectations) -> str | None:
        if view.pilot_active:
            return "pilot took over from the web page"
        return None


def run_monitors(monitors: Sequence[Monitor], view: FlightView,
                 expect: Expectations) -> tuple[str, str] | None:
    """The first monitor that objects: (its name, the reason)."""
    for m in monitors:
        reason = m.check(view, expect)
        if reason is not None:
            return m.name, reason
    return None
