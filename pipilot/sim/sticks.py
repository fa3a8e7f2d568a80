"""Turning stick positions into S.Bus frames the way the rig's transmitter side does.

Used by the lock-step runner and the tests when no pipilot mixer drives the
simulator. The sticks are a `pipilot.core.setpoints.Setpoint`, mapped with
pipilot's default calibration (the one the simulated FC is calibrated for).
"""

from __future__ import annotations

from pipilot.core.calibration import Calibration
from pipilot.core.setpoints import ArmRequest, Setpoint, SetpointError
from pipilot.sbus.frame import (
    FLAG_CH17,
    FLAG_CH18,
    FLAG_FAILSAFE,
    FLAG_FRAME_LOST,
    NUM_CHANNELS,
    START_BYTE,
    VALUE_MAX,
)

_RIG = Calibration()


def pack_frame(channels: list[int], *, ch17: bool = False, ch18: bool = False,
               frame_lost: bool = False, failsafe: bool = False) -> bytes:
    """A 25-byte S.Bus frame (own packer, independent of pipilot.sbus's codec, to
    cross-check it)."""
    if len(channels) != NUM_CHANNELS:
        raise ValueError(f"{NUM_CHANNELS} channels")
    bits = 0
    for i, c in enumerate(channels):
        if not 0 <= c <= VALUE_MAX:
            raise ValueError(f"channel {i + 1} out of range: {c}")
        bits |= c << (11 * i)
    flags = ((FLAG_CH17 if ch17 else 0) | (FLAG_CH18 if ch18 else 0)
             | (FLAG_FRAME_LOST if frame_lost else 0) | (FLAG_FAILSAFE if failsafe else 0))
    return bytes([START_BYTE]) + bits.to_bytes(22, "little") + bytes([flags, 0])


def stick_channels(sticks: Setpoint, calibration: Calibration = _RIG) -> list[int]:
    """The 16 channel values a transmitter sends for these stick positions.

    A transmitter has no arm request, only sticks: an `arm` other than NONE is
    refused (hold the yaw stick to arm, as a pilot would)."""
    if sticks.arm is not ArmRequest.NONE:
        raise SetpointError("the simulator's sticks cannot carry an arm request; "
                            "arm with the yaw stick")
    return calibration.to_channels(sticks)


def stick_frame(sticks: Setpoint, calibration: Calibration = _RIG) -> bytes:
    """The S.Bus frame for these stick positions (see `stick_channels`)."""
    return pack_frame(stick_channels(sticks, calibration))
