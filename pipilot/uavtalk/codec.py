"""Object data codecs: construct layouts, and a fast path derived from them.

Each object's wire layout is expressed as a construct ``Struct`` (``.layout``;
``.compiled_layout`` for the compiled form). Decoding is on the telemetry hot
path, so every object also gets a ``struct.Struct`` with the same format plus a
small generated function that shapes the flat tuple into the value dict; the
tests check both paths agree on every object.

Value shapes: a one-element field without element names is a scalar; a field
with element names is a dict keyed by them; other multi-element fields are
lists. Enum values decode to their option strings (an out-of-range byte
decodes to its integer so that a newer firmware cannot crash the reader).
"""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import Callable, Mapping
from typing import Any

import construct as cs

from pipilot.errors import PipilotError, ProtocolError
from pipilot.uavtalk.definitions import (
    ACCESS_MODES,
    UPDATE_MODES,
    FieldDef,
    ObjectInfo,
    object_id,
)

_STRUCT_CODES = {
    "int8": "b", "int16": "h", "int32": "i", "uint8": "B", "uint16": "H",
    "uint32": "I", "float": "f", "enum": "B",
}
_CONSTRUCT_TYPES = {
    "int8": cs.Int8sl, "int16": cs.Int16sl, "int32": cs.Int32sl, "uint8": cs.Int8ul,
    "uint16": cs.Int16ul, "uint32": cs.Int32ul, "float": cs.Float32l, "enum": cs.Int8ul,
}
_INT_RANGES = {
    "int8": (-0x80, 0x7F), "int16": (-0x8000, 0x7FFF), "int32": (-0x80000000, 0x7FFFFFFF),
    "uint8": (0, 0xFF), "uint16": (0, 0xFFFF), "uint32": (0, 0xFFFFFFFF),
}
_FLOAT32_MAX = 3.4028234663852886e38


class UAVObjectValueError(PipilotError, ValueError):
    """Values given for an object do not fit its definition; names the field."""


class DecodeError(ProtocolError):
    """Object data of the wrong size."""


def _field_construct(f: FieldDef) -> cs.Construct:
    base = _CONSTRUCT_TYPES[f.type]
    if f.type == "enum":
        base = cs.Enum(base, **{opt: i for i, opt in enumerate(f.options or ())})
    return base if f.count == 1 else cs.Array(f.count, base)


def _shape(f: FieldDef) -> str:
    if f.element_names is not None:
        return "dict"
    return "scalar" if f.count == 1 else "list"


Decoder = Callable[[bytes | bytearray | memoryview], dict[str, Any]]


def _build_decoder(info: ObjectInfo, unpack: Callable[..., tuple[Any, ...]]) -> Decoder:
    """Generate ``decode(data) -> dict`` for one layout (straight-line code, no loops)."""
    env: dict[str, Any] = {"_unpack": unpack}
    parts: list[str] = []
    i = 0
    for k, f in enumerate(info.fields):
        if f.type == "enum":
            opts = f.options or ()
            env[f"_e{k}"] = tuple(opts[b] if b < len(opts) else b for b in range(256))
            items = [f"_e{k}[v[{i + j}]]" for j in range(f.count)]
        else:
            items = [f"v[{i + j}]" for j in range(f.count)]
        shape = _shape(f)
        if shape == "scalar":
            expr = items[0]
        elif shape == "list":
            expr = "[" + ", ".join(items) + "]"
        else:
            expr = "{" + ", ".join(f"{n!r}: {x}" for n, x in zip(f.names, items, strict=True)) + "}"
        parts.append(f"{f.name!r}: {expr}")
        i += f.count
    src = "def decode(data):\n    v = _unpack(data)\n    return {" + ", ".join(parts) + "}\n"
    exec(compile(src, f"<uavobject {info.name}>", "exec"), env)
    decode: Decoder = env["decode"]  # the function the source above defines
    return decode


