"""Per-channel calibration: normalised stick values to 11-bit S.Bus values.

The calibration mirrors the one stored in the flight controller (GCS
"min / neutral / max" per channel), so that a setpoint of -1 here is read as
-1 by the firmware. Values that leave are always clamped to the calibrated
span and to 0..2047, whatever comes in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipilot.errors import ConfigError

SBUS_MIN = 0
SBUS_MAX = 2047
NUM_CHANNELS = 16

#: The rig's channel map (NOTES.md): function -> 1-based S.Bus channel.
DEFAULT_CHANNEL_MAP: dict[str, int] = {
    "throttle": 1, "yaw": 2, "roll": 3, "pitch": 4,
    "accessory0": 5, "accessory1": 6, "accessory2": 7, "accessory3": 8,
}
FUNCTIONS = tuple(DEFAULT_CHANNEL_MAP)


@dataclass(frozen=True)
class ChannelCalibration:
    """One channel: raw S.Bus `min`, `neutral`, `max`; `reversed` swaps ends.

    Bipolar channels map -1..0..1 piecewise-linearly to min..neutral..max.
    The throttle is unipolar: 0..1 maps linearly to min..max (the firmware
    reads values below `neutral` as "throttle off").
    """

    min: int = 172
    neutral: int = 992
    max: int = 1811
    reversed: bool = False

    def validate(self, key: str) -> None:
        for name in ("min", "neutral", "max"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not SBUS_MIN <= v <= SBUS_MAX:
                raise ConfigError(f"{key}.{name}", f"must be an integer 0..2047, got {v!r}")
        if not isinstance(self.reversed, bool):    # "no" would reverse the throttle
            raise ConfigError(f"{key}.reversed", f"must be true or false, got {self.reversed!r}")
        if not self.min <= self.neutral <= self.max or self.min == self.max:
            raise ConfigError(key, f"needs min <= neutral <= max and min < max, got "
                                   f"{self.min}/{self.neutral}/{self.max}")

    def bipolar(self, x: float) -> int:
        """-1..1 -> raw value (non-finite input gives neutral)."""
        x = _clamp(x, -1.0, 1.0)
        if self.reversed:
            x = -x
        v = self.neutral + x * ((self.max - self.neutral) if x >= 0 else (self.neutral - self.min))
        return self._clip(v)

    def unipolar(self, x: float) -> int:
        """0..1 -> raw value (non-finite input gives 0)."""
        x = _clamp(x, 0.0, 1.0, default=0.0)
        if self.reversed:
            x = 1.0 - x
        return self._clip(self.min + x * (self.max - self.min))

    def _clip(self, v: float) -> int:
        return max(self.min, min(self.max, round(v)))


def _clamp(x: float, lo: float, hi: float, default: float = 0.0) -> float:
    if not math.isfinite(x):
        return default
    return lo if x < lo else hi if x > hi else x


# A throttle whose neutral sits just above min, as a GCS calibration leaves it.
DEFAULT_THROTTLE = ChannelCalibration(min=172, neutral=212, max=1811)


@dataclass(frozen=True)
class Calibration:
    """The channel map, one `ChannelCalibration` per function, and the raw
    value sent on the channels no function uses (they must still be valid)."""

    channel_map: tuple[tuple[str, int], ...] = tuple(DEFAULT_CHANNEL_MAP.items())
    channels: tuple[tuple[str, ChannelCalibration], ...] = (
        ("throttle", DEFAULT_THROTTLE),
        *((f, ChannelCalibration()) for f in FUNCTIONS[1:]),
    )
    unused_value: int = 992

    def __post_init__(self) -> None:
        cmap = dict(self.channel_map)
        if set(cmap) != set(FUNCTIONS):
            raise ConfigError("channels.map", f"must assign exactly {', '.join(FUNCTIONS)}")
        used = list(cmap.values())
        for f, ch in cmap.items():
            if isinstance(ch, bool) or not isinstance(ch, int) or not 1 <= ch <= NUM_CHANNELS:
                raise ConfigError(f"channels.map.{f}", f"must be a channel 1..16, got {ch!r}")
        if len(set(used)) != len(used):
            raise ConfigError("channels.map", "two functions share one channel")
        cals = dict(self.channels)
        if set(cals) != set(FUNCTIONS):
            raise ConfigError("channels", f"needs a calibration for each of {', '.join(FUNCTIONS)}")
        for f, c in cals.items():
            c.validate(f"channels.{f}")
        u = self.unused_value
        if isinstance(u, bool) or not isinstance(u, int) or not SBUS_MIN <= u <= SBUS_MAX:
            raise ConfigError("channels.unused_value", f"must be an integer 0..2047, got {u!r}")
        object.__setattr__(self, "_index", tuple((cmap[f] - 1, cals[f]) for f in FUNCTIONS))

    def to_channels(self, throttle: float, roll: float, pitch: float, yaw: float,
                    accessories: tuple[float, ...]) -> list[int]:
        """Map normalised values to the 16 raw channel values."""
        out = [self.unused_value] * NUM_CHANNELS
        # _index is set by __post_init__ and is not a field, so mypy cannot see it
        index: tuple[tuple[int, ChannelCalibration], ...] = self._index  # type: ignore[attr-defined]
        values = (throttle, yaw, roll, pitch, *accessories)
        for i, ((ch, cal), v) in enumerate(zip(index, values, strict=True)):
            out[ch] = cal.unipolar(v) if i == 0 else cal.bipolar(v)
        return out

    def calibration_for(self, function: str) -> ChannelCalibration:
        return dict(self.channels)[function]

    def channel_of(self, function: str) -> int:
        """1-based S.Bus channel of a function."""
        return dict(self.channel_map)[function]
