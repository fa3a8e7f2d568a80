"""UAVObject definitions: the data model, the XML reader and the registry.

The firmware's generator (uavobjgenerator) is the reference: fields are put in
wire order by a stable sort on element size (largest first) and the object id
is its shift-add-xor hash over name, flags and fields. Both are reproduced
here so that definitions read from XML and the built-in set agree with the
firmware byte for byte.
"""

from __future__ import annotations

import functools
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from pipilot.errors import PipilotError

if TYPE_CHECKING:
    from pipilot.uavtalk.codec import MetaObjectDef, ObjectDef

    AnyDef: TypeAlias = "ObjectDef | MetaObjectDef"

#: Field type names in the generator's index order (the index feeds the id hash).
FIELD_TYPES: tuple[str, ...] = (
    "int8", "int16", "int32", "uint8", "uint16", "uint32", "float", "enum",
)
TYPE_SIZES: dict[str, int] = {
    "int8": 1, "int16": 2, "int32": 4, "uint8": 1, "uint16": 2, "uint32": 4,
    "float": 4, "enum": 1,
}
UPDATE_MODES: tuple[str, ...] = ("manual", "periodic", "onchange", "throttled")
ACCESS_MODES: tuple[str, ...] = ("readwrite", "readonly")

BUILTIN_FORMAT = "pipilot-uavobjects/1"


class DefinitionError(PipilotError):
    """A definition file is malformed or inconsistent."""


