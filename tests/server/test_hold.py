"""The page's side of the flow-deck hold: the message, the routing of the sticks, the
fallback while the hold is withdrawn, and the hand-back to the pilot without a jump."""

import asyncio
import itertools
import json

import pytest

from pipilot.control.holdapi import HoldState
from pipilot.core.clock import VirtualClock
from pipilot.core.setpoints import ArmRequest, Setpoint
from pipilot.core.truth import TruthSnapshot
from pipilot.server import protocol as p
from pipilot.server.app import HUB, ServerConfig, make_app
from pipilot.server.cockpit import (
    FALLBACK_CLIMB_SPAN,
    FALLBACK_FADE_S,
    HOLD_MID,
    Cockpit,
    SeatState,
)
from pipilot.server.protocol import MessageError
from tests.server.fake import FakeHold, FakeVehicle
from tests.server.test_app import TOKEN, connect, recv_type, until

# -- protocol ----------------------------------------------------------------


def test_the_hold_message_parses():
    assert p.parse_message('{"type": "hold", "on": true, "seq": 4}') == p.Hold(True, 4)
    assert p.parse_message('{"type": "hold", "on": false, "seq": 0}') == p.Hold(False, 0)
    m = p.parse_message(json.dumps({"type": "control", "seq": 1, "throttle": 0.5, "yaw": 0,
                                    "roll": 0, "pitch": 0, "accessories": [0, 0, 0, 0],
                                    "hold": True}))
    assert isinstance(m, p.Control) and m.hold is True
    assert p.parse_message(json.dumps({"type": "control", "seq": 1, "throttle": 0.5, "yaw": 0,
                                       "roll": 0, "pitch": 0,
                                       "accessories": [0, 0, 0, 0]})).hold is False


@pytest.mark.parametrize(("obj", "code"), [
    ({"type": "hold", "seq": 1}, "bad_message"),
    ({"type": "hold", "on": True}, "bad_message"),
    ({"type": "hold", "on": 1, "seq": 1}, "bad_value"),
    ({"type": "hold", "on": "true", "seq": 1}, "bad_value"),
    ({"type": "hold", "on": None, "seq": 1}, "bad_value"),
    ({"type": "hold", "on": True, "seq": -1}, "bad_value"),
    ({"type": "hold", "on": True, "seq": True}, "bad_value"),
    ({"type": "hold", "on": True, "seq": 1, "height": 2.0}, "bad_message"),
    ({"type": "control", "seq": 1, "throttle": 0.5, "yaw": 0, "roll": 0, "pitch": 0,
      "accessories": [0, 0, 0, 0], "hold": 1}, "bad_value"),
])
def test_bad_hold_messages_are_refused_with_a_code(obj, code):
    with pytest.raises(MessageError) as exc:
        p.parse_message(json.dumps(obj))
    assert exc.value.code == code


# -- the cockpit with a fake hold ---------------------------------------------------


@pytest.fixture
def rig():
    clock = VirtualClock()
    fake = FakeVehicle(clock)
    fake.hold = FakeHold()
    told = []
    ck = Cockpit(fake, heartbeat_timeout=0.3, on_hold=told.append)
    ck.take("a", False)
    ck.control("a", Setpoint(throttle=0.56, roll=0.1))
    return clock, fake, ck, told


def engaged(rig):
    clock, fake, ck, told = rig
    ck.set_hold("a", True, "Armed")
    return clock, fake, ck, told


def test_engaging_is_refused_without_a_hold_unarmed_on_the_ground_or_to_observers(rig):
    _clock, fake, ck, _ = rig
    with pytest.raises(MessageError) as exc:
        ck.set_hold("b", True, "Armed")
    assert exc.value.code == "not_pilot"
    with pytest.raises(MessageError) as exc:
        ck.set_hold("a", True, "Disarmed")
    assert exc.value.code == "not_flying"
    ck.control("a", Setpoint(throttle=0.02))
    with pytest.raises(MessageError) as exc:
        ck.set_hold("a", True, "Armed")
    assert exc.value.code == "not_flying"
    fake.hold = None
    ck.control("a", Setpoint(throttle=0.5))
    with pytest.raises(MessageError) as exc:
        ck.set_hold("a", True, "Armed")
    assert exc.value.code == "no_hold"
    assert not ck.hold_on


