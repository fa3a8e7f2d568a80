"""Each fault-injection entry point of the simulated CC3D, seen through telemetry.

What a test reads here is what the ground station gets over UAVTalk (and the
airframe's truth where the fault is physical), never the fault's own state.
"""

from __future__ import annotations

import asyncio

import pytest

from pipilot.errors import PipilotError
from pipilot.mission.lockstep import sim_lockstep
from pipilot.mission.spec import FaultSpec
from pipilot.sim import LockstepSim
from pipilot.sim.faults import SimFaultError
from pipilot.sim.model import SimulatedCC3D
from pipilot.sim.runner import RealtimeSim


def _ground(sim: LockstepSim, name: str) -> dict:
    got = sim.telemetry.latest(name)
    assert got is not None, name
    return got[0]


def _armed_on_the_ground(seed: int = 1) -> LockstepSim:
    sim = LockstepSim(seed=seed)
    sim.wait_connected()
    sim.set_sticks(yaw=-1.0)           # Yaw Left with the throttle off, held past 1 s
    sim.run(1.5)
    sim.set_sticks(yaw=0.0)
    sim.run(0.2)
    assert _ground(sim, "FlightStatus")["Armed"] == "Armed"
    return sim


def _hovering(seed: int = 1) -> LockstepSim:
    sim = _armed_on_the_ground(seed)
    sim.set_sticks(throttle=0.6)
    sim.run(1.5)
    sim.set_sticks(throttle=sim.model.hover_throttle())
    sim.run(0.5)
    assert sim.truth.altitude > 1.0
    return sim


def _gesture_arms(sim: LockstepSim) -> bool:
    """Sticks centred, then Yaw Left held 1.5 s: does the FC say Armed?"""
    sim.set_sticks(yaw=0.0, throttle=0.0)
    sim.run(0.3)
    sim.set_sticks(yaw=-1.0)
    sim.run(1.5)
    sim.set_sticks(yaw=0.0)
    sim.run(0.2)
    return bool(_ground(sim, "FlightStatus")["Armed"] == "Armed")


# -- the telemetry line ---------------------------------------------------------------

def test_a_cut_downlink_starves_the_ground_while_the_fc_stays_connected() -> None:
    sim = LockstepSim(seed=1)
    sim.wait_connected()
    sim.run(1.0)
    received = sim.telemetry.objects_received
    sim.faults.cut_telemetry(up=False)
    assert sim.faults.telemetry_cut
    sim.run(3.0)
    assert sim.telemetry.objects_received == received      # nothing came down
    age = sim.telemetry.latest("AttitudeState")[1]
    assert age >= 2.9
    assert sim.flight_telemetry.status == "Connected"       # the ground still talks to it
    sim.faults.restore_telemetry()
    assert not sim.faults.telemetry_cut
    sim.run(1.0)
    assert sim.telemetry.latest("AttitudeState")[1] < 0.5   # fresh again


def test_a_cut_uplink_drops_the_fc_off_after_its_connection_timeout() -> None:
    sim = LockstepSim(seed=1)
    sim.wait_connected()
    sim.run(1.0)
    sim.faults.cut_telemetry(down=False)
    sim.run(7.0)
    assert _ground(sim, "FlightTelemetryStats")["Status"] == "Connected"
    sim.run(6.0)   # telemetry.c: 8 s without an object, seen at the 4 s evaluation
    assert _ground(sim, "FlightTelemetryStats")["Status"] == "Disconnected"
    assert sim.telemetry.latest("AttitudeState")[1] < 0.5   # the downlink still carries
    sim.faults.restore_telemetry()
    sim.run(6.0)
    assert _ground(sim, "FlightTelemetryStats")["Status"] == "Connected"


# -- SystemAlarms ---------------------------------------------------------------------

def test_a_raised_alarm_shows_in_system_alarms_and_refuses_arming() -> None:
    sim = LockstepSim(seed=1)
    sim.wait_connected()
    sim.faults.raise_alarm("Sensors")
    sim.run(1.5)   # SystemAlarms goes out every second
    assert _ground(sim, "SystemAlarms")["Alarm"]["Sensors"] == "Critical"
    # armhandler.c okToArm(): an alarm at Critical or above refuses the gesture
    assert not _gesture_arms(sim)
    assert sim.faults.alarms == {"Sensors": "Critical"}
    sim.faults.clear_alarm("Sensors")
    sim.run(1.5)
    assert _ground(sim, "SystemAlarms")["Alarm"]["Sensors"] == "OK"
    assert _gesture_arms(sim)


