import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipilot.core.calibration import FUNCTIONS, Calibration, ChannelCalibration
from pipilot.core.clock import VirtualClock
from pipilot.core.failsafe import FailsafePolicy, FailsafeState
from pipilot.core.mixer import Limits, Mixer
from pipilot.core.setpoints import ArmRequest, Setpoint, SetpointError
from pipilot.errors import ConfigError

THR, YAW, ROLL, PITCH = 0, 1, 2, 3
NOSLEW = Limits(throttle_slew=0, axis_slew=0)


def mixer(policy=None, limits=NOSLEW, **kw):
    clock = VirtualClock(100.0)
    return Mixer(limits=limits, policy=policy or FailsafePolicy(), clock=clock, **kw), clock


def test_starts_in_standby_with_throttle_off_and_valid_frames():
    m, _clock = mixer()
    out = m.tick()
    assert out.state is FailsafeState.STANDBY and not out.failsafe
    assert out.channels[THR] == 172 and out.channels[ROLL] == 992


def test_highest_priority_fresh_override_wins():
    m, clock = mixer()
    m.publish("mission", Setpoint(throttle=0.5, roll=0.2))
    out = m.tick()
    assert out.source == "mission" and out.state is FailsafeState.NORMAL
    m.publish("pilot", Setpoint(throttle=0.6, roll=-0.5))
    assert m.tick().source == "pilot"
    clock.advance(0.6)            # pilot (0.5 s) stale, mission (1.0 s) still fresh
    m.publish("mission", Setpoint(throttle=0.5, roll=0.2))
    out = m.tick()
    assert out.source == "mission" and out.setpoint.roll == pytest.approx(0.2)


def test_drift_trim_is_added_and_bounded():
    m, _clock = mixer()
    m.publish("pilot", Setpoint(throttle=0.5, roll=0.1, pitch=0.9))
    m.publish("drift", Setpoint(roll=0.6, pitch=0.2))
    out = m.tick()
    assert out.setpoint.roll == pytest.approx(0.1 + 0.25)     # trim_max 0.25
    assert out.setpoint.pitch == pytest.approx(1.0)            # limited to tilt_max
    assert out.setpoint.throttle == pytest.approx(0.5)


def test_drift_alone_does_not_fly():
    m, _clock = mixer()
    m.publish("drift", Setpoint(roll=0.2))
    out = m.tick()
    assert out.state is FailsafeState.STANDBY and out.setpoint.roll == 0.0


def test_limits_apply():
    m, _clock = mixer(limits=Limits(throttle_max=0.8, tilt_max=0.5, yaw_max=0.3,
                                   throttle_slew=0, axis_slew=0))
    m.publish("pilot", Setpoint(throttle=1.0, roll=-1.0, pitch=1.0, yaw=1.0))
    sp = m.tick().setpoint
    assert (sp.throttle, sp.roll, sp.pitch, sp.yaw) == pytest.approx((0.8, -0.5, 0.5, 0.3))


def test_slew_rate_limits_steps():
    m, clock = mixer(limits=Limits(throttle_slew=1.0, axis_slew=2.0))
    m.publish("pilot", Setpoint(throttle=1.0, roll=1.0))
    out = m.tick()
    assert out.setpoint.throttle == 0.0        # first tick: no time has passed
    for _ in range(10):
        clock.advance(0.01)
        m.publish("pilot", Setpoint(throttle=1.0, roll=1.0))
        out = m.tick()
    assert out.setpoint.throttle == pytest.approx(0.1)
    assert out.setpoint.roll == pytest.approx(0.2)


@pytest.mark.parametrize("gesture,arm_ch,disarm_ch", [("yaw_left", 172, 1811),
                                                      ("yaw_right", 1811, 172)])
def test_arm_request_becomes_the_gesture_while_held(gesture, arm_ch, disarm_ch):
    m, clock = mixer(gesture=gesture)
    for _ in range(3):
        m.publish("pilot", Setpoint(throttle=0.03, yaw=0.3, arm=ArmRequest.ARM))
        out = m.tick()
        assert out.channels[THR] == 172 and out.channels[YAW] == arm_ch
        assert out.setpoint.arm is ArmRequest.ARM
        clock.advance(0.1)
    m.publish("pilot", Setpoint(throttle=0.4, arm=ArmRequest.DISARM))
    out = m.tick()
    assert out.channels[THR] == 172 and out.channels[YAW] == disarm_ch
    m.publish("pilot", Setpoint(throttle=0.0))
    out = m.tick()
    assert out.channels[YAW] == 992 and out.setpoint.arm is ArmRequest.NONE