def _check_number(f: FieldDef, where: str, x: Any) -> int | float:
    if f.type == "float":
        if isinstance(x, bool) or not hasattr(x, "__float__"):
            raise UAVObjectValueError(f"{where}: expected a number, got {x!r}")
        v = float(x)
        if not math.isfinite(v) or abs(v) > _FLOAT32_MAX:
            raise UAVObjectValueError(f"{where}: {v!r} is not a finite float32")
        return v
    if f.type == "enum":
        opts = f.options or ()
        if isinstance(x, str):
            try:
                return opts.index(x)
            except ValueError:
                raise UAVObjectValueError(
                    f"{where}: {x!r} is not one of {', '.join(opts)}") from None
        try:
            idx = operator.index(x)
        except TypeError:
            raise UAVObjectValueError(f"{where}: expected an option name, got {x!r}") from None
        if not 0 <= idx < len(opts):
            raise UAVObjectValueError(
                f"{where}: option index {idx} out of range 0..{len(opts) - 1}")
        return idx
    try:
        iv = operator.index(x)
    except TypeError:
        if isinstance(x, float) and x.is_integer():
            iv = int(x)
        else:
            raise UAVObjectValueError(f"{where}: expected an integer, got {x!r}") from None
    lo, hi = _INT_RANGES[f.type]
    if not lo <= iv <= hi:
        raise UAVObjectValueError(f"{where}: {iv} out of range {lo}..{hi} for {f.type}")
    return iv


def _flatten(info: ObjectInfo, values: Mapping[str, Any]) -> list[int | float]:
    if not isinstance(values, Mapping):
        raise UAVObjectValueError(f"{info.name}: values must be a mapping of field names")
    unknown = set(values) - {f.name for f in info.fields}
    if unknown:
        raise UAVObjectValueError(f"{info.name}: unknown field(s) {', '.join(sorted(unknown))}")
    flat: list[int | float] = []
    for f in info.fields:
        where = f"{info.name}.{f.name}"
        if f.name not in values:
            raise UAVObjectValueError(f"{where}: missing")
        val = values[f.name]
        if isinstance(val, Mapping):
            names = f.names
            extra = set(val) - set(names)
            if extra:
                raise UAVObjectValueError(f"{where}: unknown element(s) {', '.join(sorted(extra))}")
            for n in names:
                if n not in val:
                    raise UAVObjectValueError(f"{where}.{n}: missing")
                flat.append(_check_number(f, f"{where}.{n}", val[n]))
        elif isinstance(val, (list, tuple)):
            if len(val) != f.count:
                raise UAVObjectValueError(f"{where}: expected {f.count} elements, got {len(val)}")
            flat.extend(_check_number(f, f"{where}[{j}]", x) for j, x in enumerate(val))
        elif f.count == 1:
            flat.append(_check_number(f, where, val))
        else:
            raise UAVObjectValueError(f"{where}: expected {f.count} elements, got {val!r}")
    return flat


class ObjectDef:
    """A UAVObject definition with its codec (see module docstring for value shapes)."""

    is_meta = False

    def __init__(self, info: ObjectInfo) -> None:
        self.info = info
        self.name = info.name
        self.object_id = object_id(info)
        self.single_instance = info.single_instance
        self.is_settings = info.is_settings
        self.fields = info.fields
        fmt = "<" + "".join(f"{f.count}{_STRUCT_CODES[f.type]}" for f in info.fields)
        self.struct = struct.Struct(fmt)
        self.size = self.struct.size
        self._pack = self.struct.pack
        self.decode_unchecked = _build_decoder(info, self.struct.unpack)
        self._layout: cs.Struct | None = None
        self._compiled: Any = None

    def __repr__(self) -> str:
        return f"<ObjectDef {self.name} 0x{self.object_id:08X} {self.size} bytes>"

    @property
    def layout(self) -> cs.Struct:
        """The wire layout as a construct Struct (field names in wire order)."""
        if self._layout is None:
            self._layout = cs.Struct(*(f.name / _field_construct(f) for f in self.fields))
        return self._layout

    @property
    def compiled_layout(self) -> Any:
        if self._compiled is None:
            self._compiled = self.layout.compile()
        return self._compiled

    def decode(self, data: bytes | bytearray | memoryview) -> dict[str, Any]:
        """Object data (exactly ``size`` bytes) to a value dict."""
        if len(data) != self.size:
            raise DecodeError(f"{self.name}: {len(data)} bytes of data, expected {self.size}")
        return self.decode_unchecked(data)

    def encode(self, values: Mapping[str, Any]) -> bytes:
        """A complete value dict to object data; raises UAVObjectValueError naming the field."""
        return self._pack(*_flatten(self.info, values))

    def defaults(self) -> dict[str, Any]:
        """The default values of the definition (zero where the XML gives none)."""
        flat: list[int | float] = []
        for f in self.fields:
            if f.defaults:
                flat.extend(_check_number(f, f"{self.name}.{f.name}", d) for d in f.defaults)
            else:
                flat.extend([0] * f.count)
        return self.decode_unchecked(self._pack(*flat))


