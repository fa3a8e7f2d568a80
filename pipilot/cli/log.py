"""`pipilot log record|dump`: GCS-compatible .opl telemetry logs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from pipilot.cli import _checks
from pipilot.cli._telemetry_common import (
    add_definitions_argument,
    add_link_arguments,
    check_link_arguments,
    format_values,
    registry_from,
    to_json,
    until_pipe_closes,
)
from pipilot.core.telemetry import TelemetrySession
from pipilot.errors import PipilotError
from pipilot.uavtalk import PacketParser, PacketType
from pipilot.uavtalk.opl import OplError, read_opl

NAME = "log"
HELP = "record or dump UAVTalk telemetry logs (.opl, as the LibrePilot GCS writes them)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="log_command", metavar="ACTION", required=True)
    rec = sub.add_parser("record", help="connect and record the telemetry stream")
    add_link_arguments(rec)
    rec.add_argument("--out", required=True, metavar="FILE.opl", help="log file to write")
    rec.add_argument("--duration", type=float, default=None, metavar="S",
                     help="stop after S seconds (default: run until interrupted)")
    dump = sub.add_parser("dump", help="print the packets of a log")
    dump.add_argument("file", metavar="FILE.opl")
    dump.add_argument("--json", action="store_true", help="one JSON object per line")
    add_definitions_argument(dump)


async def _record(args: argparse.Namespace) -> int:
    session = await TelemetrySession.open(args.port, args.baud, registry_from(args))
    session.record_to(args.out)
    await session.start()
    print(f"pipilot log: recording {args.port} to {args.out}; {session.waiting_for()}",
          file=sys.stderr, flush=True)

    async def announce() -> None:
        with contextlib.suppress(PipilotError):
            await session.wait_connected()
            print("pipilot log: connected", file=sys.stderr, flush=True)

    task = asyncio.create_task(announce())
    try:
        if args.duration is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(args.duration)
    finally:
        task.cancel()
        stats = session.stats
        await session.stop()
        print(f"pipilot log: {stats['rx_bytes']} bytes, {stats['rx_objects']} objects "
              f"recorded to {args.out}", file=sys.stderr)
    return 0


def _dump(args: argparse.Namespace) -> int:
    parser = PacketParser(registry_from(args))
    try:
        for rec in read_opl(args.file):
            for p in parser.feed(rec.data):
                try:
                    tname = PacketType(p.type).name
                except ValueError:
                    tname = f"0x{p.type:02X}"
                name = p.name or f"0x{p.object_id:08X}"
                if args.json:
                    item = {"t_ms": rec.time_ms, "type": tname, "name": name,
                            "object_id": p.object_id, "instance": p.instance_id,
                            "values": p.values}
                    if p.timestamp is not None:
                        item["timestamp"] = p.timestamp
                    if p.values is None and p.data:
                        item["data"] = p.data.hex()
                    print(to_json(item))
                else:
                    body = format_values(p.values) if p.values is not None else p.data.hex()
                    print(f"{rec.time_ms / 1000:9.3f} {tname:<10} {name}[{p.instance_id}] {body}")
    except OplError:
        sys.stdout.flush()
        raise
    s = parser.stats
    print(f"pipilot log: {s.rx_objects} packets, {s.rx_errors} errors "
          f"({s.rx_crc_errors} CRC), {s.rx_unknown_objects} unknown objects", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.log_command == "record":
        check_link_arguments(args)
        _checks.duration("--duration", args.duration)
        _checks.output_file("--out", args.out, (".opl",))
        return asyncio.run(_record(args))
    _checks.input_file("--definitions", args.definitions)
    return until_pipe_closes(lambda: _dump(args))
