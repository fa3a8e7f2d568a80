"""The hold's body rates from the deck's MPU-6050, its fallback to AttitudeState
rates, ``[hold] rates`` and the AttitudeState period the telemetry line carries."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import deque
from typing import Any

import pytest

from pipilot.control.hold import (
    IMU_ATTITUDE_PERIOD_MS,
    FlowHold,
    HoldConfig,
    PolledDeck,
    attitude_period_ms,
    deck_has_imu,
)
from pipilot.control.holdapi import HoldState
from pipilot.core import tomlconf
from pipilot.core.clock import VirtualClock
from pipilot.errors import ConfigError
from pipilot.sensors.mpu6050 import ImuConfig, ImuSample, Mpu6050
from pipilot.sensors.reader import FlowDeckPoller, SensorFault, TimedFlow, TimedImu
from pipilot.sim.flowdeck import SimFlowDeck
from pipilot.sim.mpu6050 import ImuTruth
from pipilot.uavtalk import linkbudget
from tests.control.test_hold import FakeVehicle, Feed
from tests.sensors.conftest import Truth, make_rig

# -- rates from the IMU reach the estimator ---------------------------------------


WOBBLE_DEG, WOBBLE_HZ = 2.0, 4.0


def wobble_velocity(imu: bool, seconds: float = 6.0) -> list[tuple[float, float, float]]:
    """The hold's velocity estimate (t, north, east) every 20 ms over the last 3 s, for
    a deck that rolls and pitches by `WOBBLE_DEG` at `WOBBLE_HZ` 1 m over the floor
    without moving. AttitudeState
    arrives every 200 ms (the period the hold asks for with an IMU), 80 ms late; with
    ``imu`` the deck's MPU-6050 (register model, read at 500 Hz) gives the rates."""
    clock = VirtualClock(100.0)
    truth = Truth()
    imu_truth = (lambda: ImuTruth(rates=truth().rates,
                                  specific_force=(0.0, 0.0, -9.80665))) if imu else None
    hw = SimFlowDeck.create(truth, clock, seed=3, imu_truth=imu_truth)
    from pipilot.sensors.pmw3901 import Pmw3901
    from pipilot.sensors.vl53l1x import Vl53l1x

    flow = Pmw3901(hw.spi, device="sim:spi", sleep=clock.advance)
    ranger = Vl53l1x(hw.i2c, device="sim:i2c", sleep=clock.advance, now=clock.now)
    flow.init()
    ranger.init()
    mpu = None
    if imu:
        mpu = Mpu6050(hw.i2c, device="sim:i2c", config=ImuConfig(rate_hz=500.0, dlpf=2),
                      sleep=clock.advance, now=clock.now)
        mpu.init()
        mpu.calibrate()
    poller = FlowDeckPoller(flow, ranger, clock, imu=mpu)
    v = FakeVehicle()
    v.clock = clock
    v.telemetry.clock = clock
    hold = FlowHold(v, HoldConfig(), imu=imu)   # type: ignore[arg-type]
    assert hold.imu_rates is imu
    a, w = math.radians(WOBBLE_DEG), 2 * math.pi * WOBBLE_HZ
    in_flight: deque[tuple[float, dict[str, Any]]] = deque()
    velocities: list[tuple[float, float, float]] = []
    for i in range(1, round(seconds / 0.002) + 1):
        t = i * 0.002
        truth.set(height_m=1.0, velocity_body=(0.0, 0.0),
                  rates=(a * w * math.cos(w * t), a * w * math.cos(w * t + 1.0), 0.0),
                  roll=a * math.sin(w * t), pitch=a * math.sin(w * t + 1.0))
        clock.advance(0.002)
        if i % 100 == 0:   # AttitudeState every 200 ms, 80 ms on its way
            in_flight.append((clock.now() + 0.08, {
                "Roll": math.degrees(a * math.sin(w * t)),
                "Pitch": math.degrees(a * math.sin(w * t + 1.0)), "Yaw": 0.0}))
        while in_flight and in_flight[0][0] <= clock.now():
            v.telemetry.set("AttitudeState", in_flight.popleft()[1])
        hold.feed(poller.poll() if i % 5 == 0 else poller.poll_imu())
        if i % 10 == 0:
            hold.tick()
            e = hold.status()
            if t > seconds - 3.0 and e.velocity_mps is not None:
                velocities.append((t, *e.velocity_mps))
    assert hold.rates_source == ("imu" if imu else "attitude")
    assert velocities
    return velocities


