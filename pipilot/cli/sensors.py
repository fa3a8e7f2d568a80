"""`pipilot sensors`: the flow deck's bring-up tool: live flow, SQUAL, range and status.

On the Pi it opens the PMW3901 on a spidev node and the VL53L1X on an I2C
bus; with ``--sim`` the same drivers talk to the register models of
`pipilot.sim.flowdeck` over simulated buses, fed by a scripted sway. Ten
lines a second; ``--json`` makes each line a JSON object and ends with a
``{"summary": ...}`` line. ``--imu`` adds an MPU-6050 on the same I2C bus
(its gyro bias is measured at start: keep the craft still) and shows its body
rates; ``--distance-mode`` and ``--timing-budget-ms`` set up the ranger.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
from dataclasses import dataclass, field
from typing import Any

from pipilot.cli import _checks
from pipilot.cli._output import json_text
from pipilot.cli._telemetry_common import until_pipe_closes
from pipilot.core.clock import Clock, MonotonicClock
from pipilot.errors import PipilotError
from pipilot.sensors import mpu6050
from pipilot.sensors.bus import i2c_node, open_i2c, open_spi
from pipilot.sensors.mpu6050 import ImuConfig, Mpu6050
from pipilot.sensors.pmw3901 import COUNTS_PER_RAD, Pmw3901
from pipilot.sensors.reader import (
    FlowDeckPoller,
    Item,
    SensorFault,
    SensorReader,
    TimedFlow,
    TimedImu,
    TimedRange,
)
from pipilot.sensors.vl53l1x import DEFAULT_BUDGET_MS, DEFAULT_MODE, Vl53l1x, check_mode

NAME = "sensors"
HELP = "print live optical flow, SQUAL, range and status from the flow deck"

DEFAULT_SPI = "/dev/spidev0.0"
DEFAULT_I2C = 1
REPORT_S = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sim", action="store_true",
                        help="simulated sensors (register models over simulated buses)")
    parser.add_argument("--spi", metavar="DEV", default=DEFAULT_SPI,
                        help=f"the PMW3901's spidev node (default {DEFAULT_SPI})")
    parser.add_argument("--i2c", metavar="BUS", type=int, default=DEFAULT_I2C,
                        help=f"the VL53L1X's I2C bus number (default {DEFAULT_I2C}: /dev/i2c-1)")
    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="stop after S seconds (default: run until interrupted)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--distance-mode", default=DEFAULT_MODE, metavar="MODE",
                        help=f"VL53L1X distance mode: short (to 1.3 m) or long (to 4 m; "
                             f"default {DEFAULT_MODE})")
    parser.add_argument("--timing-budget-ms", type=int, default=DEFAULT_BUDGET_MS, metavar="MS",
                        help="VL53L1X timing budget: 15 (short only), 20, 33, 50, 100, 200 "
                             f"or 500 (default {DEFAULT_BUDGET_MS})")
    parser.add_argument("--imu", action="store_true",
                        help="also read an MPU-6050 at 0x68 on the same I2C bus and show its "
                             "body rates (its gyro bias is measured at start: keep still)")
    parser.add_argument("--imu-rate", type=float, default=mpu6050.DEFAULT_RATE_HZ, metavar="HZ",
                        help=f"MPU-6050 sample rate (default {mpu6050.DEFAULT_RATE_HZ:g})")


@dataclass
class Window:
    """What arrived during one report interval, and the totals of the run."""

    dx: int = 0
    dy: int = 0
    flow: list[dict[str, Any]] = field(default_factory=list)
    range: dict[str, Any] | None = None
    imu: list[TimedImu] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)


@dataclass
class Totals:
    flow_samples: int = 0
    flow_valid: int = 0
    squal_sum: int = 0
    dx: int = 0
    dy: int = 0
    range_samples: int = 0
    range_valid: int = 0
    range_min_m: float | None = None
    range_max_m: float | None = None
    imu_samples: int = 0
    faults: int = 0

    def add(self, item: Item, w: Window) -> None:
        if isinstance(item, TimedFlow):
            s = item.sample
            self.flow_samples += 1
            self.squal_sum += s.squal
            if s.valid:
                self.flow_valid += 1
                self.dx += s.dx
                self.dy += s.dy
                w.dx += s.dx
                w.dy += s.dy
            w.flow.append({"squal": s.squal, "shutter": s.shutter, "status": s.status})
        elif isinstance(item, TimedRange):
            r = item.sample
            self.range_samples += 1
            if r.valid:
                self.range_valid += 1
                lo, hi = self.range_min_m, self.range_max_m
                self.range_min_m = r.range_m if lo is None else min(lo, r.range_m)
                self.range_max_m = r.range_m if hi is None else max(hi, r.range_m)
            w.range = {"range_m": round(r.range_m, 3) if r.valid else None,
                       "status": r.status, "status_text": r.status_text,
                       "signal_mcps": round(r.signal_mcps, 3)}
        elif isinstance(item, TimedImu):
            self.imu_samples += 1
            w.imu.append(item)
        elif isinstance(item, SensorFault):
            self.faults += 1
            w.faults.append(item.message)

    def summary(self) -> dict[str, Any]:
        return {
            "flow_samples": self.flow_samples, "flow_valid": self.flow_valid,
            "squal_mean": self.squal_sum / self.flow_samples if self.flow_samples else None,
            # the scale check on the rig (docs/sensors.md): 1 m along X at 1 m is 1 rad
            "flow_counts": [self.dx, self.dy],
            "flow_rad": [round(self.dx / COUNTS_PER_RAD, 4), round(self.dy / COUNTS_PER_RAD, 4)],
            "range_samples": self.range_samples, "range_valid": self.range_valid,
            "range_min_m": self.range_min_m, "range_max_m": self.range_max_m,
            "imu_samples": self.imu_samples, "faults": self.faults,
        }


@dataclass
class Deck:
    flow: Pmw3901
    ranger: Vl53l1x
    imu: Mpu6050 | None


def open_deck(args: argparse.Namespace, clock: Clock) -> Deck:
    """The drivers, initialised: on simulated buses with ``--sim``, else the Pi's.

    With ``--imu`` the MPU-6050's gyro bias is measured before anything is
    printed (the craft must be still); in ``--sim`` the scripted sway waits
    for it.
    """
    imu_config = ImuConfig(rate_hz=args.imu_rate) if args.imu else None
    if args.sim:
        from pipilot.sim.flowdeck import ScriptedTruth, SimFlowDeck

        truth = ScriptedTruth(clock, still_s=3.0 if args.imu else 0.0)
        deck = SimFlowDeck.create(truth, clock, imu_truth=truth.imu if args.imu else None)
        spi: Any = deck.spi
        i2c: Any = deck.i2c
        spi_name, i2c_name = "sim:spi", "sim:i2c"
    else:
        spi_name, i2c_name = args.spi, i2c_node(args.i2c)
        spi = open_spi(args.spi)
        i2c = open_i2c(args.i2c)
    flow = Pmw3901(spi, device=spi_name)
    ranger = Vl53l1x(i2c, device=i2c_name, now=clock.now, distance_mode=args.distance_mode,
                     timing_budget_ms=args.timing_budget_ms)
    imu = None if imu_config is None else Mpu6050(i2c, device=i2c_name, config=imu_config,
                                                  now=clock.now)
    flow.init()
    ranger.init()
    if imu is not None:
        imu.init()
        imu.calibrate()
    return Deck(flow, ranger, imu)


def imu_view(samples: list[TimedImu]) -> dict[str, Any] | None:
    """The window's mean body rates (deg/s) and specific force (m/s^2), None without samples."""
    if not samples:
        return None
    n = len(samples)
    rates = [math.degrees(sum(s.sample.rates[k] for s in samples) / n) for k in range(3)]
    accel = [sum(s.sample.accel[k] for s in samples) / n for k in range(3)]
    return {"samples": n, "rates_dps": [round(x, 2) for x in rates],
            "accel_mps2": [round(x, 2) for x in accel]}