def test_gesture_in_firmware_terms_crosses_the_threshold():
    # LibrePilot arms "Yaw Left" when the normalised yaw is <= -0.20 with throttle < 0
    m, _clock = mixer()
    cal = Calibration()
    yc, tc = cal.calibration_for("yaw"), cal.calibration_for("throttle")
    m.publish("pilot", Setpoint(arm=ArmRequest.ARM))
    out = m.tick()
    yaw_norm = (out.channels[YAW] - yc.neutral) / (yc.neutral - yc.min)
    assert yaw_norm <= -0.2
    assert out.channels[THR] < tc.neutral


def test_an_arm_request_asking_for_lift_is_ignored_but_disarm_still_cuts():
    # the gesture forces throttle off: honouring an arm request from a source
    # that flies (throttle up) would drop the craft
    m, clock = mixer(limits=Limits(throttle_slew=0, axis_slew=0))
    cal = Calibration()
    thr = cal.calibration_for("throttle").unipolar
    m.publish("pilot", Setpoint(throttle=0.6, arm=ArmRequest.ARM))
    out = m.tick()
    assert out.setpoint.arm is ArmRequest.NONE
    assert out.channels[THR] == thr(0.6) and out.channels[YAW] == 992
    clock.advance(0.01)
    m.publish("pilot", Setpoint(throttle=0.0, arm=ArmRequest.ARM))
    assert m.tick().setpoint.arm is ArmRequest.ARM       # throttle off: the gesture
    clock.advance(0.01)
    m.publish("pilot", Setpoint(throttle=0.6, arm=ArmRequest.DISARM))
    out = m.tick()
    assert out.setpoint.arm is ArmRequest.DISARM and out.channels[THR] == thr(0.0)


def test_source_loss_descends_level_then_cuts():
    m, clock = mixer(FailsafePolicy("descend", descent_throttle=0.3, descent_time_s=2.0),
                     limits=Limits(throttle_slew=0.5, axis_slew=100))
    m.publish("pilot", Setpoint(throttle=0.6, roll=0.4))
    m.tick()
    for _ in range(200):          # let the slew catch up
        clock.advance(0.01)
        m.publish("pilot", Setpoint(throttle=0.6, roll=0.4))
        m.tick()
    t_last = clock.now()
    clock.advance(0.49)
    assert m.tick().state is FailsafeState.NORMAL
    clock.advance(0.02)           # now 0.51 s > timeout 0.5 s: reaction within one tick
    out = m.tick()
    assert out.state is FailsafeState.DESCENT and not out.failsafe
    assert "no fresh" in out.reason
    seen = []
    while clock.now() < t_last + 0.5 + 1.9:
        clock.advance(0.01)
        out = m.tick()
        seen.append(out.setpoint.throttle)
        assert out.state is FailsafeState.DESCENT
    assert out.setpoint.roll == 0.0 and out.setpoint.pitch == 0.0
    assert seen[0] < 0.6 and seen[-1] == pytest.approx(0.3)
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(seen))
    clock.advance(0.2)
    out = m.tick()
    assert out.state is FailsafeState.THROTTLE_CUT and out.channels[THR] == 172


def test_descent_never_raises_throttle():
    m, clock = mixer(FailsafePolicy("descend", descent_throttle=0.5, descent_time_s=1.0))
    m.publish("pilot", Setpoint(throttle=0.2))
    m.tick()
    clock.advance(0.6)
    out = m.tick()
    assert out.state is FailsafeState.DESCENT and out.setpoint.throttle == pytest.approx(0.2)


def test_source_loss_with_failsafe_policy_flags_frames_at_once():
    m, clock = mixer(FailsafePolicy("failsafe"))
    m.publish("pilot", Setpoint(throttle=0.6))
    m.tick()
    clock.advance(0.51)
    out = m.tick()
    assert out.failsafe and out.state is FailsafeState.FAILSAFE
    assert out.channels[THR] == 172
    m.publish("pilot", Setpoint(throttle=0.3))
    out = m.tick()
    assert not out.failsafe and out.state is FailsafeState.NORMAL


