"""The hold step in lock-step: the flow deck's register models under the simulated
craft, the hold's failsafe rows (docs/failsafe.md), and ``[hold] enabled = false``."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from pipilot.cli.mission import DECK_KEYS, fly_sim, sim_deck
from pipilot.control.hold import HOLD_SOURCE, PolledDeck
from pipilot.core.vehicle import Vehicle
from pipilot.errors import ConfigError
from pipilot.mission.api import Mission
from pipilot.mission.events import EventKind, MissionEvent
from pipilot.mission.lockstep import run_lockstep, sim_lockstep
from pipilot.mission.runner import run_spec
from pipilot.mission.spec import MissionSpec, SimSpec, parse_mission
from pipilot.sim import LockstepSim
from pipilot.sim.flowdeck import Pmw3901Model, Vl53l1xModel

MISSION = """
name = "hold-test"
[mission]
hover_throttle = 0.47
[safety]
land_seconds = 4
[hold]
enabled = {enabled}
target_height_m = 0.8
[[steps]]
action = "arm"
[[steps]]
action = "climb"
throttle = 0.54
seconds = 3
[[steps]]
action = "hold"
seconds = {hold_s}
[[steps]]
action = "land"
seconds = 4
[[steps]]
action = "disarm"
[sim]
wind_mps = 0.5
wind_from_deg = 90
gust_mps = 0.1
telemetry_latency_s = 0.05
hover_throttle = 0.42
mass_kg = 1.1
"""


def spec(enabled: bool = True, hold_s: float = 6.0, **sim: float) -> MissionSpec:
    s = parse_mission(MISSION.format(enabled=str(enabled).lower(), hold_s=hold_s))
    assert s.sim is not None
    return dataclasses.replace(s, sim=dataclasses.replace(s.sim, **sim))


Injection = tuple[float, Callable[[PolledDeck], None]]


def fly_injected(s: MissionSpec, schedule: list[Injection],
                 sims: list[LockstepSim] | None = None) -> tuple[Mission, dict[str, Any]]:
    """fly_sim, with deck faults switched at simulator times (the simulator is
    appended to ``sims``)."""
    conditions = s.sim or SimSpec()
    craft = dataclasses.asdict(conditions)
    for key in DECK_KEYS:
        craft.pop(key)
    sim = sim_lockstep(**craft)
    vehicle = sim.vehicle
    assert isinstance(vehicle, Vehicle)
    deck = sim_deck(sim, conditions)
    if sims is not None:
        sims.append(sim)

    async def main() -> tuple[Mission, dict[str, Any]]:
        async def inject() -> None:
            for at, fault in schedule:
                await asyncio.sleep(max(0.0, at - sim.clock.now()))
                fault(deck)

        task = asyncio.create_task(inject())
        try:
            return await run_spec(s, vehicle, drift=False, deck=deck)
        finally:
            task.cancel()

    return run_lockstep(sim, main)


def _flow_model(deck: PolledDeck) -> Pmw3901Model:
    assert deck.poller.flow is not None
    model = deck.poller.flow.spi.device  # type: ignore[attr-defined]
    assert isinstance(model, Pmw3901Model)
    return model


def _range_model(deck: PolledDeck) -> Vl53l1xModel:
    assert deck.poller.ranger is not None
    model = next(iter(deck.poller.ranger.i2c.devices.values()))  # type: ignore[attr-defined]
    assert isinstance(model, Vl53l1xModel)
    return model


def spi_fail(on: bool) -> Callable[[PolledDeck], None]:
    def f(deck: PolledDeck) -> None:
        assert deck.poller.flow is not None
        deck.poller.flow.spi.fail = OSError(5, "Input/output error") if on else None  # type: ignore[attr-defined]
    return f


def i2c_fail(on: bool) -> Callable[[PolledDeck], None]:
    def f(deck: PolledDeck) -> None:
        assert deck.poller.ranger is not None
        deck.poller.ranger.i2c.fail = OSError(5, "Input/output error") if on else None  # type: ignore[attr-defined]
    return f


_unplugged: dict[int, Any] = {}
"""The MPU-6050 models pulled off their bus, by the bus's id."""


def imu_fail(on: bool) -> Callable[[PolledDeck], None]:
    """The MPU-6050 stops answering on the I2C bus (a loose wire): the ranger beside
    it on the same bus still answers."""
    def f(deck: PolledDeck) -> None:
        imu = deck.poller.imu
        assert imu is not None
        devices = imu.i2c.devices  # type: ignore[attr-defined]
        if on:
            _unplugged[id(devices)] = devices.pop(imu.address)
        else:
            devices[imu.address] = _unplugged.pop(id(devices))
    return f


def dark(on: bool) -> Callable[[PolledDeck], None]:
    """The flow camera's LED off: a dark image, SQUAL 0 (flow invalid)."""
    def f(deck: PolledDeck) -> None:
        _flow_model(deck).led_on = not on
    return f


