"""The mission API flying the simulated CC3D, in lock-step virtual time.

The vehicle is the real one (pipilot's flight core mixing every frame, its
UAVTalk engine over the virtual telemetry line), the flight side the
simulated FC and airframe. Every safety monitor is made to trigger by a fault
injected into the simulator (`pipilot.sim.faults`) and must abort into the
failsafe it is configured for, with the reason reported; the craft's truth
then says what the failsafe did to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re

import pytest

from pipilot.core.failsafe import FailsafeState
from pipilot.core.setpoints import ArmRequest, Setpoint
from pipilot.errors import ConfigError, SafetyAbort
from pipilot.mission.api import GESTURE_SETTLE_S, INTERRUPTED, Mission, State
from pipilot.mission.events import EventKind
from pipilot.mission.spec import MissionConfig, SafetyConfig

from .simflight import HOVER, SimFlight, abort_time, after_abort, schedule, step_window

IN_HOVER = 3.5
"""Mission time at which the faults strike: `full` is then hovering a few metres up."""


def fly(script, *, faults=(), safety=None, drift=False, setup=None):
    """Run ``script(m, flight)`` inside a Mission; return (mission, flight, error)."""
    flight = SimFlight()
    result = {}

    async def main():
        await flight.linked()
        if setup is not None:
            setup(flight)
        m = Mission(flight.vehicle, mission=MissionConfig(hover_throttle=HOVER),
                    safety=safety, drift=drift)
        result["m"] = m
        schedule(flight, faults)
        try:
            async with m:
                await script(m, flight)
        except SafetyAbort as exc:
            result["error"] = exc
        # let the craft and the flight core react to whatever was last sent
        await asyncio.sleep(1.0)

    flight.run(main)
    return result["m"], flight, result.get("error")


def new_mission(flight: SimFlight, **kw) -> Mission:
    return Mission(flight.vehicle, mission=MissionConfig(hover_throttle=HOVER), **kw)


async def full(m, f):
    await m.arm()
    await m.climb(throttle=0.54, seconds=1)
    await m.hover(seconds=1.5)
    await m.move(roll=0.1, pitch=-0.1, seconds=0.5)
    await m.yaw(rate=0.3, seconds=0.5)
    await m.land(seconds=5)
    await m.disarm()


def cut_telemetry(f: SimFlight) -> None:
    f.sim.faults.cut_telemetry()


def sensors_alarm(f: SimFlight) -> None:
    f.sim.faults.raise_alarm("Sensors", "Critical")


def test_full_mission_completes():
    m, f, err = fly(full)
    assert err is None
    assert m.state is State.COMPLETED and m.completed and m.abort_reason is None
    assert f.armed == "Disarmed"
    kinds = [e.kind for e in m.events.history]
    assert kinds[0] is EventKind.STARTED and kinds[-1] is EventKind.FINISHED
    done = [e.action for e in m.events.history if e.kind is EventKind.STEP_DONE]
    assert done == ["arm", "climb", "hover", "move", "yaw", "land", "disarm"]
    # the mission source was fed without gaps from start to disarm
    stamps = [t for t, _ in f.published()]
    assert max(b - a for a, b in itertools.pairwise(stamps)) < 0.05
    # the commands were what the steps asked for
    t0, t1 = step_window(m, "hover")
    hover = [sp for t, sp in f.published() if t0 < t < t1]
    assert hover and all(sp.throttle == HOVER and sp.arm is ArmRequest.NONE for sp in hover)
    moves = [sp for _, sp in f.published() if sp.roll == 0.1]
    assert moves and all(sp.pitch == -0.1 for sp in moves)
    assert any(sp.yaw == 0.3 for _, sp in f.published())
    # and the craft flew them: up a few metres, down on the floor before the disarm
    assert max(alt for _, alt in f.altitude) > 1.0
    landed = step_window(m, "land")[1]
    assert next(alt for t, alt in f.altitude if t >= landed) == 0.0
    assert f.sim.truth.on_ground


def assert_landed_by_failsafe(m, f, err, monitor, words):
    assert m.state is State.ABORTED and not m.completed
    assert m.abort_monitor == monitor
    assert words in m.abort_reason
    if err is not None:
        assert words in err.reason
    aborts = [e for e in m.events.history if e.kind is EventKind.ABORT]
    assert len(aborts) == 1 and words in aborts[0].message
    assert m.events.history[-1].kind is EventKind.FINISHED
    assert words in m.events.history[-1].message


def test_telemetry_lost_lands():
    m, f, err = fly(full, faults=[(IN_HOVER, cut_telemetry)])
    assert_landed_by_failsafe(m, f, err, "telemetry", "telemetry lost")
    tail = after_abort(f, m)
    # land: descend at the land throttle, then cut and ask to disarm
    assert tail[0][1].throttle == pytest.approx(0.9 * HOVER)
    assert tail[-1][1] == Setpoint(throttle=0.0, arm=ArmRequest.DISARM)
    # bounded: land_seconds, settle, disarm time; then the source goes quiet
    s = m.safety
    assert tail[-1][0] - tail[0][0] < s.land_seconds + GESTURE_SETTLE_S + s.arm_timeout_s + 0.1
    # blind, the land failsafe still brought the craft down over S.Bus and disarmed it
    t_abort = abort_time(m)
    assert next(alt for t, alt in f.altitude if t >= t_abort) > 1.0   # it was flying
    assert f.sim.truth.on_ground and f.armed == "Disarmed"


def test_unexpected_disarm_aborts():
    m, f, err = fly(full, faults=[(IN_HOVER, lambda f: f.sim.faults.disarm())])
    assert_landed_by_failsafe(m, f, err, "disarm", "disarmed unexpectedly")
    # already disarmed: no landing, just the disarm request until confirmed
    tail = after_abort(f, m)
    assert tail and all(sp.throttle == 0.0 for _, sp in tail)
    assert f.armed == "Disarmed"


def test_alarm_aborts():
    m, f, err = fly(full, faults=[(IN_HOVER, sensors_alarm)])
    assert_landed_by_failsafe(m, f, err, "alarms", "Sensors=Critical")
    assert f.armed == "Disarmed"


def test_attitude_limit_aborts():
    m, f, err = fly(full, faults=[(IN_HOVER, lambda f: f.sim.faults.upset(roll_dps=600.0))])
    assert_landed_by_failsafe(m, f, err, "attitude", "attitude beyond limits: roll")
    # the roll the FC reported, past the configured limit
    roll = float(re.search(r"roll (-?\d+\.\d) deg", m.abort_reason).group(1))
    assert abs(roll) > m.safety.max_tilt_deg
    assert f.armed == "Disarmed"


def test_step_timeout_aborts():
    # an alarm the mission is told to ignore still stops the FC from arming
    # (armhandler.c okToArm()): the arm step times out
    m, f, err = fly(full, setup=sensors_alarm,
                    safety=SafetyConfig(arm_timeout_s=2.0, step_timeout_margin_s=1.0,
                                        ignore_alarms=("Sensors",)))
    assert_landed_by_failsafe(m, f, err, "timeout", "step 1 (arm")
    t_abort = next(e.t for e in m.events.history if e.kind is EventKind.ABORT)
    assert 3.0 <= t_abort <= 3.1
    assert f.armed == "Disarmed"


def test_pilot_takeover_releases():
    seen = {}

    async def script(m, f):
        await m.arm()
        await m.climb(throttle=0.54, seconds=1)

        async def pilot():
            while True:
                f.vehicle.mixer.publish("pilot", Setpoint(throttle=HOVER))
                await asyncio.sleep(0.02)

        task = asyncio.create_task(pilot())
        try:
            await m.hover(seconds=10)
        finally:
            await asyncio.sleep(0.5)
            seen["armed"], seen["flying"] = f.armed, not f.sim.truth.on_ground
            task.cancel()

    m, f, err = fly(script, drift=True)
    assert_landed_by_failsafe(m, f, err, "takeover", "pilot took over")
    assert after_abort(f, m) == []  # released at once: the pilot flies
    assert seen == {"armed": "Armed", "flying": True}  # nobody disarmed under the pilot's hands
    assert m.drift is not None and m.drift._suspended


def test_interrupt_lands_and_second_interrupt_disarms():
    async def script(m, f):
        await m.arm()
        await m.climb(throttle=0.54, seconds=1)
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, m.abort, INTERRUPTED, "interrupt")
        loop.call_later(2.0, m.abort, INTERRUPTED, "interrupt")
        await m.hover(seconds=10)

    m, f, err = fly(script)
    assert_landed_by_failsafe(m, f, err, "interrupt", "Ctrl-C")
    tail = after_abort(f, m)
    assert tail[0][1].throttle > 0  # first: landing
    cut = [sp for t, sp in tail if tail[0][0] + 1.05 < t < tail[0][0] + 1.45]
    assert cut and all(sp == Setpoint() for sp in cut)  # throttle off, then the gesture
    late = [sp for t, sp in tail if t > tail[0][0] + 1.6]
    assert late and all(sp.throttle == 0 and sp.arm is ArmRequest.DISARM for sp in late)
    assert f.armed == "Disarmed"


def test_cancelled_script_counts_as_interrupt():
    async def script(m, f):
        await m.arm()
        await m.climb(throttle=0.54, seconds=1)
        asyncio.current_task().cancel()
        await m.hover(seconds=10)

    flight = SimFlight()
    holder = {}

    async def main():
        await flight.linked()
        m = holder["m"] = new_mission(flight, drift=False)

        async def inner():
            async with m:
                await script(m, flight)

        with pytest.raises(asyncio.CancelledError):
            await asyncio.create_task(inner())
        await asyncio.sleep(1)

    flight.run(main)
    m = holder["m"]
    assert m.abort_reason == INTERRUPTED and m.state is State.ABORTED
    assert flight.armed == "Disarmed"


def test_leaving_while_armed_fails_safe():
    async def script(m, f):
        await m.arm()
        await m.climb(throttle=0.54, seconds=1)

    m, f, err = fly(script)
    assert_landed_by_failsafe(m, f, err, "script", "still armed")
    assert f.armed == "Disarmed"


def test_script_error_fails_safe():
    async def script(m, f):
        await m.arm()
        raise ZeroDivisionError("oops")

    with pytest.raises(ZeroDivisionError):
        fly(script)


@pytest.mark.parametrize("failsafe", ["disarm", "release"])
def test_other_failsafes(failsafe):
    m, f, _err = fly(full, faults=[(IN_HOVER, sensors_alarm)],
                     safety=SafetyConfig(failsafe=failsafe))
    assert m.state is State.ABORTED
    tail = after_abort(f, m)
    if failsafe == "disarm":
        t0 = tail[0][0]
        assert tail and all(sp == Setpoint() for t, sp in tail if t < t0 + 0.45)
        assert all(sp == Setpoint(throttle=0.0, arm=ArmRequest.DISARM)
                   for t, sp in tail if t > t0 + 0.55)
        assert f.armed == "Disarmed"
    else:
        assert tail == []
        # the flight core's own failsafe took over: no source wins, it descends
        t_abort = abort_time(m)
        states = {out.state for t, out in f.frames if t > t_abort + 0.1}
        assert states and states <= {FailsafeState.DESCENT, FailsafeState.THROTTLE_CUT}
        assert all(out.source is None for t, out in f.frames if t > t_abort + 0.1)


def test_steps_after_abort_refuse():
    async def script(m, f):
        await m.arm()
        with pytest.raises(SafetyAbort):
            await m.hover(seconds=10)
        with pytest.raises(SafetyAbort):
            await m.hover(seconds=1)

    m, _, _ = fly(script, faults=[(3.0, sensors_alarm)])
    assert m.abort_monitor == "alarms"


def test_api_arguments_are_validated_like_toml():
    async def script(m, f):
        with pytest.raises(ConfigError, match="throttle"):
            await m.climb(throttle=1.5, seconds=1)

    m, _, _ = fly(script)
    assert m.completed


def test_event_stream_subscription():
    got = []

    async def script(m, f):
        async def reader():
            async for ev in m.events.subscribe():
                got.append(ev)

        task = asyncio.create_task(reader())
        await asyncio.sleep(0)
        await full(m, f)
        return task

    _m, _, _ = fly(script)
    assert got and got[-1].kind is EventKind.FINISHED
    assert any(e.kind is EventKind.PROGRESS for e in got)
    assert all(isinstance(e.to_json()["t"], float) for e in got)


def test_drift_loop_runs_during_the_mission():
    m, f, _err = fly(full, drift=True)
    assert m.completed
    sources = f.vehicle.mixer.sources
    assert "drift" in sources and sources["drift"].mode == "additive"
    drift = f.published("drift")
    assert drift
    # off on the ground: zero trims before the climb
    climb = step_window(m, "climb")[0]
    early = [sp for t, sp in drift if t < climb]
    assert early and all(sp.roll == 0 and sp.pitch == 0 for sp in early)
    assert m.drift.last_trim is not None


def test_no_link_no_mission():
    flight = SimFlight()
    flight.sim.faults.cut_telemetry()   # before the handshake's first byte
    holder = {}

    async def main():
        m = holder["m"] = new_mission(flight, drift=False)
        with pytest.raises(SafetyAbort, match="no connection"):
            async with m:
                await m.arm()
        return flight.clock.now()

    t = flight.run(main)
    m = holder["m"]
    assert m.state is State.ABORTED and m.abort_monitor == "telemetry"
    assert 10.0 <= t < 10.1
    assert flight.published() == []  # nothing flown
    assert flight.armed == "Disarmed"


def test_lost_flight_status_updates_are_asked_for():
    # the FC's telemetry queue drops every FlightStatus change; the mission asks
    before = {}

    def setup(f):
        f.sim.faults.drop_updates("FlightStatus")
        before["received"] = f.sim.telemetry.received["FlightStatus"]
        before["asked"] = f.sim.flight_telemetry.requests["FlightStatus"]

    m, f, err = fly(full, setup=setup)
    assert err is None and m.completed, m.abort_reason
    assert f.armed == "Disarmed"
    asked = f.sim.flight_telemetry.requests["FlightStatus"] - before["asked"]
    received = f.sim.telemetry.received["FlightStatus"] - before["received"]
    # armed and disarmed were seen, and only ever in answers to the mission's requests
    assert asked >= 2 and received == asked
    assert f.sim.flight_telemetry.stats["tx_failures"] > 0


def test_release_failsafe_withdraws_the_mission_source_at_once():
    # Without the withdrawal the last command (hover throttle) stayed fresh for
    # the source's 1 s timeout before the flight core's own failsafe took over.
    m, f, _err = fly(full, faults=[(IN_HOVER, sensors_alarm)],
                     safety=SafetyConfig(failsafe="release"))
    assert m.abort_monitor == "alarms"
    t_abort = abort_time(m)
    failsafe_time = next(t for t, out in f.frames if t > t_abort and out.source is None)
    assert failsafe_time - t_abort < 0.1


@pytest.mark.parametrize("how", ["completed", "script_error", "cancelled"])
def test_mission_source_is_withdrawn_on_every_exit(how):
    flight = SimFlight()
    seen = {}

    async def script(m):
        await m.arm()
        await m.climb(throttle=0.54, seconds=1)
        if how == "script_error":
            raise ZeroDivisionError("oops")
        if how == "cancelled":
            asyncio.current_task().cancel()
            await m.hover(seconds=10)
        await m.land(seconds=4)
        await m.disarm()

    async def main():
        await flight.linked()
        m = new_mission(flight, drift=False)

        async def inner():
            async with m:
                await script(m)

        with contextlib.suppress(ZeroDivisionError, asyncio.CancelledError):
            await asyncio.create_task(inner())
        # checked the instant the mission has ended, not after the source times out
        seen["fresh"] = flight.vehicle.mixer.sources["mission"].fresh(flight.clock.now())
        seen["state"] = m.state

    flight.run(main)
    assert seen["state"] is (State.COMPLETED if how == "completed" else State.ABORTED)
    assert seen["fresh"] is False


def test_interrupt_while_waiting_for_the_link_means_the_mission_never_flies():
    # Ctrl-C before the link came up was dropped (the mission was not running
    # yet): when telemetry arrived the mission armed and flew anyway.
    flight = SimFlight()
    holder = {}

    async def main():
        flight.sim.faults.cut_telemetry(up=False)   # the FC says nothing
        loop = asyncio.get_running_loop()
        m = holder["m"] = new_mission(flight, drift=False)
        loop.call_later(0.5, m.abort, INTERRUPTED, "interrupt")
        loop.call_later(1.0, flight.sim.faults.restore_telemetry)
        with pytest.raises(SafetyAbort, match="Ctrl-C"):
            async with m:
                await full(m, flight)
        t = flight.clock.now()
        await asyncio.sleep(2.0)
        holder["linked"] = flight.vehicle.telemetry.connected
        return t

    t = flight.run(main)
    m = holder["m"]
    assert t < 0.6  # refused at once, not after the connect timeout
    assert m.state is State.ABORTED and m.abort_reason == INTERRUPTED
    assert m.abort_monitor == "interrupt"
    assert holder["linked"]   # the link did come up, and still nothing flew
    assert flight.published() == []
    assert flight.armed == "Disarmed"


def test_a_crashed_mission_loop_still_withdraws_and_stops_the_drift_loop():
    # finish() awaited the dead loop task, which re-raised the loop's error and
    # skipped the withdrawal, the drift loop's stop and the end of the events.
    flight = SimFlight()
    seen = {}

    def boom():
        raise RuntimeError("telemetry decoder bug")

    async def main():
        await flight.linked()
        m = seen["m"] = new_mission(flight, drift=True)
        loop = asyncio.get_running_loop()
        with pytest.raises(SafetyAbort, match="mission loop failed"):
            async with m:
                loop.call_later(2.0, setattr, m.io, "view", boom)
                await full(m, flight)
        seen["fresh"] = flight.vehicle.mixer.sources["mission"].fresh(flight.clock.now())
        seen["drift_task"] = m.drift._task

    flight.run(main)
    m = seen["m"]
    assert m.abort_monitor == "internal"
    assert seen["fresh"] is False
    assert seen["drift_task"] is None  # stopped
    assert m.events.history[-1].kind is EventKind.FINISHED


@pytest.mark.parametrize("where", ["after_landing", "before_flying"])
def test_land_failsafe_on_the_ground_disarms_without_spinning_up(where):
    # Leaving the mission armed after a completed landing (or failing before any
    # flying step) ran the land failsafe's descent: land throttle on the ground
    # for land_seconds, enough to lift a craft whose hover throttle was guessed high.
    async def script(m, f):
        await m.arm()
        if where == "after_landing":
            await m.climb(throttle=0.54, seconds=1)
            await m.land(seconds=5)

    m, f, err = fly(script)
    assert_landed_by_failsafe(m, f, err, "script", "still armed")
    tail = after_abort(f, m)
    assert tail and all(sp.throttle == 0.0 for _, sp in tail)
    assert f.armed == "Disarmed"
    # on the floor when it aborted, and it never left it
    t_abort = abort_time(m)
    assert all(alt == 0.0 for t, alt in f.altitude if t >= t_abort)


def test_land_failsafe_in_the_air_still_descends():
    async def script(m, f):
        await m.arm()
        await m.climb(throttle=0.54, seconds=1)
        await m.land(seconds=1)
        await m.hover(seconds=1)

    m, f, _err = fly(script)
    tail = after_abort(f, m)
    assert tail[0][1].throttle == pytest.approx(0.9 * HOVER)
    t_abort = abort_time(m)
    assert next(alt for t, alt in f.altitude if t >= t_abort) > 0.5   # in the air


def test_a_config_out_of_range_saturates_the_setpoint_instead_of_raising():
    # A Python mission may pass a SafetyConfig the TOML loader never checked: the
    # landing it flies must still publish (a valid setpoint), not crash mid-air.
    async def script(m, f):
        await m.arm()
        await m.hover(seconds=1)
        await m.land(seconds=1)
        await m.disarm()

    m, f, err = fly(script, safety=SafetyConfig(land_throttle=1.7))
    assert err is None and m.completed
    landing = [sp for _, sp in f.published() if sp.throttle == 1.0]
    assert landing and all(sp.throttle <= 1.0 for _, sp in f.published())