_META_STRUCT = struct.Struct("<4H")


class MetaObjectDef:
    """The metaobject of an object: id + 1, 8 bytes of flags and update periods."""

    is_meta = True
    single_instance = True
    is_settings = False
    size = _META_STRUCT.size
    fields = ()

    def __init__(self, parent: ObjectDef) -> None:
        self.parent = parent
        self.name = parent.name + "Meta"
        self.object_id = (parent.object_id + 1) & 0xFFFFFFFF

    def __repr__(self) -> str:
        return f"<MetaObjectDef {self.name} 0x{self.object_id:08X}>"

    def decode_unchecked(self, data: bytes | bytearray | memoryview) -> dict[str, Any]:
        flags, tel, gcs, log = _META_STRUCT.unpack(data)
        return {
            "access": ACCESS_MODES[flags & 1],
            "gcs_access": ACCESS_MODES[(flags >> 1) & 1],
            "telemetry_acked": bool(flags & 4),
            "gcs_telemetry_acked": bool(flags & 8),
            "telemetry_update_mode": UPDATE_MODES[(flags >> 4) & 3],
            "gcs_telemetry_update_mode": UPDATE_MODES[(flags >> 6) & 3],
            "logging_update_mode": UPDATE_MODES[(flags >> 8) & 3],
            "telemetry_period_ms": tel,
            "gcs_telemetry_period_ms": gcs,
            "logging_period_ms": log,
        }

    def decode(self, data: bytes | bytearray | memoryview) -> dict[str, Any]:
        if len(data) != self.size:
            raise DecodeError(f"{self.name}: {len(data)} bytes of data, expected {self.size}")
        return self.decode_unchecked(data)

    def encode(self, values: Mapping[str, Any]) -> bytes:
        def pick(key: str, table: tuple[str, ...]) -> int:
            try:
                return table.index(values[key])
            except KeyError:
                raise UAVObjectValueError(f"{self.name}.{key}: missing") from None
            except ValueError:
                raise UAVObjectValueError(
                    f"{self.name}.{key}: {values[key]!r} is not one of {', '.join(table)}"
                ) from None

        flags = (
            pick("access", ACCESS_MODES)
            | pick("gcs_access", ACCESS_MODES) << 1
            | int(bool(values.get("telemetry_acked", False))) << 2
            | int(bool(values.get("gcs_telemetry_acked", False))) << 3
            | pick("telemetry_update_mode", UPDATE_MODES) << 4
            | pick("gcs_telemetry_update_mode", UPDATE_MODES) << 6
            | pick("logging_update_mode", UPDATE_MODES) << 8
        )
        periods = []
        for key in ("telemetry_period_ms", "gcs_telemetry_period_ms", "logging_period_ms"):
            v = values.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 0xFFFF:
                raise UAVObjectValueError(f"{self.name}.{key}: expected 0..65535, got {v!r}")
            periods.append(v)
        return _META_STRUCT.pack(flags, *periods)

    def defaults(self) -> dict[str, Any]:
        """The metadata the firmware starts with, from the XML telemetry settings."""
        i = self.parent.info
        return {
            "access": i.flight_access,
            "gcs_access": i.gcs_access,
            "telemetry_acked": i.telemetry_flight.acked,
            "gcs_telemetry_acked": i.telemetry_gcs.acked,
            "telemetry_update_mode": i.telemetry_flight.update_mode,
            "gcs_telemetry_update_mode": i.telemetry_gcs.update_mode,
            "logging_update_mode": i.logging.update_mode,
            "telemetry_period_ms": i.telemetry_flight.period_ms,
            "gcs_telemetry_period_ms": i.telemetry_gcs.period_ms,
            "logging_period_ms": i.logging.period_ms,
        }
