"""Hypothesis strategies for UAVObject values and packets."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from pipilot.uavtalk import PacketType, encode_packet
from pipilot.uavtalk.codec import ObjectDef
from pipilot.uavtalk.definitions import FieldDef

_INT = {
    "int8": (-(2**7), 2**7 - 1), "int16": (-(2**15), 2**15 - 1), "int32": (-(2**31), 2**31 - 1),
    "uint8": (0, 2**8 - 1), "uint16": (0, 2**16 - 1), "uint32": (0, 2**32 - 1),
}


def element(f: FieldDef) -> st.SearchStrategy[Any]:
    if f.type == "float":
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    if f.type == "enum":
        return st.sampled_from(f.options or ())
    lo, hi = _INT[f.type]
    return st.integers(lo, hi)


def field_value(f: FieldDef) -> st.SearchStrategy[Any]:
    e = element(f)
    if f.element_names is not None:
        return st.fixed_dictionaries({n: e for n in f.element_names})
    if f.count == 1:
        return e
    return st.lists(e, min_size=f.count, max_size=f.count)


def object_values(obj: ObjectDef) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({f.name: field_value(f) for f in obj.fields})


def packets(objs: list[ObjectDef]) -> st.SearchStrategy[bytes]:
    """Valid packets of known objects, of every type."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        obj = draw(st.sampled_from(objs))
        ptype = draw(st.sampled_from(list(PacketType)))
        inst = draw(st.integers(0, 0xFFFF))
        if ptype in (PacketType.OBJ_REQ, PacketType.ACK, PacketType.NACK):
            return encode_packet(ptype, obj.object_id, inst)
        data = draw(st.binary(min_size=obj.size, max_size=obj.size))
        ts = draw(st.integers(0, 0xFFFF)) if ptype & 0x80 else None
        return encode_packet(ptype, obj.object_id, inst, data, ts)

    return build()
