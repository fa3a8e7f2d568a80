"""The flow deck and its hold, as `pipilot sim`, `pipilot fly` and `pipilot mission
run` set them up.

The drivers (`pipilot.sensors`) talk to the simulator's register models over
simulated buses (`pipilot sim`) or to the chips on the Pi's SPI and I2C
(`--flowdeck` of `pipilot fly` and `pipilot mission run`), an MPU-6050 on the
deck's I2C bus with them if asked for; a `SensorReader` thread reads them and
feeds the hold, which the vehicle then offers to the web page (`Vehicle.hold`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from pipilot.cli import _checks
from pipilot.core.clock import Clock
from pipilot.errors import ConfigError
from pipilot.sensors.bus import i2c_node
from pipilot.sensors.mpu6050 import Mpu6050
from pipilot.sensors.pmw3901 import Pmw3901
from pipilot.sensors.reader import FlowDeckPoller, SensorReader
from pipilot.sensors.vl53l1x import Vl53l1x

if TYPE_CHECKING:
    from pipilot.control.flow import FlowConfig
    from pipilot.control.hold import FlowHold, HoldConfig
    from pipilot.core.vehicle import Vehicle
    from pipilot.sim.runner import RealtimeSim

log = logging.getLogger(__name__)

DEFAULT_SPI = "/dev/spidev0.0"
DEFAULT_I2C = 1


class DeckDrivers(NamedTuple):
    """The deck's drivers, initialised (the IMU's gyro bias measured)."""

    flow: Pmw3901
    ranger: Vl53l1x
    imu: Mpu6050 | None = None


def add_sim_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flowdeck", action=argparse.BooleanOptionalAction, default=True,
                        help="a simulated flow deck (PMW3901 + VL53L1X register models) "
                             "feeding the hold the page engages (default: on; built-in model only)")
    parser.add_argument("--texture", type=float, default=1.0, metavar="Q",
                        help="floor quality under the flow sensor, 0..1 (default 1)")
    parser.add_argument("--imu", action=argparse.BooleanOptionalAction, default=SIM_IMU,
                        help="an MPU-6050 model on the simulated deck's I2C bus: the hold "
                             "takes its body rates from it (default: on, as [sim] imu)")


def add_real_arguments(parser: argparse.ArgumentParser,
                       use: str = "offer the page its position and height hold") -> None:
    """``--flowdeck``, ``--spi``, ``--i2c`` and ``--imu``; ``use``: what the deck is for."""
    parser.add_argument("--flowdeck", action="store_true",
                        help="open the flow deck (PMW3901 on SPI, VL53L1X on I2C) and "
                             f"{use}; refuses to start without it")
    parser.add_argument("--spi", metavar="DEV", default=DEFAULT_SPI,
                        help=f"the PMW3901's spidev node (default {DEFAULT_SPI})")
    parser.add_argument("--i2c", metavar="BUS", type=int, default=DEFAULT_I2C,
                        help=f"the VL53L1X's I2C bus (default {DEFAULT_I2C}: /dev/i2c-1)")
    parser.add_argument("--imu", action="store_true",
                        help="with --flowdeck: an MPU-6050 at 0x68 on the deck's I2C bus gives "
                             "the hold its body rates (keep the craft still while it "
                             "calibrates at start-up); refuses to start without it")


def check_real_arguments(args: argparse.Namespace) -> None:
    if args.imu and not args.flowdeck:
        raise ConfigError("--imu", "reads the flow deck's MPU-6050: add --flowdeck")
    if not args.flowdeck:
        return
    args.spi = _checks.device("--spi", args.spi)
    _checks.integer("--i2c", args.i2c, 0, 255)


def check_rates(rates: str | None, imu: bool) -> None:
    """``[hold] rates = "imu"`` needs the deck's MPU-6050: refused up front without
    ``--imu`` (the hold would refuse it only once the craft is connected)."""
    if rates == "imu" and not imu:
        raise ConfigError("hold.rates", 'is "imu": add --imu (the deck\'s MPU-6050 on its '
                                        "I2C bus)")


def check_sim_arguments(args: argparse.Namespace) -> None:
    _checks.number("--texture", args.texture, 0.0, 1.0)


SIM_IMU = True
"""`pipilot sim --imu` unless told: as a mission's ``[sim] imu``."""
SIM_IMU_VIBRATION_DPS = 0.25
"""Airframe vibration on the simulated deck's IMU: as on the simulated CC3D's gyro."""


def sim_drivers(sim: RealtimeSim, clock: Clock, *, texture: float | Callable[[], float],
                seed: int, imu: bool = False) -> DeckDrivers:
    """The drivers on simulated buses, over what the real-time model's deck sees.

    The register models read ``flowdeck_truth()`` (and with ``imu``
    ``imu_truth()``, an MPU-6050 on the ranger's bus) under the model's lock
    (the model steps in a thread of its own); the flight path sees only their
    bytes. ``texture``: the floor's quality, or a callable giving it now (a
    bench's texture dropout). Blocks for the sensors' power-up and, with an
    IMU, its calibration: call it off the event loop.
    """
    from pipilot.sim.flowdeck import SensorTruth, SimFlowDeck
    from pipilot.sim.mpu6050 import ImuTruth

    def truth() -> SensorTruth:
        q = texture() if callable(texture) else texture
        with sim.lock:
            return sim.model.flowdeck_truth(texture=q)

    def imu_truth() -> ImuTruth:
        with sim.lock:
            return sim.model.imu_truth()

    deck = SimFlowDeck.create(truth, clock, seed=seed, imu_truth=imu_truth if imu else None,
                              vibration_dps=SIM_IMU_VIBRATION_DPS)
    return _init(Pmw3901(deck.spi, device="sim:spi"),
                 Vl53l1x(deck.i2c, device="sim:i2c", now=clock.now),
                 Mpu6050(deck.i2c, device="sim:i2c", now=clock.now) if imu else None)