def line(t: float, w: Window, as_json: bool, imu: bool = False) -> str:
    last = w.flow[-1] if w.flow else None
    iv = imu_view(w.imu)
    if as_json:
        obj = {"t": round(t, 3), "dx": w.dx, "dy": w.dy, "flow_samples": len(w.flow),
               "squal": last["squal"] if last else None,
               "shutter": last["shutter"] if last else None,
               "flow_status": last["status"] if last else None,
               "range": w.range, "faults": w.faults}
        if imu:
            obj["imu"] = iv
        return json_text(obj, separators=(",", ":"))
    flow = (f"flow dx {w.dx:+5d} dy {w.dy:+5d} squal {last['squal']:3d} "
            f"shutter 0x{last['shutter']:04X} {last['status']}") if last else "flow -"
    rng = "range -"
    if w.range is not None:
        r = w.range
        rng = (f"range {r['range_m']:.3f} m ok" if r["range_m"] is not None
               else f"range {r['status_text']}")
    gyro = ""
    if imu:
        gyro = " | rates -" if iv is None else " | rates p {:+7.2f} q {:+7.2f} r {:+7.2f} " \
            "deg/s".format(*iv["rates_dps"])
    faults = f" | FAULT {w.faults[-1]}" if w.faults else ""
    return f"{t:8.2f}  {flow} | {rng}{gyro}{faults}"


