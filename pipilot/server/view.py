"""Turn the vehicle's telemetry into what the page shows (and /api/status returns)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pipilot.server.cockpit import Cockpit
from pipilot.server.port import VehiclePort


def _clean(v: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, nested containers copied."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Mapping):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if isinstance(v, str | int | bool) or v is None:
        return v
    if hasattr(v, "name"):  # enums
        return str(v.name)
    if hasattr(v, "tolist"):  # numpy
        return _clean(v.tolist())
    return str(v)


def _obj(port: VehiclePort, name: str, keys: tuple[str, ...]) -> dict[str, Any] | None:
    got = port.latest(name)
    if got is None:
        return None
    values, age = got
    out = {k: _clean(values.get(k)) for k in keys if k in values}
    out["age"] = round(float(age), 3)
    return out


def armed_state(port: VehiclePort) -> str | None:
    got = port.latest("FlightStatus")
    if got is None:
        return None
    armed = got[0].get("Armed")
    return None if armed is None else str(_clean(armed))


def alarms(port: VehiclePort) -> dict[str, str] | None:
    """SystemAlarms elements that are not OK (Uninitialised counts as not reported)."""
    got = port.latest("SystemAlarms")
    if got is None:
        return None
    alarm = got[0].get("Alarm")
    if not isinstance(alarm, Mapping):
        return {}
    return {str(k): str(_clean(v)) for k, v in alarm.items()
            if str(_clean(v)) not in ("OK", "Uninitialised")}


def telemetry_link(port: VehiclePort) -> dict[str, Any]:
    """The telemetry link as the page shows it: see `VehiclePort.telemetry_link`."""
    link = port.telemetry_link()
    age = link.get("age_s")
    return {
        "configured": bool(link.get("configured")),
        "connected": bool(link.get("connected")),
        "was_connected": bool(link.get("was_connected")),
        "age": None if age is None or not math.isfinite(age) else round(float(age), 2),
    }


def hold(port: VehiclePort) -> dict[str, Any] | None:
    """The hold's status (`HoldStatus.as_json`), None when the vehicle has no hold."""
    st = port.hold_status()
    return None if st is None else st.as_json()


def hold_truth(port: VehiclePort) -> dict[str, Any] | None:
    """In the simulator, the true height (altitude), climb rate, horizontal velocity
    and position (north, east) to show beside the hold's estimate; None on a real craft."""
    t = port.truth_snapshot()
    if t is None:
        return None

    def r(x: float) -> float | None:
        return round(float(x), 4) if math.isfinite(x) else None

    return {"height_m": r(-t.position[2]), "climb_mps": r(-t.velocity[2]),
            "velocity_mps": [r(t.velocity[0]), r(t.velocity[1])],
            "speed_mps": r(math.hypot(t.velocity[0], t.velocity[1])),
            "position_m": [r(t.position[0]), r(t.position[1])]}


def build_state(port: VehiclePort, cockpit: Cockpit, clients: int) -> dict[str, Any]:
    """One live-view update, shared by every page."""
    return {
        "t": round(port.now(), 4),
        "telemetry_connected": bool(port.telemetry_connected),
        "telemetry_link": telemetry_link(port),
        "attitude": _obj(port, "AttitudeState", ("Roll", "Pitch", "Yaw")),
        "flight": _obj(port, "FlightStatus", ("Armed", "FlightMode")),
        "receiver": _obj(port, "ManualControlCommand",
                         ("Connected", "Throttle", "Roll", "Pitch", "Yaw", "Channel")),
        "alarms": alarms(port),
        "fc_link": _obj(port, "FlightTelemetryStats",
                        ("Status", "RxDataRate", "TxDataRate", "RxCrcErrors")),
        "sbus": _clean(dict(port.link_stats())),
        "sim": _clean(port.sim_truth()),
        "hold": hold(port),
        "hold_truth": hold_truth(port),
        "seat": {
            "state": cockpit.state.value,
            "occupied": cockpit.holder is not None,
            "arm": cockpit.arm.value,
            "arm_result": cockpit.arm_result,
            "hold": cockpit.hold_view(),
        },
        "clients": clients,
    }


def status(port: VehiclePort, cockpit: Cockpit) -> dict[str, Any]:
    """GET /api/status: the few facts a script or a monitor wants."""
    armed = armed_state(port)
    mcc = port.latest("ManualControlCommand")
    mode = port.latest("FlightStatus")
    return {
        "armed": armed == "Armed",
        "arming_state": armed,
        "throttle": None if mcc is None else _clean(mcc[0].get("Throttle")),
        "flight_mode": None if mode is None else _clean(mode[0].get("FlightMode")),
        "telemetry_connected": bool(port.telemetry_connected),
        "telemetry_link": telemetry_link(port),
        "pilot": cockpit.state.value,
        "sbus": _clean(dict(port.link_stats())),
        "hold": hold(port),
        "hold_truth": hold_truth(port),
        "pilot_hold": cockpit.hold_view(),
    }
