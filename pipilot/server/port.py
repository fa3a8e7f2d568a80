"""What the web server needs from a vehicle, and nothing more.

The server is written against `VehiclePort`, so its tests run against a fake
and production runs against `pipilot.server.adapter.VehicleAdapter` wrapping
the real `pipilot.core.vehicle.Vehicle`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from pipilot.control.holdapi import HoldStatus
from pipilot.core.setpoints import Setpoint
from pipilot.core.truth import TruthSnapshot

TelemetryValue = tuple[Mapping[str, Any], float]


class VehiclePort(Protocol):
    """The vehicle as the web server sees it."""

    def now(self) -> float:
        """Monotonic seconds on the vehicle's clock."""
        ...

    def publish_pilot(self, setpoint: Setpoint) -> None:
        """Feed the mixer's "pilot" source one fresh setpoint (its arm request included)."""
        ...

    def output_sticks(self) -> Setpoint | None:
        """The sticks the craft is being sent now (any source, failsafe included), if known."""
        ...

    def withdraw_pilot(self) -> None:
        """The pilot is gone or silent: stop feeding, the core's lost-pilot failsafe applies."""
        ...

    def latest(self, name: str) -> TelemetryValue | None:
        """Latest decoded telemetry object `name` and its age in seconds, if any arrived."""
        ...

    @property
    def telemetry_connected(self) -> bool: ...

    def telemetry_link(self) -> Mapping[str, Any]:
        """The FC telemetry link: `configured` (False when there is no telemetry at
        all), `connected`, `was_connected` (connected at least once), `age_s`
        (seconds since the FC's newest packet, None before the first)."""
        ...

    def link_stats(self) -> Mapping[str, Any]:
        """S.Bus frame statistics: rate, lateness, failsafe state; in sim, FC acceptance."""
        ...

    def sim_truth(self) -> Mapping[str, Any] | None:
        """Ground truth from the simulator (position, velocity), or None on real hardware."""
        ...

    def truth_snapshot(self) -> TruthSnapshot | None:
        """The simulator's truth now (never blocks), or None on real hardware: display only."""
        ...

    # -- the flow-deck hold (`pipilot.control.holdapi.HoldControl`) ---------------
    # The calls below go to the hold on the flight loop's thread, in order with
    # the pilot's publishes and withdrawals.

    def hold_status(self) -> HoldStatus | None:
        """The hold's status now, or None when the vehicle has no hold (no flow deck)."""
        ...

    def hold_engage(self, hover_guess: float) -> None:
        """Hold the current position and height, piloted: `hold_pilot` is its heartbeat."""
        ...

    def hold_release(self, reason: str) -> None:
        """Stop holding; the hold withdraws its mixer source at once."""
        ...

    def hold_pilot(self, sticks: Setpoint) -> None:
        """The pilot's sticks while the hold is engaged (throttle: climb rate around mid)."""
        ...

    def hold_fallback_tilt(self) -> tuple[float, float]:
        """The hold's `fallback_tilt` now ((0, 0) without a hold)."""
        ...
