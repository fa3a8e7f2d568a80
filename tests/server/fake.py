"""A fake vehicle for the server tests: records setpoints, serves scripted telemetry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipilot.core.setpoints import Setpoint


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