def test_engage_starts_from_the_throttle_flying_and_the_pilot_flies_until_it_holds(rig):
    clock, fake, ck, told = engaged(rig)
    hold = fake.hold
    assert hold.calls == [("engage", (None, 0.56, True))]
    assert ck.hold_on and told == ["a"]
    assert ck.sticks.throttle == HOLD_MID   # the slider now means climb rate: mid holds
    # ENGAGING: the pilot source flies the fallback at the hover guess, sticks centred
    last = fake.published[-1][1]
    assert last.throttle == pytest.approx(0.56) and last.roll == pytest.approx(0.1)
    assert last.arm is ArmRequest.NONE
    # the page's stale sticks (sent before it heard of the hold) keep the hold's throttle
    ck.control("a", Setpoint(throttle=0.56, roll=0.0), hold=False)
    assert ck.sticks.throttle == HOLD_MID
    assert hold.sticks[-1] == Setpoint(throttle=HOLD_MID)
    # HOLDING: the pilot source is withdrawn at the watchdog's next check
    hold.state, hold.reason = HoldState.HOLDING, None
    n = len(fake.withdrawals)
    clock.advance(0.02)
    ck.check("Armed")
    assert len(fake.withdrawals) == n + 1 and ck.hold_flies
    assert ck.hold_view() == {"on": True, "flies": "hold", "note": None, "fallback_tilt": None}
    # the sticks now go to the hold only (its heartbeat); nothing is published as pilot
    published = len(fake.published)
    for _k in range(5):
        clock.advance(0.05)
        ck.control("a", Setpoint(throttle=0.7, pitch=0.3), hold=True)
        ck.check("Armed")
    assert len(fake.published) == published
    assert hold.sticks[-1] == Setpoint(throttle=0.7, pitch=0.3)
    assert len(fake.withdrawals) == n + 1   # withdrawn once, not every message


def test_a_withdrawn_hold_hands_the_pilot_an_attitude_hover_at_its_hover_throttle(rig):
    clock, fake, ck, _ = engaged(rig)
    hold = fake.hold
    hold.state, hold.reason = HoldState.HOLDING, None
    ck.check("Armed")
    hold.hover_throttle = 0.52   # what it learned in flight
    hold.state, hold.reason = HoldState.WITHDRAWN, "flow stale for 0.4 s"
    n = len(fake.published)
    clock.advance(0.02)
    ck.check("Armed")
    assert len(fake.published) == n + 1 and not ck.hold_flies
    assert fake.published[-1][1].throttle == pytest.approx(0.52)
    assert ck.hold_view() == {"on": True, "flies": "pilot", "note": "flow stale for 0.4 s",
                              "fallback_tilt": [0.0, 0.0]}
    # the slider is a bounded climb share around the hover throttle
    ck.control("a", Setpoint(throttle=1.0, roll=-0.4, yaw=0.2), hold=True)
    got = fake.published[-1][1]
    assert got.throttle == pytest.approx(0.52 + FALLBACK_CLIMB_SPAN * 0.5)
    assert (got.roll, got.yaw) == (-0.4, 0.2)
    ck.control("a", Setpoint(throttle=0.0), hold=True)
    assert fake.published[-1][1].throttle == pytest.approx(0.52 - FALLBACK_CLIMB_SPAN * 0.5)
    assert hold.sticks[-1] == Setpoint(throttle=0.0)   # still its heartbeat
    # sensors back: the hold flies again
    hold.state, hold.reason = HoldState.HOLDING, None
    w = len(fake.withdrawals)
    ck.check("Armed")
    assert len(fake.withdrawals) == w + 1 and ck.hold_flies


