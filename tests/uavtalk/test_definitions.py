"""Definitions: XML reading, ids, wire order, and the built-in set against the XML."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipilot.uavtalk import DefinitionError, Registry, load_definitions
from pipilot.uavtalk.definitions import (
    FieldDef,
    ObjectInfo,
    UnknownObjectError,
    dump_builtin,
    info_to_json,
    object_id,
    read_xml_dir,
)

PIPILOT_OBJECTS = [
    "AttitudeState", "AccelState", "GyroState", "FlightStatus", "FlightTelemetryStats",
    "GCSTelemetryStats", "ManualControlCommand", "ReceiverActivity", "SystemAlarms",
    "SystemStats", "StabilizationDesired", "ActuatorDesired", "ActuatorCommand",
    "FlightModeSettings", "ManualControlSettings", "HwSettings",
]


def test_known_ids_from_the_notes(registry: Registry) -> None:
    assert registry["AttitudeState"].object_id == 0xD7E0D964
    assert registry["FlightStatus"].object_id == 0x24D25E28
    gcs = registry["GCSTelemetryStats"]
    assert gcs.object_id == 0xCAD1DC0A
    assert gcs.size == 37
    assert gcs.fields[-1].name == "Status"


def test_registry_lookup(registry: Registry) -> None:
    att = registry.by_id(0xD7E0D964)
    assert att is registry["AttitudeState"]
    assert att.single_instance and not att.is_settings
    assert registry["HwSettings"].is_settings
    meta = registry.by_id(0xD7E0D964 + 1)
    assert meta.name == "AttitudeStateMeta" and meta.size == 8
    assert registry["AttitudeStateMeta"] is meta
    with pytest.raises(UnknownObjectError, match="NoSuchObject") as unknown:
        registry["NoSuchObject"]
    assert isinstance(unknown.value, KeyError)
    assert str(unknown.value) == "unknown UAVObject 'NoSuchObject'"
    with pytest.raises(UnknownObjectError, match="0x00000002"):
        registry.by_id(2)
    assert registry.get_by_id(2) is None
    assert "AttitudeState" in registry and "AttitudeStateMeta" in registry
    assert set(PIPILOT_OBJECTS) <= set(registry)


def test_wire_order_is_stable_size_sort(registry: Registry) -> None:
    for obj in registry.objects():
        sizes = [f.element_size for f in obj.fields]
        assert sizes == sorted(sizes, reverse=True), obj.name
        assert obj.size == sum(f.size for f in obj.fields)
    # XML order breaks ties: GCSTelemetryStats lists Status first, floats/uint32 keep order.
    names = [f.name for f in registry["GCSTelemetryStats"].fields]
    assert names[:3] == ["TxDataRate", "TxBytes", "TxFailures"]


def _reference_hash(info: ObjectInfo) -> int:
    """The generator's algorithm restated independently (bytes as signed chars)."""

    def step(h: int, v: int) -> int:
        return (h ^ ((h << 5) + (h >> 2) + v)) % 2**32

    def text(h: int, s: str) -> int:
        for ch in s.encode("latin-1"):
            h = step(h, ch if ch < 128 else ch + 2**32 - 256)
        return h

    types = ["int8", "int16", "int32", "uint8", "uint16", "uint32", "float", "enum"]
    h = text(0, info.name)
    h = step(h, 1 if info.is_settings else 0)
    h = step(h, 1 if info.single_instance else 0)
    for f in info.fields:
        h = step(text(h, f.name), f.count)
        h = step(h, types.index(f.type))
        for o in f.options if f.type == "enum" else ():
            h = text(h, o)
    return h - (h % 2)


def test_every_xml_id_follows_the_generator(xml_dir: Path) -> None:
    infos = read_xml_dir(xml_dir)
    assert len(infos) == len(list(xml_dir.glob("*.xml")))
    for info in infos:
        assert object_id(info) == _reference_hash(info), info.name
    ids = [object_id(i) for i in infos]
    assert len(set(ids)) == len(ids)


def test_builtin_set_is_identical_to_the_xml(xml_registry: Registry, registry: Registry) -> None:
    assert set(PIPILOT_OBJECTS) <= set(registry)
    assert sorted(registry) == sorted(xml_registry)
    for name in xml_registry:
        a, b = xml_registry[name], registry[name]
        # ids, layouts, enums, defaults, units, metadata: the whole definition.
        assert a.info == b.info, name
        assert a.object_id == b.object_id and a.size == b.size
        assert a.struct.format == b.struct.format
        assert a.defaults() == b.defaults()
        assert a.info.telemetry_flight == b.info.telemetry_flight


