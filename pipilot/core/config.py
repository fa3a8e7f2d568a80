"""The core's configuration: a TOML file, validated, errors naming the key.

Every section and key is optional; see docs/configuration.md for the full
reference and docs/pipilot.example.toml for an example.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pipilot.control.holdconfig import FlowConfig, HoldConfig
from pipilot.core import tomlconf
from pipilot.core.calibration import (
    DEFAULT_CHANNEL_MAP,
    DEFAULT_THROTTLE,
    FUNCTIONS,
    Calibration,
    ChannelCalibration,
)
from pipilot.core.failsafe import FailsafePolicy
from pipilot.core.firmware import FIRMWARES, check_period
from pipilot.core.mixer import GESTURES, MODES, STANDARD_SOURCES, Limits
from pipilot.core.tomlconf import check_fields, read_toml, setting
from pipilot.errors import ConfigError
from pipilot.sbus import scale
from pipilot.sbus.frame import NUM_CHANNELS, VALUE_MAX

PUMPS = ("auto", "c", "python")
PRIORITY_MAX = 1000


@dataclass(frozen=True)
class LinkConfig:
    port: str = "/dev/serial0"
    period_ms: float = setting(7.0, ge=1.0, le=1000.0, unit="ms")
    firmware: str = setting("stock", choices=FIRMWARES)
    # mixing when no source publishes (refreshes the pump); at least one period
    mix_interval_ms: float = setting(20.0, ge=1.0, le=50.0, unit="ms")


@dataclass(frozen=True)
class WatchdogConfig:
    """The pump's staleness watchdog: failsafe frames after `stale_ms` without
    a fresh frame from the core, silence after `silent_ms` (at most 100).
    The core tolerates event-loop stalls up to stale_ms - link.mix_interval_ms."""

    stale_ms: float = setting(90.0, ge=0.0, le=100.0, unit="ms")
    silent_ms: float = setting(100.0, ge=0.0, le=100.0, unit="ms")


@dataclass(frozen=True)
class ShutdownConfig:
    # failsafe frames sent on stop before closing
    failsafe_frames: int = setting(15, ge=1, le=1000)
    # good writes needed before a link error clears
    link_recovery_s: float = setting(0.5, ge=0.0, le=60.0, unit="s")
    reopen_interval_s: float = setting(0.5, ge=0.05, le=60.0, unit="s")


@dataclass(frozen=True)
class RealtimeConfig:
    pump: str = setting("auto", choices=PUMPS)
    sched_fifo: bool = True
    priority: int = setting(50, ge=1, le=99)
    # the event loop's thread (mixing, watchdog refresh)
    nice: int = setting(-10, ge=-20, le=19)
    # `pipilot fly`: the flight loop's SCHED_FIFO priority, 0: none (below `priority`)
    loop_priority: int = setting(10, ge=0, le=98)
    mlockall: bool = True
    mlock_onfault: bool = True      # lock pages as they are used (MCL_ONFAULT), not all now
    gc_freeze: bool = True


@dataclass(frozen=True)
class SourceConfig:
    """A mixer source (``[sources.NAME]``); a new name starts from these defaults."""

    priority: int = setting(0, ge=-PRIORITY_MAX, le=PRIORITY_MAX)
    mode: str = setting("override", choices=MODES)
    timeout_s: float = setting(0.5, ge=0.01, le=10.0, unit="s")


@dataclass(frozen=True)
class ArmingConfig:
    gesture: str = setting("yaw_left", choices=tuple(GESTURES))


def _standard_sources() -> dict[str, SourceConfig]:
    return {n: SourceConfig(*v) for n, v in STANDARD_SOURCES.items()}


@dataclass(frozen=True)
class ChannelsTable:
    """``[channels]``: the function -> channel map, the value of unused channels and
    one calibration table per function (partial tables keep the other values)."""

    map: dict[str, int] = setting(default_factory=lambda: dict(DEFAULT_CHANNEL_MAP),
                                  keys=FUNCTIONS, ge=1, le=NUM_CHANNELS)
    unused_value: int = setting(scale.CENTER, ge=0, le=VALUE_MAX)
    throttle: ChannelCalibration = DEFAULT_THROTTLE
    yaw: ChannelCalibration = field(default_factory=ChannelCalibration)
    roll: ChannelCalibration = field(default_factory=ChannelCalibration)
    pitch: ChannelCalibration = field(default_factory=ChannelCalibration)
    accessory0: ChannelCalibration = field(default_factory=ChannelCalibration)
    accessory1: ChannelCalibration = field(default_factory=ChannelCalibration)
    accessory2: ChannelCalibration = field(default_factory=ChannelCalibration)
    accessory3: ChannelCalibration = field(default_factory=ChannelCalibration)

    def calibration(self) -> Calibration:
        return Calibration(channel_map=tuple(self.map.items()),
                           channels=tuple((f, getattr(self, f)) for f in FUNCTIONS),
                           unused_value=self.unused_value)


@dataclass(frozen=True)
class ServerTable:
    """The config file's ``[server]`` table, for pipilot.server.settings; --http-host,
    --http-port, --token and $PIPILOT_TOKEN take precedence over it."""

    host: str = "127.0.0.1"
    port: int = setting(8080, ge=0, le=65535)   # 0: any free port
    token: str | None = None
    # the page sends every 50 ms: leave it at least three chances
    heartbeat_timeout_ms: float = setting(300.0, ge=150.0, le=5000.0, unit="ms")
    update_hz: float = setting(20.0, ge=1.0, le=60.0, unit="Hz")
    rate: float = setting(80.0, ge=5.0, le=1000.0, unit="messages/s")
    burst: float = setting(40.0, ge=1.0, le=1000.0, unit="messages")
    observers: str = setting("token", choices=("token", "open"))
    extra_origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class PageHoldTable:
    """``[hold]``: the flow-deck hold the page engages (`pipilot fly --flowdeck`): its
    limits, failsafe times and gains (keys of this table itself) and
    ``[hold.estimator]``, with the keys and rules of a mission's ``[hold]``
    (`pipilot.mission.spec`; here without ``enabled`` and ``target_height_m``:
    the page holds where it engages)."""

    estimator: FlowConfig = field(default_factory=FlowConfig)
    limits: HoldConfig = setting(default_factory=HoldConfig, inline=True)


def _channels(table: Any, path: str) -> Calibration:
    return tomlconf.load(ChannelsTable, table, path).calibration()


def _gesture(table: Any, path: str) -> str:
    return tomlconf.load(ArmingConfig, table, path).gesture


@dataclass(frozen=True)
class CoreConfig:
    """Everything the FlightCore needs, in the configuration file's shape (a
    table a field, ``[channels]`` and ``[arming]`` read into their runtime form);
    `CoreConfig()` is a working default."""

    link: LinkConfig = field(default_factory=LinkConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    realtime: RealtimeConfig = field(default_factory=RealtimeConfig)
    failsafe: FailsafePolicy = field(default_factory=FailsafePolicy)
    limits: Limits = field(default_factory=Limits)
    calibration: Calibration = setting(default_factory=Calibration, key="channels",
                                       parse=_channels)
    gesture: str = setting("yaw_left", key="arming", parse=_gesture)
    sources: dict[str, SourceConfig] = field(default_factory=_standard_sources)
    server: ServerTable = field(default_factory=ServerTable)
    """The ``[server]`` table, for pipilot.server.settings."""
    hold: PageHoldTable = field(default_factory=PageHoldTable)
    """The ``[hold]`` table: the page's flow-deck hold."""

    def __post_init__(self) -> None:
        validate(self)

    @property
    def period_s(self) -> float:
        return self.link.period_ms * 1e-3

    def replace(self, **sections: Any) -> CoreConfig:
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw.update(sections)
        return CoreConfig(**kw)