def leak(imu: bool) -> float:
    """What of the rotation's flow (the rates times the height) shows as velocity: the
    estimate's amplitude at the wobble's frequency over the rotation's (0: all of it
    compensated, 1: none). The sensor's noise is not at that frequency: over 6 periods
    it adds a few hundredths."""
    rows = wobble_velocity(imu)
    w = 2 * math.pi * WOBBLE_HZ
    amp = [abs(2 * sum(r[k] * complex(math.cos(w * r[0]), -math.sin(w * r[0]))
                       for r in rows) / len(rows)) for k in (1, 2)]
    rotation = math.radians(WOBBLE_DEG) * w * 1.0    # rate amplitude times the height
    return math.hypot(*amp) / (rotation * math.sqrt(2))


def test_rotation_without_translation_gives_no_velocity_with_imu_rates() -> None:
    with_imu, from_attitude = leak(imu=True), leak(imu=False)
    # 0.9 m/s of the rotation's flow at 1 m. With the IMU about a tenth is left,
    # as much as with the true rates fed directly (the estimator's tilt model sees
    # this unphysical wobble, tilted yet not accelerating); 5 Hz attitudes 80 ms
    # late leave more (0.17 against 0.14: flow that no rate sample covers yet is not
    # fused, so the slow rates cost fused flow rather than a larger leak)
    assert with_imu < 0.2
    assert from_attitude > with_imu


# -- the IMU fails: the hold goes on with AttitudeState's rates ---------------------

class ImuFeed(Feed):
    """`Feed` with an IMU sample every 2 ms while ``imu`` is "ok" ("fault": a bus error
    every 10 ms, "stale": nothing)."""

    def __init__(self, hold: FlowHold, vehicle: FakeVehicle) -> None:
        super().__init__(hold, vehicle)
        self.imu = "ok"

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / 0.01)):
            for k in range(1, 6):
                t = self.v.clock.now() + 0.002 * k
                if self.imu == "ok":
                    self.hold.feed([TimedImu(t, ImuSample((0.0, 0.0, 0.0), (0.0, 0.0, -9.8),
                                                          30.0), 0.0028)])
                elif self.imu == "fault" and k == 5:
                    self.hold.feed([SensorFault(t, "MPU-6050 at 0x68: read failed", imu=True)])
            super().run(0.01)


def imu_holding() -> tuple[FlowHold, FakeVehicle, ImuFeed]:
    v = FakeVehicle()
    hold = FlowHold(v, imu=True)
    feed = ImuFeed(hold, v)
    feed.run(0.5)
    hold.engage(1.0, hover_guess=0.5)
    feed.run(0.3)
    assert hold.state is HoldState.HOLDING and hold.rates_source == "imu"
    assert hold.status().reason is None
    return hold, v, feed


@pytest.mark.parametrize("how, says", [("fault", "IMU fault: MPU-6050 at 0x68: read failed"),
                                       ("stale", "IMU stale: no sample for")])
def test_imu_lost_falls_back_to_attitude_rates_without_withdrawing(how: str, says: str) -> None:
    hold, v, feed = imu_holding()
    last_imu_rate_t = hold.estimator._rates[-1].t
    lost_at = v.clock.now()
    feed.imu = how
    switched = None
    for _ in range(50):
        feed.run(0.01)
        if switched is None and hold.rates_source == "attitude":
            switched = v.clock.now()
    assert switched is not None and switched - lost_at <= hold.config.imu_timeout_s + 0.03
    assert hold.state is HoldState.HOLDING
    reason = hold.status().reason
    assert reason is not None and says in reason and "rates from AttitudeState" in reason
    assert all(sp is not None for sp in feed.setpoints[-20:])   # still publishing
    # AttitudeState differences now feed the estimator (stamped latency_s back)
    assert hold.estimator._rates[-1].t > last_imu_rate_t
    feed.imu = "ok"
    feed.run(0.05)
    assert hold.rates_source == "imu" and hold.status().reason is None
    assert hold.state is HoldState.HOLDING


def test_attitude_rates_are_not_mixed_in_while_the_imu_is_fresh() -> None:
    hold, _v, feed = imu_holding()
    n = len(hold.estimator._rates)
    feed.run(0.2)
    # 100 IMU samples in 0.2 s, and nothing else
    assert len(hold.estimator._rates) == min(n + 100, hold.estimator._rates.maxlen or 0)


def test_a_hold_without_imu_ignores_imu_samples() -> None:
    v = FakeVehicle()
    hold = FlowHold(v, HoldConfig(rates="attitude"), imu=True)
    assert not hold.imu_rates
    feed = ImuFeed(hold, v)
    feed.run(0.5)
    assert hold.rates_source == "attitude" and hold.rates_reason is None
    assert len(hold.estimator._rates) < 20   # the attitudes' differences only


