"""`pipilot telemetry`: connect to the flight controller and print live objects."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time

from pipilot.cli import _checks
from pipilot.cli._telemetry_common import (
    add_link_arguments,
    check_link_arguments,
    format_values,
    object_names,
    registry_from,
    to_json,
    until_pipe_closes,
)
from pipilot.core.telemetry import TelemetrySession
from pipilot.uavtalk.session import TelemetryError

NAME = "telemetry"
HELP = "connect over UAVTalk and print live telemetry objects"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_link_arguments(parser)
    parser.add_argument("--objects", metavar="A,B", default=None,
                        help="only these objects (default: every object received)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="stop after S seconds (default: run until interrupted)")


async def _status(session: TelemetrySession, port: str, baud: int) -> None:
    """Say what we are waiting for until connected, and again whenever the link drops."""
    said: str | None = None
    last = 0.0
    while True:
        now = time.monotonic()
        msg = "connected" if session.connected else session.waiting_for()
        if msg != said or (not session.connected and now - last >= 5.0):
            print(f"pipilot telemetry: {port} @ {baud}: {msg}", file=sys.stderr, flush=True)
            said, last = msg, now
        await asyncio.sleep(0.2)


async def _fetch_once(session: TelemetrySession, names: list[str]) -> None:
    """Once connected, request each named object, so rarely sent ones show up too."""
    await session.wait_connected()
    for name in names:
        try:
            await session.request(name)
        except TelemetryError as exc:
            print(f"pipilot telemetry: {exc}", file=sys.stderr, flush=True)


async def _main(args: argparse.Namespace) -> int:
    registry = registry_from(args)
    wanted = object_names(registry, args.objects)
    session = await TelemetrySession.open(args.port, args.baud, registry)
    updates = session.updates()
    await session.start()
    status = asyncio.create_task(_status(session, args.port, args.baud))
    fetch = asyncio.create_task(_fetch_once(session, wanted or []))
    t0 = time.monotonic()

    async def show() -> None:
        async for name, inst, values in updates:
            if wanted is not None and name not in wanted:
                continue
            t = time.monotonic() - t0
            if args.json:
                line = to_json({"t": round(t, 3), "name": name, "instance": inst,
                                "values": values})
            else:
                line = f"{t:9.3f} {name}[{inst}] {format_values(values)}"
            print(line, flush=True)

    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(show(), args.duration)
    finally:
        status.cancel()
        fetch.cancel()
        await session.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    check_link_arguments(args)
    _checks.duration("--duration", args.duration)
    return until_pipe_closes(lambda: asyncio.run(_main(args)))
