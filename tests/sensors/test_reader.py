"""The flow-deck reader: timestamps on the injected clock, faults as items, a thread that
never blocks the loop."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from pipilot.core.clock import MonotonicClock, VirtualClock
from pipilot.sensors.mpu6050 import ImuConfig, ImuSample, Mpu6050
from pipilot.sensors.pmw3901 import Pmw3901
from pipilot.sensors.reader import (
    QUEUE_MAX,
    FlowDeckPoller,
    SensorFault,
    SensorReader,
    TimedFlow,
    TimedImu,
    TimedRange,
    TimedRates,
)
from pipilot.sensors.vl53l1x import Vl53l1x
from pipilot.sim.flowdeck import COUNTS_PER_RAD, ScriptedTruth, SimFlowDeck
from pipilot.sim.model import SimulatedCC3D
from pipilot.sim.mpu6050 import ImuTruth, Mpu6050Model
from tests.sensors.conftest import Rig, make_rig


def test_poll_stamps_each_sample_on_the_injected_clock(rig: Rig) -> None:
    poller = FlowDeckPoller(rig.flow, rig.ranger, rig.clock)
    seen: list[object] = []
    for _ in range(30):
        rig.clock.advance(0.01)
        seen += poller.poll()
    flows = [i for i in seen if isinstance(i, TimedFlow)]
    ranges = [i for i in seen if isinstance(i, TimedRange)]
    assert len(flows) == 30 and [f.t for f in flows] == sorted(f.t for f in flows)
    assert flows[-1].t == rig.clock.now()
    assert len(ranges) == 3 and all(r.sample.valid for r in ranges)


def test_a_bus_error_becomes_a_fault_item_and_reading_resumes(rig: Rig) -> None:
    poller = FlowDeckPoller(rig.flow, None, rig.clock)
    rig.deck.spi.fail = OSError(5, "Input/output error")
    items = poller.poll()
    assert len(items) == 1 and isinstance(items[0], SensorFault)
    assert "Input/output error" in items[0].message and items[0].t == rig.clock.now()
    rig.deck.spi.fail = None
    assert isinstance(poller.poll()[0], TimedFlow)


def test_a_dead_spi_bus_does_not_blind_the_ranger(rig: Rig) -> None:
    poller = FlowDeckPoller(rig.flow, rig.ranger, rig.clock)
    rig.deck.spi.fail = OSError(5, "Input/output error")
    seen: list[object] = []
    for _ in range(30):
        rig.clock.advance(0.01)
        seen += poller.poll()
    assert sum(isinstance(i, SensorFault) for i in seen) == 30
    assert sum(isinstance(i, TimedRange) for i in seen) == 3
    assert not any(isinstance(i, TimedFlow) for i in seen)


def test_needs_a_sensor() -> None:
    with pytest.raises(ValueError, match="nothing to read"):
        FlowDeckPoller(None, None, MonotonicClock())


def real_deck() -> tuple[SimFlowDeck, Pmw3901, Vl53l1x, MonotonicClock]:
    clock = MonotonicClock()
    deck = SimFlowDeck.create(ScriptedTruth(clock), clock)
    flow = Pmw3901(deck.spi, sleep=lambda s: None)
    ranger = Vl53l1x(deck.i2c)
    flow.init()
    ranger.init()
    return deck, flow, ranger, clock


async def test_the_thread_hands_samples_to_the_loop_and_stops() -> None:
    _, flow, ranger, clock = real_deck()
    reader = SensorReader(FlowDeckPoller(flow, ranger, clock), period_s=0.005)
    loop_thread = threading.get_ident()
    reader.start(asyncio.get_running_loop())
    got: list[object] = []
    t0 = time.monotonic()
    try:
        while not any(isinstance(i, TimedRange) for i in got) and time.monotonic() - t0 < 20:
            got += await reader.get()
    finally:
        reader.stop()
    assert threading.get_ident() == loop_thread
    assert any(isinstance(i, TimedFlow) for i in got)
    assert any(isinstance(i, TimedRange) for i in got)
    assert reader._thread is not None and not reader._thread.is_alive()


async def test_transfers_run_off_the_loop_thread() -> None:
    """Every bus transfer happens on the reader's thread, never the event loop's."""
    deck, flow, _, clock = real_deck()
    real = deck.spi.xfer2
    threads: set[int] = set()

    def xfer2(values: list[int]) -> list[int]:
        threads.add(threading.get_ident())
        time.sleep(0.02)          # a transfer that blocks its thread
        return real(values)

    deck.spi.xfer2 = xfer2        # type: ignore[method-assign]
    reader = SensorReader(FlowDeckPoller(flow, None, clock), period_s=0.001)
    reader.start(asyncio.get_running_loop())
    try:
        got = await asyncio.wait_for(reader.get(), 20)
    finally:
        reader.stop()
    assert got and threads and threading.get_ident() not in threads


async def test_faults_reach_the_loop_and_are_counted() -> None:
    deck, flow, _, clock = real_deck()
    deck.spi.fail = OSError(5, "Input/output error")
    reader = SensorReader(FlowDeckPoller(flow, None, clock), retry_s=0.01)
    reader.start(asyncio.get_running_loop())
    try:
        items = await asyncio.wait_for(reader.get(), 20)
    finally:
        reader.stop()
    assert isinstance(items[0], SensorFault) and reader.faults >= 1


def test_an_unread_queue_drops_the_oldest() -> None:
    _, flow, _, clock = real_deck()
    reader = SensorReader(FlowDeckPoller(flow, None, clock))
    reader._wake = asyncio.Event()
    for i in range(QUEUE_MAX + 10):
        reader._deliver([SensorFault(float(i), "x")])
    assert reader.dropped == 10 and len(reader._items) == QUEUE_MAX
    assert reader._items[0].t == 10.0


def test_the_simulated_craft_feeds_the_deck_from_its_truth() -> None:
    sim = SimulatedCC3D(seed=1)
    on_ground = sim.flowdeck_truth(texture=0.7)
    assert on_ground.height_m == pytest.approx(0.03) and on_ground.texture == 0.7
    t = sim.quad.truth
    t.position[:] = (0.0, 0.0, -1.2)
    t.velocity[:] = (1.0, 0.0, 0.0)                      # north
    t.r = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # facing east
    t.rate[:] = (0.1, 0.2, 0.3)
    seen = sim.flowdeck_truth()
    assert seen.height_m == pytest.approx(1.23)
    assert seen.velocity_body == pytest.approx((0.0, -1.0))   # north is to its left
    assert seen.rates == pytest.approx((0.1, 0.2, 0.3))
    assert seen.roll == pytest.approx(0.0) and seen.pitch == pytest.approx(0.0)
    clock = VirtualClock()
    deck = SimFlowDeck.create(sim.flowdeck_truth, clock)
    flow = Pmw3901(deck.spi, sleep=clock.advance)
    flow.init()
    flow.read_motion()
    clock.advance(1.0)
    s = flow.read_motion()                               # leftward motion: -y in counts
    assert s.dy == pytest.approx(COUNTS_PER_RAD * (-1.0 / 1.23 - 0.1), abs=5)
    assert s.dx == pytest.approx(COUNTS_PER_RAD * 0.2, abs=5)


async def test_an_unexpected_error_in_the_poller_is_reported_not_silent() -> None:
    _, flow, _, clock = real_deck()
    poller = FlowDeckPoller(flow, None, clock)

    def broken() -> list[object]:
        raise ZeroDivisionError("bug")

    poller.poll = broken                      # type: ignore[method-assign,assignment]
    reader = SensorReader(poller, retry_s=0.01)
    reader.start(asyncio.get_running_loop())
    try:
        items = await asyncio.wait_for(reader.get(), 20)
        more = await asyncio.wait_for(reader.get(), 20)   # the thread is still running
    finally:
        reader.stop()
    assert isinstance(items[0], SensorFault) and "ZeroDivisionError: bug" in items[0].message
    assert more and reader.faults >= 2


def imu_rig(rate_hz: float = 500.0) -> tuple[Rig, Mpu6050]:
    rig = make_rig()
    rig.deck.i2c.devices[0x68] = Mpu6050Model(ImuTruth, rig.clock, gyro_bias_dps=(0, 0, 0))
    imu = Mpu6050(rig.deck.i2c, device="sim:i2c", config=ImuConfig(rate_hz=rate_hz),
                  sleep=rig.clock.advance, now=rig.clock.now)
    imu.init()
    return rig, imu


def test_an_imu_alone_is_enough_to_poll() -> None:
    rig, imu = imu_rig()
    poller = FlowDeckPoller(None, None, rig.clock, imu=imu)
    assert poller.imu_period_s == pytest.approx(1 / 500)
    assert FlowDeckPoller(rig.flow, None, rig.clock).imu_period_s is None


def test_the_imu_gives_timed_samples_at_its_own_rate_between_flow_polls() -> None:
    rig, imu = imu_rig(500.0)
    rig.deck.i2c.devices[0x68].truth = lambda: ImuTruth(rates=(0.1, -0.2, 0.3))  # type: ignore[attr-defined]
    poller = FlowDeckPoller(rig.flow, rig.ranger, rig.clock, imu=imu)
    seen: list[object] = []
    for k in range(1, 501):                    # 1 s: the IMU every 2 ms, the rest every 10 ms
        rig.clock.advance(0.002)
        seen += poller.poll() if k % 5 == 0 else poller.poll_imu()
    imus = [i for i in seen if isinstance(i, TimedImu)]
    flows = [i for i in seen if isinstance(i, TimedFlow)]
    assert len(flows) == 100 and len(imus) == pytest.approx(500, abs=2)
    assert [i.t for i in imus] == sorted(i.t for i in imus)
    last = imus[-1]
    assert last.sample.rates == pytest.approx((0.1, -0.2, 0.3), abs=0.01)
    rates = last.timed_rates()
    assert isinstance(rates, TimedRates) and rates.source == "mpu6050"
    assert rates.t == pytest.approx(last.t - 0.0028)          # DLPF 2: 2.8 ms (RM 4.3)
    assert rates.rates == last.sample.rates


def test_an_imu_bus_error_is_a_fault_item_and_flow_still_comes() -> None:
    rig, imu = imu_rig()
    poller = FlowDeckPoller(rig.flow, None, rig.clock, imu=imu)

    def nack(addr: int, data: bytes, length: int) -> bytes:
        raise OSError(121, "Remote I/O error")

    rig.clock.advance(0.01)
    rig.deck.i2c.write_read = nack             # type: ignore[method-assign]
    items = poller.poll()
    assert isinstance(items[0], SensorFault) and "MPU-6050 at 0x68" in items[0].message
    assert isinstance(items[1], TimedFlow)                  # read after the IMU, still


async def test_the_thread_reads_the_imu_faster_than_the_flow() -> None:
    clock = MonotonicClock()
    deck = SimFlowDeck.create(ScriptedTruth(clock), clock, imu_truth=ScriptedTruth(clock).imu)
    flow = Pmw3901(deck.spi, sleep=lambda s: None)
    flow.init()
    imu = Mpu6050(deck.i2c, config=ImuConfig(rate_hz=200.0, dlpf=3))
    imu.init()
    reader = SensorReader(FlowDeckPoller(flow, None, clock, imu=imu), period_s=0.05)
    reader.start(asyncio.get_running_loop())
    got: list[object] = []
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 1.0:
            got += await asyncio.wait_for(reader.get(), 20)
    finally:
        reader.stop()
    n_imu = sum(isinstance(i, TimedImu) for i in got)
    n_flow = sum(isinstance(i, TimedFlow) for i in got)
    # generous: a loaded machine wakes the thread late, but 200 Hz is far above 20 Hz
    assert n_flow >= 5 and n_imu > 2 * n_flow


def test_poll_can_leave_the_imu_alone() -> None:
    rig, imu = imu_rig()
    poller = FlowDeckPoller(rig.flow, None, rig.clock, imu=imu)
    rig.clock.advance(0.01)
    before = rig.deck.i2c.transfers
    assert [type(i) for i in poller.poll(imu=False)] == [TimedFlow]
    assert rig.deck.i2c.transfers == before


async def test_a_failing_imu_does_not_slow_the_flow_deck() -> None:
    clock = MonotonicClock()
    deck = SimFlowDeck.create(ScriptedTruth(clock), clock, imu_truth=ScriptedTruth(clock).imu)
    flow = Pmw3901(deck.spi, sleep=lambda s: None)
    flow.init()
    imu = Mpu6050(deck.i2c, config=ImuConfig(rate_hz=200.0, dlpf=3))
    imu.init()
    assert deck.imu is not None
    deck.i2c.devices.pop(0x68)                 # the IMU falls off the bus: every read NACKs
    reader = SensorReader(FlowDeckPoller(flow, None, clock, imu=imu), period_s=0.01,
                          retry_s=0.5)
    t0 = time.monotonic()
    reader.start(asyncio.get_running_loop())
    got: list[object] = []
    try:
        while time.monotonic() - t0 < 1.2:
            got += await asyncio.wait_for(reader.get(), 20)
    finally:
        reader.stop()
    ran_s = time.monotonic() - t0             # more than 1.2 s if this loop was held up
    faults = [i for i in got if isinstance(i, SensorFault)]
    n_flow = sum(isinstance(i, TimedFlow) for i in got)
    assert faults and all(f.imu and "MPU-6050" in f.message for f in faults)
    assert len(faults) <= ran_s // 0.5 + 1     # retried every 0.5 s, not every sample
    # a stalled deck would give one flow per 0.5 s; generous for a loaded machine
    assert n_flow >= 15


async def test_a_failing_flow_sensor_does_not_slow_the_ranger() -> None:
    deck, flow, ranger, clock = real_deck()
    deck.spi.fail = OSError(5, "Input/output error")   # the flow's SPI bus is dead
    reader = SensorReader(FlowDeckPoller(flow, ranger, clock), period_s=0.01, retry_s=0.5)
    t0 = time.monotonic()
    reader.start(asyncio.get_running_loop())
    got: list[object] = []
    try:
        while time.monotonic() - t0 < 1.6:
            got += await asyncio.wait_for(reader.get(), 20)
    finally:
        reader.stop()
    ran_s = time.monotonic() - t0             # more than 1.6 s if this loop was held up
    faults = [i for i in got if isinstance(i, SensorFault)]
    ranges = [i for i in got if isinstance(i, TimedRange)]
    assert faults and all(f.sensor == "flow" for f in faults)
    assert len(faults) <= ran_s // 0.5 + 1     # retried every 0.5 s, not every period
    # the ranger keeps its own rate; stalled with the flow it gave one per 0.5 s
    assert len(ranges) >= 8


class _ChipDeck:
    """A poller on a virtual clock: an IMU whose own sample clock runs ``skew`` off
    nominal, data-ready until read, overwritten by the next sample when unread; a
    full poll (flow and ranger) costs ``full_cost_s``, an IMU poll ``imu_cost_s``."""

    def __init__(self, clock: VirtualClock, period_s: float, skew: float,
                 full_cost_s: float, imu_cost_s: float = 0.0003) -> None:
        self.clock = clock
        self.imu_period_s = period_s
        self.chip_period = period_s / (1.0 + skew)
        self.full_cost_s, self.imu_cost_s = full_cost_s, imu_cost_s
        self.read = -1                     # index of the newest sample read
        self.got = self.polls = 0
        self.lags: list[float] = []
        self.silent = False                # data-ready never comes

    def poll(self, *, imu: bool = True, flow: bool = True, ranger: bool = True) -> list:
        items = self.poll_imu() if imu else []   # the IMU first, as FlowDeckPoller
        self.clock.advance(self.full_cost_s)
        return items

    def poll_imu(self) -> list:
        self.polls += 1
        self.clock.advance(self.imu_cost_s)
        if self.silent:
            return []
        newest = int(self.clock.now() / self.chip_period)
        if newest <= self.read:
            return []
        self.read, self.got = newest, self.got + 1
        self.lags.append(self.clock.now() - newest * self.chip_period)
        sample = ImuSample((0.0, 0.0, 0.0), (0.0, 0.0, -9.81), 25.0)
        return [TimedImu(self.clock.now(), sample)]


class _VirtualWait:
    """The reader's stop event with its waits on the virtual clock; set at ``until``."""

    def __init__(self, clock: VirtualClock, until: float) -> None:
        self.clock, self.until = clock, until

    def is_set(self) -> bool:
        return self.clock.now() >= self.until

    def wait(self, timeout: float) -> bool:
        self.clock.advance(timeout)
        return self.is_set()


