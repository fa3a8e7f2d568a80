"""`pipilot mission`: check, run --sim --json, --plot, errors, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipilot.cli import main
from pipilot.mission.lockstep import sim_lockstep

ROOT = Path(__file__).resolve().parents[2]

SHORT = """
name = "short"
[[steps]]
action = "arm"
[[steps]]
action = "climb"
throttle = 0.54
seconds = 2
[[steps]]
action = "hover"
seconds = 5
[[steps]]
action = "land"
seconds = 8
[[steps]]
action = "disarm"
[sim]
mount_tilt_deg = 2.0
wind_mps = 0.5
"""


def test_check_lists_steps(capsys):
    assert main(["mission", "check", str(ROOT / "examples" / "hover.toml")]) == 0
    out = capsys.readouterr().out
    assert "5 steps, valid" in out and "hover(seconds=60)" in out


def test_invalid_file_names_step_and_key(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[steps]]\naction = "arm"\n[[steps]]\naction = "climb"\nseconds = 2\n')
    assert main(["mission", "run", str(bad), "--sim"]) == 1
    err = capsys.readouterr().err
    assert "step 2 (climb).throttle" in err and "missing" in err


def test_run_sim_json_and_plot(tmp_path, capsys):
    f = tmp_path / "short.toml"
    f.write_text(SHORT)
    svg = tmp_path / "out.svg"
    assert main(["mission", "run", str(f), "--sim", "--json", "--plot", str(svg)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["completed"] is True
    assert summary["abort_reason"] is None
    assert summary["drift_compensation"] is True
    # ground truth over the 5 s hover: with the loop on, the 2 deg mount tilt and the
    # wind move the craft less than the 2.85 m they move it without (next test)
    assert summary["hover_seconds"] == pytest.approx(5.0, abs=0.1)
    assert 0.0 < summary["drift_m"] < 2.0
    # the conditions flown: the [sim] table, its defaults filled in, and the
    # simulated craft's own hover throttle
    hover = sim_lockstep(mount_tilt_deg=2.0, wind_mps=0.5).model.hover_throttle()
    assert summary["sim"] == {"mount_tilt_deg": 2.0, "mount_tilt_axis_deg": 0.0,
                              "wind_mps": 0.5, "wind_from_deg": 0.0, "seed": 0,
                              "firmware": "stock", "hover_throttle": round(hover, 4),
                              "mass_kg": 1.0, "drag": 0.35, "gust_mps": 0.0,
                              "telemetry_latency_s": 0.0, "attitude_kp": 2.5,
                              "texture": 1.0, "flow_scale": 1.0, "flow_noise": 1.0,
                              "range_scale": 1.0,
                              "texture_dropout_at_s": 0.0, "texture_dropout_s": 0.0,
                              "imu": True, "faults": [], "faults_injected": []}
    assert svg.read_text().lstrip().startswith("<?xml")


def test_faults_are_refused_where_they_would_not_be_injected(tmp_path, capsys):
    """The SITL flies without the built-in model's fault switches: a run that looked
    as if it survived its faults would say nothing true."""
    f = tmp_path / "faulty.toml"
    f.write_text(SHORT + """
[[sim.faults]]
at_s = 5
action = "disarm"
""")
    assert main(["mission", "run", str(f), "--sim", "--backend", "sitl",
                 "--sitl", str(tmp_path / "none.elf")]) == 1
    err = capsys.readouterr().err
    assert "sim.faults" in err and "SITL" in err and "Traceback" not in err


def test_run_sim_with_a_fault_aborts_on_what_the_fc_reports(tmp_path, capsys):
    f = tmp_path / "faulty.toml"
    f.write_text(SHORT + """
[[sim.faults]]
at_s = 5
action = "raise_alarm"
element = "Attitude"
""")
    assert main(["mission", "run", str(f), "--sim", "--json"]) == 2
    summary = json.loads(capsys.readouterr().out)
    assert summary["completed"] is False
    assert summary["abort_monitor"] == "alarms"
    assert "Attitude=Critical" in summary["abort_reason"]
    assert summary["sim"]["faults"] == [{
        "at_s": 5.0, "action": "raise_alarm", "up": True, "down": True,
        "element": "Attitude", "level": "Critical", "roll_dps": 0.0, "pitch_dps": 0.0,
        "yaw_dps": 0.0, "object": "FlightStatus"}]
    assert summary["sim"]["faults_injected"] == [{"t": 5.0, "fault": "alarm Attitude=Critical"}]


def test_run_sim_without_drift_compensation_prints_progress(tmp_path, capsys):
    f = tmp_path / "short.toml"
    f.write_text(SHORT)
    assert main(["mission", "run", str(f), "--sim", "--no-drift-compensation"]) == 0
    out = capsys.readouterr().out
    assert "step 3 (hover)" in out and "mission short: completed" in out
    assert "drift compensation off" in out
    # without the loop the [sim] tilt and wind really act: the craft drifts away
    drift = re.search(r"over the 5 s hover: drift ([0-9.]+) m", out)
    assert drift is not None, out
    assert float(drift.group(1)) > 2.0


def test_ctrl_c_aborts_into_the_failsafe(tmp_path):
    f = tmp_path / "long.toml"
    f.write_text(SHORT.replace("seconds = 5", "seconds = 3000"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipilot", "mission", "run", str(f), "--sim"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 120
    for line in proc.stdout:  # wait until the hover has begun
        lines.append(line)
        if "hover(" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the mission did not stop after Ctrl-C")
    out = "".join(lines) + out
    assert proc.returncode == 2, out + err
    assert "abort: interrupted (Ctrl-C)" in out
    assert "failsafe land done: disarmed" in out
    assert "ABORTED: interrupted (Ctrl-C)" in out


HOLD = str(ROOT / "examples" / "hold.toml")


@pytest.mark.parametrize("argv, key, words", [
    # a hold mission on the rig without the deck: what to add
    ([HOLD], "hold.enabled", ["--flowdeck", "--spi DEV --i2c BUS", "--imu"]),
    ([HOLD, "--sim", "--flowdeck"], "--flowdeck", ["with --sim"]),
    ([HOLD, "--imu"], "--imu", ["add --flowdeck"]),
])
def test_mission_run_refuses_what_cannot_fly_with_one_line(argv, key, words, capsys):
    assert main(["mission", "run", *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"pipilot: error: config {key}: "), err
    assert all(w in err[0] for w in words), err


def test_a_mission_that_wants_imu_rates_needs_imu(tmp_path, capsys):
    f = tmp_path / "imu.toml"
    f.write_text(Path(HOLD).read_text().replace("[hold]\n", '[hold]\nrates = "imu"\n'))
    assert main(["mission", "run", str(f), "--flowdeck"]) == 1
    err = capsys.readouterr().err
    assert "hold.rates" in err and "add --imu" in err


def test_mission_run_with_a_missing_deck_refuses_to_start_in_one_line():
    """As `pipilot fly --flowdeck`: the deck is opened before anything connects."""
    out = subprocess.run(
        [sys.executable, "-m", "pipilot", "mission", "run", HOLD, "--flowdeck",
         "--spi", "/dev/spidev9.9", "--telemetry-port", "tcp:127.0.0.1:9"],
        capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "/dev/spidev9.9" in lines[0] and "dtparam=spi=on" in lines[0]