# -- [hold] rates ------------------------------------------------------------------

def test_rates_setting_is_validated() -> None:
    assert tomlconf.load(HoldConfig, {"rates": "imu"}, "hold").rates == "imu"
    assert tomlconf.load(HoldConfig, {}, "hold").rates is None
    with pytest.raises(ConfigError) as err:
        tomlconf.load(HoldConfig, {"rates": "gyro"}, "hold")
    assert err.value.key == "hold.rates"
    with pytest.raises(ConfigError) as err:
        tomlconf.load(HoldConfig, {"imu_timeout_s": 0}, "hold")
    assert err.value.key == "hold.imu_timeout_s"
    with pytest.raises(ConfigError) as err:
        tomlconf.load(HoldConfig, {"attitude_period_ms": -5}, "hold")
    assert err.value.key == "hold.attitude_period_ms"


def test_imu_rates_without_an_imu_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no IMU") as err:
        FlowHold(FakeVehicle(), HoldConfig(rates="imu"), imu=False)   # type: ignore[arg-type]
    assert err.value.key == "hold.rates"
    # unset: IMU rates when the deck has one, AttitudeState's when it has none
    assert FlowHold(FakeVehicle(), imu=True).imu_rates   # type: ignore[arg-type]
    assert not FlowHold(FakeVehicle(), imu=False).imu_rates   # type: ignore[arg-type]


def test_deck_has_imu() -> None:
    rig = make_rig()
    assert not deck_has_imu(PolledDeck(FlowDeckPoller(rig.flow, rig.ranger, rig.clock)))
    mpu = Mpu6050(rig.deck.i2c, device="sim:i2c")
    assert deck_has_imu(PolledDeck(FlowDeckPoller(rig.flow, rig.ranger, rig.clock, imu=mpu)))
    assert not deck_has_imu(object())


def test_polled_deck_reads_the_imu_between_flow_polls() -> None:
    rig = make_rig()
    clock = rig.clock
    hw = SimFlowDeck.create(rig.truth, clock, seed=1, imu_truth=lambda: ImuTruth())
    mpu = Mpu6050(hw.i2c, device="sim:i2c", config=ImuConfig(rate_hz=500.0, dlpf=2),
                  sleep=clock.advance, now=clock.now)
    mpu.init()
    from pipilot.sensors.pmw3901 import Pmw3901

    flow = Pmw3901(hw.spi, device="sim:spi", sleep=clock.advance)
    flow.init()
    deck = PolledDeck(FlowDeckPoller(flow, None, clock, imu=mpu), period_s=0.01)

    class Loop(asyncio.SelectorEventLoop):   # asyncio.sleep on the virtual clock
        def time(self) -> float:
            return clock.now()

    got: list[Any] = []

    async def main() -> None:
        while len(got) < 60:
            got.extend(await deck.get())

    loop = Loop()
    try:
        fut = loop.create_task(main())
        while not fut.done():
            clock.advance(0.0005)
            loop.run_until_complete(asyncio.sleep(0))
        fut.result()
    finally:
        loop.close()
    imu_t = [i.t for i in got if isinstance(i, TimedImu)]
    flow_n = sum(1 for i in got if isinstance(i, TimedFlow))
    assert len(imu_t) >= 4 * flow_n > 0        # about 5 IMU reads per flow read
    gaps = [b - a for a, b in itertools.pairwise(imu_t)]
    assert max(gaps) < 0.0045                  # none missed at 500 Hz


# -- the AttitudeState period the line carries --------------------------------------

def test_packet_sizes_and_the_stock_load() -> None:
    assert linkbudget.packet_bytes("AttitudeState") == 39
    assert linkbudget.packet_bytes("AccelState") == 23
    assert linkbudget.packet_bytes("GyroState") == 27
    assert linkbudget.line_bytes_s() == 960.0
    assert linkbudget.usable_bytes_s() == pytest.approx(640.0)
    stock = linkbudget.stock_periodic()
    assert set(stock).isdisjoint(linkbudget.SAMPLED)
    assert linkbudget.link_load(stock) == pytest.approx(375, abs=1)
    # the old request: AttitudeState every 50 ms is 780 bytes/s, over the line alone
    assert linkbudget.link_load({"AttitudeState": 50}) == pytest.approx(780.0)


def test_fastest_period_fits_and_the_next_step_down_does_not() -> None:
    stock = linkbudget.stock_periodic()
    p = linkbudget.fastest_period_ms("AttitudeState", stock)
    assert p == 150
    assert linkbudget.link_load(stock | {"AttitudeState": p}) <= linkbudget.usable_bytes_s()
    assert linkbudget.link_load(stock | {"AttitudeState": p - 10}) > \
        linkbudget.usable_bytes_s()
    # nothing left: None
    assert linkbudget.fastest_period_ms("AttitudeState", {"AttitudeState": 40}) is None
    # a faster line has room for more
    assert linkbudget.fastest_period_ms("AttitudeState", stock, baud=57600) == 20


