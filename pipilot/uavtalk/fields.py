"""Enum options and element names of the UAVObject fields pipilot reads by name.

Taken from the built-in definitions (the firmware's own XML), so that the
mission monitors, the drift loop and the simulator share one list each.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipilot.uavtalk.definitions import FieldDef, load_definitions


def field_def(obj: str, name: str) -> FieldDef:
    """The built-in definition of field `name` of object `obj`."""
    fields: tuple[FieldDef, ...] = getattr(load_definitions()[obj], "fields", ())
    for f in fields:
        if f.name == name:
            return f
    raise KeyError(f"{obj} has no field {name}")


def _options(obj: str, name: str) -> tuple[str, ...]:
    options = field_def(obj, name).options
    if options is None:
        raise KeyError(f"{obj}.{name} is not an enum")
    return options


#: FlightStatus.Armed: "Disarmed", "Arming", "Armed".
ARMED_OPTIONS = _options("FlightStatus", "Armed")
#: SystemAlarms.Alarm levels, least severe first ("Uninitialised", "OK", ... "Error").
ALARM_LEVELS = _options("SystemAlarms", "Alarm")
#: SystemAlarms.Alarm element names, in wire order.
ALARM_ELEMENTS: tuple[str, ...] = field_def("SystemAlarms", "Alarm").names


def enum_name(value: object, options: Sequence[str]) -> str | None:
    """An enum field as its option name, whether telemetry gives a name or an index."""
    if isinstance(value, str):
        return value
    if hasattr(value, "name") and not isinstance(value, int | float):
        return str(value.name)
    if isinstance(value, int) and 0 <= value < len(options):
        return options[value]
    return None
