"""A flow deck on simulated buses in virtual time, and a truth the test can change."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from pipilot.core.clock import VirtualClock
from pipilot.sensors.pmw3901 import Pmw3901
from pipilot.sensors.vl53l1x import Vl53l1x
from pipilot.sim.flowdeck import SensorTruth, SimFlowDeck


class Truth:
    """A settable truth provider."""

    def __init__(self) -> None:
        self.value = SensorTruth()

    def __call__(self) -> SensorTruth:
        return self.value

    def set(self, **kw: object) -> None:
        self.value = replace(self.value, **kw)  # type: ignore[arg-type]


@dataclass
class Rig:
    clock: VirtualClock
    truth: Truth
    deck: SimFlowDeck
    flow: Pmw3901
    ranger: Vl53l1x

    def sleep(self, s: float) -> None:
        self.clock.advance(s)


def make_rig(seed: int = 0, *, init: bool = True) -> Rig:
    clock = VirtualClock(100.0)
    truth = Truth()
    deck = SimFlowDeck.create(truth, clock, seed=seed)
    flow = Pmw3901(deck.spi, device="sim:spi", sleep=clock.advance)
    ranger = Vl53l1x(deck.i2c, device="sim:i2c", sleep=clock.advance, now=clock.now)
    rig = Rig(clock, truth, deck, flow, ranger)
    if init:
        flow.init()
        ranger.init()
    return rig


@pytest.fixture
def rig() -> Rig:
    return make_rig()