class UnknownObjectError(PipilotError, KeyError):
    """A UAVObject name or id the registry does not know (a KeyError too)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class FieldDef:
    """One field of an object, as laid out on the wire."""

    name: str
    type: str
    count: int
    #: Element names when the XML named them, else None (elements are "0".."n-1").
    element_names: tuple[str, ...] | None = None
    options: tuple[str, ...] | None = None
    units: str = ""
    #: One default per element (option strings for enums); empty when none given.
    defaults: tuple[Any, ...] = ()
    limits: str | None = None

    @property
    def type_index(self) -> int:
        return FIELD_TYPES.index(self.type)

    @property
    def element_size(self) -> int:
        return TYPE_SIZES[self.type]

    @property
    def size(self) -> int:
        return self.element_size * self.count

    @property
    def names(self) -> tuple[str, ...]:
        """Element names as the generator sees them ("0", "1", ... when unnamed)."""
        return self.element_names or tuple(str(i) for i in range(self.count))


@dataclass(frozen=True)
class Telemetry:
    """Update policy of one side (telemetrygcs, telemetryflight, logging)."""

    update_mode: str = "manual"
    period_ms: int = 0
    acked: bool = False


@dataclass(frozen=True)
class ObjectInfo:
    """An object definition as written in XML or the built-in set."""

    name: str
    single_instance: bool
    is_settings: bool
    fields: tuple[FieldDef, ...]
    category: str = ""
    priority: bool = False
    gcs_access: str = "readwrite"
    flight_access: str = "readwrite"
    telemetry_gcs: Telemetry = field(default_factory=Telemetry)
    telemetry_flight: Telemetry = field(default_factory=Telemetry)
    logging: Telemetry = field(default_factory=Telemetry)


def _hash_step(h: int, value: int) -> int:
    return (h ^ ((h << 5) + (h >> 2) + value)) & 0xFFFFFFFF


def _hash_str(h: int, text: str) -> int:
    # The generator feeds each Latin-1 byte as a (signed) char widened to 32 bits.
    for b in text.encode("latin-1"):
        h = _hash_step(h, b if b < 0x80 else (b - 0x100) & 0xFFFFFFFF)
    return h


def object_id(info: ObjectInfo) -> int:
    """The object id exactly as uavobjgenerator computes it (fields in wire order)."""
    h = _hash_str(0, info.name)
    h = _hash_step(h, int(info.is_settings))
    h = _hash_step(h, int(info.single_instance))
    for f in info.fields:
        h = _hash_str(h, f.name)
        h = _hash_step(h, f.count)
        h = _hash_step(h, f.type_index)
        if f.type == "enum":
            for opt in f.options or ():
                h = _hash_str(h, opt)
    return h & 0xFFFFFFFE


def wire_order(fields: Iterable[FieldDef]) -> tuple[FieldDef, ...]:
    """Stable sort by element size, largest first, as the generator does."""
    return tuple(sorted(fields, key=lambda f: -f.element_size))


# --------------------------------------------------------------------------- XML


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p != ""]


def _child_texts(elem: ET.Element, list_tag: str, item_tag: str) -> list[str]:
    lst = elem.find(list_tag)
    if lst is None:
        return []
    return [item.text for item in lst.findall(item_tag) if item.text]


def _parse_default(ftype: str, text: str, where: str) -> Any:
    if ftype == "enum":
        return text
    try:
        if ftype == "float":
            return float(text)
        try:
            return int(text, 10)
        except ValueError:
            return int(float(text))
    except ValueError:
        raise DefinitionError(f"{where}: bad default value {text!r}") from None


def _parse_field(elem: ET.Element, done: list[FieldDef], is_settings: bool, obj: str) -> FieldDef:
    name = elem.get("name")
    if not name:
        raise DefinitionError(f"{obj}: field without a name")
    where = f"{obj}.{name}"
    clone = elem.get("cloneof")
    if clone is not None:
        for parent in done:
            if parent.name == clone:
                return FieldDef(
                    name, parent.type, parent.count, parent.element_names, parent.options,
                    parent.units, parent.defaults, parent.limits,
                )
        raise DefinitionError(f"{where}: cloneof names unknown field {clone!r}")
    ftype = elem.get("type")
    if ftype not in TYPE_SIZES:
        raise DefinitionError(f"{where}: bad or missing type {ftype!r}")
    units = elem.get("units")
    if units is None:
        raise DefinitionError(f"{where}: units attribute is missing")
    attr = elem.get("elementnames")
    names = _split(attr) if attr is not None else _child_texts(elem, "elementnames", "elementname")
    element_names: tuple[str, ...] | None = tuple(names) if names else None
    if names:
        count = len(names)
    else:
        if elem.get("elements") is None:
            raise DefinitionError(f"{where}: neither elements nor elementnames given")
        count = int(elem.get("elements", "0"))
    if count < 1:
        raise DefinitionError(f"{where}: needs at least one element")
    options: tuple[str, ...] | None = None
    if ftype == "enum":
        attr = elem.get("options")
        opts = _split(attr) if attr is not None else _child_texts(elem, "options", "option")
        if not opts:
            raise DefinitionError(f"{where}: enum without options")
        if len(opts) > 256:
            raise DefinitionError(f"{where}: more than 256 options")
        options = tuple(opts)
    defaults: tuple[Any, ...] = ()
    attr = elem.get("defaultvalue")
    if attr is None:
        if is_settings:
            raise DefinitionError(f"{where}: settings fields need a defaultvalue")
    else:
        vals = _split(attr)
        if len(vals) != count:
            if len(vals) != 1:
                raise DefinitionError(f"{where}: {len(vals)} default values for {count} elements")
            vals = vals * count
        defaults = tuple(_parse_default(ftype, v, where) for v in vals)
        if options is not None:
            for d in defaults:
                if d not in options:
                    raise DefinitionError(f"{where}: default {d!r} is not an option")
    return FieldDef(name, ftype, count, element_names, options, units, defaults,
                    elem.get("limits"))


def _bool_attr(elem: ET.Element, key: str, where: str, default: bool | None = None) -> bool:
    val = elem.get(key)
    if val is None and default is not None:
        return default
    if val not in ("true", "false"):
        raise DefinitionError(f"{where}: attribute {key} must be true or false, not {val!r}")
    return val == "true"


def _telemetry(elem: ET.Element | None, where: str, acked: bool = True) -> Telemetry:
    if elem is None:
        raise DefinitionError(f"{where} element is missing")
    mode = elem.get("updatemode")
    if mode not in UPDATE_MODES:
        raise DefinitionError(f"{where}: bad updatemode {mode!r}")
    try:
        period = int(elem.get("period", ""))
    except ValueError:
        raise DefinitionError(f"{where}: bad or missing period") from None
    return Telemetry(mode, period, _bool_attr(elem, "acked", where) if acked else False)


def parse_object_xml(elem: ET.Element) -> ObjectInfo:
    """One ``<object>`` element to an ObjectInfo (fields in wire order)."""
    name = elem.get("name")
    if not name:
        raise DefinitionError("object without a name")
    single = _bool_attr(elem, "singleinstance", name)
    settings = _bool_attr(elem, "settings", name)
    if settings and not single:
        raise DefinitionError(f"{name}: settings objects must be single instance")
    fields: list[FieldDef] = []
    for f in elem.findall("field"):
        fields.append(_parse_field(f, fields, settings, name))
    if not fields:
        raise DefinitionError(f"{name}: no fields")
    access = elem.find("access")
    if access is None:
        raise DefinitionError(f"{name}: access element is missing")
    gcs_access, flight_access = access.get("gcs"), access.get("flight")
    if gcs_access not in ACCESS_MODES or flight_access not in ACCESS_MODES:
        raise DefinitionError(f"{name}: bad access modes")
    return ObjectInfo(
        name=name,
        single_instance=single,
        is_settings=settings,
        fields=wire_order(fields),
        category=elem.get("category", ""),
        priority=_bool_attr(elem, "priority", name, default=False),
        gcs_access=gcs_access,
        flight_access=flight_access,
        telemetry_gcs=_telemetry(elem.find("telemetrygcs"), f"{name}.telemetrygcs"),
        telemetry_flight=_telemetry(elem.find("telemetryflight"), f"{name}.telemetryflight"),
        logging=_telemetry(elem.find("logging"), f"{name}.logging", acked=False),
    )


def read_xml_dir(path: str | Path) -> list[ObjectInfo]:
    """Every object of every ``*.xml`` file in a directory, sorted by name."""
    root = Path(path)
    if not root.is_dir():
        raise DefinitionError(f"{root}: not a directory of UAVObject XML files")
    infos: list[ObjectInfo] = []
    for xml_file in sorted(root.glob("*.xml")):
        try:
            doc = ET.parse(xml_file).getroot()
        except ET.ParseError as exc:
            raise DefinitionError(f"{xml_file}: {exc}") from None
        infos.extend(parse_object_xml(obj) for obj in doc.findall("object"))
    if not infos:
        raise DefinitionError(f"{root}: no UAVObject definitions found")
    return sorted(infos, key=lambda i: i.name)


# ------------------------------------------------------------- built-in format


def _telemetry_to_json(t: Telemetry, acked: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"update_mode": t.update_mode, "period_ms": t.period_ms}
    if acked:
        out["acked"] = t.acked
    return out


def info_to_json(info: ObjectInfo) -> dict[str, Any]:
    """The project's own representation of one definition (see builtin.json)."""
    fields = []
    for f in info.fields:
        d: dict[str, Any] = {"name": f.name, "type": f.type, "count": f.count}
        if f.element_names is not None:
            d["element_names"] = list(f.element_names)
        if f.options is not None:
            d["options"] = list(f.options)
        d["units"] = f.units
        if f.defaults:
            d["defaults"] = list(f.defaults)
        if f.limits is not None:
            d["limits"] = f.limits
        fields.append(d)
    return {
        "name": info.name,
        "id": f"0x{object_id(info):08X}",
        "single_instance": info.single_instance,
        "settings": info.is_settings,
        "category": info.category,
        "priority": info.priority,
        "access": {"gcs": info.gcs_access, "flight": info.flight_access},
        "telemetry_gcs": _telemetry_to_json(info.telemetry_gcs),
        "telemetry_flight": _telemetry_to_json(info.telemetry_flight),
        "logging": _telemetry_to_json(info.logging, acked=False),
        "fields": fields,
    }


