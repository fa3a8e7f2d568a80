"""The flow deck and its hold, as `pipilot sim` and `pipilot fly` set them up.

The drivers (`pipilot.sensors`) talk to the simulator's register models over
simulated buses (`pipilot sim`) or to the chips on the Pi's SPI and I2C
(`pipilot fly --flowdeck`); a `SensorReader` thread reads them and feeds the
hold, which the vehicle then offers to the web page (`Vehicle.hold`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipilot.cli import _checks
from pipilot.core.clock import Clock
from pipilot.sensors.bus import i2c_node
from pipilot.sensors.pmw3901 import Pmw3901
from pipilot.sensors.reader import FlowDeckPoller, SensorReader
from pipilot.sensors.vl53l1x import Vl53l1x

if TYPE_CHECKING:
    from pipilot.core.vehicle import Vehicle
    from pipilot.sim.runner import RealtimeSim

DEFAULT_SPI = "/dev/spidev0.0"
DEFAULT_I2C = 1


def add_sim_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flowdeck", action=argparse.BooleanOptionalAction, default=True,
                        help="a simulated flow deck (PMW3901 + VL53L1X register models) "
                             "feeding the hold the page engages (default: on; built-in model only)")
    parser.add_argument("--texture", type=float, default=1.0, metavar="Q",
                        help="floor quality under the flow sensor, 0..1 (default 1)")


def add_real_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flowdeck", action="store_true",
                        help="open the flow deck (PMW3901 on SPI, VL53L1X on I2C) and offer "
                             "the page its position and height hold; refuses to start "
                             "without it")
    parser.add_argument("--spi", metavar="DEV", default=DEFAULT_SPI,
                        help=f"the PMW3901's spidev node (default {DEFAULT_SPI})")
    parser.add_argument("--i2c", metavar="BUS", type=int, default=DEFAULT_I2C,
                        help=f"the VL53L1X's I2C bus (default {DEFAULT_I2C}: /dev/i2c-1)")


def check_real_arguments(args: argparse.Namespace) -> None:
    args.spi = _checks.device("--spi", args.spi)
    _checks.integer("--i2c", args.i2c, 0, 255)


def check_sim_arguments(args: argparse.Namespace) -> None:
    _checks.number("--texture", args.texture, 0.0, 1.0)


def sim_drivers(sim: RealtimeSim, clock: Clock, *, texture: float | Callable[[], float],
                seed: int) -> tuple[Pmw3901, Vl53l1x]:
    """The drivers on simulated buses, over what the real-time model's deck sees.

    The register models read ``flowdeck_truth()`` under the model's lock (the
    model steps in a thread of its own); the flight path sees only their bytes.
    ``texture``: the floor's quality, or a callable giving it now (a bench's
    texture dropout).
    """
    from pipilot.sim.flowdeck import SensorTruth, SimFlowDeck

    def truth() -> SensorTruth:
        q = texture() if callable(texture) else texture
        with sim.lock:
            return sim.model.flowdeck_truth(texture=q)

    deck = SimFlowDeck.create(truth, clock, seed=seed)
    return _init(Pmw3901(deck.spi, device="sim:spi"),
                 Vl53l1x(deck.i2c, device="sim:i2c", now=clock.now))


def real_drivers(spi_dev: str, i2c_bus: int, clock: Clock) -> tuple[Pmw3901, Vl53l1x]:
    """The drivers on the Pi's buses; a missing node or device is a `SensorError`
    (one line: which node, what to enable, what was read instead)."""
    from pipilot.sensors.bus import open_i2c, open_spi

    spi = open_spi(spi_dev)
    i2c = open_i2c(i2c_bus)
    return _init(Pmw3901(spi, device=spi_dev),
                 Vl53l1x(i2c, device=i2c_node(i2c_bus), now=clock.now))


def _init(flow: Pmw3901, ranger: Vl53l1x) -> tuple[Pmw3901, Vl53l1x]:
    flow.init()
    ranger.init()
    return flow, ranger


async def start_hold(stack: contextlib.AsyncExitStack, vehicle: Vehicle,
                     drivers: tuple[Pmw3901, Vl53l1x], clock: Clock) -> None:
    """Read the deck on its thread, run the hold on it and offer it to the page.

    Everything started is stopped by ``stack``, the hold first (it withdraws its
    source), then the reader.

    The FC's AttitudeState period is left as it is (130 ms): asking for 50 ms
    over the rig's 9600 baud link filled the FC's telemetry queue, and the
    FlightStatus updates it then dropped left the page showing "ARMING" after
    the craft had armed."""
    from pipilot.control.hold import FlowHold  # numpy: only for a run with a deck

    hold = FlowHold(vehicle)
    flow, ranger = drivers
    reader = SensorReader(FlowDeckPoller(flow, ranger, clock))
    reader.start(asyncio.get_running_loop())
    stack.callback(_stop_deck, reader, ranger)
    task = asyncio.create_task(hold.run(reader), name="flow-hold")
    stack.push_async_callback(_cancel, task)
    vehicle.hold = hold


def _stop_deck(reader: SensorReader, ranger: Vl53l1x) -> None:
    from pipilot.errors import PipilotError

    reader.stop()
    with contextlib.suppress(PipilotError):
        ranger.stop()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
