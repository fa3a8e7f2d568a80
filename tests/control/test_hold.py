"""FlowHold on a fake vehicle in virtual time: states, limits, failsafe rows, sticks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
from typing import Any

import pytest

from pipilot.control.hold import (
    FOCUS_S,
    HOLD_SOURCE,
    LOW_TILT_DEG,
    TAKEOFF_WAIT_S,
    FlowHold,
    HoldConfig,
    PolledDeck,
)
from pipilot.control.holdapi import HoldControl, HoldState
from pipilot.core import tomlconf
from pipilot.core.clock import VirtualClock
from pipilot.core.mixer import Mixer
from pipilot.core.setpoints import Setpoint
from pipilot.errors import ConfigError
from pipilot.mission.spec import HoldTable, parse_mission
from pipilot.sensors.pmw3901 import FlowSample
from pipilot.sensors.reader import FlowDeckPoller, TimedFlow, TimedRange
from pipilot.sensors.vl53l1x import RangeSample
from tests.sensors.conftest import make_rig


class FakeTelemetry:
    connected = True

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.values: dict[str, tuple[dict[str, Any], float]] = {}

    def set(self, name: str, values: dict[str, Any]) -> None:
        self.values[name] = (values, self.clock.now())

    def latest(self, name: str) -> tuple[dict[str, Any], float] | None:
        got = self.values.get(name)
        return None if got is None else (got[0], self.clock.now() - got[1])

    async def request(self, name: str) -> dict[str, Any]:
        return {}

    async def send(self, name: str, values: dict[str, Any], ack: bool = True) -> None:
        pass

    async def set_update_period(self, name: str, period_ms: int, *,
                                mode: str = "periodic") -> None:
        self.period = (name, period_ms)


class FakeVehicle:
    def __init__(self) -> None:
        self.clock = VirtualClock(50.0)
        self.mixer = Mixer(clock=self.clock)
        self.telemetry = FakeTelemetry(self.clock)


class Feed:
    """A still craft at ``height``; ``flow``/``range_`` switch what the deck delivers."""

    def __init__(self, hold: FlowHold, vehicle: FakeVehicle, height: float = 1.0) -> None:
        self.hold, self.v = hold, vehicle
        self.height = height
        self.flow = "ok"     # ok | stale | invalid
        self.range_ = "ok"   # ok | stale | invalid
        self.attitude = True
        self.n = 0
        self.setpoints: list[Setpoint | None] = []

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / 0.01)):
            self.n += 1
            self.v.clock.advance(0.01)
            t = self.v.clock.now()
            if self.n % 5 == 0 and self.attitude:
                self.v.telemetry.set("AttitudeState", {"Roll": 0.0, "Pitch": 0.0, "Yaw": 0.0})
            items: list[Any] = []
            if self.flow != "stale":
                squal = 120 if self.flow == "ok" else 5
                items.append(TimedFlow(t, FlowSample(0, 0, False, squal, 0x100, 0, 0, 0)))
            if self.range_ != "stale" and self.n % 10 == 0:
                items.append(TimedRange(t, RangeSample(self.height,
                                                       0 if self.range_ == "ok" else 2, 10.0)))
            self.hold.feed(items)
            if self.n % 2 == 0:
                self.setpoints.append(self.hold.tick())


def holding(config: HoldConfig | None = None, height: float = 1.0
            ) -> tuple[FlowHold, FakeVehicle, Feed]:
    v = FakeVehicle()
    hold = FlowHold(v, config)
    feed = Feed(hold, v, height)
    feed.run(0.5)
    hold.engage(height, hover_guess=0.5)
    assert hold.state is HoldState.ENGAGING
    feed.run(0.3)
    assert hold.state is HoldState.HOLDING
    return hold, v, feed


def on_the_floor(config: HoldConfig | None = None) -> tuple[FlowHold, FakeVehicle, Feed]:
    """A hold engaged (to 1 m) on a craft standing on the floor, its flow out of focus."""
    v = FakeVehicle()
    hold = FlowHold(v, config)
    feed = Feed(hold, v, height=0.03)
    feed.flow = "invalid"
    feed.run(0.5)
    hold.engage(1.0, hover_guess=0.5)
    return hold, v, feed


def test_it_is_a_hold_control() -> None:
    hold: HoldControl = FlowHold(FakeVehicle())
    assert hold.status().state is HoldState.OFF


def test_engages_and_publishes_the_hold_source() -> None:
    hold, v, _feed = holding()
    src = v.mixer.sources[HOLD_SOURCE]
    assert src.fresh(v.clock.now())
    st = hold.status()
    assert st.height_m == pytest.approx(1.0, abs=0.02) and st.hover_throttle == 0.5
    assert st.target_height_m == 1.0 and st.target_position_m is not None
    assert st.as_json()["state"] == "holding"
    out = v.mixer.tick()
    assert out.source == HOLD_SOURCE


def test_outputs_stay_within_the_configured_limits() -> None:
    cfg = HoldConfig(max_tilt_deg=8.0, throttle_min=0.3, throttle_max=0.6, max_height_m=1.5)
    hold, _v, feed = holding(cfg)
    hold.target_position = (20.0, -20.0)   # far away: the tilt saturates
    hold.set_target_height(9.0)             # above max_height_m: clipped
    assert hold.target_height == 1.5
    feed.run(1.0)
    sps = [sp for sp in feed.setpoints[-40:] if sp is not None]
    assert sps
    db = cfg.stick_deadband_pct / 100

    def flown(stick: float) -> float:   # the FC's deadband, as the sticks cross it
        return math.copysign(max(abs(stick) - db, 0.0) / (1 - db), stick) * cfg.stick_angle_deg

    for sp in sps:
        tilt_deg = math.hypot(flown(sp.roll), flown(sp.pitch))
        assert tilt_deg <= 8.0 + 1e-9
        assert 0.3 <= sp.throttle <= 0.6
    # the climb is rate-limited: throttle above hover by at most climb_kp * max_climb
    assert max(sp.throttle for sp in sps) <= (hold.hover_throttle or 0) + \
        cfg.climb_kp * cfg.max_climb_mps + 0.01
    # full tilt towards the target: north and west (nose down, left side down)
    assert sps[-1].pitch < 0 and sps[-1].roll < 0


def test_the_tilt_leads_the_fcs_attitude_loop() -> None:
    """A step in the asked tilt goes out at up to four times its size and settles to it
    with a quarter of attitude_lead_s: through the FC's attitude loop (a lag of
    attitude_lead_s) the craft then tilts with that quarter, not the whole."""
    lead = 0.4
    hold, v, _feed = holding(HoldConfig(attitude_lead_s=lead, max_tilt_deg=20.0))
    assert hold._lead(0.0, 0.0) == (0.0, 0.0)
    out = []
    for _ in range(50):
        v.clock.advance(0.02)
        out.append(hold._lead(1.0, -0.5))
    # the low-passed command moved a fifth of the step (20 ms of 0.1 s): 1 + 3 x 0.8
    assert out[0] == pytest.approx((3.4, -1.7), rel=1e-6)
    assert out[-1] == pytest.approx((1.0, -0.5), abs=1e-3)
    # the FC's lag (time constant attitude_lead_s) fed the led command reaches 63 %
    # of the step within about a quarter of it
    att, reached = 0.0, None
    for i, (roll, _pitch) in enumerate(out):
        att += 0.02 / lead * (roll - att)
        if reached is None and att >= 0.63:
            reached = (i + 1) * 0.02
    assert reached is not None and reached <= 0.16
    v.clock.advance(0.02)
    assert max(abs(x) for x in hold._lead(30.0, 0.0)) <= 20.0   # within max_tilt_deg
    v.clock.advance(0.5)   # a gap (not holding): no derivative across it
    assert hold._lead(2.0, 0.0) == (2.0, 0.0)


def test_hover_throttle_is_learned_from_the_climb_rate() -> None:
    hold, _v, feed = holding()
    # the range says it sinks: 1 cm per 100 ms; the loop pushes the hover throttle up
    before = hold.hover_throttle or 0.0
    for _ in range(20):
        feed.height -= 0.01
        feed.run(0.1)
    assert (hold.hover_throttle or 0.0) > before


@pytest.mark.parametrize(("flow", "range_", "reason", "bound"), [
    ("stale", "ok", "flow stale", 0.4),
    ("invalid", "ok", "flow invalid: SQUAL 5", 0.4),
    ("ok", "stale", "range stale", 0.5),
    ("ok", "invalid", "range invalid: signal fail", 0.5),
    ("stale", "stale", "flow stale", 0.4),
])
def test_failsafe_rows(flow: str, range_: str, reason: str, bound: float) -> None:
    hold, v, feed = holding()
    t0 = v.clock.now()
    feed.flow, feed.range_ = flow, range_
    while hold.state is HoldState.HOLDING and v.clock.now() - t0 < 2.0:
        feed.run(0.01)
    took = v.clock.now() - t0
    assert hold.state is HoldState.WITHDRAWN
    assert bound < took <= bound + 0.11   # ticks every 20 ms, ranges every 100 ms
    assert hold.reason is not None and reason in hold.reason
    assert hold.latched is None   # it resumes: the mission waits withdrawn_abort_s
    assert not v.mixer.sources[HOLD_SOURCE].fresh(v.clock.now())   # withdrawn at once
    if (flow, range_) == ("stale", "stale"):
        feed.run(0.3)   # the range's timeout follows: both named while withdrawn
        assert "flow stale" in (hold.reason or "") and "range stale" in (hold.reason or "")
    feed.run(0.06)
    assert all(sp is None for sp in feed.setpoints[-3:])   # nothing published
    # valid again: ENGAGING, then HOLDING after resume_s, where the craft then is
    feed.flow = feed.range_ = "ok"
    feed.run(0.15)
    assert hold.state is HoldState.ENGAGING
    feed.run(0.4)
    assert hold.state is HoldState.HOLDING
    assert v.mixer.sources[HOLD_SOURCE].fresh(v.clock.now())


def test_flow_is_not_needed_near_the_floor() -> None:
    v = FakeVehicle()
    hold = FlowHold(v)
    feed = Feed(hold, v, height=0.04)
    feed.flow = "invalid"            # out of focus on the ground
    feed.run(0.5)
    hold.engage(1.0, hover_guess=0.45)
    feed.run(0.2)
    assert hold.state is HoldState.HOLDING
    sp = feed.setpoints[-1]
    assert sp is not None and sp.roll == 0.0 and sp.pitch == 0.0   # level, climbing
    assert sp.throttle > 0.45


def test_a_piloted_hold_needs_the_pilots_heartbeat() -> None:
    hold, _v, feed = holding()
    hold.engage(None, hover_guess=0.5, piloted=True)
    for _ in range(5):
        hold.pilot(Setpoint(throttle=0.5))
        feed.run(0.1)
    assert hold.state is HoldState.HOLDING
    feed.run(0.6)    # no heartbeat beyond the pilot source's 0.5 s
    assert hold.state is HoldState.WITHDRAWN and "pilot heartbeat" in (hold.reason or "")


def test_sticks_move_the_held_point() -> None:
    hold, _v, feed = holding()
    hold.engage(None, hover_guess=0.5, piloted=True)
    start = hold.target_position
    h0 = hold.target_height
    assert start is not None and h0 is not None
    for _ in range(10):   # forward (pitch stick down) and climb, 1 s
        hold.pilot(Setpoint(throttle=1.0, pitch=-1.0, yaw=0.3))
        feed.run(0.1)
    end = hold.target_position
    assert end is not None
    assert end[0] - start[0] == pytest.approx(hold.config.nudge_mps, abs=0.05)
    assert (hold.target_height or 0) - h0 == pytest.approx(hold.config.max_climb_mps, abs=0.05)
    sp = feed.setpoints[-1]
    assert sp is not None and sp.yaw == pytest.approx(0.3)


def test_release_withdraws_at_once() -> None:
    hold, v, feed = holding()
    hold.release("done")
    assert hold.state is HoldState.OFF and hold.reason == "done"
    assert not v.mixer.sources[HOLD_SOURCE].fresh(v.clock.now())
    feed.run(0.2)
    assert all(sp is None for sp in feed.setpoints[-5:])


def test_bad_engage_arguments() -> None:
    hold = FlowHold(FakeVehicle())
    with pytest.raises(ConfigError, match="hover_guess"):
        hold.engage(1.0, hover_guess=1.5)
    with pytest.raises(ConfigError, match="target_height_m"):
        hold.engage(math.nan, hover_guess=0.5)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"hold\.max_tilt_deg"):
        tomlconf.load(HoldConfig, {"max_tilt_deg": "steep"}, "hold")
    with pytest.raises(ConfigError, match=r"hold\.bogus"):
        tomlconf.load(HoldConfig, {"bogus": 1}, "hold")
    with pytest.raises(ConfigError, match=r"hold\.throttle_max"):
        tomlconf.load(HoldConfig, {"throttle_min": 0.7, "throttle_max": 0.6}, "hold")
    with pytest.raises(ConfigError, match=r"hold\.max_tilt_deg"):
        tomlconf.load(HoldConfig, {"max_tilt_deg": 60}, "hold")
    with pytest.raises(ConfigError, match=r"hold\.stick_deadband_pct"):
        tomlconf.load(HoldConfig, {"stick_deadband_pct": 50}, "hold")
    cfg = tomlconf.load(HoldTable, {"enabled": True, "target_height_m": 1, "max_tilt_deg": 10,
                                    "stick_deadband_pct": 0}, "hold").limits
    assert cfg.max_tilt_deg == 10.0 and cfg.stick_deadband_pct == 0.0


def test_mission_hold_table_and_step() -> None:
    base = '[[steps]]\naction = "hold"\nseconds = 5\n'
    spec = parse_mission(base + '[hold]\nenabled = true\ntarget_height_m = 1.2\n'
                                'max_climb_mps = 0.3\n[hold.estimator]\nlatency_s = 0.1\n')
    assert spec.hold_enabled and spec.hold_target_height_m == 1.2
    assert spec.hold.max_climb_mps == 0.3 and spec.flow.latency_s == 0.1
    assert not parse_mission(base).hold_enabled
    for text, key in [
        ('[hold]\nenabled = "yes"\n', "hold.enabled"),
        ('[hold]\ntarget_height_m = 5\n', "hold.target_height_m"),
        ('[hold]\nmax_tilt_deg = -1\n', "hold.max_tilt_deg"),
        ('[hold.estimator]\nlatency_s = "x"\n', "hold.estimator.latency_s"),
        ('[hold]\n', None),
    ]:
        if key is None:
            parse_mission(base + text)
            continue
        with pytest.raises(ConfigError) as err:
            parse_mission(base + text)
        assert err.value.key == key
    with pytest.raises(ConfigError) as err:
        parse_mission('[[steps]]\naction = "hold"\nseconds = 5\nheight = 4\n')
    assert err.value.key == "step 1 (hold).height"


def test_polled_deck_sleeps_its_period_and_polls() -> None:
    rig = make_rig()
    deck = PolledDeck(FlowDeckPoller(rig.flow, rig.ranger, rig.clock), period_s=0.01)

    async def main() -> list[Any]:
        return await deck.get()

    items = asyncio.run(main())
    assert items and isinstance(items[0], TimedFlow)
    with pytest.raises(ValueError):
        PolledDeck(deck.poller, period_s=0)


def test_a_deck_that_starts_failing_withdraws_the_hold_and_the_loop_lives_on() -> None:
    from pipilot.core.clock import MonotonicClock

    v = FakeVehicle()
    v.clock = MonotonicClock()  # type: ignore[assignment]
    v.mixer = Mixer(clock=v.clock)
    v.telemetry = FakeTelemetry(v.clock)  # type: ignore[arg-type]
    hold = FlowHold(v)

    class Deck:
        def __init__(self) -> None:
            self.n = 0
            self.broken = False

        async def get(self) -> list[Any]:
            await asyncio.sleep(0.01)
            if self.broken:
                raise OSError(5, "Input/output error")
            self.n += 1
            t = v.clock.now()
            v.telemetry.set("AttitudeState", {"Roll": 0.0, "Pitch": 0.0, "Yaw": 0.0})
            items: list[Any] = [TimedFlow(t, FlowSample(0, 0, False, 120, 0x100, 0, 0, 0))]
            if self.n % 10 == 0:
                items.append(TimedRange(t, RangeSample(1.0, 0, 10.0)))
            return items

    deck = Deck()

    async def main() -> None:
        task = asyncio.create_task(hold.run(deck))
        await asyncio.sleep(0.3)
        hold.engage(1.0, hover_guess=0.5)
        for _ in range(100):   # generous: a loaded machine
            await asyncio.sleep(0.05)
            if hold.state is HoldState.HOLDING:
                break
        assert hold.state is HoldState.HOLDING
        deck.broken = True
        for _ in range(100):
            await asyncio.sleep(0.05)
            if hold.state is HoldState.WITHDRAWN:
                break
        assert hold.state is HoldState.WITHDRAWN and "stale" in (hold.reason or "")
        assert not task.done() and hold.failures.failures > 0
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())


def _fly_stuck_ranger(hold: FlowHold, v: FakeVehicle, seconds: float, flow_fails: bool
                      ) -> list[tuple[float, float, HoldState]]:
    """Hold 1 m on a point mass that hovers at 0.5; from 5 s the ranger returns a
    short, valid 0.03 m (a smudged cover glass, a leg in the beam) and, if
    ``flow_fails``, the flow goes out of focus. Withdrawn, it flies its true hover."""
    h, vz, hover = 1.0, 0.0, 0.5
    thr: float | None = None
    out = []
    for n in range(1, round(seconds / 0.01) + 1):
        v.clock.advance(0.01)
        t = n * 0.01
        if thr is not None:
            vz += 9.80665 * (thr / hover - 1.0) * 0.01
            h = max(0.0, h + vz * 0.01)
        if n % 5 == 0:
            v.telemetry.set("AttitudeState", {"Roll": 0.0, "Pitch": 0.0, "Yaw": 0.0})
        stuck = t >= 5.0
        items: list[Any] = [TimedFlow(v.clock.now(), FlowSample(
            0, 0, False, 5 if stuck and flow_fails else 120, 0x100, 0, 0, 0))]
        if n % 10 == 0:
            items.append(TimedRange(v.clock.now(), RangeSample(0.03 if stuck else h, 0, 10.0)))
        hold.feed(items)
        if n == 50:
            hold.engage(1.0, hover_guess=0.5)
        if n % 2 == 0:
            sp = hold.tick()
            thr = sp.throttle if sp is not None else hover
            out.append((t, h, hold.state))
    return out


@pytest.mark.parametrize("flow_fails", [False, True])
def test_a_ranger_stuck_short_withdraws_and_stays_withdrawn(flow_fails: bool) -> None:
    # the gate gave up and snapped the height to the short range: the hold took that
    # for the floor, needed no flow and climbed at full throttle for ever
    v = FakeVehicle()
    hold = FlowHold(v)
    rows = _fly_stuck_ranger(hold, v, 12.0, flow_fails)
    first = next(t for t, _h, state in rows if state is HoldState.WITHDRAWN)
    assert 5.0 <= first <= 5.0 + 0.1 + 0.02   # the first short range: one ranging period
    assert hold.reason is not None and "range jumped from 1.00 m to 0.03 m" in hold.reason
    assert all(state is HoldState.WITHDRAWN for t, _h, state in rows if t >= first)
    assert max(h for _t, h, _s in rows) < 1.2


def test_flow_is_needed_near_the_floor_once_taken_off() -> None:
    hold, _v, feed = holding(height=0.5)
    feed.flow = "invalid"
    feed.height = 0.1    # below flow_min_height_m, but not a landing
    feed.run(1.0)
    assert hold.state is HoldState.WITHDRAWN
    assert hold.reason is not None and "flow invalid" in hold.reason


def test_the_learned_hover_throttle_is_bounded_and_withdraws_at_its_bound() -> None:
    hold, _v, feed = holding()
    hold.set_target_height(1.5)   # the height never answers: a stuck ranger, say
    feed.run(10.0)
    assert hold.state is HoldState.WITHDRAWN
    assert hold.reason is not None and "hover throttle at its bound 0.650" in hold.reason
    assert hold.latched is not None and "back to the guess" in hold.latched
    # the fallback flies the guess: the bound would climb away on a stuck ranger
    assert hold.hover_throttle == pytest.approx(0.5)
    assert all(sp is None or sp.throttle <= 0.8 for sp in feed.setpoints)
    feed.run(2.0)
    assert hold.state is HoldState.WITHDRAWN


def test_flow_in_focus_under_a_floor_range_is_a_ranger_fault() -> None:
    """The PMW3901 cannot focus below 80 mm: sharp flow while the ranger says 30 mm
    is a ranger frozen on the floor. Latched after FOCUS_S, and the hover throttle
    the take-off learned blind goes back to the guess."""
    hold, _v, feed = on_the_floor()   # out of focus there, and not needed
    feed.run(0.5)
    assert hold.state is HoldState.HOLDING and hold.latched is None
    assert (hold.hover_throttle or 0.0) > 0.5   # the take-off ramp, blind
    feed.flow = "ok"
    feed.run(FOCUS_S - 0.05)
    assert hold.state is HoldState.HOLDING
    feed.run(0.1)
    assert hold.state is HoldState.WITHDRAWN
    assert hold.latched is not None and hold.latched.startswith(
        "the flow camera is in focus, yet the range says 0.03 m")
    assert hold.hover_throttle == 0.5


def test_the_take_off_ramp_speeds_up_a_craft_that_sits() -> None:
    """On the floor, asked to climb, the hover throttle rises at hover_ki x the climb
    error; once the craft has sat TAKEOFF_WAIT_S it rises at least takeoff_ramp a
    second, and once the range says the craft is up, at hover_ki again."""
    hold, _v, feed = on_the_floor(HoldConfig(takeoff_ramp=0.1))
    feed.run(0.1)
    start = hold.hover_throttle or 0.0
    feed.run(0.3)   # sitting, within the wait: hover_ki x 0.5 m/s
    assert (hold.hover_throttle or 0.0) - start == pytest.approx(0.06 * 0.5 * 0.3, abs=0.002)
    feed.run(TAKEOFF_WAIT_S)
    on_floor = hold.hover_throttle or 0.0
    feed.run(0.5)   # the ramp
    assert (hold.hover_throttle or 0.0) - on_floor == pytest.approx(0.05, abs=0.006)
    feed.height, feed.flow = 0.5, "ok"    # up (a still craft: no climb seen)
    feed.run(0.5)
    before = hold.hover_throttle or 0.0
    feed.run(0.5)
    # now hover_ki x climb error alone (0.06 x about 0.5 m/s), not the ramp's 0.05
    assert 0.0 < (hold.hover_throttle or 0.0) - before < 0.02


def test_the_lower_bound_keeps_the_lower_hover_throttle() -> None:
    """The height never comes down: the hover throttle falls to its lower bound and the
    hold withdraws. A craft lighter than the guess learns this too, so the figure is
    not raised back to the guess: 0.9 x the guess would climb in the failsafe's
    descent."""
    hold, _v, feed = holding()
    hold.set_target_height(0.5)   # the range stays at 1.0 m
    feed.run(10.0)
    assert hold.state is HoldState.WITHDRAWN
    assert hold.latched is not None and "hover throttle at its bound 0.350" in hold.latched
    assert "back to the guess" not in hold.latched
    assert hold.hover_throttle == pytest.approx(0.35)


def _near_floor(height: float, landing: bool = False) -> list[Setpoint]:
    """Setpoints of a hold engaged on the floor, the craft then at ``height`` (below
    flow_min_height_m) with sharp flow, its held point 1 m away."""
    hold, _v, feed = on_the_floor()
    feed.run(0.2)
    feed.flow = "ok"
    while feed.height < height:   # up slowly: no estimate overshooting 0.15 m
        feed.height = min(height, feed.height + 0.01)
        feed.run(0.1)
    feed.run(0.3)
    if landing:
        hold.land()
    hold.target_position = (1.0, 0.0)
    feed.setpoints.clear()
    feed.run(0.5)
    assert hold.state is HoldState.HOLDING
    return [sp for sp in feed.setpoints if sp is not None]


def test_near_the_floor_the_hold_holds_gently_once_it_sees() -> None:
    cfg = HoldConfig()
    db = cfg.stick_deadband_pct / 100

    def tilt(sp: Setpoint) -> float:
        def flown(stick: float) -> float:
            return math.copysign(max(abs(stick) - db, 0.0) / (1 - db), stick)
        return math.hypot(flown(sp.roll), flown(sp.pitch)) * cfg.stick_angle_deg

    up = _near_floor(0.12)             # above touchdown_height_m, valid flow: held
    assert max(tilt(sp) for sp in up) == pytest.approx(LOW_TILT_DEG, abs=0.01)
    assert all(sp.pitch < 0 for sp in up[-5:])           # towards the held point
    assert max(tilt(sp) for sp in _near_floor(0.06)) == 0.0   # legs on the floor: level
    assert max(tilt(sp) for sp in _near_floor(0.12, landing=True)) == 0.0


def test_a_new_engagement_waits_the_whole_focus_time_again() -> None:
    v = FakeVehicle()
    hold = FlowHold(v)
    feed = Feed(hold, v, height=0.03)  # sharp flow under a floor range: a ranger fault
    feed.run(0.5)
    hold.engage(1.0, hover_guess=0.5)
    feed.run(FOCUS_S - 0.1)
    hold.release()
    feed.run(1.0)
    hold.engage(1.0, hover_guess=0.5)
    feed.run(FOCUS_S - 0.1)
    assert hold.latched is None and hold.state is HoldState.HOLDING
    feed.run(0.2)
    assert hold.latched is not None and "in focus" in hold.latched


def test_a_pause_in_the_climb_restarts_the_take_off_wait() -> None:
    """Sitting, then asked down (the page's throttle stick at the bottom, say), then
    up again: the ramp waits TAKEOFF_WAIT_S afresh, it does not start at once."""
    hold, _v, feed = on_the_floor(HoldConfig(takeoff_ramp=0.1))
    feed.run(TAKEOFF_WAIT_S - 0.1)
    hold.set_target_height(0.0)
    feed.run(0.2)
    hold.set_target_height(1.0)
    feed.run(0.04)
    start = hold.hover_throttle or 0.0
    feed.run(TAKEOFF_WAIT_S - 0.1)   # within the new wait: hover_ki x 0.5 m/s only
    assert (hold.hover_throttle or 0.0) - start < 0.06 * 0.5 * TAKEOFF_WAIT_S + 0.002
    feed.run(0.5)                    # then the ramp
    assert (hold.hover_throttle or 0.0) - start > 0.04


def test_stale_attitude_withdraws() -> None:
    hold, v, feed = holding()
    feed.attitude = False
    t0 = v.clock.now()
    while hold.state is HoldState.HOLDING and v.clock.now() - t0 < 2.0:
        feed.run(0.02)
    # the last attitude came up to 50 ms before t0
    assert v.clock.now() - t0 <= 0.5 + 0.02
    assert hold.reason is not None and hold.reason.startswith("attitude stale")
    assert not v.mixer.sources[HOLD_SOURCE].fresh(v.clock.now())


def test_a_non_finite_estimate_withdraws_instead_of_cutting_the_throttle() -> None:
    hold, v, feed = holding()
    hold.estimator.z[1] = math.nan    # a numerical fault in the height filter
    feed.run(0.2)
    assert hold.state is HoldState.WITHDRAWN
    assert hold.reason is not None and "non-finite" in hold.reason
    assert not v.mixer.sources[HOLD_SOURCE].fresh(v.clock.now())
    assert hold.last_setpoint is not None and hold.last_setpoint.throttle > 0.4


def test_landing_touches_down_and_needs_no_flow_at_the_end() -> None:
    hold, _v, feed = holding()
    hold.land()
    for i in range(40):    # down at 0.25 m/s
        feed.height = 1.0 - 0.025 * (i + 1)
        feed.run(0.1)
        assert not hold.touched_down
    assert hold.state is HoldState.HOLDING
    feed.flow = "invalid"    # out of focus on the floor
    feed.run(1.0)
    assert hold.touched_down and hold.state is HoldState.HOLDING
    sp = feed.setpoints[-1]
    assert sp is not None and sp.throttle < 0.5   # below hover: the floor holds it
    assert 0.45 < (hold.hover_throttle or 0) <= 0.5   # not wound down on the floor


def test_one_bad_sample_does_not_drop_the_rest_of_its_batch() -> None:
    hold, v, _feed = holding()
    t = v.clock.now() + 0.01
    v.clock.advance(0.01)
    hold.feed([TimedRange(t, RangeSample(math.nan, 0, 10.0)),
               TimedFlow(t, FlowSample(0, 0, False, 77, 0x100, 0, 0, 0))])
    assert hold.estimator.last_flow is not None and hold.estimator.last_flow.squal == 77


def test_transitions_are_bounded_and_counted() -> None:
    hold, _v, _feed = holding()
    for _ in range(100):
        hold.release()
        hold.engage(1.0, hover_guess=0.5)
    assert len(hold.transitions) <= 64 and hold.transition_count >= 200
    assert hold.transitions[-1][1] is HoldState.ENGAGING


def test_the_hold_source_takes_the_priority_and_timeout_asked_for() -> None:
    v = FakeVehicle()
    FlowHold(v)
    standard = v.mixer.sources[HOLD_SOURCE]
    assert (standard.priority, standard.timeout_s) == (25, 0.5)
    FlowHold(v, priority=27, timeout_s=0.3)
    source = v.mixer.sources[HOLD_SOURCE]
    assert (source.priority, source.timeout_s) == (27, 0.3)


def owed_from_transitions(hold: FlowHold, now: float) -> float:
    """Unheld time by its definition, from the hold's transitions up to ``now``: the
    time spent engaging or withdrawn less the time held since; what it took to
    first hold after engaging is forgiven once it holds."""
    spans = [*hold.transitions, (now, None, None)]
    owed, held = 0.0, False
    for (t, st, _r), (t_next, _s, _r2) in itertools.pairwise(spans):
        if st is HoldState.OFF:
            owed, held = 0.0, False
        elif st is HoldState.HOLDING:
            owed = 0.0 if not held else owed
            held = True
            owed = max(0.0, owed - (t_next - t))
        else:
            owed += t_next - t
    return owed


def test_a_flapping_hold_does_not_start_its_unheld_time_afresh() -> None:
    """The mission aborts a hold withdrawn for ``withdrawn_abort_s``: a hold that
    resumes for an instant between long withdrawals must still run into that
    bound, so the time it held only pays back as much unheld time (each
    resumption used to start the count afresh: 0.6 s here at most)."""
    hold, v, feed = holding()
    for _ in range(6):
        feed.flow = "stale"
        feed.run(1.0)
        assert hold.state is HoldState.WITHDRAWN
        feed.flow = "ok"
        while hold.state is not HoldState.HOLDING:
            feed.run(0.01)
    unheld = hold.unheld_for(v.clock.now())
    assert unheld == pytest.approx(owed_from_transitions(hold, v.clock.now()), abs=1e-6)
    assert unheld > 3.0
    assert sum(st is HoldState.HOLDING for _t, st, _r in hold.transitions) == 7
    feed.flow = "stale"
    feed.run(1.0)
    assert hold.state is HoldState.WITHDRAWN
    assert hold.unheld_for(v.clock.now()) == pytest.approx(
        owed_from_transitions(hold, v.clock.now()), abs=1e-6)
    # holding long enough pays it all back
    feed.flow = "ok"
    feed.run(8.0)
    assert hold.state is HoldState.HOLDING and hold.unheld_for(v.clock.now()) == 0.0
    hold.release()
    assert hold.unheld_for(v.clock.now()) == 0.0


def test_a_resumption_that_never_holds_still_counts_as_unheld() -> None:
    """Sensors valid again: WITHDRAWN -> ENGAGING, and a new problem within
    ``resume_s`` keeps it ENGAGING (it never goes back to WITHDRAWN). The fallback
    flies all the while, so the time counts, and the hold says it is resuming."""
    hold, v, feed = holding()
    assert hold.held_since_engaged and hold.unheld_for(v.clock.now()) == 0.0
    feed.flow = "stale"
    feed.run(1.0)
    assert hold.state is HoldState.WITHDRAWN
    withdrawn_at = next(t for t, st, _r in reversed(hold.transitions)
                        if st is HoldState.WITHDRAWN)
    feed.flow = "ok"
    while hold.state is not HoldState.ENGAGING:
        feed.run(0.01)
    feed.height = 0.1                           # the range jumps: a ranger fault
    feed.run(12.0)
    now = v.clock.now()
    assert hold.state is HoldState.ENGAGING and hold.reason.startswith("waiting:")
    assert hold.held_since_engaged
    assert hold.unheld_for(now) == pytest.approx(now - withdrawn_at, abs=1e-6)
    hold.release()
    assert not hold.held_since_engaged


def test_the_time_to_first_hold_is_not_held_against_the_hold() -> None:
    """Engaging takes as long as the sensors need; once it holds, that time is no
    withdrawal (only WITHDRAWN, or a resumption, counts towards the abort)."""
    v = FakeVehicle()
    hold = FlowHold(v)
    feed = Feed(hold, v)
    feed.flow = "stale"
    feed.run(0.5)
    hold.engage(1.0, hover_guess=0.5)
    feed.run(3.0)
    assert hold.state is HoldState.ENGAGING and not hold.held_since_engaged
    feed.flow = "ok"
    while hold.state is not HoldState.HOLDING:
        feed.run(0.01)
    assert hold.unheld_for(v.clock.now()) == 0.0


def test_the_vertical_fallback_flies_the_height_while_only_the_flow_is_lost() -> None:
    hold, v, feed = holding()
    assert hold.vertical_fallback() is None and hold.vertical_problem == "the hold is holding"
    feed.flow = "invalid"
    feed.run(0.5)
    assert hold.state is HoldState.WITHDRAWN and hold.vertical_problem is None
    # sinking below the held 1 m: the fallback's throttle climbs back, above the hover
    feed.height = 0.8
    feed.run(0.2)
    hover = hold.hover_throttle
    thr = hold.vertical_fallback()
    assert hover is not None and thr is not None and thr > hover
    # calling it again on the same estimate learns nothing more (a call per estimate)
    learned = hold.hover_throttle
    again = hold.vertical_fallback()
    assert hold.hover_throttle == learned and hold.vertical_fallback() == again
    # flown across new estimates it learns: held low, the hover throttle rises
    for _ in range(10):
        feed.run(0.02)
        hold.vertical_fallback()
    assert (hold.hover_throttle or 0.0) > (learned or 1.0)
    # the range lost as well: nothing to fly the height on
    feed.range_ = "invalid"
    feed.run(0.6)
    assert "range invalid" in (hold.vertical_problem or "") and hold.vertical_fallback() is None
    feed.range_ = "ok"
    feed.run(0.2)
    assert hold.vertical_problem is None
    # the hold's task stops ticking: the estimate goes old, the fallback with it
    v.clock.advance(hold.config.range_timeout_s + 0.01)
    assert hold.vertical_fallback() is None
