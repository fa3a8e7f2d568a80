"""Run a TOML mission on a vehicle and sum it up (the CLI's engine)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipilot.core.vehicle import ObservedVehicle
from pipilot.errors import ConfigError, SafetyAbort
from pipilot.mission.api import INTERRUPTED, Mission
from pipilot.mission.events import EventKind, MissionEvent
from pipilot.mission.spec import MissionSpec

if TYPE_CHECKING:
    from pipilot.control.hold import Deck


async def run_spec(spec: MissionSpec, vehicle: ObservedVehicle, *, drift: bool = True,
                   on_event: Callable[[MissionEvent], None] | None = None,
                   handle_sigint: bool = False, deck: Deck | None = None,
                   telemetry_baud: int = 9600) -> tuple[Mission, dict[str, Any]]:
    """Fly every step of ``spec``; return the mission and its summary.

    With ``[hold] enabled`` the flow-deck hold reads ``deck`` (the drift loop
    then stays off: the hold measures the ground speed itself)."""
    hold = None
    if spec.hold_enabled:
        from pipilot.control.hold import FlowHold, deck_has_imu

        if deck is None:
            raise ConfigError("hold.enabled", "the hold needs the flow deck, and none is "
                                              "attached to this run")
        hold = FlowHold(vehicle, spec.hold, spec.flow, imu=deck_has_imu(deck),
                        telemetry_baud=telemetry_baud)
    m = Mission(vehicle, mission=spec.mission, safety=spec.safety,
                drift=drift and spec.drift_enabled and hold is None, drift_config=spec.drift,
                estimator_config=spec.estimator, hold=hold, deck=deck,
                hold_height_m=spec.hold_target_height_m)
    if on_event is not None:
        m.events.add_callback(on_event)
    loop = asyncio.get_running_loop()
    installed = False
    if handle_sigint:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, m.abort, INTERRUPTED, "interrupt")
            installed = True
    try:
        async with m:
            for step in spec.steps:
                await m.run_step(step)
    except SafetyAbort:
        pass
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)
    return m, summarize(spec, m)


def summarize(spec: MissionSpec, m: Mission) -> dict[str, Any]:
    done = [e for e in m.events.history if e.kind is EventKind.STEP_DONE]
    out: dict[str, Any] = {
        "mission": spec.name,
        "completed": m.completed,
        "abort_reason": m.abort_reason,
        "abort_monitor": m.abort_monitor,
        "steps_total": len(spec.steps),
        "steps_completed": len(done),
        "duration_s": round(m.events.history[-1].t, 3) if m.events.history else 0.0,
        "drift_compensation": m.drift is not None,
        "flow_hold": m.flow_hold is not None,
    }
    out.update(hover_drift(m))
    if m.samples and any("down" in r for r in m.samples):  # ground truth: a simulator
        out.update(height_error(m))
    return out


HOVER_ACTIONS = ("hover", "hold")
"""Steps that keep the craft in one place: the longest one is summed up."""
ON_GROUND_M = 0.01
"""True height at or below which the craft counts as on the ground."""


def _step_spans(m: Mission, actions: tuple[str, ...]
                ) -> list[tuple[MissionEvent, MissionEvent]]:
    """(started, done) event pairs of the completed steps whose action is in ``actions``."""
    starts = {e.step: e for e in m.events.history
              if e.kind is EventKind.STEP_STARTED and e.action in actions}
    return [(starts[e.step], e) for e in m.events.history
            if e.kind is EventKind.STEP_DONE and e.step in starts]


def percentile(xs: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``xs``, linear between order statistics."""
    if not xs:
        raise ValueError("percentile of nothing")
    v = sorted(xs)
    pos = q * (len(v) - 1)
    i = min(int(pos), len(v) - 2) if len(v) > 1 else 0
    frac = pos - i
    return v[i] if len(v) == 1 else v[i] + (v[i + 1] - v[i]) * frac


def hover_drift(m: Mission) -> dict[str, Any]:
    """Ground truth over the longest hover or hold: displacement, the largest
    excursion from where it began, its heights and how the speed settled."""
    best: tuple[float, MissionEvent, MissionEvent] | None = None
    for s, e in _step_spans(m, HOVER_ACTIONS):
        if "truth_ned" in s.data and "truth_ned" in e.data:
            length = e.t - s.t
            if best is None or length > best[0]:
                best = (length, s, e)
    if best is None:
        return {}
    length, s, e = best
    n0, e0, _ = s.data["truth_ned"]
    n1, e1, _ = e.data["truth_ned"]
    rows = [r for r in m.samples if s.t <= r["t"] <= e.t and "north" in r]
    speeds = []
    for a, b in itertools.pairwise(rows):
        dt = b["t"] - a["t"]
        if dt > 0:
            speeds.append(math.hypot(b["north"] - a["north"], b["east"] - a["east"]) / dt)
    excursion = max([math.hypot(r["north"] - n0, r["east"] - e0) for r in rows]
                    + [math.hypot(n1 - n0, e1 - e0)])
    out: dict[str, Any] = {
        "drift_m": round(math.hypot(n1 - n0, e1 - e0), 4),
        "max_excursion_m": round(excursion, 4),
        "hover_seconds": round(length, 3),
    }
    heights = [-r["down"] for r in rows if "down" in r]
    if heights:
        # open-loop altitude: a hover can end far above, or on, the ground
        out["hover_height_min_m"] = round(min(heights), 3)
        out["hover_height_max_m"] = round(max(heights), 3)
        out["hover_on_ground_s"] = round(_on_ground_s(rows), 3)
    if speeds:
        # speed averaged over 1 s windows, so a 50 Hz sampling does not add noise
        per_s = max(1, round(len(speeds) / max(length, 1e-9)))
        smooth = [sum(speeds[i:i + per_s]) / per_s for i in range(0, len(speeds), per_s)]
        last = smooth[-min(10, len(smooth)):]
        out["hover_mean_speed_mps"] = round(sum(speeds) / len(speeds), 4)
        out["hover_max_speed_mps"] = round(max(smooth), 4)
        out["hover_final_speed_mps"] = round(sum(last) / len(last), 4)
    return out


def _on_ground_s(rows: list[dict[str, float]]) -> float:
    """Time spent at or below ON_GROUND_M over consecutive rows."""
    return sum((b["t"] - a["t"] for a, b in itertools.pairwise(rows)
                if "down" in a and -a["down"] <= ON_GROUND_M), 0.0)


def height_error(m: Mission) -> dict[str, Any]:
    """``height_error_p90_m``: 90th percentile of |true height - target| over every
    ``hold`` step, None when there is none (or no ground truth).

    A hold step says its target in its STEP_STARTED event's ``target_height_m``.
    """
    errors = []
    for s, e in _step_spans(m, ("hold",)):
        target = s.data.get("target_height_m")
        if target is None:
            continue
        errors += [abs(-r["down"] - float(target)) for r in m.samples
                   if s.t <= r["t"] <= e.t and "down" in r]
    return {"height_error_p90_m": round(percentile(errors, 0.9), 4) if errors else None}
