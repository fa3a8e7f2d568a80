"""The SITL backend of ``pipilot sim`` and ``pipilot mission run --sim``.

LibrePilot's own firmware (pipilot.sim.sitl) instead of the built-in model:
pipilot's FlightCore writes S.Bus into the firmware's pty, a TelemetrySession
talks UAVTalk to it over UDP on 127.0.0.1, and the firmware process is
stopped on every way out (normal end, error, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipilot.errors import ConfigError
from pipilot.sim.sitl import ENV_BINARY, SitlProcess, check_binary, configure

if TYPE_CHECKING:
    from pipilot.mission.api import Mission
    from pipilot.mission.events import MissionEvent
    from pipilot.mission.spec import MissionSpec


def sitl_binary(path: str | None) -> str:
    """The SITL binary from ``--sitl`` or $PIPILOT_SITL; ConfigError when neither names one."""
    path = path or os.environ.get(ENV_BINARY)
    if not path:
        raise ConfigError("--sitl", f"--backend sitl needs --sitl PATH or ${ENV_BINARY} "
                                    "(build it with tools/sitl/build.sh LIBREPILOT_DIR)")
    return str(check_binary(path))


async def sitl_main(args: argparse.Namespace, wind: tuple[float, ...],
                    tilt: tuple[float, ...]) -> dict[str, Any]:
    """``pipilot sim --backend sitl``: the whole stack against the real firmware."""
    from pipilot.cli._realtime import realtime_process
    from pipilot.core.config import CoreConfig, LinkConfig
    from pipilot.core.telemetry import TelemetrySession
    from pipilot.core.vehicle import Vehicle

    if any(wind) or any(tilt):
        raise ConfigError("--wind", "--wind and --mount-tilt are built-in model conditions; "
                                    "the SITL's simulated sensors model neither")
    if getattr(args, "telemetry_latency", 0.0):
        raise ConfigError("--telemetry-latency", "is a built-in model condition; the SITL's "
                                                 "telemetry goes straight over UDP")
    out = sys.stderr if args.json else sys.stdout
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        with SitlProcess(args.sitl) as sitl:
            base = CoreConfig()
            period = args.period_ms if args.period_ms is not None else base.link.period_ms
            config = base.replace(link=LinkConfig(port=sitl.sbus_port, period_ms=period,
                                                  firmware=args.firmware))
            session = await TelemetrySession.open(sitl.telemetry_port)
            vehicle = Vehicle.create(sitl.sbus_port, config)
            vehicle.attach_telemetry(session)
            t_start = time.monotonic()
            with realtime_process(config.realtime):
                try:
                    await session.start()
                    await configure(session)
                    await vehicle.start()
                    print(f"LibrePilot SITL (pid {sitl.pid}): S.Bus on {sitl.sbus_port}, "
                          f"telemetry on {sitl.telemetry_port}", file=out, flush=True)
                    if args.demo == "hover":
                        from pipilot.cli.sim import _demo_hover

                        demo = asyncio.create_task(_demo_hover(vehicle, args.hover_throttle))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), args.duration)
                    if args.demo == "hover":
                        demo.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await demo
                finally:
                    connected = session.connected
                    tstats = session.stats
                    status = session.latest("FlightStatus")
                    await vehicle.stop()
                    await session.stop()
                    await asyncio.sleep(0.3)  # the firmware prints its counters every 200 ms
                    rx = sitl.stats()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return {
        "backend": "sitl",
        "duration_s": round(time.monotonic() - t_start, 3),
        "period_ms": period,
        "frames_sent": vehicle.core.stats.frames_sent,
        "frames_accepted": int(rx.get("frames", 0)),
        "frames_failsafe_flag": int(rx.get("failsafe", 0)),
        "receiver_failsafe_timeouts": int(rx.get("timeouts", 0)),
        "telemetry_connected": connected,
        "telemetry_objects": int(tstats.get("rx_objects", 0)),
        "armed": status is not None and status[0].get("Armed") == "Armed",
    }


async def fly_sitl(spec: MissionSpec, binary: str, *, drift: bool = True,
                   on_event: Callable[[MissionEvent], None] | None = None,
                   config_path: str | None = None) -> tuple[Mission, dict[str, Any]]:
    """Fly a mission in real time against the SITL (the path a real flight takes)."""
    from pipilot.core.telemetry import TelemetrySession
    from pipilot.mission.real import fly_real

    with SitlProcess(binary) as sitl:
        setup = await TelemetrySession.open(sitl.telemetry_port)
        try:
            await setup.start()
            await configure(setup)
        finally:
            await setup.stop()
        mission, summary = await fly_real(spec, drift=drift, on_event=on_event,
                                          config_path=config_path, sbus_port=sitl.sbus_port,
                                          telemetry_port=sitl.telemetry_port)
    summary["sim"] = {"backend": "sitl", "binary": binary}
    return mission, summary