def _read_for(seconds: float, period_s: float, skew: float, full_cost_s: float, *,
              imu_cost_s: float = 0.0003, silent: bool = False) -> _ChipDeck:
    clock = VirtualClock(0.0)
    deck = _ChipDeck(clock, period_s, skew, full_cost_s, imu_cost_s)
    deck.silent = silent
    reader = SensorReader(deck, period_s=0.01)
    reader._stop = _VirtualWait(clock, until=seconds)
    reader._run()
    return deck


@pytest.mark.parametrize("skew", [-0.03, 0.0, 0.03])
@pytest.mark.parametrize(("period_s", "full_cost_s"), [(0.002, 0.0005), (0.002, 0.0015),
                                                       (1 / 333, 0.001), (0.004, 0.003)])
def test_the_reader_reads_every_imu_sample_whatever_its_clock(skew, period_s, full_cost_s):
    """The IMU's data-ready is polled at its own rate between the flow deck's full
    polls. A schedule that stretches with the reads' own time, steps past a slot a
    full poll took, or beats against the chip's own clock (a few per cent off)
    loses samples: the chip overwrites an unread one. Woken on time (virtual time,
    no scheduler) and with the other sensors read in less than a period, the
    reader must read every sample, each soon after the chip made it."""
    deck = _read_for(2.0, period_s, skew, full_cost_s)
    made = int(deck.clock.now() / deck.chip_period) + 1
    assert deck.got >= made - 1, (deck.got, made)
    assert max(deck.lags) <= 0.35 * period_s + full_cost_s + deck.imu_cost_s
    assert deck.polls <= 2.5 * made                 # about two polls a sample, no spin


@pytest.mark.parametrize(("silent", "imu_cost_s", "most_polls_s"), [
    (True, 0.0003, 600),         # data-ready never comes: the chip's own rate, no more
    (False, 0.0008, 1500),       # a poll that costs 0.8 period: not back to back
])
def test_a_silent_imu_or_a_slow_bus_does_not_make_the_reader_spin(
        silent, imu_cost_s, most_polls_s):
    deck = _read_for(2.0, 0.001 if not silent else 0.002, 0.0, 0.0005,
                     imu_cost_s=imu_cost_s, silent=silent)
    assert deck.polls <= most_polls_s * 2.0, deck.polls


@pytest.mark.parametrize("skew", [-0.03, 0.0, 0.03])
def test_a_full_poll_longer_than_the_imu_period_loses_only_what_it_covers(skew):
    """Reading flow and range for 2.5 ms with a 2 ms IMU: the samples made while
    the bus is busy are lost (no FIFO), no more: about one per full poll."""
    deck = _read_for(2.0, 0.002, skew, 0.0025)
    made = int(deck.clock.now() / deck.chip_period) + 1
    full_polls = 2.0 / 0.01
    assert made - deck.got <= full_polls * 0.0025 / deck.chip_period, (deck.got, made)
