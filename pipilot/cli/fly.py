"""`pipilot fly`: the production entry point (stream S.Bus until told to stop)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal

from pipilot.core import config as core_config
from pipilot.core.flightcore import FlightCore
from pipilot.core.vehicle import Vehicle

NAME = "fly"
HELP = "stream S.Bus to the flight controller (SIGTERM/SIGINT: failsafe frames, then exit)"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sbus-port", metavar="PORT",
                        help="S.Bus UART (default: link.port of the config, /dev/serial0)")
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")


async def fly(vehicle: Vehicle, stop: asyncio.Event) -> None:
    """Run `vehicle` until `stop` is set; always ends with the core's failsafe stop."""
    await vehicle.start()
    try:
        await stop.wait()
    finally:
        await vehicle.stop()


def run(args: argparse.Namespace) -> int:
    cfg = core_config.load(args.config) if args.config else core_config.CoreConfig()
    port = args.sbus_port or cfg.link.port
    vehicle = Vehicle(FlightCore(port, cfg))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await fly(vehicle, stop)

    asyncio.run(main())
    print(json.dumps({"stopped": True, **vehicle.core.stats.as_dict()}))
    return 0
