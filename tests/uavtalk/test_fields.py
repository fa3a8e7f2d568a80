"""The enum lists pipilot reads by name come from the firmware's definitions."""

from __future__ import annotations

import enum

import pytest

from pipilot.sim.manual import Armed
from pipilot.uavtalk.fields import (
    ALARM_ELEMENTS,
    ALARM_LEVELS,
    ARMED_OPTIONS,
    enum_name,
    field_def,
)


def test_the_lists_are_the_firmwares() -> None:
    assert ARMED_OPTIONS == ("Disarmed", "Arming", "Armed")
    assert ALARM_LEVELS == ("Uninitialised", "OK", "Warning", "Critical", "Error")
    assert len(ALARM_ELEMENTS) == 21 and ALARM_ELEMENTS[7] == "Receiver"
    assert ALARM_ELEMENTS[0] == "SystemConfiguration" and ALARM_ELEMENTS[-1] == "GPS"


def test_the_simulated_fc_reports_the_same_armed_options() -> None:
    assert tuple(a.value for a in Armed) == ARMED_OPTIONS


def test_enum_name_takes_names_indices_and_enum_members() -> None:
    class Level(enum.Enum):
        Critical = 3

    assert enum_name("Armed", ARMED_OPTIONS) == "Armed"
    assert enum_name(2, ARMED_OPTIONS) == "Armed"
    assert enum_name(Level.Critical, ALARM_LEVELS) == "Critical"
    assert enum_name(3, ARMED_OPTIONS) is None
    assert enum_name(-1, ARMED_OPTIONS) is None
    assert enum_name(None, ARMED_OPTIONS) is None


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(KeyError):
        field_def("FlightStatus", "NoSuchField")
