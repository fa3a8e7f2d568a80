"""`pipilot sim`: the whole stack against a simulated CC3D on pty pairs.

The simulated flight controller (pipilot.sim) runs in real time on two pty
pairs; pipilot's FlightCore opens the S.Bus one as its serial port and a
TelemetrySession the telemetry one, exactly as on the rig. With ``--headless
--duration S --json`` it prints one JSON summary at the end, every figure
measured during the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import math
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TextIO

from pipilot.cli import _checks
from pipilot.cli._output import json_text
from pipilot.errors import ConfigError
from pipilot.mission.defaults import HOVER_THROTTLE

if TYPE_CHECKING:
    from pipilot.core.telemetry import TelemetrySession
    from pipilot.core.vehicle import FlightVehicle, ServedVehicle, Vehicle
    from pipilot.sim.runner import RealtimeSim

NAME = "sim"
HELP = "run pipilot against a simulated CC3D (S.Bus and telemetry on pty pairs)"

log = logging.getLogger(__name__)

DEMO_HOVER_THROTTLE = HOVER_THROTTLE
"""What `--demo hover` holds unless told: a mission's `[mission] hover_throttle` default."""


def hover_throttle(value: float | None) -> float:
    """``--hover-throttle``: the default, or a throttle strictly between 0 and 1 (as the
    mission's key)."""
    if value is None:
        return DEMO_HOVER_THROTTLE
    _checks.number("--hover-throttle", value, 0.0, 1.0, lo_open=True)
    if value >= 1.0:
        raise ConfigError("--hover-throttle", f"must be below 1, got {value!r}")
    return float(value)


def _pair(text: str, key: str, n_min: int, n_max: int) -> tuple[float, ...]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(key, f"expected comma-separated numbers, got {text!r}") from None
    if not n_min <= len(parts) <= n_max:
        raise ConfigError(key, f"expected {n_min}..{n_max} numbers, got {text!r}")
    if not all(math.isfinite(x) for x in parts):
        raise ConfigError(key, f"values must be finite numbers, got {text!r}")
    if any(abs(x) > 50 for x in parts):
        raise ConfigError(key, f"values beyond 50 are not plausible: {text!r}")
    return parts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pipilot.cli._flowdeck import add_sim_arguments
    from pipilot.server.settings import add_http_arguments

    add_http_arguments(parser)
    add_sim_arguments(parser)
    parser.add_argument("--headless", action="store_true", help="no web server")
    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="stop after S seconds (default: run until Ctrl-C)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    parser.add_argument("--period-ms", type=float, default=None, metavar="P",
                        help="S.Bus frame period (default: the core's)")
    parser.add_argument("--firmware", choices=("stock", "patched"), default="stock",
                        help="the simulated decoder: LibrePilot 16.09 as released, or patched")
    parser.add_argument("--wind", default="0,0", metavar="N,E[,GUST]",
                        help="mean wind towards north and east in m/s, optional gust rms")
    parser.add_argument("--mount-tilt", default="0,0", metavar="ROLL,PITCH",
                        help="board mounting tilt in degrees (uncompensated)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (sensor biases, noise)")
    parser.add_argument("--telemetry-baud", type=int, default=9600,
                        choices=(2400, 4800, 9600, 19200, 38400, 57600, 115200),
                        help="telemetry link speed (the rig uses 9600)")
    parser.add_argument("--telemetry-latency", type=float, default=0.0, metavar="S",
                        help="extra delay of the simulated telemetry towards pipilot "
                             "(0..2 s, default 0)")
    parser.add_argument("--backend", choices=("model", "sitl"), default="model",
                        help="model: pipilot's built-in CC3D model; sitl: LibrePilot 16.09's "
                             "own firmware (simposix build, see docs/sim.md)")
    parser.add_argument("--sitl", metavar="PATH", default=None,
                        help="the SITL binary for --backend sitl (default: $PIPILOT_SITL)")
    parser.add_argument("--demo", choices=("none", "hover"), default="none",
                        help="hover: a scripted pilot (setpoint source 'test') arms, climbs "
                             "for 2 s and holds --hover-throttle, so drift shows without a page")
    parser.add_argument("--hover-throttle", type=float, default=None, metavar="T",
                        help="the throttle --demo hover holds: the pilot's figure for the "
                             "craft, as a mission's [mission] hover_throttle (default "
                             f"{DEMO_HOVER_THROTTLE:g}, that key's default)")