def test_the_hold_asks_for_an_attitude_period_the_line_carries() -> None:
    stock = linkbudget.stock_periodic()
    assert attitude_period_ms(HoldConfig(), imu_rates=True) == IMU_ATTITUDE_PERIOD_MS == 200
    assert attitude_period_ms(HoldConfig(), imu_rates=False) == 150
    # asked faster than the line carries: raised to what it carries
    assert attitude_period_ms(HoldConfig(attitude_period_ms=50), imu_rates=False) == 150
    assert attitude_period_ms(HoldConfig(attitude_period_ms=500), imu_rates=True) == 500
    for imu in (True, False):
        p = attitude_period_ms(HoldConfig(), imu_rates=imu)
        assert linkbudget.link_load(stock | {"AttitudeState": p}) <= \
            linkbudget.usable_bytes_s()
    with pytest.raises(ConfigError, match="no room"):
        attitude_period_ms(HoldConfig(), True, others={"AttitudeState": 40})


@pytest.mark.parametrize("imu, period", [(True, 200), (False, 150)])
def test_configure_rates_sends_that_period(imu: bool, period: int) -> None:
    v = FakeVehicle()
    hold = FlowHold(v, imu=imu)   # type: ignore[arg-type]
    assert asyncio.run(hold.configure_rates()) == []
    assert v.telemetry.period == ("AttitudeState", period)
    assert hold.attitude_period_ms == period


def test_the_status_says_the_rates_and_whether_the_period_was_set() -> None:
    v = FakeVehicle()
    hold = FlowHold(v, imu=True)   # type: ignore[arg-type]
    st = hold.status().as_json()
    assert st["attitude_period_ms"] is None and st["attitude_period_error"] is None
    assert asyncio.run(hold.configure_rates()) == []
    st = hold.status().as_json()
    assert st["attitude_period_ms"] == 200 and st["attitude_period_error"] is None
    hold.tick()   # no IMU sample yet: AttitudeState rates meanwhile
    assert hold.status().rates == "attitude"


class RefusingTelemetry:
    """Telemetry whose FC never acknowledges a metadata write (or NACKs it)."""

    connected = True

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def set_update_period(self, name: str, period_ms: int, *,
                                mode: str = "periodic") -> None:
        raise self.exc


@pytest.mark.parametrize("exc, why", [
    (TimeoutError(), "no answer in 0.5 s"),
    (RuntimeError("AttitudeStateMeta: NACK"), "AttitudeStateMeta: NACK"),
])
def test_a_refused_period_is_kept_as_the_reason(exc: Exception, why: str) -> None:
    v = FakeVehicle()
    v.telemetry = RefusingTelemetry(exc)   # type: ignore[assignment]
    hold = FlowHold(v, imu=False)   # type: ignore[arg-type]
    assert asyncio.run(hold.configure_rates(timeout_s=0.5)) == ["AttitudeState"]
    st = hold.status()
    assert st.attitude_period_ms is None and st.attitude_period_error == why
    # without telemetry at all
    v.telemetry = None   # type: ignore[assignment]
    assert asyncio.run(hold.configure_rates()) == ["AttitudeState"]
    assert hold.status().attitude_period_error == "no telemetry link"


@pytest.mark.parametrize("baud, asks", [(9600, True), (19200, True), (4800, False),
                                        (2400, False)])
def test_the_period_fits_the_line_at_its_baud_or_is_not_asked(baud: int, asks: bool) -> None:
    """At 4800 baud the FC's stock objects already fill the usable share of the line:
    asking for AttitudeState on top would deepen the FC's queue overflow (dropped
    FlightStatus updates), so the hold keeps the FC's own period and says why."""
    v = FakeVehicle()
    hold = FlowHold(v, imu=True, telemetry_baud=baud)   # type: ignore[arg-type]
    failed = asyncio.run(hold.configure_rates())
    st = hold.status()
    if asks:
        assert failed == [] and v.telemetry.period is not None
        name, period = v.telemetry.period
        assert linkbudget.link_load(linkbudget.stock_periodic() | {name: period}) <= \
            linkbudget.usable_bytes_s(baud)
    else:
        # nothing a retry could change: keep_rates does not try again
        assert failed == [] and getattr(v.telemetry, "period", None) is None
        assert st.attitude_period_ms is None
        assert f"{baud}-baud line has no room" in (st.attitude_period_error or "")