def out_of_range(on: bool) -> Callable[[PolledDeck], None]:
    """The ranger sees 10 m: signal fail, status not valid."""
    def f(deck: PolledDeck) -> None:
        _range_model(deck).scale = 10.0 if on else 1.0
    return f


def both(*fs: Callable[[PolledDeck], None]) -> Callable[[PolledDeck], None]:
    def f(deck: PolledDeck) -> None:
        for g in fs:
            g(deck)
    return f


def hold_events(m: Mission) -> list[MissionEvent]:
    return [e for e in m.events.history if e.kind is EventKind.HOLD]


def sim_time(m: Mission, e: MissionEvent) -> float:
    return m.started_at + e.t


def test_hold_flies_the_climb_and_holds_on_a_craft_it_does_not_know() -> None:
    m, s = fly_sim(spec(), drift=False, handle_sigint=False)
    assert s["completed"] and s["flow_hold"] and not s["drift_compensation"]
    start = next(e for e in m.events.history
                 if e.kind is EventKind.STEP_STARTED and e.action == "hold")
    assert start.data["target_height_m"] == 0.8
    # the craft hovers at 0.42, the mission believes 0.47: the height loop learned it
    assert m.flow_hold is not None and m.flow_hold.hover_throttle is not None
    assert abs(m.flow_hold.hover_throttle - 0.42) < 0.04
    assert s["height_error_p90_m"] < 0.1
    assert s["hover_height_min_m"] > 0.6 and s["hover_height_max_m"] < 1.0
    assert s["max_excursion_m"] < 1.0
    assert [e.message for e in hold_events(m)] == ["holding"]
    assert m.flow_hold.state.value == "off"   # released after the landing


def test_hold_disabled_is_a_plain_hover() -> None:
    m, s = fly_sim(spec(enabled=False), drift=False, handle_sigint=False)
    assert s["completed"] and not s["flow_hold"] and m.flow_hold is None
    assert not hold_events(m)
    # open loop: the craft that hovers at 0.42 climbs away at the mission's 0.47
    assert s["hover_height_max_m"] > 2.0
    assert s["height_error_p90_m"] > 1.0


def _withdrawn(m: Mission) -> list[tuple[float, str]]:
    return [(sim_time(m, e), e.message) for e in hold_events(m)]


def _hold_span(m: Mission) -> tuple[float, float]:
    s = next(e for e in m.events.history if e.kind is EventKind.STEP_STARTED
             and e.action == "hold")
    d = next(e for e in m.events.history if e.kind is EventKind.STEP_DONE
             and e.action == "hold")
    return sim_time(m, s), sim_time(m, d)


Row = tuple[float, Callable[[bool], Callable[[PolledDeck], None]], str, float]
"""(start, fault, reason the hold gives, bound on the withdrawal): on for 1.5 s."""


def check_rows(rows: list[Row], hold_s: float) -> None:
    schedule: list[Injection] = []
    for start, fault, _, _ in rows:
        schedule += [(start, fault(True)), (start + 1.5, fault(False))]
    m, s = fly_injected(spec(hold_s=hold_s), schedule)
    t0, t1 = _hold_span(m)
    assert t0 < rows[0][0] and rows[-1][0] + 2.5 < t1
    ev = _withdrawn(m)
    withdrawn = [(t, msg) for t, msg in ev if msg.startswith("hold withdrawn")]
    resumed = [t for t, msg in ev if msg == "hold resumed"]
    assert len(withdrawn) == len(rows) and len(resumed) == len(rows)
    for (start, _, reason, bound), (t, msg), back in zip(rows, withdrawn, resumed,
                                                          strict=True):
        assert reason in msg and "flying an attitude hover at throttle" in msg
        assert start < t <= start + bound
        # back once valid for resume_s (0.3 s); a range comes every 100 ms
        assert start + 1.5 < back <= start + 1.5 + 0.3 + 0.15
        # while withdrawn the mission flew: the hold's source was withdrawn at once
        gap = [r for r in m.samples if t + 0.05 < m.started_at + r["t"] < start + 1.5]
        assert gap and all(r.get("hold_holding") == 0.0 for r in gap)
    assert s["completed"]
    assert s["max_excursion_m"] < 2.5


def test_flow_rows_stale_invalid_and_both() -> None:
    check_rows([(8.0, spi_fail, "flow stale", 0.4 + 0.05),
                (12.0, dark, "flow invalid: SQUAL 0", 0.4 + 0.05),
                # both: the flow's shorter timeout comes first; the status then names both
                (16.0, lambda on: both(spi_fail(on), i2c_fail(on)), "flow stale", 0.4 + 0.05)],
               hold_s=14.0)


def test_range_rows_stale_and_invalid() -> None:
    check_rows([(8.0, i2c_fail, "range stale", 0.5 + 0.15),
                (12.0, out_of_range, "range invalid: signal fail", 0.5 + 0.15)],
               hold_s=10.0)


def test_hold_source_is_between_mission_and_pilot() -> None:
    from pipilot.core.mixer import STANDARD_SOURCES

    prio = {k: v[0] for k, v in STANDARD_SOURCES.items()}
    assert prio["mission"] < prio[HOLD_SOURCE] < prio["pilot"]