def info_from_json(d: Mapping[str, Any]) -> ObjectInfo:
    """Inverse of :func:`info_to_json`; checks the stored id against the hash."""
    fields = tuple(
        FieldDef(
            name=f["name"], type=f["type"], count=f["count"],
            element_names=tuple(f["element_names"]) if "element_names" in f else None,
            options=tuple(f["options"]) if "options" in f else None,
            units=f.get("units", ""), defaults=tuple(f.get("defaults", ())),
            limits=f.get("limits"),
        )
        for f in d["fields"]
    )
    if wire_order(fields) != fields:
        raise DefinitionError(f"{d['name']}: fields are not in wire order")
    info = ObjectInfo(
        name=d["name"], single_instance=d["single_instance"], is_settings=d["settings"],
        fields=fields, category=d.get("category", ""), priority=d.get("priority", False),
        gcs_access=d["access"]["gcs"], flight_access=d["access"]["flight"],
        telemetry_gcs=Telemetry(**d["telemetry_gcs"]),
        telemetry_flight=Telemetry(**d["telemetry_flight"]),
        logging=Telemetry(**d["logging"]),
    )
    if int(d["id"], 16) != object_id(info):
        raise DefinitionError(f"{info.name}: stored id {d['id']} does not match its layout")
    return info


def dump_builtin(infos: Iterable[ObjectInfo]) -> str:
    """Serialise definitions to the built-in JSON format (stable, diff-friendly)."""
    doc = {
        "format": BUILTIN_FORMAT,
        "source": "LibrePilot 16.09 uavobjectdefinition",
        "objects": [info_to_json(i) for i in sorted(infos, key=lambda i: i.name)],
    }
    return json.dumps(doc, indent=1, ensure_ascii=True) + "\n"


