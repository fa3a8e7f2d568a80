"""Per-channel calibration: normalised stick values to 11-bit S.Bus values.

The calibration mirrors the one stored in the flight controller (GCS
"min / neutral / max" per channel), so that a setpoint of -1 here is read as
-1 by the firmware. Values that leave are always clamped to the calibrated
span and to 0..2047, whatever comes in. The conversions are
`pipilot.sbus.scale`'s, given each channel's span.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipilot.core.setpoints import Setpoint, saturate
from pipilot.core.tomlconf import check_fields, setting
from pipilot.errors import ConfigError
from pipilot.sbus import scale
from pipilot.sbus.frame import NUM_CHANNELS, VALUE_MAX

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

    min: int = setting(scale.UNIT_MIN, ge=0, le=VALUE_MAX)
    neutral: int = setting(scale.CENTER, ge=0, le=VALUE_MAX)
    max: int = setting(scale.UNIT_MAX, ge=0, le=VALUE_MAX)
    reversed: bool = False      # strictly a bool: "no" would reverse the throttle

    def validate(self, key: str) -> None:
        check_fields(self, key)
        if not self.min <= self.neutral <= self.max or self.min == self.max:
            raise ConfigError(key, f"needs min <= neutral <= max and min < max, got "
                                   f"{self.min}/{self.neutral}/{self.max}")

    def bipolar(self, x: float) -> int:
        """-1..1 -> raw value (non-finite input gives neutral)."""
        x = saturate(x, -1.0, 1.0)
        return scale.unit_to_value(-x if self.reversed else x,
                                   low=self.min, center=self.neutral, high=self.max)

    def unipolar(self, x: float) -> int:
        """0..1 -> raw value (non-finite input gives 0)."""
        x = saturate(x, 0.0, 1.0)
        return scale.fraction_to_value(1.0 - x if self.reversed else x,
                                       low=self.min, high=self.max)


# A throttle whose neutral sits just above min, as a GCS calibration leaves it.
DEFAULT_THROTTLE = ChannelCalibration(neutral=212)


@dataclass(frozen=True)
class Calibration:
    """The channel map, one `ChannelCalibration` per function, and the raw
    value sent on the channels no function uses (they must still be valid)."""

    channel_map: tuple[tuple[str, int], ...] = tuple(DEFAULT_CHANNEL_MAP.items())
    channels: tuple[tuple[str, ChannelCalibration], ...] = (
        ("throttle", DEFAULT_THROTTLE),
        *((f, ChannelCalibration()) for f in FUNCTIONS[1:]),
    )
    unused_value: int = scale.CENTER

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
        if isinstance(u, bool) or not isinstance(u, int) or not 0 <= u <= VALUE_MAX:
            raise ConfigError("channels.unused_value", f"must be an integer 0..2047, got {u!r}")
        object.__setattr__(self, "_index", tuple((cmap[f] - 1, cals[f]) for f in FUNCTIONS))

    def to_channels(self, sp: Setpoint) -> list[int]:
        """Map a setpoint's sticks to the 16 raw channel values (its arm request
        is the mixer's business: it arrives here as the gesture's sticks)."""
        out = [self.unused_value] * NUM_CHANNELS
        # _index is set by __post_init__ and is not a field, so mypy cannot see it
        index: tuple[tuple[int, ChannelCalibration], ...] = self._index  # type: ignore[attr-defined]
        values = (sp.throttle, sp.yaw, sp.roll, sp.pitch, *sp.accessories)
        for i, ((ch, cal), v) in enumerate(zip(index, values, strict=True)):
            out[ch] = cal.unipolar(v) if i == 0 else cal.bipolar(v)
        return out

    def calibration_for(self, function: str) -> ChannelCalibration:
        return dict(self.channels)[function]

    def channel_of(self, function: str) -> int:
        """1-based S.Bus channel of a function."""
        return dict(self.channel_map)[function]
