"""UAVTalk, the CC3D's telemetry protocol (sans-IO): definitions, codec, packets, logs."""

from pipilot.uavtalk.codec import DecodeError, MetaObjectDef, ObjectDef, UAVObjectValueError
from pipilot.uavtalk.definitions import (
    DefinitionError,
    FieldDef,
    ObjectInfo,
    Registry,
    load_definitions,
    object_id,
)
from pipilot.uavtalk.packets import (
    ALL_INSTANCES,
    SYNC,
    Packet,
    PacketParser,
    PacketType,
    ParserStats,
    encode_packet,
)

__all__ = [
    "ALL_INSTANCES",
    "SYNC",
    "DecodeError",
    "DefinitionError",
    "FieldDef",
    "MetaObjectDef",
    "ObjectDef",
    "ObjectInfo",
    "Packet",
    "PacketParser",
    "PacketType",
    "ParserStats",
    "Registry",
    "UAVObjectValueError",
    "encode_packet",
    "load_definitions",
    "object_id",
]