def test_withdraw_makes_a_source_stale_now():
    m, _clock = mixer(FailsafePolicy("failsafe"))
    m.publish("pilot", Setpoint(throttle=0.6))
    m.tick()
    m.withdraw("pilot")
    assert m.tick().failsafe


def test_forced_reasons_hold_failsafe_over_a_fresh_pilot():
    m, _clock = mixer()
    m.publish("pilot", Setpoint(throttle=0.6))
    m.failsafe.force("shutdown")
    out = m.tick()
    assert out.failsafe and out.reason == "shutdown"
    m.failsafe.release("shutdown")
    m.publish("pilot", Setpoint(throttle=0.6))
    assert m.tick().state is FailsafeState.NORMAL


def test_publish_errors():
    m, _clock = mixer()
    with pytest.raises(SetpointError, match="unknown"):
        m.publish("nobody", Setpoint())
    with pytest.raises(SetpointError, match="not a Setpoint"):
        m.publish("pilot", {"throttle": 1})  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        m.add_source("x", 1, mode="blend")
    with pytest.raises(ConfigError):
        Mixer(gesture="roll_left")


def test_custom_source():
    m, _clock = mixer()
    m.add_source("joystick", 40, "override", 0.2)
    m.publish("pilot", Setpoint(throttle=0.2))
    m.publish("joystick", Setpoint(throttle=0.7))
    assert m.tick().source == "joystick"


values = st.floats(-1, 1)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["pilot", "mission", "drift", "test"]),
                          st.floats(0, 1), values, values, values,
                          st.sampled_from(list(ArmRequest)), st.floats(0, 0.7)),
                max_size=40),
       st.sampled_from(["descend", "failsafe"]))
def test_nothing_out_of_range_ever_leaves(events, policy):
    m, clock = mixer(FailsafePolicy(policy), limits=Limits())
    cal = Calibration()
    spans = {cal.channel_of(f) - 1: cal.calibration_for(f) for f in
             ("throttle", "yaw", "roll", "pitch")}
    for name, thr, r, p, y, arm, dt in events:
        m.publish(name, Setpoint(throttle=thr, roll=r, pitch=p, yaw=y, arm=arm))
        clock.advance(dt)
        out = m.tick()
        assert len(out.channels) == 16
        assert all(0 <= v <= 2047 for v in out.channels)
        for ch, c in spans.items():
            assert c.min <= out.channels[ch] <= c.max
        if out.failsafe or out.state in (FailsafeState.THROTTLE_CUT, FailsafeState.STANDBY):
            assert out.channels[0] == 172


@pytest.mark.parametrize("policy,after", [("descend", FailsafeState.THROTTLE_CUT),
                                          ("failsafe", FailsafeState.FAILSAFE)])
def test_released_force_with_no_source_applies_the_policy(policy, after):
    m, clock = mixer(FailsafePolicy(policy))
    m.failsafe.force("link error", "Input/output error")
    out = m.tick()
    assert out.failsafe and out.reason == "link error: Input/output error"
    m.failsafe.release("link error")
    clock.advance(0.01)
    out = m.tick()
    assert out.state is after and out.reason == "no fresh control source"
    clock.advance(0.01)
    assert m.tick().state is after          # and stays there


@pytest.mark.parametrize("policy", ["descend", "failsafe"])
@pytest.mark.parametrize("end", ["released", "pilot lost"])
def test_the_gesture_ends_at_once_when_the_arm_request_does(policy, end):
    # the firmware arms after the yaw stick stays beyond -0.2 for ArmingSequenceTime:
    # a slewed return from full yaw would hold the gesture on after the request ended
    m, clock = mixer(FailsafePolicy(policy), limits=Limits(axis_slew=1.0))
    for _ in range(5):
        m.publish("pilot", Setpoint(arm=ArmRequest.ARM))
        assert m.tick().setpoint.yaw == -1.0
        clock.advance(0.01)
    if end == "released":
        m.publish("pilot", Setpoint())
    else:
        clock.advance(0.6)                    # the pilot's 0.5 s timeout
    out = m.tick()
    assert out.setpoint.arm is ArmRequest.NONE
    assert out.setpoint.yaw == 0.0 and out.channels[YAW] == 992
    assert out.channels[THR] == 172


