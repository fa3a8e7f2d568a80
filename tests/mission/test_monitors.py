"""Each safety monitor, alone: quiet when all is well, objecting when not."""

from __future__ import annotations

import math

import pytest

from pipilot.mission.monitors import (
    AlarmRaised,
    AttitudeLimit,
    Expectations,
    FlightView,
    PilotTakeover,
    StepTimeout,
    TelemetryLost,
    UnexpectedDisarm,
    run_monitors,
)

GOOD = FlightView(now=10.0, telemetry_connected=True, attitude_age=0.05, armed="Armed",
                  roll_deg=1.0, pitch_deg=-2.0, alarms={"Attitude": "OK", "Receiver": "Warning"})
FLYING = Expectations(armed=True, step_label="step 3 (hover)", step_deadline=20.0)


def view(**kw):
    return FlightView(**{**GOOD.__dict__, **kw})


ALL = [PilotTakeover(), TelemetryLost(1.0), UnexpectedDisarm(), AlarmRaised("Critical"),
       AttitudeLimit(30.0), StepTimeout()]


def test_all_quiet_in_normal_flight():
    assert run_monitors(ALL, GOOD, FLYING) is None


@pytest.mark.parametrize(("changes", "monitor", "words"), [
    ({"telemetry_connected": False}, "telemetry", "link"),
    ({"attitude_age": None}, "telemetry", "no attitude"),
    ({"attitude_age": 1.5}, "telemetry", "1.5 s"),
    ({"armed": "Disarmed"}, "disarm", "disarmed unexpectedly"),
    ({"alarms": {"Receiver": "Critical"}}, "alarms", "Receiver=Critical"),
    ({"alarms": {"Sensors": "Error"}}, "alarms", "Sensors=Error"),
    ({"roll_deg": 31.0}, "attitude", "roll 31.0"),
    ({"pitch_deg": -45.0}, "attitude", "pitch -45.0"),
    ({"pitch_deg": math.nan}, "attitude", "pitch"),
    ({"now": 20.5}, "timeout", "step 3 (hover)"),
    ({"pilot_active": True}, "takeover", "pilot took over"),
])
def test_each_monitor_objects(changes, monitor, words):
    got = run_monitors(ALL, view(**changes), FLYING)
    assert got is not None
    name, reason = got
    assert name == monitor
    assert words in reason


def test_disarm_is_expected_before_arming_and_after_disarm_step():
    assert UnexpectedDisarm().check(view(armed="Disarmed"), Expectations(armed=False)) is None


def test_alarm_level_and_ignore_list():
    warn = view(alarms={"Receiver": "Warning"})
    assert AlarmRaised("Warning").check(warn, FLYING) is not None
    assert AlarmRaised("Critical").check(warn, FLYING) is None
    crit = view(alarms={"Receiver": "Critical"})
    assert AlarmRaised("Critical", ignore=("Receiver",)).check(crit, FLYING) is None
    with pytest.raises(ValueError):
        AlarmRaised("OK")


def test_telemetry_gets_a_grace_period_at_the_start():
    mon = TelemetryLost(1.0)
    assert mon.check(view(attitude_age=None), Expectations(elapsed=0.5)) is None
    assert "no attitude" in mon.check(view(attitude_age=None), Expectations(elapsed=1.5))


def test_no_deadline_no_timeout():
    assert StepTimeout().check(view(now=1e9), Expectations()) is None
