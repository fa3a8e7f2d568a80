"""What the CC3D's telemetry line can carry: bytes per update and the periods that fit.

LibrePilot 16.09 on the CC3D sends each periodic object at its metadata's
telemetry period; an update waits in a 10-event queue and is dropped when the
queue is full. On the rig's 9600-baud line (10 bits a byte: 960 bytes/s) the
queue overflows above about two thirds of the line (docs/missions.md), so a
period is only worth asking for if the objects sent still fit in that share.

One update on the wire is a UAVTalk header (``MIN_HEADER_LENGTH``, no
instance id for single-instance objects), the object's data and one CRC byte.
The flight code (`pipilot.control.hold`) and the measurements
(bench/flow_rotation.py) both work from these figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pipilot.uavtalk.codec import ObjectDef
from pipilot.uavtalk.definitions import load_definitions
from pipilot.uavtalk.packets import MIN_HEADER_LENGTH

BAUD = 9600
USABLE_SHARE = 2 / 3
"""Above about this share of the line the FC's telemetry queue overflows."""
PERIOD_STEP_MS = 10
"""Periods are asked in steps of this (the FC's scheduler ticks are coarser anyway)."""

CC3D_OBJECTS = (
    "AccelState", "AccessoryDesired", "ActuatorCommand", "ActuatorDesired", "ActuatorSettings",
    "AttitudeSettings", "AttitudeState", "FlightModeSettings", "FlightStatus",
    "FlightTelemetryStats", "GCSTelemetryStats", "GyroState", "HwSettings",
    "ManualControlCommand", "ManualControlSettings", "MixerSettings", "ObjectPersistence",
    "ReceiverActivity", "StabilizationBank", "StabilizationDesired", "StabilizationSettings",
    "StabilizationSettingsBank1", "StabilizationSettingsBank2", "StabilizationSettingsBank3",
    "SystemAlarms", "SystemSettings", "SystemStats",
)
"""The objects the CC3D build of 16.09 carries (besides metaobjects)."""

SAMPLED = ("AttitudeState", "AccelState", "GyroState")
"""The state objects the Pi asks for at periods of its own."""


def line_bytes_s(baud: int = BAUD) -> float:
    """Bytes per second the line carries (start and stop bits: 10 bits a byte)."""
    return baud / 10.0


def usable_bytes_s(baud: int = BAUD) -> float:
    """Bytes per second the periodic objects may take before the queue overflows."""
    return USABLE_SHARE * line_bytes_s(baud)


def packet_bytes(name: str) -> int:
    """Bytes on the wire of one update of ``name`` (header, data, CRC)."""
    return MIN_HEADER_LENGTH + load_definitions()[name].size + 1


def stock_periodic(kept: tuple[str, ...] | None = None) -> dict[str, int]:
    """The FC's periodic objects other than `SAMPLED`, at 16.09's default periods (ms);
    with ``kept`` only those (the ground may turn the rest off through their metadata)."""
    reg = load_definitions()
    out = {}
    for name in CC3D_OBJECTS:
        obj = reg[name]
        if not isinstance(obj, ObjectDef):
            continue
        tf = obj.info.telemetry_flight
        if name not in SAMPLED and tf.update_mode == "periodic" and tf.period_ms > 0 and \
                (kept is None or name in kept):
            out[name] = tf.period_ms
    return out


def link_load(periods_ms: Mapping[str, float]) -> float:
    """Bytes/s the objects need at these periods (ms)."""
    return sum(packet_bytes(n) * 1000.0 / p for n, p in periods_ms.items())


def fastest_period_ms(name: str, others: Mapping[str, float], baud: int = BAUD) -> int | None:
    """The shortest period of ``name`` (in `PERIOD_STEP_MS` steps) that still fits the
    usable share of the line beside ``others``; None when nothing is left for it."""
    room = usable_bytes_s(baud) - link_load(others)
    if room <= 0:
        return None
    steps = math.ceil(packet_bytes(name) * 1000.0 / room / PERIOD_STEP_MS)
    return int(max(1, steps) * PERIOD_STEP_MS)
