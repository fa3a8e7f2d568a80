"""TOML missions: the examples load, and every error names the step and key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipilot.errors import ConfigError
from pipilot.mission.spec import load_mission, parse_mission

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

MINIMAL = """
[[steps]]
action = "arm"
"""


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_examples_load(path):
    spec = load_mission(path)
    assert spec.steps[0].action == "arm"
    assert spec.steps[-1].action == "disarm"


def test_hover_example_is_what_the_issue_asks_for():
    spec = load_mission(EXAMPLES / "hover.toml")
    assert [s.action for s in spec.steps] == ["arm", "climb", "hover", "land", "disarm"]
    assert spec.steps[2].params["seconds"] == 60
    assert spec.sim is not None
    assert spec.sim.mount_tilt_deg == 2.0 and spec.sim.wind_mps == 0.5
    assert spec.sim.firmware == "patched"        # the drift loop needs 0005
    assert spec.drift_enabled


def test_defaults():
    spec = parse_mission(MINIMAL, name="x")
    assert spec.name == "x"
    assert spec.safety.failsafe == "land"
    assert spec.sim is None


def test_sim_faults_table():
    spec = parse_mission("""
[[sim.faults]]
at_s = 4
action = "cut_telemetry"
up = false
[[sim.faults]]
at_s = 6.5
action = "upset"
pitch_dps = -500
""" + MINIMAL)
    assert spec.sim is not None
    cut, upset = spec.sim.faults
    assert (cut.at_s, cut.action, cut.up, cut.down) == (4.0, "cut_telemetry", False, True)
    assert (upset.at_s, upset.action, upset.pitch_dps, upset.roll_dps) == (6.5, "upset", -500, 0)
    assert parse_mission("[sim]\nseed = 1\n" + MINIMAL).sim.faults == ()


def test_every_fault_action_says_which_keys_it_takes():
    from pipilot.mission.spec import FaultSpec
    from pipilot.sim.faults import FAULT_KEYS

    fields = {f.name for f in dataclasses.fields(FaultSpec)} - {"at_s", "action"}
    assert set().union(*FAULT_KEYS.values()) == fields   # every key belongs to an action


@pytest.mark.parametrize(("steps", "key", "words"), [
    ('action = "climb"\nseconds = 2', "step 1 (climb).throttle", "missing"),
    ('action = "climb"\nthrottle = 1.4\nseconds = 2', "step 1 (climb).throttle", "<= 1"),
    ('action = "climb"\nthrottle = 0.5\nseconds = 0', "step 1 (climb).seconds", "> 0"),
    ('action = "hover"\nseconds = "long"', "step 1 (hover).seconds", "must be a number"),
    ('action = "hover"\nseconds = 5\nspeed = 3', "step 1 (hover).speed", "unknown key"),
    ('action = "move"\nroll = 2\nseconds = 1', "step 1 (move).roll", ">= -1"),
    ('action = "yaw"\nseconds = 1', "step 1 (yaw).rate", "missing"),
    ('action = "jump"', "step 1 (jump).action", "unknown action"),
    ('seconds = 3', "step 1.action", "missing"),
    ('action = "hover"\nseconds = true', "step 1 (hover).seconds", "must be a number"),
])
def test_step_errors_name_step_and_key(steps, key, words):
    text = f"[[steps]]\naction = \"arm\"\n\n[[steps]]\n{steps}\n"
    with pytest.raises(ConfigError) as err:
        parse_mission(text)
    key2 = key.replace("step 1", "step 2")
    assert err.value.key == key2
    assert words in str(err.value)
    assert key2 in str(err.value)


@pytest.mark.parametrize(("doc", "key"), [
    ("", "steps"),
    ("steps = []", "steps"),
    ("steps = [1]", "step 1"),
    ('[safety]\nfailsafe = "pray"\n' + MINIMAL, "safety.failsafe"),
    ("[safety]\nmax_tilt_deg = 120\n" + MINIMAL, "safety.max_tilt_deg"),
    ('[safety]\nalarm_level = "OK"\n' + MINIMAL, "safety.alarm_level"),
    ("[safety]\ntelemetry_timeout_s = 0\n" + MINIMAL, "safety.telemetry_timeout_s"),
    ("[safety]\nmystery = 1\n" + MINIMAL, "safety.mystery"),
    ("[mission]\nhover_throttle = 1.5\n" + MINIMAL, "mission.hover_throttle"),
    ("[drift]\nenabled = 1\n" + MINIMAL, "drift.enabled"),
    ("[drift]\nkp = -2\n" + MINIMAL, "drift.kp"),
    ("[drift.estimator]\ndrag_coeff = 0\n" + MINIMAL, "drift.estimator.drag_coeff"),
    ("[sim]\nwind_mps = 50\n" + MINIMAL, "sim.wind_mps"),
    ("[sim]\ngusts = 1\n" + MINIMAL, "sim.gusts"),
    ("[sim]\nfirmware = 'custom'\n" + MINIMAL, "sim.firmware"),
    ("[sim]\nfirmware = 1\n" + MINIMAL, "sim.firmware"),
    ("[[sim.faults]]\nat_s = 1\naction = 'explode'\n" + MINIMAL, "sim.faults[0].action"),
    ("[[sim.faults]]\naction = 'disarm'\n" + MINIMAL, "sim.faults[0].at_s"),
    ("[[sim.faults]]\nat_s = 1\n" + MINIMAL, "sim.faults[0].action"),
    ("[[sim.faults]]\nat_s = 1\naction = 'raise_alarm'\nelement = 'Motor'\n" + MINIMAL,
     "sim.faults[0].element"),
    ("[[sim.faults]]\nat_s = 1\naction = 'drop_updates'\nobject = 'GPSPosition'\n" + MINIMAL,
     "sim.faults[0].object"),
    ("[[sim.faults]]\nat_s = 1\naction = 'upset'\nroll_dps = nan\n" + MINIMAL,
     "sim.faults[0].roll_dps"),
    ("[[sim.faults]]\nat_s = 1\naction = 'cut_telemetry'\nup = false\ndown = false\n"
     + MINIMAL, "sim.faults[0].up"),
    ("[[sim.faults]]\nat_s = 1\naction = 'cut_telemetry'\nelement = 'Sensors'\n" + MINIMAL,
     "sim.faults[0].element"),
    ("[[sim.faults]]\nat_s = 1\naction = 'disarm'\nlevel = 'Error'\n" + MINIMAL,
     "sim.faults[0].level"),
    ("[[sim.faults]]\nat_s = 1\naction = 'upset'\n" + MINIMAL, "sim.faults[0].roll_dps"),
    ("[[sim.faults]]\nat_s = 1\naction = 'upset'\nroll_dps = 200\n"
     "[[sim.faults]]\nat_s = 2\naction = 'raise_alarm'\nobject = 'FlightStatus'\n" + MINIMAL,
     "sim.faults[1].object"),
    ("[sim]\nfaults = 3\n" + MINIMAL, "sim.faults"),
    ("surprise = 1\n" + MINIMAL, "surprise"),
    ("[[steps]\n", "toml"),
])
def test_table_errors_name_the_key(doc, key):
    with pytest.raises(ConfigError) as err:
        parse_mission(doc)
    assert err.value.key == key


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_mission(tmp_path / "nope.toml")


HUGE = "1" + "0" * 400


@pytest.mark.parametrize(("doc", "key"), [
    # integers too large for a float raised OverflowError, not a ConfigError
    (f'[[steps]]\naction = "hover"\nseconds = {HUGE}\n', "step 1 (hover).seconds"),
    (f"[mission]\nrate_hz = {HUGE}\n" + MINIMAL, "mission.rate_hz"),
    (f"[drift]\nkp = {HUGE}\n" + MINIMAL, "drift.kp"),
    (f"[drift.estimator]\ndrag_coeff = {HUGE}\n" + MINIMAL, "drift.estimator.drag_coeff"),
    (f'[[steps]]\naction = "hover"\nseconds = 1{"0" * 5000}\n', "toml"),
    # a huge safety duration switched a monitor off or flew a failsafe for ever
    ("[safety]\ntelemetry_timeout_s = 1e9\n" + MINIMAL, "safety.telemetry_timeout_s"),
    ("[safety]\nland_seconds = 1e9\n" + MINIMAL, "safety.land_seconds"),
    ("[safety]\narm_timeout_s = 1e9\n" + MINIMAL, "safety.arm_timeout_s"),
    ("[safety]\nstep_timeout_margin_s = 1e9\n" + MINIMAL, "safety.step_timeout_margin_s"),
    ("[safety]\nconnect_timeout_s = 1e9\n" + MINIMAL, "safety.connect_timeout_s"),
    ("[safety]\nland_seconds = nan\n" + MINIMAL, "safety.land_seconds"),
    ("[safety]\nland_seconds = -3\n" + MINIMAL, "safety.land_seconds"),
    # a land failsafe at or above the hover throttle climbs, then cuts the motors aloft
    ("[mission]\nhover_throttle = 0.5\n[safety]\nland_throttle = 0.6\n" + MINIMAL,
     "safety.land_throttle"),
])
def test_huge_and_non_finite_numbers_are_config_errors(doc, key):
    with pytest.raises(ConfigError) as err:
        parse_mission(doc)
    assert err.value.key == key


def test_mission_file_that_is_not_utf8_is_a_config_error(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_bytes(b'name = "\xff"\n[[steps]]\naction = "arm"\n')
    with pytest.raises(ConfigError, match="UTF-8"):
        load_mission(f)


@pytest.mark.parametrize(("doc", "key", "words"), [
    ("[sim]\nseed = 1.5\n" + MINIMAL, "sim.seed", "whole number"),
    ("[sim]\nmass_kg = 0\n" + MINIMAL, "sim.mass_kg", "must be a number >= 0.05 and <= 20 (kg)"),
    ("[[sim]]\nmass_kg = 1\n" + MINIMAL, "sim", "must be a table"),
    ("[drift]\nmax_trim_deg = 50\n" + MINIMAL, "drift.max_trim_deg", "within stick_angle_deg"),
    ("[drift.estimator]\nkp = 1\n" + MINIMAL, "drift.estimator.kp", "unknown key"),
    ("[drift]\nestimator = 1\n" + MINIMAL, "drift.estimator", "must be a table"),
    ('[safety]\nignore_alarms = ["GPS", 3]\n' + MINIMAL, "safety.ignore_alarms[1]",
     "must be a string"),
    ("name = 3\n" + MINIMAL, "name", "must be a string"),
])
def test_table_errors_say_what_was_expected(doc, key, words):
    with pytest.raises(ConfigError) as err:
        parse_mission(doc)
    assert err.value.key == key
    assert words in str(err.value)


def test_table_values_are_read():
    spec = parse_mission('name = "t"\n[safety]\nalarm_level = "warning"\n'
                         'ignore_alarms = ["GPS"]\nland_throttle = 0.3\n'
                         "[drift]\nenabled = false\nkp = 3\n[drift.estimator]\ndrag_coeff = 0.5\n"
                         "[sim]\nseed = 7\nhover_throttle = 0.5\n" + MINIMAL)
    assert spec.name == "t"
    assert spec.safety.alarm_level == "Warning" and spec.safety.ignore_alarms == ("GPS",)
    assert spec.safety.land_throttle == 0.3
    assert not spec.drift_enabled and spec.drift.kp == 3.0 and spec.drift.ki == 2.5
    assert spec.estimator.drag_coeff == 0.5
    assert spec.sim is not None and spec.sim.seed == 7 and spec.sim.hover_throttle == 0.5


def test_drift_configs_built_in_code_obey_the_same_rules():
    from pipilot.control.drift import CompensatorConfig, EstimatorConfig

    with pytest.raises(ConfigError) as err:
        EstimatorConfig(drag_coeff=float("nan"))
    assert err.value.key == "drift.estimator.drag_coeff"
    with pytest.raises(ConfigError) as err:
        CompensatorConfig(kp=-1.0)
    assert err.value.key == "drift.kp"