async def _main(args: argparse.Namespace) -> int:
    clock = MonotonicClock()
    deck = open_deck(args, clock)
    ranger = deck.ranger
    reader = SensorReader(FlowDeckPoller(deck.flow, ranger, clock, imu=deck.imu))
    reader.start(asyncio.get_running_loop())
    totals = Totals()
    t0 = clock.now()
    w = Window()
    next_report = t0 + REPORT_S
    interrupted = False
    try:
        while args.duration is None or clock.now() - t0 < args.duration:
            with contextlib.suppress(TimeoutError):
                for item in await asyncio.wait_for(reader.get(), REPORT_S):
                    totals.add(item, w)
            if clock.now() >= next_report:
                print(line(clock.now() - t0, w, args.json, args.imu), flush=True)
                w = Window()
                while next_report <= clock.now():
                    next_report += REPORT_S
    except asyncio.CancelledError:   # Ctrl-C: still stop the ranger and print the summary
        interrupted = True
    finally:
        reader.stop()
        with contextlib.suppress(PipilotError):
            ranger.stop()
    summary = totals.summary() | {"dropped": reader.dropped}
    if args.json:
        print(json_text({"summary": summary}, separators=(",", ":")), flush=True)
    else:
        imu_text = f"{summary['imu_samples']} IMU samples, " if args.imu else ""
        print(f"flow {summary['flow_valid']}/{summary['flow_samples']} valid "
              f"(image moved {summary['flow_rad'][0]:+.3f}, {summary['flow_rad'][1]:+.3f} rad), "
              f"range "
              f"{summary['range_valid']}/{summary['range_samples']} valid, "
              f"{imu_text}{summary['faults']} fault(s)", flush=True)
    if interrupted:
        raise KeyboardInterrupt
    no_imu = args.imu and not summary["imu_samples"]
    return 1 if summary["faults"] or not summary["flow_samples"] or no_imu else 0


def run(args: argparse.Namespace) -> int:
    args.duration = _checks.duration("--duration", args.duration)
    args.spi = _checks.device("--spi", args.spi)
    _checks.integer("--i2c", args.i2c, 0, 255)
    check_mode(args.distance_mode, args.timing_budget_ms)
    if args.imu:
        ImuConfig(rate_hz=args.imu_rate)
    with contextlib.suppress(KeyboardInterrupt):
        return until_pipe_closes(lambda: asyncio.run(_main(args)))
    return 0