def test_the_withdrawn_fallback_tilts_against_the_wind_the_hold_measured(rig):
    """As a mission's fallback: the tilt that held against the steady push, latched
    when the hold withdrew, with the pilot's sticks added; not before the hold flew."""
    clock, fake, ck, _ = engaged(rig)
    hold = fake.hold
    hold.tilt = (0.12, -0.08)
    ck.control("a", Setpoint(throttle=HOLD_MID, roll=0.05), hold=True)
    engaging = fake.published[-1][1]   # not flown yet: the pilot's own attitude
    assert (engaging.roll, engaging.pitch) == (0.05, 0.0)
    hold.state, hold.reason = HoldState.HOLDING, None
    ck.check("Armed")
    hold.state, hold.reason = HoldState.WITHDRAWN, "flow invalid: SQUAL 3 (poor surface)"
    clock.advance(0.02)
    ck.check("Armed")
    got = fake.published[-1][1]
    assert got.roll == pytest.approx(0.17) and got.pitch == pytest.approx(-0.08)
    ck.control("a", Setpoint(throttle=HOLD_MID, pitch=-1.0), hold=True)
    got = fake.published[-1][1]
    assert got.roll == 0.12 and got.pitch == -1.0   # within the stick's range
    # back to HOLDING and withdrawn again: still the hold's tilt (it has flown)
    hold.state = HoldState.HOLDING
    ck.check("Armed")
    hold.state = HoldState.ENGAGING
    ck.control("a", Setpoint(throttle=HOLD_MID), hold=True)
    assert (fake.published[-1][1].roll, fake.published[-1][1].pitch) == (0.12, -0.08)
    # engaged anew: the pilot's own attitude until the hold flies
    ck.set_hold("a", False, "Armed")
    ck.set_hold("a", True, "Armed")
    ck.control("a", Setpoint(throttle=HOLD_MID), hold=True)
    assert (fake.published[-1][1].roll, fake.published[-1][1].pitch) == (0.0, 0.0)


def test_the_withdrawn_tilt_fades_to_level_and_the_page_is_told_how_much_is_left(rig):
    """The latched tilt held against a wind the pilot cannot see, and which may stop:
    it must not fly on unbounded (a mission aborts after withdrawn_abort_s; the
    page's pilot flies on). It fades to level over FALLBACK_FADE_S, moved on by the
    page's own messages (never by the watchdog alone: that would keep the pilot
    source fresh for a page gone silent), and the view says how much is left."""
    clock, fake, ck, _ = engaged(rig)
    hold = fake.hold
    hold.tilt = (0.2, -0.1)
    hold.state, hold.reason = HoldState.HOLDING, None
    ck.check("Armed")
    ck.control("a", Setpoint(throttle=HOLD_MID), hold=True)   # sticks centred
    hold.state, hold.reason = HoldState.WITHDRAWN, "range stale for 0.5 s"
    ck.check("Armed")
    t0 = clock.now()
    first = fake.published[-1][1]
    assert (first.roll, first.pitch) == pytest.approx((0.2, -0.1))
    assert ck.hold_view()["fallback_tilt"] == [0.2, -0.1]
    rolls, by_watchdog = [], 0
    while clock.now() < t0 + FALLBACK_FADE_S + 1.0:
        for _ in range(2):                          # the watchdog, every 20 ms
            clock.advance(0.02)
            n = len(fake.published)
            ck.check("Armed")
            by_watchdog += len(fake.published) - n
        clock.advance(0.01)
        ck.heartbeat("a")                           # the page's keepalive, every 50 ms
        rolls.append(fake.published[-1][1].roll)
    assert by_watchdog == 0
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(rolls))   # only fades
    last = fake.published[-1][1]
    assert (last.roll, last.pitch) == (0.0, 0.0)          # level after the fade
    assert ck.hold_view()["fallback_tilt"] == [0.0, 0.0]
    mid = [sp.roll for t, sp in fake.published if abs(t - t0 - FALLBACK_FADE_S / 2) < 0.03]
    assert mid and all(0.08 < r < 0.12 for r in mid)      # half way, about half
    # the hold flies again for half the fade and withdraws again: half the tilt is
    # back (it comes back as fast as it went), and an instant's flap adds nothing
    hold.state = HoldState.HOLDING
    ck.check("Armed")
    t1 = clock.now()
    while clock.now() < t1 + FALLBACK_FADE_S / 2:
        clock.advance(0.05)
        ck.heartbeat("a")
    hold.state = HoldState.WITHDRAWN
    ck.check("Armed")
    assert fake.published[-1][1].roll == pytest.approx(0.1, abs=0.003)
    hold.state = HoldState.HOLDING
    ck.check("Armed")
    hold.state = HoldState.WITHDRAWN
    clock.advance(0.02)
    ck.check("Armed")
    assert fake.published[-1][1].roll == pytest.approx(0.1, abs=0.003)
    # the page goes silent mid-fade: nothing refreshes the pilot source, then the
    # heartbeat timeout releases the hold and withdraws the pilot
    n = len(fake.published)
    for _ in range(20):
        clock.advance(0.02)
        ck.check("Armed")
    assert len(fake.published) == n
    assert ck.state is SeatState.SILENT and not ck.hold_on and fake.withdrawals


