"""`pipilot fly`: the production entry point (stream S.Bus until told to stop)."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import logging
import os
import signal
import sys
from typing import NoReturn

from pipilot.cli import _checks
from pipilot.cli._flowdeck import (
    DeckDrivers,
    add_real_arguments,
    check_rates,
    check_real_arguments,
    real_drivers,
    start_hold,
)
from pipilot.cli._output import LineWriter, json_text
from pipilot.cli._realtime import realtime_process
from pipilot.core import config as core_config
from pipilot.core.flightcore import FlightCore
from pipilot.core.vehicle import Vehicle
from pipilot.server.app import ServerConfig
from pipilot.server.runner import serve
from pipilot.server.settings import add_http_arguments, server_config

NAME = "fly"
HELP = "stream S.Bus to the flight controller (SIGTERM/SIGINT: failsafe frames, then exit)"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sbus-port", metavar="PORT",
                        help="S.Bus UART (default: link.port of the config, /dev/serial0)")
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--telemetry-port", metavar="PORT", default=None,
                        help="the FC's telemetry port (e.g. /dev/ttySOFT0, tcp:HOST:PORT); "
                             "the page shows the FC's state from it")
    parser.add_argument("--telemetry-baud", type=int, default=9600, help="(default 9600)")
    parser.add_argument("--headless", action="store_true", help="no web page")
    add_real_arguments(parser)
    add_http_arguments(parser)


async def fly(vehicle: Vehicle, stop: asyncio.Event, web: ServerConfig | None = None,
              token_source: str = "", deck: DeckDrivers | None = None,
              telemetry_baud: int = 9600) -> None:
    """Run `vehicle` (and its page) until `stop` is set; always ends with the core's
    failsafe stop. With ``deck`` (the flow deck's drivers, initialised) the hold runs
    on it and the page may engage it; its rate setup is said on stderr."""
    await vehicle.start()
    try:
        async with contextlib.AsyncExitStack() as stack:
            if deck is not None:
                console = LineWriter(sys.stderr)
                stack.callback(console.close)
                table = vehicle.core.config.hold   # [hold] of the config file
                await start_hold(stack, vehicle, deck, vehicle.clock, config=table.limits,
                                 estimator=table.estimator, report=console.write,
                                 telemetry_baud=telemetry_baud)
            if web is None:
                await stop.wait()
            else:
                async with serve(vehicle, web, token_source):
                    await stop.wait()
                    # failsafe frames now: the server's shutdown waits for its handlers
                    await vehicle.stop()
    finally:
        await vehicle.stop()


def _check_arguments(args: argparse.Namespace) -> None:
    _checks.input_file("--config", args.config)
    _checks.device("--sbus-port", args.sbus_port)
    _checks.telemetry_port("--telemetry-port", args.telemetry_port)
    if args.telemetry_port is not None:
        _checks.baud("--telemetry-baud", args.telemetry_baud, args.telemetry_port)
    check_real_arguments(args)


def run(args: argparse.Namespace) -> int:
    _check_arguments(args)
    cfg = core_config.load(args.config) if args.config else core_config.CoreConfig()
    if args.flowdeck:
        check_rates(cfg.hold.limits.rates, args.imu)
    port = args.sbus_port or cfg.link.port
    vehicle = Vehicle(FlightCore(port, cfg))
    web, token_source = (None, "") if args.headless else server_config(args, cfg.server)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # before any other thread starts: the pump's and the web server's inherit
        # the nice value and the flight loop's SCHED_FIFO; undone on every way out
        with realtime_process(cfg.realtime, loop_fifo=True):
            # asked for, the flow deck must answer before anything flies: a missing
            # bus or sensor is one line (SensorError) and pipilot does not start
            deck = (await asyncio.to_thread(real_drivers, args.spi, args.i2c, vehicle.clock,
                                            imu=args.imu)
                    if args.flowdeck else None)
            session = None
            if args.telemetry_port:
                from pipilot.core.telemetry import TelemetrySession

                session = await TelemetrySession.open(args.telemetry_port, args.telemetry_baud)
                vehicle.attach_telemetry(session)
                await session.start()
            try:
                await fly(vehicle, stop, web, token_source, deck, args.telemetry_baud)
            finally:
                if session is not None:
                    await session.stop()

    asyncio.run(main())
    print(json_text({"stopped": True, **vehicle.core.stats.as_dict()}), flush=True)
    _exit_now()


def _exit_now() -> NoReturn:
    """Exit without the interpreter's teardown: the port is closed and the failsafe
    frames sent, but freeing a large heap can take seconds of a busy CPU, past a
    service manager's stop timeout."""
    atexit._run_exitfuncs()  # the log's writer thread flushes
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