def _cal(**kw):
    chans = dict(Calibration().channels)
    chans.update(kw.pop("channels", {}))
    return Calibration(channels=tuple(chans.items()), **kw)


@pytest.mark.parametrize("kw,key", [
    # a truthy "no" would reverse the throttle: throttle off sent as full throttle
    (dict(channels={"throttle": ChannelCalibration(172, 212, 1811, "no")}),
     "channels.throttle.reversed"),
    # not encodable: every frame would fail
    (dict(unused_value=992.5), "channels.unused_value"),
    (dict(unused_value=True), "channels.unused_value"),
])
def test_calibration_types_are_checked(kw, key):
    with pytest.raises(ConfigError) as exc:
        _cal(**kw)
    assert exc.value.key == key


@st.composite
def channel_calibrations(draw):
    lo, mid, hi = sorted(draw(st.lists(st.integers(0, 2047), min_size=3, max_size=3,
                                       unique=True)))
    return ChannelCalibration(lo, mid, hi, draw(st.booleans()))


unit = st.floats(0, 1)


@settings(max_examples=150, deadline=None)
@given(st.lists(channel_calibrations(), min_size=8, max_size=8),
       st.permutations(range(1, 17)), st.integers(0, 2047),
       st.builds(Limits, unit, unit, unit, unit, st.floats(0, 1e6), st.floats(0, 1e6)),
       st.builds(FailsafePolicy, st.sampled_from(["descend", "failsafe"]), unit,
                 st.floats(0, 120)),
       st.lists(st.tuples(st.sampled_from(["pilot", "mission", "drift", "test", None]),
                          unit, values, values, values, st.sampled_from(list(ArmRequest)),
                          st.floats(-1, 30)), max_size=30))
def test_any_valid_calibration_and_limits_stay_in_range(cals, perm, unused, limits, policy,
                                                        events):
    cal = Calibration(channel_map=tuple(zip(FUNCTIONS, perm[:8], strict=False)),
                      channels=tuple(zip(FUNCTIONS, cals, strict=True)), unused_value=unused)
    clock = VirtualClock(0.0)
    m = Mixer(cal, limits, policy, clock)
    spans = {cal.channel_of(f) - 1: cal.calibration_for(f) for f in FUNCTIONS}
    tc = cal.calibration_for("throttle")
    for name, thr, r, p, y, arm, dt in events:
        if name is None:
            m.withdraw("pilot")
        else:
            m.publish(name, Setpoint(throttle=thr, roll=r, pitch=p, yaw=y,
                                     accessories=(r, p, y, -r), arm=arm))
        clock.advance(max(dt, 0.0))
        out = m.tick(clock.now() + min(dt, 0.0))        # and clocks that step back
        assert all(isinstance(v, int) and 0 <= v <= 2047 for v in out.channels)
        for ch, c in spans.items():
            assert c.min <= out.channels[ch] <= c.max
        assert out.setpoint.throttle <= limits.throttle_max
        if out.failsafe or out.state in (FailsafeState.THROTTLE_CUT, FailsafeState.STANDBY):
            assert out.channels[cal.channel_of("throttle") - 1] == (
                tc.max if tc.reversed else tc.min)


def test_an_arm_request_not_republished_stops_the_gesture_before_the_source_is_stale():
    # the mission's source stays fresh for 1 s: a request it stopped repeating must
    # not hold the gesture (the firmware arms after 1 s of it) for all that time
    m, clock = mixer()
    m.publish("mission", Setpoint(arm=ArmRequest.ARM))
    clock.advance(0.2)
    assert m.tick().setpoint.arm is ArmRequest.ARM
    clock.advance(0.1)
    out = m.tick()
    assert out.state is FailsafeState.NORMAL and out.source == "mission"
    assert out.setpoint.arm is ArmRequest.NONE and out.channels[YAW] == 992


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_tick_time_is_refused_without_poisoning_the_mixer(bad):
    m, clock = mixer(limits=Limits())
    m.publish("pilot", Setpoint(throttle=0.5))
    m.tick()
    with pytest.raises(ValueError):
        m.tick(bad)
    for _ in range(30):
        clock.advance(0.02)
        m.publish("pilot", Setpoint(throttle=0.5))
        out = m.tick()
    assert out.setpoint.throttle == pytest.approx(0.5)
