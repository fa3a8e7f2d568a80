"""The mission API against a scripted vehicle, in virtual time.

Every safety monitor is made to trigger here and must abort into the
failsafe it is configured for, with the reason reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import pytest

from pipilot.core.clock import VirtualClock
from pipilot.core.setpoints import ArmRequest, Setpoint
from pipilot.errors import SafetyAbort
from pipilot.mission.api import INTERRUPTED, Mission, State
from pipilot.mission.events import EventKind
from pipilot.mission.spec import SafetyConfig

from .fakes import FakeVehicle, Faults, run_virtual


def fly(script, *, faults=None, safety=None, drift=False, setup=None):
    """Run ``script(m, vehicle)`` inside a Mission; return (mission, vehicle, error)."""
    clock = VirtualClock()
    vehicle = FakeVehicle(clock=clock, faults=faults or Faults())
    result = {}

    async def main():
        vehicle.start()
        if setup is not None:
            setup(vehicle)
        await asyncio.sleep(0.1)
        m = Mission(vehicle, safety=safety, drift=drift)
        result["m"] = m
        try:
            async with m:
                await script(m, vehicle)
        except SafetyAbort as exc:
            result["error"] = exc
        # let the vehicle notice that nobody publishes any more
        await asyncio.sleep(1.0)

    run_virtual(main, clock)
    return result["m"], vehicle, result.get("error")


async def full(m, v):
    await m.arm()
    await m.climb(throttle=0.6, seconds=2)
    await m.hover(seconds=5)
    await m.move(roll=0.1, pitch=-0.1, seconds=1)
    await m.yaw(rate=0.3, seconds=1)
    await m.land(seconds=2)
    await m.disarm()


def test_full_mission_completes():
    m, v, err = fly(full)
    assert err is None
    assert m.state is State.COMPLETED and m.completed and m.abort_reason is None
    assert v.armed == "Disarmed"
    kinds = [e.kind for e in m.events.history]
    assert kinds[0] is EventKind.STARTED and kinds[-1] is EventKind.FINISHED
    done = [e.action for e in m.events.history if e.kind is EventKind.STEP_DONE]
    assert done == ["arm", "climb", "hover", "move", "yaw", "land", "disarm"]
    # the mission source was fed without gaps from start to disarm
    stamps = [t for t, name, _ in v.mixer.log if name == "mission"]
    assert max(b - a for a, b in itertools.pairwise(stamps)) < 0.05
    # the commands were what the steps asked for
    hover = [sp for t, n, sp in v.mixer.log if n == "mission" and 5 < t < 8]
    assert all(sp.throttle == 0.5 and sp.arm is ArmRequest.NONE for sp in hover)
    moves = [sp for _, n, sp in v.mixer.log if n == "mission" and sp.roll == 0.1]
    assert moves and all(sp.pitch == -0.1 for sp in moves)
    assert any(sp.yaw == 0.3 for _, n, sp in v.mixer.log if n == "mission")


def assert_landed_by_failsafe(m, v, err, monitor, words):
    assert m.state is State.ABORTED and not m.completed
    assert m.abort_monitor == monitor
    assert words in m.abort_reason
    if err is not None:
        assert words in err.reason
    aborts = [e for e in m.events.history if e.kind is EventKind.ABORT]
    assert len(aborts) == 1 and words in aborts[0].message
    assert m.events.history[-1].kind is EventKind.FINISHED
    assert words in m.events.history[-1].message


def after_abort(v, m):
    t_abort = next(e.t for e in m.events.history if e.kind is EventKind.ABORT) + m._t0
    return [(t, sp) for t, n, sp in v.mixer.log if n == "mission" and t > t_abort]


def test_telemetry_lost_lands():
    m, v, err = fly(full, faults=Faults(telemetry_dead_after=6.0))
    assert_landed_by_failsafe(m, v, err, "telemetry", "telemetry lost")
    tail = after_abort(v, m)
    # land: descend at the land throttle, then cut and ask to disarm
    assert tail[0][1].throttle == pytest.approx(0.9 * 0.5)
    assert tail[-1][1] == Setpoint(throttle=0.0, arm=ArmRequest.DISARM)
    # bounded: land_seconds, settle, disarm time; then the source goes quiet
    assert tail[-1][0] - tail[0][0] < 4.0 + 0.5 + 5.0 + 0.1


def test_unexpected_disarm_aborts():
    m, v, err = fly(full, faults=Faults(disarm_at=5.0))
    assert_landed_by_failsafe(m, v, err, "disarm", "disarmed unexpectedly")
    # already disarmed: no landing, just the disarm request until confirmed
    tail = after_abort(v, m)
    assert all(sp.throttle == 0.0 for _, sp in tail)


def test_alarm_aborts():
    m, v, err = fly(full, faults=Faults(alarm_at=6.0))
    assert_landed_by_failsafe(m, v, err, "alarms", "Sensors=Critical")
    assert v.armed == "Disarmed"


def test_attitude_limit_aborts():
    m, v, err = fly(full, faults=Faults(flip_at=5.0))
    assert_landed_by_failsafe(m, v, err, "attitude", "roll 80.0")


def test_step_timeout_aborts():
    m, v, err = fly(full, faults=Faults(refuse_arm=True),
                    safety=SafetyConfig(arm_timeout_s=2.0, step_timeout_margin_s=1.0))
    assert_landed_by_failsafe(m, v, err, "timeout", "step 1 (arm")
    t_abort = next(e.t for e in m.events.history if e.kind is EventKind.ABORT)
    assert 3.0 <= t_abort <= 3.1


def test_pilot_takeover_releases():
    async def script(m, v):
        await m.arm()
        await m.climb(throttle=0.6, seconds=1)

        async def pilot():
            while True:
                v.mixer.publish("pilot", Setpoint(throttle=0.55))
                await asyncio.sleep(0.02)

        task = asyncio.create_task(pilot())
        try:
            await m.hover(seconds=10)
        finally:
            await asyncio.sleep(0.5)
            task.cancel()

    m, v, err = fly(script, drift=True)
    assert_landed_by_failsafe(m, v, err, "takeover", "pilot took over")
    assert after_abort(v, m) == []  # released at once: the pilot flies
    assert v.armed == "Armed"  # nobody disarmed under the pilot's hands
    assert m.drift is not None and m.drift._suspended


def test_interrupt_lands_and_second_interrupt_disarms():
    async def script(m, v):
        await m.arm()
        await m.climb(throttle=0.6, seconds=1)
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, m.abort, INTERRUPTED, "interrupt")
        loop.call_later(2.0, m.abort, INTERRUPTED, "interrupt")
        await m.hover(seconds=10)

    m, v, err = fly(script)
    assert_landed_by_failsafe(m, v, err, "interrupt", "Ctrl-C")
    tail = after_abort(v, m)
    assert tail[0][1].throttle > 0  # first: landing
    cut = [sp for t, sp in tail if tail[0][0] + 1.05 < t < tail[0][0] + 1.45]
    assert cut and all(sp == Setpoint() for sp in cut)  # throttle off, then the gesture
    late = [sp for t, sp in tail if t > tail[0][0] + 1.6]
    assert late and all(sp.throttle == 0 and sp.arm is ArmRequest.DISARM for sp in late)
    assert v.armed == "Disarmed"


def test_cancelled_script_counts_as_interrupt():
    async def script(m, v):
        await m.arm()
        await m.climb(throttle=0.6, seconds=1)
        asyncio.current_task().cancel()
        await m.hover(seconds=10)

    clock = VirtualClock()
    vehicle = FakeVehicle(clock=clock)
    holder = {}

    async def main():
        vehicle.start()
        await asyncio.sleep(0.1)
        m = holder["m"] = Mission(vehicle, drift=False)

        async def inner():
            async with m:
                await script(m, vehicle)

        with pytest.raises(asyncio.CancelledError):
            await asyncio.create_task(inner())
        await asyncio.sleep(1)

    run_virtual(main, clock)
    m = holder["m"]
    assert m.abort_reason == INTERRUPTED and m.state is State.ABORTED
    assert vehicle.armed == "Disarmed"


def test_leaving_while_armed_fails_safe():
    async def script(m, v):
        await m.arm()
        await m.climb(throttle=0.6, seconds=1)

    m, v, err = fly(script)
    assert_landed_by_failsafe(m, v, err, "script", "still armed")
    assert v.armed == "Disarmed"


def test_script_error_fails_safe():
    async def script(m, v):
        await m.arm()
        raise ZeroDivisionError("oops")

    with pytest.raises(ZeroDivisionError):
        fly(script)


@pytest.mark.parametrize("failsafe", ["disarm", "release"])
def test_other_failsafes(failsafe):
    m, v, _err = fly(full, faults=Faults(alarm_at=6.0), safety=SafetyConfig(failsafe=failsafe))
    assert m.state is State.ABORTED
    tail = after_abort(v, m)
    if failsafe == "disarm":
        t0 = tail[0][0]
        assert tail and all(sp == Setpoint() for t, sp in tail if t < t0 + 0.45)
        assert all(sp == Setpoint(throttle=0.0, arm=ArmRequest.DISARM)
                   for t, sp in tail if t > t0 + 0.55)
        assert v.armed == "Disarmed"
    else:
        assert tail == []
        assert v.failsafe_time is not None  # the vehicle's own failsafe took over


def test_steps_after_abort_refuse():
    async def script(m, v):
        await m.arm()
        with pytest.raises(SafetyAbort):
            await m.hover(seconds=10)
        with pytest.raises(SafetyAbort):
            await m.hover(seconds=1)

    fly(script, faults=Faults(alarm_at=3.0))


def test_api_arguments_are_validated_like_toml():
    async def script(m, v):
        from pipilot.errors import ConfigError

        with pytest.raises(ConfigError, match="throttle"):
            await m.climb(throttle=1.5, seconds=1)

    m, _, _ = fly(script)
    assert m.completed


def test_event_stream_subscription():
    got = []

    async def script(m, v):
        async def reader():
            async for ev in m.events.subscribe():
                got.append(ev)

        task = asyncio.create_task(reader())
        await asyncio.sleep(0)
        await full(m, v)
        return task

    _m, _, _ = fly(script)
    assert got and got[-1].kind is EventKind.FINISHED
    assert any(e.kind is EventKind.PROGRESS for e in got)
    assert all(isinstance(e.to_json()["t"], float) for e in got)


def test_drift_loop_runs_during_the_mission():
    m, v, _err = fly(full, drift=True)
    assert m.completed
    assert "drift" in v.mixer.sources and v.mixer.sources["drift"].mode == "additive"
    drift = [(t, sp) for t, n, sp in v.mixer.log if n == "drift"]
    assert drift
    # off on the ground: zero trims before the climb
    assert all(sp.roll == 0 and sp.pitch == 0 for t, sp in drift if t < 1.0)
    assert m.drift.last_trim is not None


def test_no_link_no_mission():
    clock = VirtualClock()
    vehicle = FakeVehicle(clock=clock, faults=Faults(telemetry_dead_after=0.0))
    holder = {}

    async def main():
        vehicle.start()
        m = holder["m"] = Mission(vehicle, drift=False)
        with pytest.raises(SafetyAbort, match="no connection"):
            async with m:
                await m.arm()
        return clock.now()

    t = run_virtual(main, clock)
    m = holder["m"]
    assert m.state is State.ABORTED and m.abort_monitor == "telemetry"
    assert 10.0 <= t < 10.1
    assert [sp for _, n, sp in vehicle.mixer.log if n == "mission"] == []  # nothing flown


def test_lost_flight_status_updates_are_asked_for():
    m, v, err = fly(full, faults=Faults(lose_flight_status=True))
    assert err is None and m.completed, m.abort_reason
    assert v.armed == "Disarmed"
    assert "FlightStatus" in v.requests()


def test_release_failsafe_withdraws_the_mission_source_at_once():
    # Without the withdrawal the last command (hover throttle) stayed fresh for
    # the source's 1 s timeout before the flight core's own failsafe took over.
    m, v, _err = fly(full, faults=Faults(alarm_at=6.0), safety=SafetyConfig(failsafe="release"))
    t_abort = next(e.t for e in m.events.history if e.kind is EventKind.ABORT) + m._t0
    assert m.abort_monitor == "alarms"
    assert v.failsafe_time is not None and v.failsafe_time - t_abort < 0.1


@pytest.mark.parametrize("how", ["completed", "script_error", "cancelled"])
def test_mission_source_is_withdrawn_on_every_exit(how):
    clock = VirtualClock()
    vehicle = FakeVehicle(clock=clock)
    seen = {}

    async def script(m):
        await m.arm()
        await m.climb(throttle=0.6, seconds=1)
        if how == "script_error":
            raise ZeroDivisionError("oops")
        if how == "cancelled":
            asyncio.current_task().cancel()
            await m.hover(seconds=10)
        await m.land(seconds=1)
        await m.disarm()

    async def main():
        vehicle.start()
        await asyncio.sleep(0.1)
        m = Mission(vehicle, drift=False)

        async def inner():
            async with m:
                await script(m)

        with contextlib.suppress(ZeroDivisionError, asyncio.CancelledError):
            await asyncio.create_task(inner())
        # checked the instant the mission has ended, not after the source times out
        seen["fresh"] = vehicle.mixer.sources["mission"].fresh(clock.now())
        seen["state"] = m.state

    run_virtual(main, clock)
    assert seen["state"] is (State.COMPLETED if how == "completed" else State.ABORTED)
    assert seen["fresh"] is False


def test_interrupt_while_waiting_for_the_link_means_the_mission_never_flies():
    # Ctrl-C before the link came up was dropped (the mission was not running
    # yet): when telemetry arrived the mission armed and flew anyway.
    clock = VirtualClock()
    vehicle = FakeVehicle(clock=clock)
    holder = {}

    async def main():
        vehicle.start()
        vehicle.silent = True
        loop = asyncio.get_running_loop()
        m = holder["m"] = Mission(vehicle, drift=False)
        loop.call_later(0.5, m.abort, INTERRUPTED, "interrupt")
        loop.call_later(1.0, setattr, vehicle, "silent", False)
        with pytest.raises(SafetyAbort, match="Ctrl-C"):
            async with m:
                await full(m, vehicle)
        t = clock.now()
        await asyncio.sleep(2.0)
        return t

    t = run_virtual(main, clock)
    m = holder["m"]
    assert t < 0.6  # refused at once, not after the connect timeout
    assert m.state is State.ABORTED and m.abort_reason == INTERRUPTED
    assert m.abort_monitor == "interrupt"
    assert [sp for _, n, sp in vehicle.mixer.log if n == "mission"] == []
    assert vehicle.armed == "Disarmed"


def test_a_crashed_mission_loop_still_withdraws_and_stops_the_drift_loop():
    # finish() awaited the dead loop task, which re-raised the loop's error and
    # skipped the withdrawal, the drift loop's stop and the end of the events.
    clock = VirtualClock()
    vehicle = FakeVehicle(clock=clock)
    seen = {}

    def boom():
        raise RuntimeError("telemetry decoder bug")

    async def main():
        vehicle.start()
        await asyncio.sleep(0.1)
        m = seen["m"] = Mission(vehicle, drift=True)
        loop = asyncio.get_running_loop()
        with pytest.raises(SafetyAbort, match="mission loop failed"):
            async with m:
                loop.call_later(2.0, setattr, m.io, "view", boom)
                await full(m, vehicle)
        seen["fresh"] = vehicle.mixer.sources["mission"].fresh(clock.now())
        seen["drift_task"] = m.drift._task

    run_virtual(main, clock)
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
    async def script(m, v):
        await m.arm()
        if where == "after_landing":
            await m.climb(throttle=0.6, seconds=1)
            await m.land(seconds=1)

    m, v, err = fly(script)
    assert_landed_by_failsafe(m, v, err, "script", "still armed")
    tail = after_abort(v, m)
    assert tail and all(sp.throttle == 0.0 for _, sp in tail)
    assert v.armed == "Disarmed"


def test_land_failsafe_in_the_air_still_descends():
    async def script(m, v):
        await m.arm()
        await m.climb(throttle=0.6, seconds=1)
        await m.land(seconds=1)
        await m.hover(seconds=1)

    m, v, _err = fly(script)
    tail = after_abort(v, m)
    assert tail[0][1].throttle == pytest.approx(0.9 * 0.5)


def test_a_config_out_of_range_saturates_the_setpoint_instead_of_raising():
    # A Python mission may pass a SafetyConfig the TOML loader never checked: the
    # landing it flies must still publish (a valid setpoint), not crash mid-air.
    async def script(m, v):
        await m.arm()
        await m.hover(seconds=1)
        await m.land(seconds=1)
        await m.disarm()

    m, v, err = fly(script, safety=SafetyConfig(land_throttle=1.7))
    assert err is None and m.completed
    landing = [sp for _, n, sp in v.mixer.log if n == "mission" and sp.throttle == 1.0]
    assert landing and all(sp.throttle <= 1.0 for _, n, sp in v.mixer.log if n == "mission")