def test_a_flapping_hold_cannot_fly_the_withdrawn_tilt_for_long(rig):
    """A hold that holds for an instant between long withdrawals (a floor the flow
    sensor barely reads) must not restart the fade at full tilt each time: the
    tilt is open loop, and it would fly on for as long as the flapping lasts."""
    clock, fake, ck, _ = engaged(rig)
    hold = fake.hold
    hold.tilt = (0.2, -0.1)
    ck.control("a", Setpoint(throttle=HOLD_MID), hold=True)   # sticks centred
    hold.state = HoldState.HOLDING
    ck.check("Armed")
    t0 = clock.now()
    while clock.now() < t0 + 2 * FALLBACK_FADE_S:
        hold.state = HoldState.WITHDRAWN           # 0.5 s withdrawn ...
        ck.check("Armed")
        for _ in range(10):
            clock.advance(0.05)
            ck.heartbeat("a")
        hold.state = HoldState.HOLDING             # ... 0.05 s holding
        ck.check("Armed")
        clock.advance(0.05)
        ck.heartbeat("a")
    hold.state = HoldState.WITHDRAWN
    ck.check("Armed")
    # 19 cycles, 9.5 s withdrawn and 0.95 s holding: the tilt was spent after about
    # 5.5 s, and the last 0.05 s of holding gave back 1 % of it (the old fade
    # restarted at 100 %)
    last = fake.published[-1][1]
    assert (last.roll, last.pitch) == pytest.approx((0.002, -0.001))
    assert ck.hold_view()["fallback_tilt"] == [0.002, -0.001]
    # engaged anew, the hold's tilt is whole again once it has flown and withdraws
    ck.set_hold("a", False, "Armed")
    ck.set_hold("a", True, "Armed")
    hold.state = HoldState.HOLDING
    ck.check("Armed")
    hold.state = HoldState.WITHDRAWN
    ck.check("Armed")
    assert ck.hold_view()["fallback_tilt"] == [0.2, -0.1]


def test_the_adapter_never_hands_a_non_finite_tilt_to_the_fallback():
    from pipilot.core.clock import VirtualClock
    from pipilot.core.vehicle import Vehicle
    from pipilot.link.transport import FrameSink
    from pipilot.server.adapter import VehicleAdapter

    vehicle = Vehicle.create(FrameSink(lambda t, f: None), clock=VirtualClock())
    adapter = VehicleAdapter(vehicle)
    assert adapter.hold_fallback_tilt() == (0.0, 0.0)   # no deck, no hold
    hold = vehicle.hold = FakeHold()
    hold.tilt = (0.1, -0.2)
    assert adapter.hold_fallback_tilt() == (0.1, -0.2)
    hold.tilt = (float("nan"), 0.1)
    assert adapter.hold_fallback_tilt() == (0.0, 0.0)


def test_hold_off_resumes_the_pilot_at_the_hover_throttle_without_a_jump(rig):
    _clock, fake, ck, told = engaged(rig)
    hold = fake.hold
    hold.state = HoldState.HOLDING
    ck.check("Armed")
    hold.hover_throttle = 0.47
    ck.control("a", Setpoint(throttle=0.5, roll=0.05), hold=True)
    told.clear()
    ck.set_hold("a", False, "Armed")
    assert hold.calls[-1] == ("release", "Hold turned off")
    assert not ck.hold_on and told == ["a"]
    assert fake.published[-1][1] == Setpoint(throttle=0.47, roll=0.05)
    assert ck.sticks.throttle == 0.47
    # a page still reading its slider as climb rate does not set the throttle
    ck.control("a", Setpoint(throttle=0.5), hold=True)
    assert fake.published[-1][1].throttle == 0.47
    ck.control("a", Setpoint(throttle=0.48), hold=False)
    assert fake.published[-1][1].throttle == 0.48
    # arming is refused only while the hold is on
    ck.set_hold("a", True, "Armed")
    with pytest.raises(MessageError) as exc:
        ck.request_arm("a", False)
    assert exc.value.code == "hold_on"


