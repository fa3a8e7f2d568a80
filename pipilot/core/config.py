"""The core's configuration: a TOML file, validated, errors naming the key.

Every section and key is optional; see docs/configuration.md for the full
reference and docs/pipilot.example.toml for an example.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pipilot.core.calibration import (
    DEFAULT_CHANNEL_MAP,
    DEFAULT_THROTTLE,
    FUNCTIONS,
    Calibration,
    ChannelCalibration,
)
from pipilot.core.failsafe import FailsafePolicy
from pipilot.core.firmware import check_period
from pipilot.core.mixer import GESTURES, MODES, STANDARD_SOURCES, Limits
from pipilot.errors import ConfigError

PUMPS = ("auto", "c", "python")
PRIORITY_MAX = 1000
#: Integers beyond this are refused wherever they appear (TOML integers have no size limit).
INT_LIMIT = 2**53


@dataclass(frozen=True)
class LinkConfig:
    port: str = "/dev/serial0"
    period_ms: float = 7.0
    firmware: str = "stock"
    mix_interval_ms: float = 20.0   # mixing when no source publishes (refreshes the pump)


@dataclass(frozen=True)
class WatchdogConfig:
    """The pump's staleness watchdog: failsafe frames after `stale_ms` without
    a fresh frame from the core, silence after `silent_ms` (at most 100).
    The core tolerates event-loop stalls up to stale_ms - link.mix_interval_ms."""

    stale_ms: float = 90.0
    silent_ms: float = 100.0


@dataclass(frozen=True)
class ShutdownConfig:
    failsafe_frames: int = 15     # failsafe frames sent on stop before closing
    link_recovery_s: float = 0.5  # good writes needed before a link error clears
    reopen_interval_s: float = 0.5


@dataclass(frozen=True)
class RealtimeConfig:
    pump: str = "auto"
    sched_fifo: bool = True
    priority: int = 50
    nice: int = -10                 # the event loop's thread (mixing, watchdog refresh)
    loop_priority: int = 10         # `pipilot fly`: the flight loop's SCHED_FIFO priority, 0: none
    mlockall: bool = True
    mlock_onfault: bool = True      # lock pages as they are used (MCL_ONFAULT), not all now
    gc_freeze: bool = True


@dataclass(frozen=True)
class SourceConfig:
    priority: int
    mode: str
    timeout_s: float


@dataclass(frozen=True)
class CoreConfig:
    """Everything the FlightCore needs; `CoreConfig()` is a working default."""

    link: LinkConfig = field(default_factory=LinkConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    realtime: RealtimeConfig = field(default_factory=RealtimeConfig)
    failsafe: FailsafePolicy = field(default_factory=FailsafePolicy)
    limits: Limits = field(default_factory=Limits)
    calibration: Calibration = field(default_factory=Calibration)
    gesture: str = "yaw_left"
    sources: dict[str, SourceConfig] = field(default_factory=lambda: {
        n: SourceConfig(*v) for n, v in STANDARD_SOURCES.items()})

    def __post_init__(self) -> None:
        validate(self)

    @property
    def period_s(self) -> float:
        return self.link.period_ms * 1e-3

    def replace(self, **sections: Any) -> CoreConfig:
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw.update(sections)
        return CoreConfig(**kw)


def _num(key: str, v: Any, lo: float, hi: float) -> None:
    # range first: math.isfinite() overflows on an integer beyond a float's range
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi \
            or not math.isfinite(v):
        raise ConfigError(key, f"must be a number {lo:g}..{hi:g}, got {_short(v)}")


def _short(v: Any) -> str:
    """``repr(v)``, cut short: a 5000-digit integer must not fill the terminal."""
    text = repr(v)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def validate(c: CoreConfig) -> None:
    """Cross-field checks (each section checks its own fields on construction)."""
    _num("link.period_ms", c.link.period_ms, 1.0, 1000.0)
    if not isinstance(c.link.port, str) or not c.link.port:
        raise ConfigError("link.port", "must be a device path")
    check_period(c.period_s, c.link.firmware)
    w = c.watchdog
    _num("watchdog.silent_ms", w.silent_ms, 0.0, 100.0)
    _num("watchdog.stale_ms", w.stale_ms, 0.0, 100.0)
    if not w.stale_ms >= 3 * c.link.period_ms:
        raise ConfigError("watchdog.stale_ms", f"must be at least 3 periods "
                                               f"({3 * c.link.period_ms:g} ms)")
    _num("link.mix_interval_ms", c.link.mix_interval_ms, c.link.period_ms, 50.0)
    if not w.stale_ms >= 2 * c.link.mix_interval_ms:
        raise ConfigError("watchdog.stale_ms", f"must be at least 2 mix intervals "
                                               f"({2 * c.link.mix_interval_ms:g} ms)")
    if not w.stale_ms < w.silent_ms:
        raise ConfigError("watchdog.silent_ms", "must be greater than watchdog.stale_ms")
    s = c.shutdown
    if isinstance(s.failsafe_frames, bool) or not isinstance(s.failsafe_frames, int) \
            or not 1 <= s.failsafe_frames <= 1000:
        raise ConfigError("shutdown.failsafe_frames", "must be an integer 1..1000")
    _num("shutdown.link_recovery_s", s.link_recovery_s, 0.0, 60.0)
    _num("shutdown.reopen_interval_s", s.reopen_interval_s, 0.05, 60.0)
    r = c.realtime
    if r.pump not in PUMPS:
        raise ConfigError("realtime.pump", f"must be one of {', '.join(PUMPS)}")
    if isinstance(r.priority, bool) or not isinstance(r.priority, int) or not 1 <= r.priority <= 99:
        raise ConfigError("realtime.priority", "must be an integer 1..99")
    if isinstance(r.nice, bool) or not isinstance(r.nice, int) or not -20 <= r.nice <= 19:
        raise ConfigError("realtime.nice", "must be an integer -20..19")
    if isinstance(r.loop_priority, bool) or not isinstance(r.loop_priority, int) \
            or not 0 <= r.loop_priority < r.priority:
        raise ConfigError("realtime.loop_priority",
                          f"must be an integer 0..{r.priority - 1} (below realtime.priority, "
                          "the frame pump's)")
    if not isinstance(c.gesture, str) or c.gesture not in GESTURES:
        raise ConfigError("arming.gesture", f"must be one of {', '.join(GESTURES)}")
    for name, src in c.sources.items():
        if src.mode not in MODES:
            raise ConfigError(f"sources.{name}.mode", f"must be one of {', '.join(MODES)}")
        if name in ROLE_MODES and src.mode != ROLE_MODES[name]:
            raise ConfigError(f"sources.{name}.mode",
                              f"must be {ROLE_MODES[name]!r} for the {name} source "
                              f"({ROLE_WHY[name]})")
        _num(f"sources.{name}.timeout_s", src.timeout_s, 0.01, 10.0)
        if isinstance(src.priority, bool) or not isinstance(src.priority, int) \
                or not -PRIORITY_MAX <= src.priority <= PRIORITY_MAX:
            raise ConfigError(f"sources.{name}.priority",
                              f"must be an integer -{PRIORITY_MAX}..{PRIORITY_MAX}")


# The built-in sources' modes follow from what they do; anything else is a hazard.
ROLE_MODES = {"pilot": "override", "mission": "override", "drift": "additive"}
ROLE_WHY = {
    "pilot": "its sticks are the whole command, not a trim on another source",
    "mission": "its steps are the whole command, not a trim on another source",
    "drift": "it only trims roll and pitch; as an override its zero throttle would win",
}


# -- TOML -------------------------------------------------------------------------

def _section(data: dict[str, Any], key: str, cls: type, prefix: str) -> Any:
    raw = data.get(key, {})
    if not isinstance(raw, dict):
        raise ConfigError(prefix, "must be a table")
    known = {f.name: f for f in fields(cls)}
    for k in raw:
        if k not in known:
            raise ConfigError(f"{prefix}.{k}", f"unknown key (known: {', '.join(known)})")
    for k, v in raw.items():
        default = getattr(cls(), k) if _has_default(cls) else None
        if default is not None and not _same_type(default, v):
            raise ConfigError(f"{prefix}.{k}",
                              f"must be {type(default).__name__}, got {_short(v)}")
    try:
        return cls(**raw)
    except TypeError as exc:
        raise ConfigError(prefix, str(exc)) from None


def _has_default(cls: type) -> bool:
    try:
        cls()
    except TypeError:
        return False
    return True


def _same_type(default: Any, v: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(v, bool)
    if isinstance(v, bool):
        return False
    if isinstance(default, float):
        return isinstance(v, (int, float))
    return isinstance(v, type(default))


TOP_LEVEL = ("link", "watchdog", "shutdown", "realtime", "failsafe", "limits", "arming",
             "sources", "channels", "server")  # [server] is read by pipilot.server.settings


def check_numbers(data: Any, prefix: str = "") -> None:
    """Refuse NaN, infinities and absurdly large integers anywhere in parsed TOML.

    TOML has ``nan`` and ``inf`` literals and unbounded integers; no setting
    means anything with them, and a NaN compares false against every bound, so
    it is stopped here, naming the key, before any section sees it.
    """
    stack: list[tuple[str, Any]] = [(prefix, data)]
    while stack:   # iterative: a deeply nested array must not exhaust the stack
        key, v = stack.pop()
        if isinstance(v, dict):
            stack.extend((f"{key}.{k}" if key else str(k), x) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((f"{key}[{i}]", x) for i, x in enumerate(v))
        elif isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(key or "value", f"must be a finite number, got {v!r}")
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > INT_LIMIT:
            raise ConfigError(key or "value", f"integer out of range: {_short(v)}")


def from_dict(data: dict[str, Any]) -> CoreConfig:
    """Build and validate a CoreConfig from parsed TOML."""
    if not isinstance(data, dict):
        raise ConfigError("config", "must be a table")
    check_numbers(data)
    for k in data:
        if k not in TOP_LEVEL:
            raise ConfigError(k, f"unknown section (known: {', '.join(TOP_LEVEL)})")
    link = _section(data, "link", LinkConfig, "link")
    watchdog = _section(data, "watchdog", WatchdogConfig, "watchdog")
    shutdown = _section(data, "shutdown", ShutdownConfig, "shutdown")
    realtime = _section(data, "realtime", RealtimeConfig, "realtime")
    failsafe = _section(data, "failsafe", FailsafePolicy, "failsafe")
    limits = _section(data, "limits", Limits, "limits")
    arming = data.get("arming", {})
    if not isinstance(arming, dict) or set(arming) - {"gesture"}:
        raise ConfigError("arming", "only 'gesture' is known")
    gesture = arming.get("gesture", "yaw_left")
    sources = {n: SourceConfig(*v) for n, v in STANDARD_SOURCES.items()}
    raw_sources = data.get("sources", {})
    if not isinstance(raw_sources, dict):
        raise ConfigError("sources", "must be a table of tables")
    for name, raw in raw_sources.items():
        if not isinstance(raw, dict):
            raise ConfigError(f"sources.{name}", "must be a table")
        base = sources.get(name, SourceConfig(0, "override", 0.5))
        unknown = set(raw) - {"priority", "mode", "timeout_s"}
        if unknown:
            raise ConfigError(f"sources.{name}.{sorted(unknown)[0]}", "unknown key")
        sources[name] = SourceConfig(raw.get("priority", base.priority),
                                     raw.get("mode", base.mode),
                                     raw.get("timeout_s", base.timeout_s))
    return CoreConfig(link=link, watchdog=watchdog, shutdown=shutdown, realtime=realtime,
                      failsafe=failsafe, limits=limits, gesture=gesture, sources=sources,
                      calibration=_calibration(data.get("channels", {})))


def _calibration(raw: Any) -> Calibration:
    if not isinstance(raw, dict):
        raise ConfigError("channels", "must be a table")
    cmap = dict(DEFAULT_CHANNEL_MAP)
    known = {"map", "unused_value", *FUNCTIONS}
    for k in raw:
        if k not in known:
            raise ConfigError(f"channels.{k}", f"unknown key (known: {', '.join(sorted(known))})")
    rmap = raw.get("map", {})
    if not isinstance(rmap, dict):
        raise ConfigError("channels.map", "must be a table function = channel")
    for k, v in rmap.items():
        if k not in FUNCTIONS:
            raise ConfigError(f"channels.map.{k}",
                              f"unknown function (known: {', '.join(FUNCTIONS)})")
        cmap[k] = v
    cals = []
    for f in FUNCTIONS:
        default = DEFAULT_THROTTLE if f == "throttle" else ChannelCalibration()
        c = raw.get(f, {})
        if not isinstance(c, dict):
            raise ConfigError(f"channels.{f}", "must be a table with min, neutral, max, reversed")
        bad = set(c) - {"min", "neutral", "max", "reversed"}
        if bad:
            raise ConfigError(f"channels.{f}.{sorted(bad)[0]}", "unknown key")
        rev = c.get("reversed", default.reversed)
        if not isinstance(rev, bool):
            raise ConfigError(f"channels.{f}.reversed", "must be true or false")
        cals.append((f, ChannelCalibration(c.get("min", default.min),
                                           c.get("neutral", default.neutral),
                                           c.get("max", default.max), rev)))
    unused = raw.get("unused_value", 992)
    if isinstance(unused, bool) or not isinstance(unused, int):
        raise ConfigError("channels.unused_value", "must be an integer 0..2047")
    return Calibration(channel_map=tuple(cmap.items()), channels=tuple(cals), unused_value=unused)


def load(path: str | Path) -> CoreConfig:
    """Read and validate a TOML configuration file."""
    return from_dict(read_toml(path))


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; every way it can be unreadable is one ConfigError naming it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), f"not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), f"not valid TOML: {exc}") from None
    except ValueError as exc:   # an integer too long to convert (over 4300 digits)
        raise ConfigError(str(p), f"not valid TOML: {str(exc).split(';')[0]}") from None
    except RecursionError:
        raise ConfigError(str(p), "not valid TOML: nested too deeply") from None