def run(args: argparse.Namespace) -> int:
    _checks.duration("--duration", args.duration)
    args.hover_throttle = hover_throttle(args.hover_throttle)
    if args.period_ms is not None:
        from pipilot.core.firmware import check_period

        _checks.number("--period-ms", args.period_ms, 0.0, 1000.0, lo_open=True)
        check_period(args.period_ms * 1e-3, args.firmware, key="--period-ms")
    _checks.integer("--seed", args.seed, 0, 2**32 - 1)
    _checks.number("--telemetry-latency", args.telemetry_latency, 0.0, 2.0)
    from pipilot.cli._flowdeck import check_sim_arguments

    check_sim_arguments(args)
    wind = _pair(args.wind, "--wind", 2, 3)
    tilt = _pair(args.mount_tilt, "--mount-tilt", 2, 2)
    main = _main
    if getattr(args, "backend", "model") == "sitl":
        from pipilot.cli._sitl import sitl_binary, sitl_main

        args.sitl = sitl_binary(args.sitl)
        main = sitl_main
    with contextlib.suppress(KeyboardInterrupt):
        summary = asyncio.run(main(args, wind, tilt))
        if args.json:
            print(json_text(summary, sort_keys=True))
        return 0
    return 130


async def _main(args: argparse.Namespace, wind: tuple[float, ...],
                tilt: tuple[float, ...]) -> dict[str, Any]:
    from pipilot.cli._realtime import realtime_process
    from pipilot.core.config import CoreConfig, LinkConfig
    from pipilot.core.telemetry import TelemetrySession
    from pipilot.core.vehicle import Vehicle
    from pipilot.sim.dynamics import QuadParams
    from pipilot.sim.model import SimulatedCC3D
    from pipilot.sim.runner import RealtimeSim

    params = QuadParams(gust_sigma=wind[2] if len(wind) > 2 else 0.0)
    model = SimulatedCC3D(seed=args.seed, firmware=args.firmware, params=params,
                          mount_tilt_deg=(tilt[0], tilt[1]), wind=(wind[0], wind[1]))
    sim = RealtimeSim(model, telemetry_baud=args.telemetry_baud,
                      telemetry_latency_s=args.telemetry_latency).start()
    try:
        base = CoreConfig()
        period = args.period_ms if args.period_ms is not None else base.link.period_ms
        config = base.replace(link=LinkConfig(port=sim.sbus_port, period_ms=period,
                                              firmware=args.firmware))
        vehicle = Vehicle.create(sim.sbus_port, config, sim=sim)
        session = await TelemetrySession.open(sim.telemetry_port, args.telemetry_baud)
        vehicle.attach_telemetry(session)
        t_start = time.monotonic()
        try:
            with realtime_process(config.realtime):
                await _run(args, sim, vehicle, session)
        finally:
            telemetry_connected = session.connected
            tstats = session.stats
            hold_status = None if vehicle.hold is None else vehicle.hold.status()
            hold_rates = _hold_rates(vehicle)
            await vehicle.stop()
            await session.stop()
            await _drain(sim, vehicle.core.stats.frames_sent)
    finally:
        sim.stop()
    elapsed = time.monotonic() - t_start
    rx = model.receiver.stats
    core_stats = vehicle.core.stats
    return {
        "duration_s": round(elapsed, 3),
        "firmware": args.firmware,
        "period_ms": period,
        "seed": args.seed,
        "frames_sent": core_stats.frames_sent,
        "frames_seen": rx.frames_seen,
        "frames_accepted": rx.frames_accepted,
        "frames_rejected": rx.rejected_by_reason(),
        "receiver_failsafe_timeouts": rx.failsafe_timeouts,
        "telemetry_connected": telemetry_connected,
        "telemetry_objects": int(tstats.get("rx_objects", 0)),
        "armed": model.armed,
        "drift_m": round(model.drift_m(), 3),
        "altitude_m": round(model.truth.altitude, 3) + 0.0,
        "sim_error": repr(sim.error) if sim.error else None,
        "flowdeck": hold_status is not None,
        "hold": None if hold_status is None else hold_status.as_json(),
        "hold_rates": hold_rates,
        "core": core_stats.as_dict(),   # the pump's timing, as `pipilot fly` prints it
    }