def test_builtin_file_is_regenerated_output(xml_dir: Path) -> None:
    """The committed file is exactly what the generator makes from the XML."""
    committed = (Path(__file__).parents[2] / "pipilot/uavtalk/builtin.json").read_text()
    assert committed == dump_builtin(read_xml_dir(xml_dir))


def test_field_details(registry: Registry) -> None:
    fs = {f.name: f for f in registry["FlightStatus"].fields}
    assert fs["Armed"].options == ("Disarmed", "Arming", "Armed")
    assert fs["ControlChain"].element_names == ("Stabilization", "PathFollower", "PathPlanner")
    mixer = {f.name: f for f in registry["MixerSettings"].fields}
    # cloneof copies type, elements, options and defaults under a new name
    assert mixer["Mixer2Type"].options == mixer["Mixer1Type"].options
    assert mixer["Mixer2Vector"].count == mixer["Mixer1Vector"].count
    assert mixer["Mixer2Vector"].element_names == mixer["Mixer1Vector"].element_names
    # options given as child elements
    assert mixer["Curve2Source"].options[:3] == ("Throttle", "Roll", "Pitch")
    # numeric element names are names, not indices
    assert mixer["ThrottleCurve1"].element_names == ("0", "25", "50", "75", "100")
    att = registry["AttitudeState"].info
    assert att.telemetry_flight.update_mode == "periodic"
    assert att.telemetry_flight.period_ms == 130
    assert registry["AttitudeState"].fields[4].units == "degrees"


def _write(tmp: Path, body: str) -> Path:
    (tmp / "x.xml").write_text(f"<xml>{body}</xml>")
    return tmp


OBJ = """<object name="{name}" singleinstance="true" settings="{settings}" category="T">
<description>d</description>{fields}
<access gcs="readwrite" flight="readonly"/>
<telemetrygcs acked="true" updatemode="onchange" period="0"/>
<telemetryflight acked="false" updatemode="throttled" period="250"/>
<logging updatemode="periodic" period="1000"/></object>"""


def test_xml_variants(tmp_path: Path) -> None:
    fields = """
<field name="A" units="" type="uint8" elements="1" defaultvalue="3"/>
<field name="B" units="m" type="float" elementnames="X,Y" defaultvalue="1.5"/>
<field name="C" units="" type="enum" defaultvalue="Two,One">
  <elementnames><elementname>P</elementname><elementname>Q</elementname></elementnames>
  <options><option>One</option><option>Two</option></options>
</field>
<field name="D" units="" cloneof="C"/>
<field name="E" units="" type="int16" elements="3" defaultvalue="0.0"/>"""
    reg = load_definitions(_write(tmp_path, OBJ.format(name="Thing", settings="true",
                                                        fields=fields)))
    thing = reg["Thing"]
    assert [f.name for f in thing.fields] == ["B", "E", "A", "C", "D"]
    assert thing.size == 8 + 6 + 1 + 2 + 2
    assert thing.defaults() == {
        "A": 3, "B": {"X": 1.5, "Y": 1.5}, "C": {"P": "Two", "Q": "One"},
        "D": {"P": "Two", "Q": "One"}, "E": [0, 0, 0],
    }
    info = thing.info
    assert info.flight_access == "readonly" and info.telemetry_gcs.acked
    assert info.logging.update_mode == "periodic" and info.logging.period_ms == 1000
    assert info_to_json(info)["id"] == f"0x{thing.object_id:08X}"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ('<field name="A" units="" type="float"/>', "elements"),
        ('<field name="A" units="" type="double" elements="1" defaultvalue="0"/>', "type"),
        ('<field name="A" units="" type="enum" elements="1" defaultvalue="x"/>', "options"),
        ('<field name="A" units="" type="uint8" elements="2" defaultvalue="1,2,3"/>', "default"),
        ('<field name="A" units="" type="uint8" elements="1"/>', "defaultvalue"),
        ('<field name="A" units="" cloneof="Nope"/>', "cloneof"),
        ('<field name="A" type="uint8" elements="1" defaultvalue="0"/>', "units"),
        ('<field name="A" units="" type="enum" elements="1" options="a,b" defaultvalue="c"/>',
         "not an option"),
    ],
)
def test_xml_errors_are_clear(tmp_path: Path, fields: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        load_definitions(_write(tmp_path, OBJ.format(name="Bad", settings="true", fields=fields)))


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="not a directory"):
        load_definitions(tmp_path / "absent")
    with pytest.raises(DefinitionError, match="no UAVObject definitions"):
        load_definitions(tmp_path)


def test_id_clash_is_refused() -> None:
    f = (FieldDef("A", "uint8", 1),)
    a = ObjectInfo("Same", True, False, f)
    from pipilot.uavtalk.definitions import registry_from_infos

    with pytest.raises(DefinitionError, match="twice"):
        registry_from_infos([a, a])
