"""`pipilot sensors`: the simulated deck end to end, and one-line errors without a bus."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from pipilot.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipilot", "sensors", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_sim_json_lines_are_valid_and_live() -> None:
    out = run_cli("--sim", "--duration", "2", "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    reports, summary = rows[:-1], rows[-1]["summary"]
    assert len(reports) >= 5             # ten a second; bounds leave room for a loaded machine
    flowing = [r for r in reports if r["flow_samples"]]
    assert flowing and all(r["squal"] > 100 and r["flow_status"] in ("ok", "no motion")
                           for r in flowing)
    ranges = [r["range"] for r in reports if r["range"] is not None]
    assert ranges and all(r["status"] == 0 and 0.6 < r["range_m"] < 1.0 for r in ranges)
    assert summary["faults"] == 0 and summary["flow_valid"] == summary["flow_samples"] > 20
    assert summary["range_valid"] >= 3
    assert sum(abs(r["dx"]) + abs(r["dy"]) for r in reports) > 0   # the scripted sway moves
    # the scale check of docs/sensors.md: the scripted path moves the image about
    # 0.5 rad along X in its first 2 s (0.3 m/s swaying at 0.8 m, plus the pitch);
    # a count taken for a pixel would read ten times off
    assert 0.25 < summary["flow_rad"][0] < 0.9, summary
    assert summary["flow_rad"][0] == pytest.approx(summary["flow_counts"][0] / 477, rel=0.01)


def test_sim_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sensors", "--sim", "--duration", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("squal" in line and "range 0." in line for line in lines)
    assert lines[-1].startswith("flow ") and "0 fault(s)" in lines[-1]


def test_missing_spi_node_is_one_line_with_the_fix() -> None:
    if os.path.exists("/dev/spidev9.9"):
        pytest.fail("this machine has /dev/spidev9.9: the test needs a node that is absent")
    out = run_cli("--spi", "/dev/spidev9.9")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "pipilot: error: /dev/spidev9.9: no such device node: enable SPI with "
        "dtparam=spi=on in /boot/firmware/config.txt and reboot"]


def test_not_a_spidev_node_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sensors", "--spi", "/dev/ttyAMA0"]) == 1
    assert "not a spidev node" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--duration", "nan"], ["--duration", "-1"],
                                  ["--i2c", "-3"], ["--spi", ""]])
def test_bad_values_are_refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sensors", "--sim", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pipilot: error: config --") and "Traceback" not in err


def test_ctrl_c_still_prints_the_summary() -> None:
    # SIGINT at its default in the child: a suite started in the background by a
    # shell inherits it ignored, and Python then never raises KeyboardInterrupt
    proc = subprocess.Popen([sys.executable, "-m", "pipilot", "sensors", "--sim", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()          # running: a report line arrived
        assert json.loads(first)["squal"] > 0
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out.splitlines()[-1])["summary"]
    assert summary["flow_samples"] > 0 and summary["faults"] == 0


def test_sim_imu_shows_the_scripted_rates() -> None:
    out = run_cli("--sim", "--imu", "--duration", "5", "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    reports, summary = rows[:-1], rows[-1]["summary"]
    imus = [r["imu"] for r in reports if r["imu"] is not None]
    assert imus and all(i["samples"] >= 1 for i in imus)
    # the sway's roll rate reaches 0.05 * 2 pi / 11 rad/s = 1.6 deg/s; q 2.2 deg/s
    peak = max(max(abs(i["rates_dps"][0]), abs(i["rates_dps"][1])) for i in imus)
    assert 0.8 < peak < 4.0
    assert all(i["accel_mps2"][2] == pytest.approx(-9.8, abs=0.6) for i in imus)
    assert summary["imu_samples"] > 100 and summary["faults"] == 0


def test_sim_imu_text_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sensors", "--sim", "--imu", "--duration", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(" | rates p " in line and "deg/s" in line for line in lines)
    assert "IMU samples" in lines[-1]


def test_distance_mode_and_budget_reach_the_ranger() -> None:
    out = run_cli("--sim", "--distance-mode", "short", "--timing-budget-ms", "20",
                  "--duration", "1.5", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.splitlines()[-1])["summary"]
    # 20 ms results instead of 100 ms ones: many more in the same time (generous bounds)
    assert summary["range_valid"] >= 15


@pytest.mark.parametrize(("args", "msg"), [
    (["--distance-mode", "medium"], "distance mode 'medium' is not supported"),
    (["--distance-mode", "far"], "distance mode 'far': give short or long"),
    (["--timing-budget-ms", "15"], "timing budget 15 ms in long mode: give one of 20, 33"),
    (["--timing-budget-ms", "0"], "timing budget 0 ms in long mode"),
    (["--imu", "--imu-rate", "5000"], "MPU-6050: sample rate 5000 Hz"),
])
def test_bad_sensor_options_are_one_line(args: list[str], msg: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sensors", "--sim", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pipilot: error: ") and msg in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