def validate(c: CoreConfig) -> None:
    """Each table's field rules, then the checks across fields."""
    check_fields(c, "")
    if not c.link.port:
        raise ConfigError("link.port", "must be a device path")
    check_period(c.period_s, c.link.firmware)
    w = c.watchdog
    if not w.stale_ms >= 3 * c.link.period_ms:
        raise ConfigError("watchdog.stale_ms", f"must be at least 3 periods "
                                               f"({3 * c.link.period_ms:g} ms)")
    if not c.link.mix_interval_ms >= c.link.period_ms:
        raise ConfigError("link.mix_interval_ms", f"must be at least link.period_ms "
                                                  f"({c.link.period_ms:g} ms)")
    if not w.stale_ms >= 2 * c.link.mix_interval_ms:
        raise ConfigError("watchdog.stale_ms", f"must be at least 2 mix intervals "
                                               f"({2 * c.link.mix_interval_ms:g} ms)")
    if not w.stale_ms < w.silent_ms:
        raise ConfigError("watchdog.silent_ms", "must be greater than watchdog.stale_ms")
    r = c.realtime
    if not r.loop_priority < r.priority:
        raise ConfigError("realtime.loop_priority",
                          f"must be an integer 0..{r.priority - 1} (below realtime.priority, "
                          "the frame pump's)")
    check_fields(ArmingConfig(c.gesture), "arming")
    for name, src in c.sources.items():
        if name in ROLE_MODES and src.mode != ROLE_MODES[name]:
            raise ConfigError(f"sources.{name}.mode",
                              f"must be {ROLE_MODES[name]!r} for the {name} source "
                              f"({ROLE_WHY[name]})")


# The built-in sources' modes follow from what they do; anything else is a hazard.
ROLE_MODES = {"pilot": "override", "mission": "override", "drift": "additive"}
ROLE_WHY = {
    "pilot": "its sticks are the whole command, not a trim on another source",
    "mission": "its steps are the whole command, not a trim on another source",
    "drift": "it only trims roll and pitch; as an override its zero throttle would win",
}


# -- TOML -------------------------------------------------------------------------

def from_dict(data: dict[str, Any]) -> CoreConfig:
    """Build and validate a CoreConfig from parsed TOML."""
    return tomlconf.load(CoreConfig, data)


def load(path: str | Path) -> CoreConfig:
    """Read and validate a TOML configuration file."""
    return from_dict(read_toml(path))
