"""`pipilot mission`: run (or check) a scripted flight mission from a TOML file."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import importlib.util
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from pipilot.cli import _checks
from pipilot.cli._flowdeck import (
    DEFAULT_I2C,
    DEFAULT_SPI,
    add_real_arguments,
    check_rates,
    check_real_arguments,
)
from pipilot.cli._output import LineWriter, json_text
from pipilot.errors import ConfigError
from pipilot.mission.events import EventKind, MissionEvent

if TYPE_CHECKING:
    from pipilot.control.hold import PolledDeck
    from pipilot.mission.api import Mission
    from pipilot.mission.spec import MissionSpec, SimSpec
    from pipilot.sim import LockstepSim
    from pipilot.sim.flowdeck import SensorTruth

PLOT_SUFFIXES = (".svg", ".png", ".pdf")
NAME = "mission"
HELP = "run a scripted flight mission (TOML) against the flight controller or the simulator"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="mission_command", metavar="ACTION", required=True)
    run_p = sub.add_parser("run", help="fly a mission file",
                           description="Fly a mission file; Ctrl-C aborts into its failsafe.")
    run_p.add_argument("file", metavar="FILE", help="mission file (see examples/*.toml)")
    run_p.add_argument("--sim", action="store_true",
                       help="fly the built-in simulator in lock-step time, honouring [sim]")
    run_p.add_argument("--backend", choices=("model", "sitl"), default="model",
                       help="with --sim: the built-in model (lock-step) or LibrePilot's own "
                            "firmware as SITL (real time, see docs/sim.md)")
    run_p.add_argument("--sitl", metavar="PATH", default=None,
                       help="the SITL binary for --backend sitl (default: $PIPILOT_SITL)")
    run_p.add_argument("--json", action="store_true",
                       help="print only the summary, as one JSON object")
    run_p.add_argument("--no-drift-compensation", action="store_true",
                       help="fly without the drift loop")
    run_p.add_argument("--plot", metavar="OUT.svg",
                       help="write the trajectory and the setpoints to this figure")
    run_p.add_argument("--config", metavar="TOML",
                       help="flight core configuration (ports, calibration) for a real flight")
    run_p.add_argument("--sbus-port", metavar="DEV",
                       help="S.Bus UART for a real flight (default: the config's link.port)")
    run_p.add_argument("--telemetry-port", metavar="DEV", default="/dev/ttySOFT0",
                       help="telemetry port for a real flight (default /dev/ttySOFT0)")
    add_real_arguments(run_p, use="fly the mission's hold steps on it (a real flight)")
    check_p = sub.add_parser("check", help="validate a mission file and list its steps")
    check_p.add_argument("file", metavar="FILE")


def _check_arguments(args: argparse.Namespace, spec: MissionSpec) -> None:
    """Every option of `mission run`, checked before anything connects or flies."""
    if args.plot is not None:
        _checks.output_file("--plot", args.plot, PLOT_SUFFIXES)
        if importlib.util.find_spec("matplotlib") is None:
            raise ConfigError("--plot", "needs matplotlib (pip install matplotlib)")
    _checks.input_file("--config", args.config)
    _checks.device("--sbus-port", args.sbus_port)
    _checks.telemetry_port("--telemetry-port", args.telemetry_port)
    check_real_arguments(args)
    if spec.sim is not None and spec.sim.faults:
        if args.sim and getattr(args, "backend", "model") == "sitl":
            raise ConfigError("sim.faults", "faults are injected into the built-in simulated "
                              "FC only: the SITL would fly without them (drop --backend "
                              "sitl, or the [[sim.faults]] tables)")
        if not args.sim:
            print(f"pipilot: warning: sim.faults: {len(spec.sim.faults)} simulated faults "
                  f"in {args.file} are not injected into a real flight", file=sys.stderr)
    if args.sim and args.flowdeck:
        raise ConfigError("--flowdeck", "opens the rig's flow deck; with --sim the deck is "
                                        "the simulator's ([sim] texture, imu)")
    if args.sim or not spec.hold_enabled:
        return
    if not args.flowdeck:
        raise ConfigError("hold.enabled", "this mission flies the flow-deck hold: add "
                          "--flowdeck (with --spi DEV --i2c BUS where the deck is not on "
                          f"{DEFAULT_SPI} and I2C bus {DEFAULT_I2C}, --imu with its MPU-6050)")
    check_rates(spec.hold.rates, args.imu)


def run(args: argparse.Namespace) -> int:
    # here, not at import: every command imports this module (the drift
    # estimator's numpy would weigh on `pipilot fly`)
    from pipilot.mission.spec import load_mission

    spec = load_mission(args.file)
    if args.mission_command == "run":
        _check_arguments(args, spec)
    if args.mission_command == "check":
        print(f"{spec.name}: {len(spec.steps)} steps, valid")
        for i, step in enumerate(spec.steps, start=1):
            print(f"  {i}. {step}")
        return 0
    show = _Printer(args.json)
    drift = not args.no_drift_compensation
    try:
        if args.sim and getattr(args, "backend", "model") == "sitl":
            from pipilot.cli._sitl import fly_sitl, sitl_binary

            binary = sitl_binary(args.sitl)
            with _realtime(args.config):
                mission, summary = asyncio.run(fly_sitl(
                    spec, binary, drift=drift, on_event=show, config_path=args.config))
        elif args.sim:
            mission, summary = fly_sim(spec, drift=drift, on_event=show)
        else:
            from pipilot.mission.real import fly_real

            deck = None
            if args.flowdeck:
                from pipilot.cli._flowdeck import rig_poller

                deck = functools.partial(rig_poller, args.spi, args.i2c, imu=args.imu)
            with _realtime(args.config):
                mission, summary = asyncio.run(fly_real(
                    spec, drift=drift, on_event=show, config_path=args.config,
                    sbus_port=args.sbus_port, telemetry_port=args.telemetry_port,
                    deck=deck))
    finally:
        show.close()        # the progress lines before the summary
    plot_error = None
    if args.plot:
        from pipilot.mission.plot import plot_mission

        try:
            plot_mission(mission.samples, mission.events.history, args.plot, title=spec.name)
            summary["plot"] = args.plot
        except Exception as exc:   # whatever the plot does, the flight's summary is shown
            plot_error = f"--plot {args.plot}: not written: {exc}"
            summary["plot_error"] = plot_error
    if args.json:
        print(json_text(summary))
    else:
        _print_summary(summary)
    if plot_error:
        print(f"pipilot: error: {plot_error}", file=sys.stderr)
        return 1
    return 0 if summary["completed"] else 2


def _realtime(config_path: str | None) -> AbstractContextManager[Any]:
    """The process-wide real-time settings of a flight in real time (the config's
    [realtime]), on this thread, which runs the flight loop; undone afterwards."""
    from pipilot.cli._realtime import realtime_process
    from pipilot.core.config import CoreConfig, load

    config = load(config_path) if config_path else CoreConfig()
    return realtime_process(config.realtime)


def fly_sim(spec: MissionSpec, *, drift: bool = True,
            on_event: Callable[[MissionEvent], None] | None = None,
            handle_sigint: bool = True) -> tuple[Mission, dict[str, Any]]:
    """Fly ``spec`` on the lock-step simulator with its [sim] conditions."""
    from pipilot.core.vehicle import Vehicle
    from pipilot.mission.lockstep import run_lockstep, sim_lockstep
    from pipilot.mission.runner import run_spec
    from pipilot.mission.spec import SimSpec

    conditions = spec.sim or SimSpec()
    craft = dataclasses.asdict(conditions)
    for key in DECK_KEYS:
        craft.pop(key)
    sim = sim_lockstep(**craft)
    vehicle = sim.vehicle
    if not isinstance(vehicle, Vehicle):  # sim_lockstep attaches a flight core
        raise RuntimeError("the lock-step simulator has no flight core to fly with")
    deck = sim_deck(sim, conditions)
    # [sim] shapes the simulated craft only: the mission flies on its own settings
    # ([mission] hover_throttle is the pilot's figure for the craft), as on the rig
    mission, summary = run_lockstep(sim, lambda: run_spec(
        spec, vehicle, drift=drift, on_event=on_event, handle_sigint=handle_sigint,
        deck=deck))
    summary["sim"] = {**dataclasses.asdict(conditions),
                      "hover_throttle": round(sim.model.hover_throttle(), 4),
                      "faults_injected": [{"t": round(t, 3), "fault": what}
                                          for t, what in sim.faults.log]}
    return mission, summary


DECK_KEYS = ("flow_scale", "flow_noise", "range_scale", "texture_dropout_at_s",
             "texture_dropout_s", "imu")
"""[sim] keys that shape the simulated flow deck rather than the craft."""


def sim_deck(sim: LockstepSim, conditions: SimSpec) -> PolledDeck:
    """The flow deck under the simulated craft: the drivers over simulated buses to
    the register models, fed by the craft's truth, polled in virtual time. With
    ``[sim] imu`` an MPU-6050 shares the ranger's I2C bus, read at 500 Hz, its
    gyro bias measured on the ground before the flight as on the rig."""
    from pipilot.cli._flowdeck import SIM_IMU_VIBRATION_DPS
    from pipilot.control.hold import PolledDeck
    from pipilot.sensors.mpu6050 import ImuConfig, Mpu6050
    from pipilot.sensors.pmw3901 import Pmw3901
    from pipilot.sensors.reader import FlowDeckPoller
    from pipilot.sensors.vl53l1x import Vl53l1x
    from pipilot.sim.flowdeck import SimFlowDeck

    start, length = conditions.texture_dropout_at_s, conditions.texture_dropout_s

    def truth() -> SensorTruth:
        now = sim.clock.now()
        bare = length > 0 and start <= now < start + length
        return sim.model.flowdeck_truth(texture=0.0 if bare else conditions.texture)

    hw = SimFlowDeck.create(truth, sim.clock, seed=int(conditions.seed),
                            imu_truth=sim.model.imu_truth if conditions.imu else None,
                            vibration_dps=SIM_IMU_VIBRATION_DPS)
    hw.flow.scale, hw.ranger.scale = conditions.flow_scale, conditions.range_scale
    hw.flow.noise = conditions.flow_noise
    flow = Pmw3901(hw.spi, device="simulated SPI", sleep=sim.run)
    ranger = Vl53l1x(hw.i2c, device="simulated I2C", sleep=sim.run, now=sim.clock.now)
    flow.init()
    ranger.init()
    imu = None
    if conditions.imu:
        imu = Mpu6050(hw.i2c, device="simulated I2C", config=ImuConfig(rate_hz=500.0, dlpf=2),
                      sleep=sim.run, now=sim.clock.now)
        imu.init()
        imu.calibrate()
    return PolledDeck(FlowDeckPoller(flow, ranger, sim.clock, imu=imu), period_s=0.01)


class _Printer:
    """Progress lines, written from a thread so that a terminal that stops
    reading (Ctrl-S, a paused pager) cannot stall the mission's event loop.
    Quiet: only aborts and failsafes, on stderr."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.out = LineWriter(sys.stderr if quiet else sys.stdout)

    def __call__(self, ev: MissionEvent) -> None:
        if not self.quiet or ev.kind in (EventKind.ABORT, EventKind.FAILSAFE, EventKind.HOLD):
            self.out.write(str(ev))

    def close(self) -> None:
        self.out.close()


def _print_summary(s: dict[str, Any]) -> None:
    status = "completed" if s["completed"] else f"ABORTED: {s['abort_reason']}"
    print(f"\nmission {s['mission']}: {status}")
    print(f"  steps {s['steps_completed']}/{s['steps_total']}, {s['duration_s']:.1f} s, "
          f"drift compensation {'on' if s['drift_compensation'] else 'off'}"
          + (", flow-deck hold" if s.get("flow_hold") else ""))
    if s.get("height_error_p90_m") is not None:
        print(f"  height error over the hold steps: p90 {s['height_error_p90_m']:.3f} m")
    if "drift_m" in s:
        print(f"  ground truth over the {s['hover_seconds']:.0f} s hover: drift "
              f"{s['drift_m']:.2f} m, final speed {s.get('hover_final_speed_mps', 0):.3f} m/s")