def test_an_error_alarm_refuses_arming_a_warning_or_a_gps_alarm_does_not() -> None:
    sim = LockstepSim(seed=1)
    sim.wait_connected()
    sim.faults.raise_alarm("Attitude", "Error")
    assert not _gesture_arms(sim)
    sim.faults.clear_alarm("Attitude")
    sim.faults.raise_alarm("Attitude", "Warning")
    sim.faults.raise_alarm("GPS", "Critical")   # okToArm() skips GPS and Telemetry
    sim.run(1.0)
    alarms = _ground(sim, "SystemAlarms")["Alarm"]
    assert alarms["Attitude"] == "Warning" and alarms["GPS"] == "Critical"
    assert _gesture_arms(sim)


def test_a_critical_guidance_alarm_disarms_an_armed_fc() -> None:
    sim = _armed_on_the_ground()
    sim.faults.raise_alarm("Guidance")   # forcedDisArm()
    sim.run(0.2)
    assert _ground(sim, "FlightStatus")["Armed"] == "Disarmed"


def test_a_raised_alarm_never_lowers_what_a_module_reports() -> None:
    sim = LockstepSim(seed=1)
    sim.wait_connected()
    sim.run(1.0)
    assert _ground(sim, "SystemAlarms")["Alarm"]["Telemetry"] == "OK"
    sim.faults.raise_alarm("Telemetry", "Warning")
    sim.run(1.5)
    assert _ground(sim, "SystemAlarms")["Alarm"]["Telemetry"] == "Warning"
    sim.model.manual.receiver_alarm = "Critical"   # as a module would set it
    sim.faults.raise_alarm("Receiver", "Warning")
    assert sim.model.alarm_levels()["Receiver"] == "Critical"


@pytest.mark.parametrize(("element", "level", "words"), [
    ("Sensor", "Critical", "no SystemAlarms element 'Sensor'"),
    ("Sensors", "critical", "alarm level must be one of Warning, Critical, Error"),
    ("Sensors", "OK", "alarm level must be one of"),
])
def test_a_bad_alarm_is_a_clear_error(element: str, level: str, words: str) -> None:
    sim = LockstepSim(seed=1)
    with pytest.raises(SimFaultError, match=words) as info:
        sim.faults.raise_alarm(element, level)
    assert isinstance(info.value, PipilotError)
    assert sim.faults.alarms == {}


def test_a_cut_of_neither_direction_is_refused_not_logged_as_a_cut() -> None:
    sim = LockstepSim(seed=1)
    with pytest.raises(SimFaultError, match="cuts nothing"):
        sim.faults.cut_telemetry(up=False, down=False)
    assert sim.faults.log == []


@pytest.mark.parametrize("fault", [
    FaultSpec(at_s=1.0, action="cut_telemetry", up=False, down=False),
    {"at_s": 1.0, "action": "upset"},
])
def test_a_scheduled_fault_that_would_inject_nothing_is_refused_at_once(
        fault: FaultSpec | dict[str, object]) -> None:
    """The same rule as a mission file's [[sim.faults]], for a schedule made in Python
    (sim_lockstep's ``faults``): refused when scheduled, not logged when due."""
    with pytest.raises(SimFaultError, match=r"cuts nothing|needs a kick"):
        sim_lockstep(faults=[fault])


# -- the FC disarming by itself ---------------------------------------------------

def test_the_fc_disarms_by_itself_in_flight_and_the_craft_falls() -> None:
    sim = _hovering()
    sim.faults.disarm()
    # the 20 ms arm handler, the 20 ms on-change check, then the telemetry queue
    # and the 9600-baud line (about 0.15 s here)
    sim.run(0.3)
    assert _ground(sim, "FlightStatus")["Armed"] == "Disarmed"
    sim.run(0.3)
    assert sim.truth.velocity[2] > 2.0   # motors stopped: it falls (NED: down)
    # nothing left latched: the pilot can arm again
    sim.run(5.0)
    assert sim.truth.on_ground
    assert _gesture_arms(sim)


# -- an attitude upset ------------------------------------------------------------

def test_an_upset_tips_the_craft_past_the_limits_and_the_fc_recovers() -> None:
    sim = _hovering()
    sim.faults.upset(roll_dps=600.0)
    worst = 0.0
    for _ in range(100):
        sim.run(0.01)
        worst = max(worst, abs(_ground(sim, "AttitudeState")["Roll"]))
    assert worst > 45.0   # the FC's own estimate, as the ground got it
    sim.run(2.0)
    assert abs(_ground(sim, "AttitudeState")["Roll"]) < 5.0   # stabilised again
    assert sim.model.armed


def test_an_upset_needs_the_craft_in_the_air() -> None:
    sim = LockstepSim(seed=1)
    sim.run(0.1)
    with pytest.raises(SimFaultError, match="on the ground"):
        sim.faults.upset(pitch_dps=300.0)
    sim2 = _hovering()
    with pytest.raises(SimFaultError, match="finite"):
        sim2.faults.upset(roll_dps=float("nan"))


# -- updates lost in the FC's telemetry queue ---------------------------------------