def real_drivers(spi_dev: str, i2c_bus: int, clock: Clock, *,
                 imu: bool = False) -> DeckDrivers:
    """The drivers on the Pi's buses; a missing node or device is a `SensorError`
    (one line: which node, what to enable, what was read instead). With ``imu``
    the MPU-6050 on the deck's I2C bus too, its gyro bias measured (the craft
    must be still): one that does not answer, or a craft that moves, is a
    `SensorError` as well."""
    from pipilot.sensors.bus import open_i2c, open_spi

    spi = open_spi(spi_dev)
    i2c = open_i2c(i2c_bus)
    node = i2c_node(i2c_bus)
    return _init(Pmw3901(spi, device=spi_dev), Vl53l1x(i2c, device=node, now=clock.now),
                 Mpu6050(i2c, device=node, now=clock.now) if imu else None)


def rig_poller(spi_dev: str, i2c_bus: int, clock: Clock, *, imu: bool = False
               ) -> FlowDeckPoller:
    """`real_drivers` as one polling pass over them (what `pipilot mission run
    --flowdeck` reads)."""
    return deck_poller(real_drivers(spi_dev, i2c_bus, clock, imu=imu), clock)


def deck_poller(drivers: DeckDrivers, clock: Clock) -> FlowDeckPoller:
    """One polling pass over ``drivers`` (the IMU too, when there is one)."""
    return FlowDeckPoller(drivers.flow, drivers.ranger, clock, imu=drivers.imu)


def _init(flow: Pmw3901, ranger: Vl53l1x, imu: Mpu6050 | None = None) -> DeckDrivers:
    flow.init()
    ranger.init()
    if imu is not None:
        imu.init()
        imu.calibrate()
    return DeckDrivers(flow, ranger, imu)


def open_reader(stack: contextlib.AsyncExitStack | contextlib.ExitStack,
                drivers: DeckDrivers, clock: Clock) -> SensorReader:
    """A started `SensorReader` on ``drivers`` (the IMU at its own rate); ``stack``
    stops it and the ranger."""
    reader = SensorReader(deck_poller(drivers, clock))
    reader.start(asyncio.get_running_loop())
    stack.callback(_stop_deck, reader, drivers.ranger)
    return reader


def rates_text(hold: FlowHold) -> str:
    """The hold's rate setup in one line: the rates' source and the attitude period."""
    src = "the IMU" if hold.imu_rates else "AttitudeState"
    if hold.attitude_period_set:
        period = f"AttitudeState every {hold.attitude_period_ms} ms"
    elif hold.attitude_period_error is not None:
        period = (f"AttitudeState period not set ({hold.attitude_period_error}): the FC's "
                  "own stands")
    else:
        period = f"AttitudeState period {hold.attitude_period_ms} ms asked for"
    return f"hold: body rates from {src}; {period}"


async def keep_rates(hold: FlowHold, report: Callable[[str], None], *, poll_s: float = 0.2,
                     retry_s: float = 5.0, tries: int = 3) -> None:
    """Ask the FC for the hold's AttitudeState period each time the telemetry link
    comes up (an FC that rebooted forgets it), as a mission does before it flies;
    best effort: up to ``tries`` attempts per connection, ``retry_s`` apart, their
    outcome passed to ``report``. A period that is not set leaves the hold on
    the FC's own (slower) one."""
    tel = hold.vehicle.telemetry
    if tel is None:
        await hold.configure_rates()
        report(rates_text(hold))
        return
    while True:
        while not tel.connected:
            await asyncio.sleep(poll_s)
        for attempt in range(tries):
            if not await hold.configure_rates():
                break
            if attempt + 1 < tries:
                await asyncio.sleep(retry_s)
        report(rates_text(hold))
        while tel.connected:
            await asyncio.sleep(poll_s)
        hold.attitude_period_set = False


async def start_hold(stack: contextlib.AsyncExitStack, vehicle: Vehicle,
                     drivers: DeckDrivers, clock: Clock, *, config: HoldConfig | None = None,
                     estimator: FlowConfig | None = None,
                     report: Callable[[str], None] | None = None,
                     telemetry_baud: int = 9600) -> FlowHold:
    """Read the deck on its thread, run the hold on it and offer it to the page.

    ``config``/``estimator``: the hold's limits and its estimator (the core
    config's ``[hold]``); its body rates follow ``[hold] rates``: the deck's
    IMU when it has one, unless told otherwise. The FC is asked for the
    AttitudeState period the link budget at ``telemetry_baud`` allows
    (`keep_rates`), reported
    through ``report`` (default: the log). Everything started is stopped by
    ``stack``, the hold first (it withdraws its source), then the reader."""
    from pipilot.control.hold import FlowHold  # numpy: only for a run with a deck

    hold = FlowHold(vehicle, config, estimator, imu=drivers.imu is not None,
                    telemetry_baud=telemetry_baud)
    reader = open_reader(stack, drivers, clock)
    task = asyncio.create_task(hold.run(reader), name="flow-hold")
    stack.push_async_callback(_cancel, task)
    rates = asyncio.create_task(keep_rates(hold, report or log.warning), name="hold-rates")
    stack.push_async_callback(_cancel, rates)
    vehicle.hold = hold
    return hold


def _stop_deck(reader: SensorReader, ranger: Vl53l1x) -> None:
    from pipilot.errors import PipilotError

    reader.stop()
    with contextlib.suppress(PipilotError):
        ranger.stop()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
