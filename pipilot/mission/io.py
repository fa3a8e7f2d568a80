"""The mission's view of the vehicle: every call into core, telemetry and sim.

Kept in one place so the mission logic reads as flight logic, and so tests can
see exactly which parts of the Vehicle facade a mission relies on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from pipilot.core.setpoints import Setpoint
from pipilot.core.truth import Vector3
from pipilot.core.vehicle import ObjectValues, ObservedVehicle
from pipilot.mission.monitors import FlightView
from pipilot.uavtalk.fields import ALARM_ELEMENTS, ALARM_LEVELS, ARMED_OPTIONS, enum_name

log = logging.getLogger(__name__)

MISSION_SOURCE = "mission"
PILOT_SOURCE = "pilot"


def alarm_levels(values: ObjectValues) -> dict[str, str]:
    raw = values.get("Alarm")
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        items = list(raw.items())
    else:
        items = list(zip(ALARM_ELEMENTS, raw, strict=False))
    out = {}
    for name, level in items:
        lvl = enum_name(level, ALARM_LEVELS)
        if lvl is not None:
            out[str(name)] = lvl
    return out


class VehicleIO:
    """Reads telemetry and publishes the mission source through a Vehicle."""

    def __init__(self, vehicle: ObservedVehicle, *, priority: int = 20,
                 timeout_s: float = 1.0) -> None:
        self.vehicle = vehicle
        self.clock = vehicle.clock
        self._priority = priority
        self._timeout_s = timeout_s
        self._registered = False
        self._refreshing: set[str] = set()
        self._refresh_tasks: set[asyncio.Task[None]] = set()

    def register(self) -> None:
        """Make sure the mixer knows the mission source (the core registers it by default)."""
        if not self._registered and MISSION_SOURCE not in self.vehicle.mixer.sources:
            self.vehicle.mixer.add_source(MISSION_SOURCE, self._priority, mode="override",
                                          timeout_s=self._timeout_s)
        self._registered = True

    def publish(self, command: Setpoint) -> None:
        self.vehicle.mixer.publish(MISSION_SOURCE, command)

    def withdraw(self) -> None:
        """Stop commanding at once (the mixer's source timeout would wait a second)."""
        self.vehicle.mixer.withdraw(MISSION_SOURCE)

    def now(self) -> float:
        return float(self.clock.now())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    def latest(self, name: str) -> tuple[ObjectValues, float] | None:
        """The newest ``name`` and its age; None before it arrives or without telemetry."""
        tel = self.vehicle.telemetry
        got = None if tel is None else tel.latest(name)
        if got is None:
            return None
        values, age = got
        return values, float(age)

    def refresh_stale(self, name: str, max_age_s: float) -> None:
        """Ask the FC for ``name`` if what we have is older than ``max_age_s``.

        FlightStatus is sent only on change, and a change can be lost when the
        FC's telemetry queue overflows; a periodic request keeps it honest.
        Best effort, in the background, one request at a time per object.
        """
        got = self.latest(name)
        if got is not None and got[1] <= max_age_s:
            return
        if name in self._refreshing or self.vehicle.telemetry is None:
            return
        self._refreshing.add(name)
        task = asyncio.get_running_loop().create_task(self._refresh(name))
        self._refresh_tasks.add(task)
        task.add_done_callback(self._refresh_tasks.discard)

    async def _refresh(self, name: str) -> None:
        tel = self.vehicle.telemetry
        try:
            if tel is not None:
                await tel.request(name)
        except Exception as exc:  # a lost answer is the monitors' business, not ours
            log.debug("request %s failed: %s", name, exc)
        finally:
            self._refreshing.discard(name)

    def cancel_refreshes(self) -> None:
        for task in list(self._refresh_tasks):
            task.cancel()

    def armed(self) -> str | None:
        got = self.latest("FlightStatus")
        return None if got is None else enum_name(got[0].get("Armed"), ARMED_OPTIONS)

    def pilot_active(self) -> bool:
        """The page feeds the pilot source only while someone holds the seat."""
        src = self.vehicle.mixer.sources.get(PILOT_SOURCE)
        return src is not None and bool(src.fresh(self.now()))

    def view(self) -> FlightView:
        tel = self.vehicle.telemetry
        att = self.latest("AttitudeState")
        alarms = self.latest("SystemAlarms")
        return FlightView(
            now=self.now(),
            telemetry_connected=tel is not None and bool(tel.connected),
            attitude_age=None if att is None else att[1],
            armed=self.armed(),
            roll_deg=None if att is None else float(att[0]["Roll"]),
            pitch_deg=None if att is None else float(att[0]["Pitch"]),
            alarms={} if alarms is None else alarm_levels(alarms[0]),
            pilot_active=self.pilot_active(),
        )

    def truth_position(self) -> Vector3 | None:
        """Ground-truth NED position from the simulator, if there is one (for the
        summary and the plots; nothing the mission commands depends on it)."""
        sim = self.vehicle.sim
        return None if sim is None else sim.truth_snapshot().position
