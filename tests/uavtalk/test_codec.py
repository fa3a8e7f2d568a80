"""Object codecs: every 16.09 object round-trips; construct layouts agree; validation."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipilot.uavtalk import DecodeError, Registry, UAVObjectValueError, load_definitions

from .strategies import object_values


@pytest.mark.parametrize("name", sorted(load_definitions()))
def test_every_object_round_trips(registry: Registry, name: str) -> None:
    obj = registry[name]

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(object_values(obj))
    def run(values: dict) -> None:
        raw = obj.encode(values)
        assert len(raw) == obj.size
        assert obj.decode(raw) == values
        assert obj.encode(obj.decode(raw)) == raw

    run()


def test_each_object_round_trips_its_defaults(registry: Registry) -> None:
    for obj in registry.objects():
        d = obj.defaults()
        assert obj.decode(obj.encode(d)) == d, obj.name


def _normalise(obj, parsed) -> dict:  # type: ignore[no-untyped-def]
    """Shape a construct parse result like our decode (enums as strings, names as dicts)."""
    out = {}
    for f in obj.fields:
        v = parsed[f.name]
        items = list(v) if f.count > 1 else [v]
        items = [str(x) if f.type == "enum" else x for x in items]
        if f.element_names is not None:
            out[f.name] = dict(zip(f.element_names, items, strict=True))
        elif f.count == 1:
            out[f.name] = items[0]
        else:
            out[f.name] = items
    return out


def test_fast_path_agrees_with_construct_layout(registry: Registry) -> None:
    """The struct fast path and the construct layout (plain and compiled) read alike."""
    objs = registry.objects()

    @settings(max_examples=3 * len(objs), deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def run(data: st.DataObject) -> None:
        obj = data.draw(st.sampled_from(objs))
        values = data.draw(object_values(obj))
        raw = obj.encode(values)
        assert obj.layout.sizeof() == obj.size
        assert _normalise(obj, obj.layout.parse(raw)) == values
        assert obj.layout.build(obj.layout.parse(raw)) == raw

    run()
    for name in ("AttitudeState", "FlightStatus", "GCSTelemetryStats"):
        obj = registry[name]
        raw = obj.encode(obj.defaults())
        assert _normalise(obj, obj.compiled_layout.parse(raw)) == obj.decode(raw)
        assert obj.compiled_layout.build(obj.compiled_layout.parse(raw)) == raw


def test_attitude_state_layout(registry: Registry) -> None:
    att = registry["AttitudeState"]
    raw = struct.pack("<7f", 1, 0, 0, 0, 10.5, -20.25, 180)
    assert att.decode(raw) == {"q1": 1, "q2": 0, "q3": 0, "q4": 0,
                               "Roll": 10.5, "Pitch": -20.25, "Yaw": 180}


def test_unknown_enum_byte_decodes_as_int(registry: Registry) -> None:
    fs = registry["FlightStatus"]
    raw = bytearray(fs.encode(fs.defaults()))
    armed_at = [f.name for f in fs.fields].index("Armed")
    raw[armed_at] = 200
    assert fs.decode(bytes(raw))["Armed"] == 200


def test_decode_wrong_size(registry: Registry) -> None:
    with pytest.raises(DecodeError, match="AttitudeState: 27 bytes"):
        registry["AttitudeState"].decode(bytes(27))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Armed": "Flying"}, r"FlightStatus\.Armed: 'Flying' is not one of Disarmed"),
        ({"Armed": 7}, r"FlightStatus\.Armed: option index 7 out of range"),
        ({"Armed": 1.5}, r"FlightStatus\.Armed: expected an option name"),
        ({"ControlChain": {"Stabilization": "True"}}, r"ControlChain\.PathFollower: missing"),
        ({"ControlChain": {"Stabilization": "True", "PathFollower": "False",
                           "PathPlanner": "False", "Extra": "True"}}, r"unknown element"),
        ({"ControlChain": ["True", "False"]}, r"ControlChain: expected 3 elements, got 2"),
        ({"Bogus": 1}, r"FlightStatus: unknown field\(s\) Bogus"),
    ],
)
def test_encode_errors_name_the_field(registry: Registry, change: dict, message: str) -> None:
    fs = registry["FlightStatus"]
    values = fs.defaults() | change
    with pytest.raises(UAVObjectValueError, match=message):
        fs.encode(values)


def test_encode_numeric_checks(registry: Registry) -> None:
    att = registry["AttitudeState"]
    base = att.defaults()
    for bad, msg in [(math.nan, "finite"), (1e39, "finite"), ("1", "number"), (True, "number")]:
        with pytest.raises(UAVObjectValueError, match=f"AttitudeState.Roll: .*{msg}"):
            att.encode(base | {"Roll": bad})
    missing = dict(base)
    del missing["Yaw"]
    with pytest.raises(UAVObjectValueError, match=r"AttitudeState\.Yaw: missing"):
        att.encode(missing)
    stats = registry["SystemStats"]
    sbase = stats.defaults()
    with pytest.raises(UAVObjectValueError, match=r"SystemStats\.FlightTime: -1 out of range"):
        stats.encode(sbase | {"FlightTime": -1})
    with pytest.raises(UAVObjectValueError, match=r"SystemStats\.FlightTime: expected an integer"):
        stats.encode(sbase | {"FlightTime": 2.5})
    assert stats.decode(stats.encode(sbase | {"FlightTime": 7.0}))["FlightTime"] == 7
    # enums by index, lists for named elements
    fs = registry["FlightStatus"]
    v = fs.decode(fs.encode(fs.defaults() | {"Armed": 2, "ControlChain": [1, 0, 1]}))
    assert v["Armed"] == "Armed"
    assert v["ControlChain"] == {"Stabilization": "True", "PathFollower": "False",
                                 "PathPlanner": "True"}


def test_metaobject_codec(registry: Registry) -> None:
    meta = registry["AttitudeStateMeta"]
    d = meta.defaults()
    assert d["telemetry_update_mode"] == "periodic" and d["telemetry_period_ms"] == 130
    raw = meta.encode(d)
    assert len(raw) == 8
    flags = struct.unpack("<H", raw[:2])[0]
    assert (flags >> 4) & 3 == 1  # periodic
    assert meta.decode(raw) == d
    with pytest.raises(UAVObjectValueError, match="telemetry_update_mode"):
        meta.encode(d | {"telemetry_update_mode": "sometimes"})
    with pytest.raises(UAVObjectValueError, match="logging_period_ms"):
        meta.encode(d | {"logging_period_ms": 70000})
