"""The hold's safety in lock-step flights: the failsafe's and the land step's
descent end on the floor, other steps fly without the hold, a refused step does
not re-engage it, and a hold withdrawn too long aborts."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools

import pytest

from pipilot.cli.mission import fly_sim, sim_deck
from pipilot.control.hold import FlowHold
from pipilot.control.holdapi import HoldState
from pipilot.errors import SafetyAbort
from pipilot.mission.api import Mission
from pipilot.mission.events import EventKind
from pipilot.mission.lockstep import run_lockstep, sim_lockstep
from pipilot.mission.spec import MissionSpec, parse_mission
from tests.mission.test_hold_mission import (
    _range_model,
    dark,
    fly_injected,
    out_of_range,
    sim_time,
)

FLOOR_M = 0.05
"""A true height below this is on the floor (the simulated craft's legs)."""

BASE = """
name = "hold-safety"
[mission]
hover_throttle = 0.47
[safety]
failsafe = "land"
land_seconds = 4
[hold]
enabled = true
target_height_m = {height}
[[steps]]
action = "arm"
{steps}
[sim]
hover_throttle = {sim_hover}
texture = 0.8
"""


def mission(steps: str = "", height: float = 1.0, sim_hover: float = 0.47) -> MissionSpec:
    return parse_mission(BASE.format(steps=steps, height=height, sim_hover=sim_hover),
                         name="hold-safety")


def height(row: dict[str, float]) -> float:
    return -row["down"]


def cut_heights(m: Mission, after: float) -> list[float]:
    """True heights where the mission commanded throttle 0 after mission time ``after``."""
    return [height(r) for r in m.samples
            if r["t"] >= after and r.get("throttle", 1.0) == 0.0 and "down" in r]


def fly_abort(spec: MissionSpec, then: str) -> tuple[Mission, FlowHold, list[str]]:
    """Arm, climb and hold under the flow hold, abort, then ``then``: "hover" (a
    step the abort ends) or "hold" (a step refused in the failsafe)."""
    cond = spec.sim
    assert cond is not None
    sim = sim_lockstep(hover_throttle=cond.hover_throttle, texture=cond.texture)
    deck = sim_deck(sim, cond)
    notes: list[str] = []

    async def main() -> tuple[Mission, FlowHold]:
        hold = FlowHold(sim.vehicle, spec.hold, spec.flow)
        m = Mission(sim.vehicle, mission=spec.mission, safety=spec.safety, drift=False,
                    hold=hold, deck=deck, hold_height_m=1.0)
        try:
            async with m:
                await m.arm()
                await m.climb(throttle=0.54, seconds=5)
                await m.hold(seconds=6)
                m.abort("test abort", "script")
                try:
                    await m.hold(seconds=5) if then == "hold" else await m.hover(seconds=1)
                except SafetyAbort:
                    status = hold.status()
                    notes.append(f"{status.state.value} {status.target_height_m}")
                    raise
        except SafetyAbort:
            pass
        return m, hold

    m, hold = run_lockstep(sim, main)
    return m, hold, notes


def test_the_failsafe_land_on_a_light_craft_descends_and_cuts_on_the_floor() -> None:
    # the craft hovers at 0.40, the mission believes 0.47: 0.9 x 0.47 once climbed
    # to 3.8 m in 4 s and the disarm gesture cut the motors up there
    m, hold, _ = fly_abort(mission(sim_hover=0.40), "hover")
    assert hold.hover_throttle is not None and abs(hold.hover_throttle - 0.40) < 0.03
    t_abort = next(e.t for e in m.events.history if e.kind is EventKind.ABORT)
    at_abort = [height(r) for r in m.samples if r["t"] <= t_abort and "down" in r][-1]
    after = [height(r) for r in m.samples if r["t"] > t_abort and "down" in r]
    assert max(after) < at_abort + 0.1
    cuts = cut_heights(m, t_abort)
    assert cuts and max(cuts) < FLOOR_M
    messages = [e.message for e in m.events.history if e.kind is EventKind.FAILSAFE]
    assert "touched down: disarming" in messages
    assert messages[-1] == "failsafe land done: disarmed"


def test_a_step_refused_in_the_failsafe_does_not_re_engage_the_hold() -> None:
    m, hold, notes = fly_abort(mission(), "hold")
    # the hold flies the failsafe's descent: the refused step left its floor target
    assert notes == ["holding 0.0"]
    assert hold.state is HoldState.OFF
    assert m.events.history[-1].message == "mission aborted: test abort"


def test_the_land_step_ends_on_the_floor_not_on_a_timer() -> None:
    # from 2.4 m with the default 4 s the throttle was cut at 0.8 m
    spec = mission("""
[[steps]]
action = "climb"
throttle = 0.54
seconds = 8
[[steps]]
action = "hold"
seconds = 3
height = 2.4
[[steps]]
action = "land"
[[steps]]
action = "disarm"
""", height=2.4)
    m, s = fly_sim(spec, drift=False, handle_sigint=False)
    assert s["completed"], s.get("abort_reason")
    start = next(e for e in m.events.history
                 if e.kind is EventKind.STEP_STARTED and e.action == "land")
    done = next(e for e in m.events.history
                if e.kind is EventKind.STEP_DONE and e.action == "land")
    assert done.t - start.t > 4.0    # longer than its 4 s: it came down from 2.4 m
    cuts = cut_heights(m, start.t)
    assert cuts and max(cuts) < FLOOR_M
    # and it does not idle on the floor near the hover throttle until a timer ends
    floor = next(r["t"] for r in m.samples if r["t"] > start.t and height(r) < FLOOR_M)
    assert done.t - floor < 0.6 + 1.0


def test_a_land_step_that_does_not_touch_down_aborts() -> None:
    spec = mission("""
[[steps]]
action = "climb"
throttle = 0.54
seconds = 5
[[steps]]
action = "land"
seconds = 1
[[steps]]
action = "disarm"
""")
    spec = dataclasses.replace(spec, hold=dataclasses.replace(spec.hold, land_extend_s=0.5))
    m, s = fly_sim(spec, drift=False, handle_sigint=False)
    assert not s["completed"]
    abort = next(e for e in m.events.history if e.kind is EventKind.ABORT)
    assert abort.data["monitor"] == "hold"
    assert abort.message.startswith("abort: landing: no touchdown in 1.5 s")
    # the failsafe's hold then lands it
    assert max(cut_heights(m, abort.t)) < FLOOR_M


def _moved(m: Mission, action: str) -> float:
    a = next(e.t for e in m.events.history
             if e.kind is EventKind.STEP_STARTED and e.action == action)
    b = next(e.t for e in m.events.history
             if e.kind is EventKind.STEP_DONE and e.action == action)
    rows = [r for r in m.samples if a <= r["t"] <= b and "north" in r]
    return float(((rows[-1]["north"] - rows[0]["north"]) ** 2
                  + (rows[-1]["east"] - rows[0]["east"]) ** 2) ** 0.5)


def test_steps_after_a_hold_fly_without_it() -> None:
    # the hold stayed engaged and overrode the move, the yaw and the disarm gesture
    spec = mission("""
[[steps]]
action = "climb"
throttle = 0.54
seconds = 4
[[steps]]
action = "hold"
seconds = 2
[[steps]]
action = "move"
pitch = -0.3
seconds = 3
[[steps]]
action = "hold"
seconds = 2
[[steps]]
action = "disarm"
""")
    m, s = fly_sim(spec, drift=False, handle_sigint=False)
    assert s["completed"], s.get("abort_reason")
    assert _moved(m, "move") > 3.0
    assert m.flow_hold is not None and m.flow_hold.state is HoldState.OFF
    offs = [r for _t, state, r in m.flow_hold.transitions if state is HoldState.OFF]
    assert offs[:2] == ["move step", "disarm step"]


HOLD_12_S = """
[[steps]]
action = "climb"
throttle = 0.54
seconds = 4
[[steps]]
action = "hold"
seconds = 12
[[steps]]
action = "land"
[[steps]]
action = "disarm"
"""
"""Climb, hold 12 s, land: the flight the withdrawal aborts are shown on."""


def test_a_hold_withdrawn_too_long_aborts_and_lands() -> None:
    spec = mission(HOLD_12_S)
    spec = dataclasses.replace(spec, hold=dataclasses.replace(spec.hold,
                                                              withdrawn_abort_s=2.0))
    m, s = fly_injected(spec, [(9.0, dark(True))])
    assert not s["completed"]
    withdrawn = next(e for e in m.events.history if e.kind is EventKind.HOLD
                     and e.message.startswith("hold withdrawn"))
    abort = next(e for e in m.events.history if e.kind is EventKind.ABORT)
    assert abort.data["monitor"] == "hold"
    assert abort.message.startswith("abort: hold withdrawn for 2 s: flow invalid")
    assert 2.0 - 0.05 <= abort.t - withdrawn.t <= 2.0 + 0.1   # reported at the next tick
    # the range is good: the failsafe's descent flew on it and cut the throttle on the floor
    failsafe = [e.message for e in m.events.history if e.kind is EventKind.FAILSAFE]
    assert "touched down: disarming" in failsafe
    cuts = cut_heights(m, abort.t)
    assert cuts and max(cuts) < FLOOR_M
    assert max(height(r) for r in m.samples if "down" in r) < 1.5


def test_a_resumption_stuck_engaging_still_aborts() -> None:
    """Withdrawn, then the sensors are valid again (ENGAGING: a resumption) and the
    ranger goes out of range within ``resume_s`` (1 s here): the hold stays ENGAGING, never
    WITHDRAWN again, while the fallback flies on. The abort still comes
    ``withdrawn_abort_s`` after the withdrawal (it used to watch WITHDRAWN alone, and
    never came)."""
    spec = mission(HOLD_12_S)
    spec = dataclasses.replace(spec, hold=dataclasses.replace(spec.hold,
                                                              withdrawn_abort_s=2.0,
                                                              resume_s=1.0))

    m, s = fly_injected(spec, [(9.0, dark(True)), (9.8, dark(False)),
                               (10.0, out_of_range(True))])
    hold = m.flow_hold
    assert hold is not None and not s["completed"]
    states = [(t, st) for t, st, _r in hold.transitions]
    withdrawn_t = next(t for t, st in states if st is HoldState.WITHDRAWN)
    resumed_t = next(t for t, st in states if st is HoldState.ENGAGING and t > withdrawn_t)
    abort = next(e for e in m.events.history if e.kind is EventKind.ABORT)
    abort_t = sim_time(m, abort)
    assert abort.data["monitor"] == "hold", abort.message
    assert abort.message.startswith("abort: hold withdrawn for 2 s: waiting: range invalid")
    # engaging from the resumption to the abort: it never held or withdrew again
    assert [st for t, st in states if resumed_t < t < abort_t] == []
    assert 2.0 - 0.05 <= abort_t - withdrawn_t <= 2.0 + 0.1


def test_a_withdrawal_between_two_mission_ticks_is_reported() -> None:
    spec = mission()
    cond = spec.sim
    assert cond is not None
    sim = sim_lockstep(hover_throttle=cond.hover_throttle, texture=cond.texture)
    deck = sim_deck(sim, cond)

    async def main() -> Mission:
        hold = FlowHold(sim.vehicle, spec.hold, spec.flow)
        m = Mission(sim.vehicle, mission=spec.mission, safety=spec.safety, drift=False,
                    hold=hold, deck=deck, hold_height_m=1.0)

        async def blink() -> None:
            while hold.state is not HoldState.HOLDING:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            # withdrawn and holding again within one step of the loop: the
            # mission's tick never sees the state withdrawn
            hold._withdraw("a short fault")
            hold._set(HoldState.ENGAGING, "sensors valid again")
            hold._set(HoldState.HOLDING, None)

        async with m:
            await m.arm()
            task = asyncio.create_task(blink())
            await m.climb(throttle=0.54, seconds=4)
            await task
            await m.land()
            await m.disarm()
        return m

    m = run_lockstep(sim, main)
    said = [e.message.split(";")[0] for e in m.events.history if e.kind is EventKind.HOLD]
    assert said == ["holding", "hold withdrawn: a short fault", "hold resumed"]


def test_a_stalled_hold_task_leaves_the_fallback_then_aborts_and_lands() -> None:
    spec = mission()
    spec = dataclasses.replace(spec, hold=dataclasses.replace(spec.hold,
                                                              withdrawn_abort_s=2.0))
    cond = spec.sim
    assert cond is not None
    sim = sim_lockstep(hover_throttle=cond.hover_throttle, texture=cond.texture)
    deck = sim_deck(sim, cond)
    stalled_at: list[float] = []

    async def main() -> Mission:
        hold = FlowHold(sim.vehicle, spec.hold, spec.flow)
        m = Mission(sim.vehicle, mission=spec.mission, safety=spec.safety, drift=False,
                    hold=hold, deck=deck, hold_height_m=1.0)
        try:
            async with m:
                await m.arm()
                await m.climb(throttle=0.54, seconds=4)

                async def stall() -> None:
                    await asyncio.sleep(1.0)
                    stalled_at.append(m.time())
                    hold.tick = lambda: None   # type: ignore[method-assign,assignment,return-value]

                task = asyncio.create_task(stall())
                await m.hold(seconds=10)
                await task
        except SafetyAbort:
            pass
        return m

    m = run_lockstep(sim, main)
    assert m.flow_hold is not None
    abort = next(e for e in m.events.history if e.kind is EventKind.ABORT)
    assert abort.data["monitor"] == "hold"
    assert abort.message == "abort: hold stalled: no fresh setpoint for 2 s"
    # stale 0.5 s after its last tick, then withdraw_abort_s
    assert 0.5 + 2.0 - 0.05 <= abort.t - stalled_at[0] <= 0.5 + 2.0 + 0.1
    between = [r for r in m.samples if stalled_at[0] + 0.6 < r["t"] < abort.t]
    assert between and all(r["throttle"] > 0.3 for r in between)   # the fallback flew
    cuts = cut_heights(m, abort.t)
    assert cuts and max(cuts) < FLOOR_M


def frozen_ranger(deck: object) -> None:
    """The ranger keeps reporting, valid, the distance it saw when it froze."""
    model = _range_model(deck)   # type: ignore[arg-type]
    truth = model.truth
    stuck = truth().height_m
    model.truth = lambda: dataclasses.replace(truth(), height_m=stuck)


@pytest.mark.parametrize("flow", ["seen", "dark"])
def test_a_ranger_frozen_on_the_floor_does_not_fly_the_craft_away(flow: str) -> None:
    """The height never answers the climb. The learned hover throttle ran to its
    bound and the hold withdrew for good; the fallback then flew that bound (0.62 on
    a craft that hovers at 0.47) for withdrawn_abort_s, the failsafe descended at
    0.9 x the bound, which still climbs, and the motors were cut about 98 m up.
    Now valid flow (the camera is in focus, so the deck is 80 mm up at least) gives
    the ranger away within FOCUS_S; in the dark the bound still does, the fallback
    flies the guess instead of the bound, and the mission aborts at once."""
    spec = mission(HOLD_12_S)
    faults = [(0.0, frozen_ranger)] + ([(0.0, dark(True))] if flow == "dark" else [])
    m, s = fly_injected(spec, faults)
    hold = m.flow_hold
    assert hold is not None and not s["completed"]
    abort = next(e for e in m.events.history if e.kind is EventKind.ABORT)
    assert abort.data["monitor"] == "hold"
    why = ("the flow camera is in focus, yet the range says 0.03 m" if flow == "seen"
           else "hover throttle at its bound 0.620")
    assert abort.message.startswith(f"abort: hold withdrawn for good: {why}"), abort.message
    withdrawn = next(e for e in m.events.history if e.kind is EventKind.HOLD
                     and e.message.startswith("hold withdrawn"))
    assert abort.t - withdrawn.t <= 0.1                  # the next mission tick
    after = [r for r in m.samples if r["t"] >= withdrawn.t and "throttle" in r]
    assert after and max(r["throttle"] for r in after) <= 0.47
    top = max(height(r) for r in m.samples if "down" in r)
    if flow == "seen":
        assert top < 1.0
        cuts = cut_heights(m, abort.t)
        assert cuts and max(cuts) < FLOOR_M
    else:
        assert hold.hover_throttle == 0.47               # the guess, not the bound
        # blind, the take-off ramp brings the bound within 2 s (5 s on hover_ki alone,
        # and 19 m up)
        assert top < 6.0


def test_a_latched_fault_after_a_resumption_aborts_at_once() -> None:
    """Resuming (ENGAGING) when the ranger jumps to a tenth of the height: latched,
    the hold will never fly again, so the mission does not wait out the limit."""
    spec = mission(HOLD_12_S)

    def ranger_fault(deck: object) -> None:          # reads a tenth of the height
        _range_model(deck).scale = 0.1               # type: ignore[arg-type]

    m, s = fly_injected(spec, [(9.0, dark(True)), (9.8, dark(False)), (10.0, ranger_fault)])
    assert not s["completed"]
    abort = next(e for e in m.events.history if e.kind is EventKind.ABORT)
    assert abort.message.startswith("abort: hold withdrawn for good: waiting: range jumped")
    assert 10.0 <= sim_time(m, abort) <= 10.0 + 0.2   # a ranging period and a tick


def test_the_flow_lost_in_the_climb_keeps_the_height_on_the_ranger() -> None:
    """The flow lost while the hold flies the climb, on a craft that hovers at 0.41
    where the mission believes 0.47. The fallback flew the hover throttle learned
    so far, open loop: here the craft climbed to 10 m in the 4 s withdrawn, and the
    failsafe's descent at 0.9 x that figure barely sank, so the motors were cut 19 m
    up (found on a floor of texture 0.15: 27 m up, cut at 23 m). The range is still
    good: the fallback now holds the height on it, learning the hover throttle on,
    and the failsafe lands on it."""
    spec = mission(HOLD_12_S, sim_hover=0.41)
    spec = dataclasses.replace(spec, hold=dataclasses.replace(spec.hold,
                                                              withdrawn_abort_s=4.0))
    m, s = fly_injected(spec, [(3.0, dark(True))])
    hold = m.flow_hold
    assert hold is not None and not s["completed"]
    withdrawn = next(e for e in m.events.history if e.kind is EventKind.HOLD
                     and e.message.startswith("hold withdrawn"))
    assert withdrawn.message.endswith("; the height held on the ranger"), withdrawn.message
    assert withdrawn.data["fallback_height"] == "ranger"
    abort = next(e for e in m.events.history if e.kind is EventKind.ABORT)
    assert abort.message.startswith("abort: hold withdrawn for 4 s: flow invalid")
    during = [height(r) for r in m.samples if withdrawn.t <= r["t"] <= abort.t and "down" in r]
    assert max(during) < 1.5                      # the climb to 1 m, then held (was 10 m)
    assert abs(during[-1] - 1.0) < 0.15
    assert hold.hover_throttle is not None and abs(hold.hover_throttle - 0.41) < 0.03
    failsafe = [e.message for e in m.events.history if e.kind is EventKind.FAILSAFE]
    assert "touched down: disarming" in failsafe  # landed on the ranger, not on a timer
    cuts = cut_heights(m, abort.t)
    assert cuts and max(cuts) < FLOOR_M


def test_the_flow_and_range_lost_fall_back_open_loop() -> None:
    """The flow lost first (its timeout is the shorter), then the range: the height
    loop has nothing left to fly on, so the fallback goes over to the learned hover
    throttle, and says so; back on the ranger when the range returns."""
    spec = mission(HOLD_12_S)
    spec = dataclasses.replace(spec, hold=dataclasses.replace(spec.hold, fallback_sink=0.02))
    m, _ = fly_injected(spec, [(9.0, dark(True)), (9.0, out_of_range(True)),
                               (10.5, out_of_range(False))])
    said = [(sim_time(m, e), e.message, e.data.get("fallback_height"))
            for e in m.events.history if e.kind is EventKind.HOLD
            and e.message.startswith(("hold withdrawn", "hold fallback"))]
    assert [h for _, _, h in said[:3]] == ["ranger", "open loop", "ranger"], said
    assert said[1][1] == ("hold fallback: the height open loop: range invalid: signal fail "
                          "(out of range)"), said
    # range_timeout_s after the last valid range, which came up to a ranging period early
    assert 9.0 + 0.5 - 0.1 <= said[1][0] <= 9.0 + 0.5 + 0.05
    assert said[2][1] == "hold fallback: the height on the ranger again"
    fell = [r for r in m.samples if said[1][0] < m.started_at + r["t"] < said[2][0] - 0.05
            and "throttle" in r]
    open_loop = next(e for e in m.events.history if e.message.startswith("hold fallback"))
    learned = open_loop.data["hover_throttle"]
    # open loop, fallback_sink below the learned hover throttle (it learns nothing now)
    assert open_loop.data["fallback_throttle"] == pytest.approx(learned - 0.02, abs=1e-4)
    assert fell and all(r["throttle"] == pytest.approx(learned - 0.02, abs=1e-4)
                        for r in fell)


def test_a_land_step_that_loses_the_flow_lands_on_the_ranger() -> None:
    """The flow lost at the start of the land step, from 2 m: open loop, 0.9 x the
    hover throttle, the craft fell onto the floor at 1.7 m/s; the height loop on
    the ranger flies it down at its descent rate to a touchdown, which ends the
    step, and the motors stop on the floor."""
    spec = mission("""
[[steps]]
action = "climb"
throttle = 0.54
seconds = 7
[[steps]]
action = "hold"
seconds = 2
height = 2.0
[[steps]]
action = "land"
[[steps]]
action = "disarm"
""", height=2.0, sim_hover=0.43)
    probe, _ = fly_injected(spec, [])
    land_at = next(sim_time(probe, e) for e in probe.events.history
                   if e.kind is EventKind.STEP_STARTED and e.action == "land")
    m, s = fly_injected(spec, [(land_at + 0.05, dark(True))])
    assert s["completed"], s.get("abort_reason")
    start = next(e for e in m.events.history
                 if e.kind is EventKind.STEP_STARTED and e.action == "land")
    done = next(e for e in m.events.history
                if e.kind is EventKind.STEP_DONE and e.action == "land")
    withdrawn = next(e for e in m.events.history if e.kind is EventKind.HOLD
                     and e.message.startswith("hold withdrawn"))
    assert start.t < withdrawn.t < done.t
    assert withdrawn.data["fallback_height"] == "ranger"
    assert m.flow_hold is not None and m.flow_hold.touched_down
    cuts = cut_heights(m, start.t)
    assert cuts and max(cuts) < FLOOR_M
    rows = [r for r in m.samples if start.t <= r["t"] <= done.t and "down" in r]
    sink = [(b["down"] - a["down"]) / (b["t"] - a["t"])
            for a, b in itertools.pairwise(rows) if b["t"] > a["t"]]
    assert max(sink) < 0.8   # max_descent_mps (0.4) and a margin, not a fall


def test_a_hold_engaged_anew_does_not_report_the_old_fallback() -> None:
    """Withdrawn on the ranger, released by a hover step, engaged anew by a hold step:
    the new engagement reports holding, not a fallback of the one before."""
    spec = mission("""
[[steps]]
action = "climb"
throttle = 0.54
seconds = 4
[[steps]]
action = "hold"
seconds = 3
[[steps]]
action = "hover"
seconds = 0.5
[[steps]]
action = "hold"
seconds = 3
[[steps]]
action = "land"
[[steps]]
action = "disarm"
""")
    # dark through the end of the first hold step (10.3 s in simulator time) into the hover
    m, _ = fly_injected(spec, [(8.0, dark(True)), (10.5, dark(False))])
    said = [e.message for e in m.events.history if e.kind is EventKind.HOLD
            and not e.message.startswith("hold rates")]
    assert said[0] == "holding" and said[1].startswith("hold withdrawn"), said
    assert said[1].endswith("; the height held on the ranger"), said
    assert not any(x.startswith("hold fallback") for x in said), said
    assert said.count("hold resumed") == 0 and said.count("holding") == 2, said


def test_a_fault_in_the_height_loop_falls_back_open_loop_and_still_lands(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The fallback's height loop raising must not take the failsafe with it: the
    mission flies the hover throttle open loop, logs the fault, aborts and lands."""
    def broken(self: FlowHold) -> float | None:
        raise RuntimeError("height loop broke")

    monkeypatch.setattr(FlowHold, "vertical_fallback", broken)
    spec = mission(HOLD_12_S)
    spec = dataclasses.replace(spec, hold=dataclasses.replace(spec.hold,
                                                              withdrawn_abort_s=2.0))
    m, s = fly_injected(spec, [(9.0, dark(True))])
    assert not s["completed"]
    abort = next(e for e in m.events.history if e.kind is EventKind.ABORT)
    assert abort.message.startswith("abort: hold withdrawn for 2 s: flow invalid")
    assert m.events.history[-1].message.startswith("mission aborted: hold withdrawn")
    assert "hold's height loop failed" in caplog.text and "height loop broke" in caplog.text
    cuts = cut_heights(m, abort.t)
    assert cuts and max(cuts) < FLOOR_M


def test_between_steps_the_fallback_flies_on_its_height_loop() -> None:
    """A script that pauses between steps while the hold is withdrawn: the mission
    went on publishing the last throttle it had, a transient of the height loop,
    open loop; the fallback now flies on, its throttle following the height."""
    spec = mission(sim_hover=0.41)
    cond = spec.sim
    assert cond is not None
    sim = sim_lockstep(hover_throttle=cond.hover_throttle, texture=cond.texture)
    deck = sim_deck(sim, cond)

    async def main() -> tuple[Mission, float, float]:
        hold = FlowHold(sim.vehicle, spec.hold, spec.flow)
        m = Mission(sim.vehicle, mission=spec.mission, safety=spec.safety, drift=False,
                    hold=hold, deck=deck, hold_height_m=1.0)
        async with m:
            await m.arm()
            await m.climb(throttle=0.54, seconds=4)
            await m.hold(seconds=3)
            dark(True)(deck)
            await m.hold(seconds=1)            # withdrawn within it, on the ranger
            a = sim.clock.now()
            await asyncio.sleep(3.0)           # the script's pause
            b = sim.clock.now()
            await m.land()
            await m.disarm()
        return m, a, b

    m, a, b = run_lockstep(sim, main)
    assert m.completed, m.abort_reason
    gap = [r for r in m.samples if a + 0.1 < m.started_at + r["t"] < b and "throttle" in r]
    assert len(gap) > 100
    assert len({round(r["throttle"], 4) for r in gap}) > 10   # flown, not frozen
    assert all(0.7 < height(r) < 1.3 for r in gap if "down" in r)