def test_dropped_flight_status_updates_never_arrive_but_requests_are_answered() -> None:
    sim = LockstepSim(seed=1)
    sim.wait_connected()
    sim.run(0.5)
    assert _ground(sim, "FlightStatus")["Armed"] == "Disarmed"
    failures = sim.flight_telemetry.stats["tx_failures"]
    sim.faults.drop_updates("FlightStatus")
    sim.set_sticks(yaw=-1.0)
    sim.run(1.5)
    sim.set_sticks(yaw=0.0)
    sim.run(0.5)
    assert sim.model.armed
    assert _ground(sim, "FlightStatus")["Armed"] == "Disarmed"   # the change was lost
    assert sim.flight_telemetry.stats["tx_failures"] > failures   # counted as TxFailures
    got = asyncio.run(sim.telemetry.request("FlightStatus"))
    assert got["Armed"] == "Armed"
    assert sim.flight_telemetry.requests["FlightStatus"] == 1
    sim.faults.resume_updates("FlightStatus")
    sim.set_sticks(yaw=1.0)   # Yaw Right disarms
    sim.run(1.5)
    sim.set_sticks(yaw=0.0)
    sim.run(0.2)
    assert _ground(sim, "FlightStatus")["Armed"] == "Disarmed"
    assert not sim.model.armed


def test_dropping_an_object_the_fc_lacks_is_a_clear_error() -> None:
    sim = LockstepSim(seed=1)
    with pytest.raises(SimFaultError, match="no object 'GPSPositionSensor'"):
        sim.faults.drop_updates("GPSPositionSensor")


# -- a schedule, as a mission's [[sim.faults]] gives it ----------------------------------

def _fault(at_s: float, action: str, **kw: object) -> FaultSpec:
    return FaultSpec(at_s=at_s, action=action, **kw)  # type: ignore[arg-type]


def test_a_scheduled_fault_strikes_at_its_time_and_is_logged() -> None:
    sim = LockstepSim(seed=1)
    sim.faults.schedule(_fault(2.0, "raise_alarm", element="Attitude", level="Error"))
    sim.faults.schedule(_fault(3.0, "clear_alarm", element="Attitude"))
    sim.run(1.99)
    assert sim.model.alarm_levels()["Attitude"] == "OK"
    sim.run(0.02)
    assert sim.model.alarm_levels()["Attitude"] == "Error"
    sim.run(1.0)
    assert sim.model.alarm_levels()["Attitude"] == "OK"
    assert [(round(t, 3), what) for t, what in sim.faults.log] == [
        (2.0, "alarm Attitude=Error"), (3.0, "alarm Attitude cleared")]


def test_a_scheduled_fault_that_cannot_strike_is_logged_and_the_run_goes_on() -> None:
    sim = LockstepSim(seed=1)
    sim.faults.schedule(_fault(0.5, "upset", roll_dps=500.0))   # still on the ground
    sim.run(1.0)
    ((t, what),) = sim.faults.log
    assert t == pytest.approx(0.5) and "upset not injected" in what and "on the ground" in what
    with pytest.raises(SimFaultError, match="no fault 'explode'"):
        sim.faults.schedule(_fault(1.0, "explode"))
    with pytest.raises(SimFaultError, match="finite"):
        sim.faults.schedule(_fault(float("inf"), "disarm"))


def test_every_scheduled_action_reaches_its_entry_point() -> None:
    sim = _hovering()
    t = sim.now
    for i, (action, kw) in enumerate([
            ("cut_telemetry", {"up": False}), ("restore_telemetry", {}),
            ("drop_updates", {"object": "GyroState"}), ("resume_updates", {"object": "GyroState"}),
            ("upset", {"yaw_dps": 90.0}), ("disarm", {})]):
        sim.faults.schedule(_fault(t + 0.1 * (i + 1), action, **kw))
    sim.run(1.0)
    assert [what for _, what in sim.faults.log] == [
        "telemetry cut flight -> ground", "telemetry restored", "GyroState updates dropped",
        "GyroState updates resumed", "upset: body rates kicked by 0, 0, 90 deg/s",
        "FC disarms by itself"]
    assert not sim.model.armed


# -- the real-time runner ------------------------------------------------------------

def test_the_realtime_runner_has_the_same_faults_under_its_lock() -> None:
    sim = RealtimeSim(SimulatedCC3D(seed=0))
    sim.faults.cut_telemetry(up=False)
    assert sim.telemetry_cut and sim.line.up and not sim.line.down
    sim.telemetry_cut = False
    assert not sim.faults.telemetry_cut
    sim.telemetry_cut = True
    assert not sim.line.up and not sim.line.down
    with sim.lock:   # re-entrant: a fault injected while the caller holds the lock
        sim.faults.raise_alarm("Sensors", "Error")
    assert sim.model.alarm_levels()["Sensors"] == "Error"
    sim.faults.drop_updates("FlightStatus")
    assert "FlightStatus" in sim.telemetry.dropped_updates
