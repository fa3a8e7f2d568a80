"""Checks of command-line values, done before anything opens a port or flies.

argparse only converts: ``float("nan")``, ``-3`` or ``""`` pass its types. Each
check here turns a value that makes no sense into one ConfigError naming the
option, so the command stops with one line and exit status 1.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

from pipilot.errors import ConfigError, LinkError
from pipilot.link.portspec import check_port_spec, is_tcp

#: The telemetry speeds the flight controller offers (HwSettings.TelemetrySpeed).
TELEMETRY_BAUDS = (2400, 4800, 9600, 19200, 38400, 57600, 115200)
#: A longer run is a typing error, not a plan (about 11 days).
DURATION_MAX_S = 1e6


def number(option: str, value: float, lo: float, hi: float, *,
           lo_open: bool = False) -> float:
    """A finite number within lo..hi (lo excluded when ``lo_open``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not lo <= value <= hi or not math.isfinite(value) or (lo_open and value == lo):
        low = f"above {lo:g}" if lo_open else f"{lo:g}"
        raise ConfigError(option, f"must be a finite number {low}..{hi:g}, got {value!r}")
    return float(value)


def duration(option: str, value: float | None) -> float | None:
    """None (run until stopped) or a positive, finite number of seconds."""
    if value is None:
        return None
    return number(option, value, 0.0, DURATION_MAX_S, lo_open=True)


def integer(option: str, value: int, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(option, f"must be an integer {lo}..{hi}, got {value!r}")
    return value


def baud(option: str, value: int, port: str | None = None) -> int:
    """A telemetry speed the flight controller can be set to (ignored over TCP)."""
    if port is not None and is_tcp(port):
        return value
    if value not in TELEMETRY_BAUDS:
        raise ConfigError(option, f"{value} is not a telemetry speed; use one of "
                                  f"{', '.join(map(str, TELEMETRY_BAUDS))} (the rig uses 9600)")
    return value


def device(option: str, value: str | None) -> str | None:
    """An optional device path: given, it must not be empty (``""`` is not "the default")."""
    if value is None:
        return None
    if not value.strip():
        raise ConfigError(option, "empty: give a device path, or leave the option out "
                                  "for the default")
    if "\0" in value:
        raise ConfigError(option, "contains a NUL byte")
    return value


def telemetry_port(option: str, value: str | None) -> str | None:
    """An optional telemetry port: a device path or ``tcp:HOST:PORT``."""
    if value is None:
        return None
    try:
        return check_port_spec(value, option)
    except LinkError as exc:
        raise ConfigError(option, str(exc)) from None


def input_file(option: str, value: str | None) -> str | None:
    """An optional file to read: given, it must not be empty."""
    if value is not None and not value.strip():
        raise ConfigError(option, "empty: give a file name, or leave the option out")
    return value


def output_file(option: str, value: str, suffixes: Iterable[str]) -> Path:
    """A file to be written later: its folder exists and is writable, its suffix is known.

    Checked before anything flies, so a mission's result is never lost to a typo.
    """
    if not value.strip():
        raise ConfigError(option, "empty: give a file name")
    path = Path(value)
    if path.is_dir():
        raise ConfigError(option, f"{value} is a folder: give a file name")
    allowed = tuple(suffixes)
    if allowed and path.suffix.lower() not in allowed:
        raise ConfigError(option, f"{value}: the file name must end in {', '.join(allowed)}")
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(option, f"{value}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(option, f"{value}: the folder {folder} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(option, f"{value} exists and is not writable")
    return path
