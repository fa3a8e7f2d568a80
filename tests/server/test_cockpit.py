import pytest

from pipilot.core.clock import VirtualClock
from pipilot.core.setpoints import NEUTRAL, ArmRequest, Setpoint
from pipilot.server.cockpit import Cockpit, SeatState
from pipilot.server.protocol import MessageError
from tests.server.fake import FakeVehicle


@pytest.fixture
def rig():
    clock = VirtualClock()
    fake = FakeVehicle(clock)
    changes = []
    ck = Cockpit(fake, heartbeat_timeout=0.3, arm_timeout=3.0,
                 on_change=lambda: changes.append(1))
    return clock, fake, ck


def test_one_pilot_and_explicit_takeover(rig):
    _clock, fake, ck = rig
    assert ck.take("a", force=False) == NEUTRAL
    assert ck.state is SeatState.ACTIVE
    ck.control("a", Setpoint(throttle=0.6))
    with pytest.raises(MessageError) as exc:
        ck.take("b", force=False)
    assert exc.value.code == "seat_taken"
    with pytest.raises(MessageError) as exc:
        ck.control("b", Setpoint(throttle=0.9))
    assert exc.value.code == "not_pilot"
    # Taking over continues from the previous pilot's sticks: no jump.
    assert ck.take("b", force=True).throttle == 0.6
    assert ck.holder == "b"
    with pytest.raises(MessageError):
        ck.control("a", Setpoint())
    assert all(s.throttle != 0.9 for _, s in fake.published)


def test_release_withdraws_and_vacates(rig):
    _clock, fake, ck = rig
    ck.take("a", False)
    ck.release("b")  # not the holder: nothing happens
    assert not fake.withdrawals
    ck.release("a")
    assert fake.withdrawals == [0.0]
    assert ck.state is SeatState.VACANT and ck.holder is None
    assert ck.take("b", False) == NEUTRAL


def test_heartbeat_loss_withdraws_within_timeout_and_recovers(rig):
    clock, fake, ck = rig
    ck.take("a", False)
    ck.control("a", Setpoint(throttle=0.4))
    clock.advance(0.29)
    ck.check(None)
    assert ck.state is SeatState.ACTIVE and not fake.withdrawals
    clock.advance(0.02)
    ck.check(None)
    assert ck.state is SeatState.SILENT
    assert fake.withdrawals == [pytest.approx(0.31)]
    n = len(fake.published)
    ck.check(None)
    assert len(fake.published) == n  # nothing fed while silent
    with pytest.raises(MessageError) as exc:  # no sticks in it: 0.4 is stale by now
        ck.heartbeat("a")
    assert exc.value.code == "stale_sticks" and ck.state is SeatState.SILENT
    ck.control("a", Setpoint(throttle=0.35))
    assert ck.state is SeatState.ACTIVE
    assert fake.published[-1][1].throttle == 0.35


def test_arm_needs_throttle_low_and_resolves_from_flight_status(rig):
    clock, fake, ck = rig
    ck.take("a", False)
    ck.control("a", Setpoint(throttle=0.3))
    with pytest.raises(MessageError) as exc:
        ck.request_arm("a", True)
    assert exc.value.code == "throttle_not_low"
    ck.control("a", Setpoint(throttle=0.0))
    ck.request_arm("a", True)
    assert fake.published[-1][1].arm is ArmRequest.ARM
    clock.advance(0.1)
    ck.check("Arming")
    assert ck.arm is ArmRequest.ARM
    ck.check("Armed")
    assert ck.arm is ArmRequest.NONE and ck.arm_result == "done"
    assert fake.published[-1][1].arm is ArmRequest.NONE


def test_arm_request_times_out(rig):
    clock, _fake, ck = rig
    ck.take("a", False)
    ck.request_arm("a", False)
    for _ in range(40):
        clock.advance(0.1)
        ck.heartbeat("a")
        ck.check("Armed")
    assert ck.arm is ArmRequest.NONE and ck.arm_result == "timeout"


def test_raising_the_throttle_cancels_an_arm_request(rig):
    _, fake, ck = rig
    ck.take("a", False)
    ck.request_arm("a", True)
    ck.control("a", Setpoint(throttle=0.01))
    assert ck.arm is ArmRequest.ARM
    ck.control("a", Setpoint(throttle=0.5))
    assert ck.arm is ArmRequest.NONE and ck.arm_result.startswith("cancelled")
    assert fake.published[-1][1].throttle == 0.5
    assert fake.published[-1][1].arm is ArmRequest.NONE


def test_takeover_during_an_arm_request_stops_the_gesture_at_once(rig):
    _clock, fake, ck = rig
    ck.take("a", False)
    ck.control("a", Setpoint(throttle=0.0))
    ck.request_arm("a", True)
    assert fake.published[-1][1].arm is ArmRequest.ARM
    ck.take("b", force=True)
    # The mixer was left holding a's arm gesture until b's page spoke.
    assert fake.published[-1][1].arm is ArmRequest.NONE
    assert ck.arm is ArmRequest.NONE


def test_a_vacant_seat_starts_from_the_throttle_the_craft_flies_on(rig):
    # Taking control during a mission hover started the pilot at throttle off:
    # the craft dropped. The throttle (and accessories) carry over, the rest centres.
    _clock, fake, ck = rig
    fake.output = Setpoint(throttle=0.52, yaw=0.2, roll=0.1, pitch=-0.1,
                           accessories=(0.5, 0.0, 0.0, -1.0))
    got = ck.take("a", False)
    assert got == Setpoint(throttle=0.52, accessories=(0.5, 0.0, 0.0, -1.0))
    assert fake.published[-1][1] == got and got.arm is ArmRequest.NONE
    ck.release("a")
    fake.output = None  # nothing known: throttle off, centred
    assert ck.take("b", False) == NEUTRAL
