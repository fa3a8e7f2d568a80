"""Helpers shared by the telemetry and log subcommands."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any

from pipilot.cli import _checks
from pipilot.errors import ConfigError
from pipilot.uavtalk import Registry, load_definitions


def add_link_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True,
                        help="telemetry serial port or pty (e.g. /dev/ttySOFT0), or tcp:HOST:PORT")
    parser.add_argument("--baud", type=int, default=9600,
                        help=f"baud rate, one of {', '.join(map(str, _checks.TELEMETRY_BAUDS))} "
                             "(default 9600; ignored for tcp:)")
    add_definitions_argument(parser)


def add_definitions_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--definitions", metavar="DIR", default=None,
                        help="UAVObject XML directory (default: the built-in LibrePilot 16.09 set)")


def check_link_arguments(args: argparse.Namespace) -> None:
    """Refuse a bad --port or --baud before anything is opened."""
    _checks.telemetry_port("--port", args.port)
    _checks.baud("--baud", args.baud, args.port)
    _checks.input_file("--definitions", args.definitions)


def registry_from(args: argparse.Namespace) -> Registry:
    return load_definitions(args.definitions)


def object_names(registry: Registry, spec: str | None) -> list[str] | None:
    """``A,B`` to a checked list of object names (None: every object)."""
    if not spec:
        return None
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ConfigError("--objects", f"unknown UAVObject(s): {', '.join(unknown)}")
    return names


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def to_json(obj: dict[str, Any]) -> str:
    """One JSON line; non-finite floats become strings so the line stays valid JSON."""
    return json.dumps(_plain(obj), separators=(",", ":"), allow_nan=False)


def format_values(values: dict[str, Any] | None) -> str:
    if values is None:
        return ""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.6g}"
        if isinstance(v, dict):
            return "{" + " ".join(f"{k}={fmt(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + " ".join(fmt(x) for x in v) + "]"
        return str(v)

    return " ".join(f"{k}={fmt(v)}" for k, v in values.items())


def until_pipe_closes(fn: Callable[[], int]) -> int:
    """Run ``fn``; a reader that went away (``| head``) ends the command quietly."""
    try:
        return fn()
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