def test_hold_without_a_deck_is_refused() -> None:
    s = spec()
    sim = sim_lockstep()
    vehicle = sim.vehicle
    assert isinstance(vehicle, Vehicle)
    with pytest.raises(ConfigError, match="flow deck"):
        run_lockstep(sim, lambda: run_spec(s, vehicle, drift=False))


def test_imu_row_falls_back_to_attitude_rates_and_back_without_withdrawing() -> None:
    sims: list[LockstepSim] = []
    m, s = fly_injected(spec(hold_s=8.0), [(8.0, imu_fail(True)), (9.5, imu_fail(False))],
                        sims)
    hold = m.flow_hold
    assert hold is not None and hold.imu_rates and not _unplugged
    ev = _withdrawn(m)
    assert not [msg for _, msg in ev if msg.startswith("hold withdrawn")]
    lost = [(t, msg) for t, msg in ev if msg.startswith("hold rates from AttitudeState")]
    back = [t for t, msg in ev if msg == "hold rates from the IMU"]
    assert len(lost) == 1 and len(back) == 1
    t, msg = lost[0]
    assert "IMU fault" in msg and "Remote I/O error" in msg
    assert 8.0 < t <= 8.0 + hold.config.imu_timeout_s + 0.05
    assert 9.5 < back[0] <= 9.5 + 0.05
    assert s["completed"] and s["max_excursion_m"] < 1.0
    assert hold.rates_source == "imu"
    # the FC was asked for AttitudeState every 200 ms, and the line carried it all
    tel = sims[0].flight_telemetry
    assert hold.attitude_period_ms == 200
    assert tel.stats["tx_failures"] == 0


def test_sim_imu_false_flies_on_attitude_rates_and_rates_imu_then_is_refused() -> None:
    from pipilot.control.hold import deck_has_imu

    sim = sim_lockstep()
    assert not deck_has_imu(sim_deck(sim, SimSpec(imu=False)))
    assert deck_has_imu(sim_deck(sim_lockstep(), SimSpec()))
    s = parse_mission(MISSION.format(enabled="true", hold_s=5).replace(
        "[sim]\n", "[sim]\nimu = false\n").replace(
        "target_height_m = 0.8\n", 'target_height_m = 0.8\nrates = "imu"\n'))
    assert s.sim is not None and not s.sim.imu and s.hold.rates == "imu"
    with pytest.raises(ConfigError, match="no IMU") as err:
        fly_sim(s, drift=False, handle_sigint=False)
    assert err.value.key == "hold.rates"
    with pytest.raises(ConfigError) as err:
        parse_mission(MISSION.format(enabled="true", hold_s=5).replace(
            "[sim]\n", '[sim]\nimu = "yes"\n'))
    assert err.value.key == "sim.imu"


def _tx_failures(period_ms: int, seconds: float = 10.0) -> int:
    """Updates the simulated FC's telemetry queue drops in ``seconds`` with
    AttitudeState every ``period_ms`` beside its stock periodic objects."""
    sim = sim_lockstep()
    vehicle = sim.vehicle
    assert isinstance(vehicle, Vehicle)

    async def main() -> int:
        for _ in range(500):
            if vehicle.telemetry.connected:
                break
            await asyncio.sleep(0.02)
        await vehicle.telemetry.set_update_period("AttitudeState", period_ms)
        before = sim.flight_telemetry.stats["tx_failures"]
        await asyncio.sleep(seconds)
        return int(sim.flight_telemetry.stats["tx_failures"] - before)

    return run_lockstep(sim, main)


def test_the_periods_the_hold_asks_for_fit_the_simulated_fcs_queue() -> None:
    from pipilot.control.hold import HoldConfig, attitude_period_ms

    # the old request overflowed the FC's 10-update queue; what fits by the
    # arithmetic of pipilot.uavtalk.linkbudget drops nothing
    assert _tx_failures(50) > 50
    for imu in (False, True):
        assert _tx_failures(attitude_period_ms(HoldConfig(), imu)) == 0


def test_a_5_s_texture_dropout_mid_hold_withdraws_then_resumes_without_an_abort() -> None:
    # the hold step starts about 6 s in (deck start-up, link, arming, a 3 s climb)
    m, s = fly_sim(spec(hold_s=16.0, texture_dropout_at_s=12.0, texture_dropout_s=5.0),
                   drift=False, handle_sigint=False)
    assert s["completed"], s["abort_reason"]
    holds = [e for e in m.events.history if e.kind is EventKind.HOLD]
    withdrawn = [e for e in holds if e.message.startswith("hold withdrawn")]
    resumed = [e for e in holds if e.message == "hold resumed"]
    assert withdrawn and "flow" in withdrawn[0].message
    assert resumed and resumed[0].t > withdrawn[0].t
    assert s["max_excursion_m"] < 5.0
    assert s["hover_height_min_m"] > 0.3   # the fallback hovered: it did not sink to the floor
