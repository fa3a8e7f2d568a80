"""A fake vehicle for the server tests: records setpoints, serves scripted telemetry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipilot.control.holdapi import HoldState, HoldStatus
from pipilot.core.setpoints import Setpoint
from pipilot.core.truth import TruthSnapshot


class FakeHold:
    """A HoldControl that records its calls; tests move its state by hand."""

    def __init__(self) -> None:
        self.state = HoldState.OFF
        self.reason: str | None = None
        self.hover_throttle: float | None = None
        self.height_m: float | None = 0.8
        self.calls: list[tuple[str, Any]] = []
        self.sticks: list[Setpoint] = []
        self.tilt = (0.0, 0.0)
        """What `fallback_tilt` answers (roll, pitch sticks)."""

    def engage(self, target_height_m: float | None = None, *, hover_guess: float,
               piloted: bool = False) -> None:
        self.calls.append(("engage", (target_height_m, hover_guess, piloted)))
        self.state, self.reason = HoldState.ENGAGING, "waiting for fresh flow and range"
        if self.hover_throttle is None:
            self.hover_throttle = hover_guess

    def release(self, reason: str = "released") -> None:
        self.calls.append(("release", reason))
        self.state, self.reason = HoldState.OFF, reason

    def pilot(self, sticks: Setpoint) -> None:
        self.sticks.append(sticks)

    def status(self) -> HoldStatus:
        return HoldStatus(state=self.state, reason=self.reason, height_m=self.height_m,
                          velocity_mps=(0.01, -0.02), hover_throttle=self.hover_throttle)

    def fallback_tilt(self) -> tuple[float, float]:
        return self.tilt


class FakeVehicle:
    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.published: list[tuple[float, Setpoint]] = []
        self.withdrawals: list[float] = []
        self.telemetry: dict[str, Mapping[str, Any]] = {}
        self.connected = True
        #: as VehiclePort.telemetry_link; None: derived from `connected` (a fresh link)
        self.link: dict[str, Any] | None = None
        self.output: Setpoint | None = None  # what the craft is being sent (None: unknown)
        self.truth: Mapping[str, Any] | None = {"position": [0.0, 0.0, 0.0]}
        self.snapshot: TruthSnapshot | None = None
        self.hold: FakeHold | None = None

    def now(self) -> float:
        return self.clock.now()

    def publish_pilot(self, setpoint: Setpoint) -> None:
        self.published.append((self.clock.now(), setpoint))

    def output_sticks(self) -> Setpoint | None:
        return self.output

    def withdraw_pilot(self) -> None:
        self.withdrawals.append(self.clock.now())

    def latest(self, name: str) -> tuple[Mapping[str, Any], float] | None:
        v = self.telemetry.get(name)
        return None if v is None else (v, 0.01)

    @property
    def telemetry_connected(self) -> bool:
        return self.connected

    def telemetry_link(self) -> Mapping[str, Any]:
        if self.link is not None:
            return self.link
        return {"configured": True, "connected": self.connected,
                "was_connected": self.connected, "age_s": 0.01 if self.connected else None}

    def link_stats(self) -> Mapping[str, Any]:
        return {"frames_sent": 10, "rate_hz": 142.9}

    def sim_truth(self) -> Mapping[str, Any] | None:
        return self.truth

    def truth_snapshot(self) -> TruthSnapshot | None:
        return self.snapshot

    def hold_status(self) -> HoldStatus | None:
        return None if self.hold is None else self.hold.status()

    def hold_engage(self, hover_guess: float) -> None:
        if self.hold is not None:
            self.hold.engage(None, hover_guess=hover_guess, piloted=True)

    def hold_release(self, reason: str) -> None:
        if self.hold is not None:
            self.hold.release(reason)

    def hold_pilot(self, sticks: Setpoint) -> None:
        if self.hold is not None:
            self.hold.pilot(sticks)

    def hold_fallback_tilt(self) -> tuple[float, float]:
        return (0.0, 0.0) if self.hold is None else self.hold.fallback_tilt()