def test_heartbeat_loss_releases_the_hold_and_the_pilot_failsafe_applies(rig):
    clock, fake, ck, told = engaged(rig)
    hold = fake.hold
    hold.state = HoldState.HOLDING
    hold.hover_throttle = 0.5
    ck.check("Armed")
    w = len(fake.withdrawals)
    clock.advance(0.31)
    ck.check("Armed")
    assert ck.state is SeatState.SILENT and not ck.hold_on
    assert hold.calls[-1] == ("release", "pilot heartbeat lost")
    assert len(fake.withdrawals) == w + 1   # the pilot source too: the core's failsafe
    assert told[-1] == "a"
    # the page comes back, still believing in the hold: its throttle is not used
    ck.control("a", Setpoint(throttle=0.5), hold=True)
    assert ck.state is SeatState.ACTIVE and fake.published[-1][1].throttle == 0.5
    ck.control("a", Setpoint(throttle=0.9), hold=True)
    assert fake.published[-1][1].throttle == 0.5


@pytest.mark.parametrize("how", ["closed", "taken over"])
def test_losing_the_seat_releases_the_hold(rig, how):
    _clock, fake, ck, told = engaged(rig)
    hold = fake.hold
    hold.state, hold.hover_throttle = HoldState.HOLDING, 0.53
    ck.check("Armed")
    w = len(fake.withdrawals)
    told.clear()
    if how == "closed":
        ck.release("a", "page closed")
        assert hold.calls[-1] == ("release", "page closed")
        assert len(fake.withdrawals) == w + 1 and ck.state is SeatState.VACANT
    else:
        sticks = ck.take("b", force=True)
        assert hold.calls[-1] == ("release", "seat taken over by another page")
        # the new pilot continues from the hover throttle: no jump
        assert sticks.throttle == 0.53 and fake.published[-1][1].throttle == 0.53
    assert not ck.hold_on
    assert told == []   # the page that lost the seat hears it from the seat message


# -- over the websocket ---------------------------------------------------------


@pytest.fixture
async def served():
    from aiohttp.test_utils import TestClient, TestServer

    clock = VirtualClock(100.0)
    fake = FakeVehicle(clock)
    fake.hold = FakeHold()
    fake.snapshot = TruthSnapshot(time=1.0, position=(0.1, 0.2, -0.9),
                                  velocity=(0.03, -0.04, 0.1), attitude_deg=(0, 0, 0),
                                  on_ground=False)
    fake.telemetry["FlightStatus"] = {"Armed": "Armed", "FlightMode": "Stabilized1"}
    app = make_app(fake, ServerConfig(token=TOKEN, update_hz=50.0), clock=clock)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield clock, fake, client, app
    await client.close()