def read_builtin(text: str) -> list[ObjectInfo]:
    doc = json.loads(text)
    if doc.get("format") != BUILTIN_FORMAT:
        raise DefinitionError(f"built-in definitions: unknown format {doc.get('format')!r}")
    return [info_from_json(o) for o in doc["objects"]]


# ------------------------------------------------------------------- registry


class Registry(Mapping[str, "AnyDef"]):
    """Object definitions by name and by id; metaobjects included (``XMeta``, id+1)."""

    def __init__(self, objects: Iterable[ObjectDef]) -> None:
        from pipilot.uavtalk.codec import MetaObjectDef

        self._objects: dict[str, ObjectDef] = {}
        self._by_name: dict[str, AnyDef] = {}
        self._by_id: dict[int, AnyDef] = {}
        for obj in objects:
            if obj.name in self._objects:
                raise DefinitionError(f"{obj.name}: defined twice")
            meta = MetaObjectDef(obj)
            pair: tuple[AnyDef, AnyDef] = (obj, meta)
            for o in pair:
                if o.object_id in self._by_id:
                    other = self._by_id[o.object_id].name
                    raise DefinitionError(f"{o.name}: id 0x{o.object_id:08X} clashes with {other}")
                self._by_id[o.object_id] = o
                self._by_name[o.name] = o
            self._objects[obj.name] = obj
        #: The largest data payload of any object: bounds what a parser will buffer.
        self.largest = max((o.size for o in self._by_id.values()), default=0)
        #: object id -> data size, for the packet parser's hot path.
        self.sizes: dict[int, int] = {i: o.size for i, o in self._by_id.items()}

    def __getitem__(self, name: str) -> AnyDef:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownObjectError(f"unknown UAVObject {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        """Names of the data objects (metaobjects are reachable by name and id)."""
        return iter(self._objects)

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def by_id(self, object_id: int) -> AnyDef:
        try:
            return self._by_id[object_id]
        except KeyError:
            raise UnknownObjectError(f"unknown UAVObject id 0x{object_id:08X}") from None

    def get_by_id(self, object_id: int) -> AnyDef | None:
        return self._by_id.get(object_id)

    def objects(self) -> list[ObjectDef]:
        return list(self._objects.values())


def registry_from_infos(infos: Iterable[ObjectInfo]) -> Registry:
    from pipilot.uavtalk.codec import ObjectDef

    return Registry(ObjectDef(i) for i in infos)


@functools.lru_cache(maxsize=1)
def _builtin_registry() -> Registry:
    text = resources.files("pipilot.uavtalk").joinpath("builtin.json").read_text("ascii")
    return registry_from_infos(read_builtin(text))


def load_definitions(path: str | Path | None = None) -> Registry:
    """Definitions from a directory of LibrePilot XML files, or the built-in set."""
    if path is None:
        return _builtin_registry()
    return registry_from_infos(read_xml_dir(path))