def _hold_rates(vehicle: Vehicle) -> str | None:
    """Where the hold was set to take its body rates: "imu" (the deck's MPU-6050) or
    "attitude" (AttitudeState differences); None without a deck. What it uses at
    the moment (an IMU that failed falls back) is the status's ``rates``."""
    hold = vehicle.hold
    if hold is None:
        return None
    from pipilot.control.hold import FlowHold

    if not isinstance(hold, FlowHold):
        return None
    return "imu" if hold.imu_rates else "attitude"


async def _drain(sim: RealtimeSim, frames_sent: int, timeout: float = 2.0) -> None:
    """Let every frame the core wrote reach the model (the wire reader may lag under load)."""
    want = frames_sent * 25
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sim.lock:
            got = sim.model.receiver.stats.bytes_received
        if got >= want:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(sim.lag_s + 0.01)


async def _run(args: argparse.Namespace, sim: RealtimeSim, vehicle: Vehicle,
               session: TelemetrySession) -> None:
    """Start core, telemetry and page; wait for the duration, Ctrl-C or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    out = sys.stderr if args.json else sys.stdout
    try:
        async with contextlib.AsyncExitStack() as stack:
            await session.start()
            await vehicle.start()
            if getattr(args, "flowdeck", False):
                await _start_flowdeck(stack, args, sim, vehicle, out)
            if not args.headless:
                await _start_server(stack, vehicle, args, out)
            print(f"simulated CC3D ({args.firmware} firmware, seed {args.seed}): "
                  f"S.Bus on {sim.sbus_port}, telemetry on {sim.telemetry_port}",
                  file=out, flush=True)
            if args.demo == "hover":
                stack.push_async_callback(_cancel, asyncio.create_task(
                    _demo_hover(vehicle, args.hover_throttle)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.duration)
            await vehicle.stop()  # failsafe frames first; then the pages close (1001)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _start_flowdeck(stack: contextlib.AsyncExitStack, args: argparse.Namespace,
                          sim: RealtimeSim, vehicle: Vehicle, out: TextIO) -> None:
    """The simulated flow deck (and with ``--imu`` its MPU-6050), read by its drivers
    on a reader thread, feeding the hold."""
    from pipilot.cli._flowdeck import sim_drivers, start_hold
    from pipilot.cli._output import LineWriter

    clock = vehicle.clock  # the core's: every sample is stamped on it
    # the drivers' power-up waits (and the IMU's calibration) block: never on the
    # loop the core mixes on
    drivers = await asyncio.to_thread(sim_drivers, sim, clock, texture=args.texture,
                                      seed=args.seed, imu=args.imu)
    console = LineWriter(out)
    stack.callback(console.close)
    hold = await start_hold(stack, vehicle, drivers, clock, report=console.write,
                            telemetry_baud=args.telemetry_baud)
    rates = "the IMU (MPU-6050)" if hold.imu_rates else "AttitudeState"
    print(f"flow deck: simulated (texture {args.texture:g}"
          f"{', with an MPU-6050' if drivers.imu is not None else ''}); hold rates from "
          f"{rates}; the page's Hold is available", file=out, flush=True)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _demo_hover(vehicle: FlightVehicle, hover: float,
                      sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """A scripted pilot: Arm (Yaw Left) for 1.5 s, climb for 2 s, then hold ``hover``.

    ``hover`` is the pilot's figure for the craft (``--hover-throttle``), as a
    mission flies its ``[mission] hover_throttle``: never read from the simulator,
    so the demo flies the way the rig would. The drift is left uncorrected.
    """
    from pipilot.core.setpoints import ArmRequest, Setpoint

    t0 = vehicle.clock.now()
    while True:
        t = vehicle.clock.now() - t0
        if t < 1.5:
            sp = Setpoint(arm=ArmRequest.ARM)
        elif t < 3.5:
            sp = Setpoint(throttle=min(1.0, hover + 0.15))
        else:
            sp = Setpoint(throttle=hover)
        vehicle.mixer.publish("test", sp)
        await sleep(0.05)


async def _start_server(stack: contextlib.AsyncExitStack, vehicle: ServedVehicle,
                        args: argparse.Namespace, out: TextIO) -> None:
    """Serve the web page if this build has pipilot.server; say so plainly if not."""
    if importlib.util.find_spec("pipilot.server.runner") is None:
        print("web page: not available in this build (pipilot.server is not there yet); "
              "the simulator runs without it", flush=True)
        return
    from pipilot.server.runner import serve
    from pipilot.server.settings import server_config

    # The page prints its own URL, with the token that logs a browser in.
    config, token_source = server_config(args)
    await stack.enter_async_context(serve(vehicle, config, token_source, out=out))