async def test_the_page_engages_and_releases_the_hold_and_sees_it(served):
    _clock, fake, client, app = served
    ws, welcome = await connect(client)
    assert welcome["hold_available"] is True
    await ws.send_str(json.dumps({"type": "take"}))
    await recv_type(ws, "seat", where=lambda m: "sticks" in m)
    await ws.send_str(json.dumps({"type": "control", "seq": 1, "throttle": 0.55, "yaw": 0,
                                  "roll": 0, "pitch": 0, "accessories": [0, 0, 0, 0]}))
    await ws.send_str(json.dumps({"type": "hold", "on": True, "seq": 2}))
    got = await recv_type(ws, "hold")
    assert got["on"] is True and got["sticks"]["throttle"] == HOLD_MID
    assert fake.hold.calls[0] == ("engage", (None, 0.55, True))
    fake.hold.state = HoldState.HOLDING
    state = await recv_type(ws, "state", where=lambda m: m["seat"]["hold"]["flies"] == "hold")
    assert state["hold"]["state"] == "holding" and state["hold"]["height_m"] == 0.8
    assert state["hold_truth"] == {"height_m": 0.9, "climb_mps": -0.1,
                                   "velocity_mps": [0.03, -0.04], "speed_mps": 0.05,
                                   "position_m": [0.1, 0.2]}
    r = await client.get("/api/status", headers={"Authorization": f"token {TOKEN}"})
    body = await r.json()
    assert body["hold"]["state"] == "holding" and body["hold_truth"]["height_m"] == 0.9
    assert body["pilot_hold"] == {"on": True, "flies": "hold", "note": None,
                                  "fallback_tilt": None}
    fake.hold.hover_throttle = 0.51
    await ws.send_str(json.dumps({"type": "hold", "on": False, "seq": 3}))
    got = await recv_type(ws, "hold")
    assert got["on"] is False and got["sticks"]["throttle"] == 0.51
    await until(lambda: fake.published[-1][1].throttle == 0.51)
    assert app[HUB].cockpit.hold_view()["on"] is False
    await ws.close()


async def test_without_a_flow_deck_the_page_is_told_and_refused(served):
    _clock, fake, client, _app = served
    fake.hold = None
    ws, welcome = await connect(client)
    assert welcome["hold_available"] is False
    await ws.send_str(json.dumps({"type": "take"}))
    await recv_type(ws, "seat", where=lambda m: "sticks" in m)
    await ws.send_str(json.dumps({"type": "control", "seq": 1, "throttle": 0.55, "yaw": 0,
                                  "roll": 0, "pitch": 0, "accessories": [0, 0, 0, 0]}))
    await ws.send_str(json.dumps({"type": "hold", "on": True, "seq": 2}))
    err = await recv_type(ws, "error")
    assert err["code"] == "no_hold"
    state = await recv_type(ws, "state")
    assert state["hold"] is None
    await ws.close()


async def test_closing_the_page_releases_the_hold(served):
    _clock, fake, client, app = served
    ws, _ = await connect(client)
    await ws.send_str(json.dumps({"type": "take"}))
    await recv_type(ws, "seat", where=lambda m: "sticks" in m)
    await ws.send_str(json.dumps({"type": "control", "seq": 1, "throttle": 0.55, "yaw": 0,
                                  "roll": 0, "pitch": 0, "accessories": [0, 0, 0, 0]}))
    await ws.send_str(json.dumps({"type": "hold", "on": True, "seq": 2}))
    await recv_type(ws, "hold")
    n = len(fake.withdrawals)
    await ws.close()
    await until(lambda: fake.hold.state is HoldState.OFF)
    assert fake.hold.calls[-1] == ("release", "page closed")
    await until(lambda: len(fake.withdrawals) > n)
    await asyncio.sleep(0)
    assert app[HUB].cockpit.holder is None


# -- the adapter ---------------------------------------------------------------------


def test_the_adapter_hands_the_hold_its_calls_on_the_flight_loop_in_order():
    import threading

    from pipilot.core.vehicle import Vehicle
    from pipilot.link.transport import FrameSink
    from pipilot.server.adapter import VehicleAdapter

    vehicle = Vehicle.create(FrameSink(lambda t, f: None), clock=VirtualClock())
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        adapter = VehicleAdapter(vehicle, loop)
        assert adapter.hold_status() is None and adapter.truth_snapshot() is None
        adapter.hold_engage(0.5)   # no hold: nothing to call
        hold = FakeHold()
        threads = []
        hold.pilot = lambda sticks: threads.append(threading.current_thread())
        vehicle.hold = hold
        adapter.hold_engage(0.5)
        adapter.hold_pilot(Setpoint(throttle=0.6))
        adapter.hold_release("page closed")
        done = threading.Event()
        loop.call_soon_threadsafe(done.set)
        assert done.wait(5)
        assert hold.calls == [("engage", (None, 0.5, True)), ("release", "page closed")]
        assert threads == [thread]   # the hold is only touched on the flight loop's thread
        assert adapter.hold_status().state is HoldState.OFF
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
