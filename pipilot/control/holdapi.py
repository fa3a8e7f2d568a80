"""What the position and height hold offers its users: the web server and missions.

The hold (`pipilot.control.hold`) flies the craft from the flow deck's
estimate; the page and missions only engage it, release it, hand it the
pilot's sticks and read its status. This module is that seam, so each side is
built and tested against it alone.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any, Protocol

from pipilot.core.setpoints import Setpoint


class HoldState(enum.Enum):
    """Where the hold stands."""

    OFF = "off"
    """Not asked for: the hold publishes nothing."""
    ENGAGING = "engaging"
    """Asked for, waiting for a valid estimate (fresh flow and range)."""
    HOLDING = "holding"
    """Publishing: roll, pitch and throttle come from the hold."""
    WITHDRAWN = "withdrawn"
    """Asked for, but its sensors went stale or invalid beyond a bounded time:
    it withdrew its mixer source and says why in ``reason``. Whoever engaged it
    flies the fallback (an attitude hover at ``hover_throttle``; a mission's,
    while the range and the attitude are still good, on the hold's height
    loop: FlowHold's `vertical_fallback`). When the sensors are valid again it
    goes back to ENGAGING, then HOLDING where the craft then is."""


@dataclass(frozen=True)
class HoldStatus:
    """A snapshot of the hold for the page's HUD and the mission's events."""

    state: HoldState
    reason: str | None = None
    """Why the hold is not holding (withdrawn, or still engaging)."""
    height_m: float | None = None
    """Estimated height above the floor."""
    climb_mps: float | None = None
    """Estimated vertical speed, up positive."""
    velocity_mps: tuple[float, float] | None = None
    """Estimated horizontal ground velocity, north and east."""
    position_m: tuple[float, float] | None = None
    """Estimated horizontal position, north and east, from where the estimate began."""
    target_height_m: float | None = None
    target_position_m: tuple[float, float] | None = None
    hover_throttle: float | None = None
    """The hover throttle the height loop has learned so far."""
    flow_age_s: float | None = None
    range_age_s: float | None = None
    """Age of the newest valid flow and range samples."""
    rates: str | None = None
    """Where the flow's body rates come from now: "imu" (the deck's MPU-6050) or
    "attitude" (AttitudeState differences, also the IMU's fallback)."""
    attitude_period_ms: float | None = None
    """The AttitudeState period the FC acknowledged (None: not set, its own stands)."""
    attitude_period_error: str | None = None
    """Why the period was not set (no telemetry link, no answer, a NACK)."""

    def as_json(self) -> dict[str, Any]:
        """JSON-safe (no NaN or infinities: those become null)."""

        def num(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else round(float(x), 4)

        def pair(p: tuple[float, float] | None) -> list[float | None] | None:
            return None if p is None else [num(p[0]), num(p[1])]

        return {
            "state": self.state.value,
            "reason": self.reason,
            "height_m": num(self.height_m),
            "climb_mps": num(self.climb_mps),
            "velocity_mps": pair(self.velocity_mps),
            "position_m": pair(self.position_m),
            "target_height_m": num(self.target_height_m),
            "target_position_m": pair(self.target_position_m),
            "hover_throttle": num(self.hover_throttle),
            "flow_age_s": num(self.flow_age_s),
            "range_age_s": num(self.range_age_s),
            "rates": self.rates,
            "attitude_period_ms": num(self.attitude_period_ms),
            "attitude_period_error": self.attitude_period_error,
        }


class HoldControl(Protocol):
    """The hold as the page and missions drive it (all calls from the event loop's thread)."""

    def engage(self, target_height_m: float | None = None, *, hover_guess: float,
               piloted: bool = False) -> None:
        """Hold here: the current estimated position, and ``target_height_m``
        (None: the current estimated height). ``hover_guess``: the throttle
        flying now (the pilot's, the mission's hover throttle), where the learned
        hover throttle starts. ``piloted``: a pilot on the page holds the
        sticks, so the hold needs their heartbeat (`pilot`)."""

    def release(self, reason: str = "released") -> None:
        """Stop holding and withdraw the hold's mixer source at once."""

    def pilot(self, sticks: Setpoint) -> None:
        """The pilot's sticks while holding: roll/pitch move the held point
        (a velocity command), throttle is a climb-rate command around mid stick,
        yaw passes through. When engaged ``piloted``, each call is also the
        pilot's heartbeat: without one for the pilot source's timeout the hold
        withdraws, and the mixer's failsafe follows as for a lost page."""

    def status(self) -> HoldStatus:
        """The hold's state and estimate now."""

    def fallback_tilt(self) -> tuple[float, float]:
        """Roll and pitch sticks for the fallback attitude hover while the hold does not
        fly: the tilt that held against the steady push (wind drag, an off-level
        board) the estimate last saw, latched when the hold withdrew; level before
        any estimate. Safe to read from another thread (a snapshot, as `status`)."""
