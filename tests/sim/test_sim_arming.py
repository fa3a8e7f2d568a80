"""Receiver connection, arming and disarming with Yaw Left, ArmedTimeout, failsafe."""

from __future__ import annotations

from pipilot.sim import LockstepSim
from pipilot.sim.manual import Armed, FlightModeSettings
from pipilot.uavtalk import load_definitions


def armed_state(sim: LockstepSim) -> str:
    got = sim.telemetry.latest("FlightStatus")
    assert got is not None
    return got[0]["Armed"]


def connected_sim(**kw: object) -> LockstepSim:
    sim = LockstepSim(seed=1, **kw)  # type: ignore[arg-type]
    sim.run(1.0)
    assert sim.model.manual.cmd.connected
    return sim


def time_until(sim: LockstepSim, pred: object, limit: float, step: float = 0.005) -> float:
    t0 = sim.now
    while sim.now - t0 < limit:
        if pred():  # type: ignore[operator]
            return sim.now - t0
        sim.run(step)
    raise AssertionError("condition not reached")


def test_receiver_connects_after_more_than_ten_good_reads() -> None:
    sim = LockstepSim(seed=1)
    sim.run(0.18)
    assert not sim.model.manual.cmd.connected
    sim.run(0.1)
    assert sim.model.manual.cmd.connected
    assert sim.model.manual.receiver_alarm == "OK"


def test_arming_takes_the_sequence_time() -> None:
    sim = connected_sim()
    sim.set_sticks(yaw=-1.0)
    t_arming = time_until(sim, lambda: sim.model.manual.armed is Armed.ARMING, 0.1)
    t_armed = time_until(sim, lambda: sim.model.manual.armed is Armed.ARMED, 2.0)
    # the stick reaches the receiver task within a frame and a 20 ms tick; Armed shows
    # one tick after more than 1000 ms held
    total = t_arming + t_armed
    assert 1.02 < total <= 1.10
    assert t_arming < 0.06
    # the ground station hears of it once FlightStatus gets through the 9600-baud queue
    assert time_until(sim, lambda: armed_state(sim) == "Armed", 0.5) < 0.5


def test_releasing_yaw_early_aborts_arming() -> None:
    sim = connected_sim()
    sim.set_sticks(yaw=-1.0)
    sim.run(0.8)
    assert sim.model.manual.armed is Armed.ARMING
    sim.set_sticks(yaw=0.0)
    sim.run(0.1)
    assert sim.model.manual.armed is Armed.DISARMED


def test_arming_needs_a_fresh_push_after_an_abort() -> None:
    sim = connected_sim()
    sim.set_sticks(yaw=-1.0)
    sim.run(0.5)
    sim.set_sticks(throttle=0.3)  # throttle up aborts arming
    sim.run(0.2)
    sim.set_sticks(throttle=0.0)
    sim.run(2.0)
    assert sim.model.manual.armed is Armed.DISARMED  # yaw still held: no new crossing
    sim.set_sticks(yaw=0.0)
    sim.run(0.1)
    sim.set_sticks(yaw=-1.0)
    sim.run(1.2)
    assert sim.model.manual.armed is Armed.ARMED


def test_small_yaw_and_throttle_up_do_not_arm() -> None:
    sim = connected_sim()
    sim.set_sticks(yaw=-0.15)
    sim.run(2.0)
    assert sim.model.manual.armed is Armed.DISARMED
    sim.set_sticks(yaw=0.0)
    sim.run(0.1)
    sim.set_sticks(throttle=0.3)
    sim.set_sticks(yaw=-1.0)
    sim.run(2.0)
    assert sim.model.manual.armed is Armed.DISARMED


def arm(sim: LockstepSim) -> None:
    sim.set_sticks(yaw=-1.0)
    sim.run(1.2)
    sim.set_sticks(yaw=0.0)
    sim.run(0.1)
    assert sim.model.manual.armed is Armed.ARMED


def test_disarming_with_yaw_right_takes_the_sequence_time() -> None:
    sim = connected_sim()
    arm(sim)
    sim.set_sticks(yaw=1.0)
    sim.run(0.9)
    assert sim.model.manual.armed is Armed.ARMED
    t = time_until(sim, lambda: sim.model.manual.armed is Armed.DISARMED, 0.5)
    assert t <= 0.2


def test_armed_timeout_disarms_with_throttle_low() -> None:
    # The simulated FC's default is the firmware's (FlightModeSettings.ArmedTimeout,
    # 30 s); the timer itself is timed on a 3 s one, a tenth of the simulated flight.
    (field,) = [f for f in load_definitions().get("FlightModeSettings").fields
                if f.name == "ArmedTimeout"]
    assert FlightModeSettings().armed_timeout_ms == field.defaults[0] == 30000
    sim = connected_sim()
    sim.model.manual.modes.armed_timeout_ms = 3000
    sim.set_sticks(yaw=-1.0)
    time_until(sim, lambda: sim.model.manual.armed is Armed.ARMED, 2.0)
    t_armed = sim.now
    sim.set_sticks(yaw=0.0)
    time_until(sim, lambda: sim.model.manual.armed is Armed.DISARMED, 4.0)
    assert 2.95 < sim.now - t_armed < 3.1


def test_throttle_up_holds_off_the_armed_timeout() -> None:
    # ArmedTimeout is a FlightModeSettings field (30 s by default, checked above).
    # A 2 s one shows the same hold-off in an eighth of the simulated time.
    sim = connected_sim()
    sim.model.manual.modes.armed_timeout_ms = 2000
    arm(sim)
    sim.set_sticks(throttle=0.2)
    sim.run(5.0)
    assert sim.model.manual.armed is Armed.ARMED
    # and the shortened timeout does disarm once the throttle is low again
    sim.set_sticks(throttle=0.0)
    t = time_until(sim, lambda: sim.model.manual.armed is Armed.DISARMED, 3.0, step=0.05)
    assert 1.9 < t < 2.2


def test_frames_stop_receiver_failsafe_then_manual_control_failsafe() -> None:
    sim = connected_sim()
    # an 8 s ArmedTimeout (a FlightModeSettings field; the 30 s default is timed
    # above): the failsafe's low throttle runs it, as it would the default
    sim.model.manual.modes.armed_timeout_ms = 8000
    arm(sim)
    sim.set_sticks(throttle=0.55)
    sim.run(3.0)
    assert sim.truth.altitude > 1.0
    t_stop = sim.now
    sim.stop_frames()
    time_until(sim, lambda: sim.model.receiver.channels[0] is None, 0.5, step=0.0002)
    last_good = sim.model.receiver.last_good_frame_time
    assert last_good is not None
    # the 65th tick after the last good frame: more than 102.4 ms, at most 104 ms
    assert 0.1024 < sim.now - last_good <= 0.1042
    time_until(sim, lambda: not sim.model.manual.cmd.connected, 1.0)
    # then more than 10 bad reads at 20 ms
    assert 0.30 <= sim.now - last_good <= 0.35
    assert sim.now - t_stop < 0.35
    assert sim.model.manual.cmd.throttle == -1.0
    assert sim.model.manual.receiver_alarm == "Warning"
    sim.run(5.0)
    assert sim.truth.on_ground  # motors stopped: it came down
    assert sim.model.manual.armed is Armed.ARMED  # and stays armed until ArmedTimeout
    time_until(sim, lambda: sim.model.manual.armed is Armed.DISARMED, 4.0, step=0.05)
    # ArmedTimeout counted from the failsafe's throttle cut
    assert 8.0 < sim.now - last_good - 0.30 < 8.4


def test_failsafe_flag_frames_reset_channels() -> None:
    sim = connected_sim()
    from pipilot.sim.sticks import pack_frame

    sim.frame_source = lambda _now: pack_frame([992] * 16, failsafe=True)
    sim.run(0.5)
    assert sim.model.receiver.channels[0] is None
    assert not sim.model.manual.cmd.connected


def test_manual_control_command_channels_show_timeout_and_unassigned_codes() -> None:
    from pipilot.sim.manual import FUNCTIONS, RCVR_INVALID, RCVR_TIMEOUT

    sim = connected_sim()
    ch = sim.model.manual.cmd.channel
    assert ch[FUNCTIONS.index("Yaw")] == 992
    assert ch[FUNCTIONS.index("Collective")] == RCVR_INVALID == 65534  # (uint16)-2
    sim.stop_frames()
    sim.run(0.2)
    assert sim.model.manual.cmd.channel[FUNCTIONS.index("Yaw")] == RCVR_TIMEOUT == 65535
