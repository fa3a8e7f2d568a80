"""Real-time mode on pty pairs, and `pipilot sim` end to end (a few seconds each)."""

from __future__ import annotations

import json
import os
import time

import pytest
import serial

from pipilot.cli import main
from pipilot.core.config import CoreConfig
from pipilot.core.setpoints import NEUTRAL
from pipilot.sim import SimulatedCC3D, stick_frame
from pipilot.sim.runner import RealtimeSim
from pipilot.uavtalk import PacketParser, load_definitions

# The pty reader stamps a chunk's bytes back to back from when it read them: on a
# loaded machine a late read runs frames together, and the stock decoder (which
# needs silence before a frame) loses them, as it would on such a wire (seen: under
# half accepted with three test workers on two cores). These real-time tests check
# the wiring with the patched decoder, which takes a frame straight after a good
# one; the stock decoder's rates are checked in virtual time (test_sim_receiver.py,
# test_sim_lockstep_core.py).


def test_realtime_sim_reads_sbus_and_talks_uavtalk_on_ptys() -> None:
    model = SimulatedCC3D(seed=1, firmware="patched")
    with RealtimeSim(model) as rs:
        sbus_fd = os.open(rs.sbus_port, os.O_WRONLY | os.O_NOCTTY)
        tel = serial.Serial(rs.telemetry_port, 9600, timeout=0)
        parser = PacketParser(load_definitions())
        names: dict[str, int] = {}
        frame = stick_frame(NEUTRAL)
        try:
            t0 = next_t = time.monotonic()
            sent = 0
            connected = False   # the FC's receiver, looked at while the frames come
            while time.monotonic() - t0 < 2.0:
                os.write(sbus_fd, frame)
                sent += 1
                if sent % 10 == 0:
                    with rs.lock:
                        connected = connected or model.manual.cmd.connected
                for p in parser.feed(tel.read(4096)):
                    names[p.name or "?"] = names.get(p.name or "?", 0) + 1
                next_t += 0.014
                time.sleep(max(0.0, next_t - time.monotonic()))
            deadline = time.monotonic() + 3.0
            while (rs.ground_truth()["receiver"]["frames_seen"] < sent
                   and time.monotonic() < deadline):
                time.sleep(0.02)
            snap = rs.ground_truth()
        finally:
            os.close(sbus_fd)
            tel.close()
        assert rs.error is None
    rx = snap["receiver"]
    assert rx["frames_seen"] == sent
    assert rx["frames_accepted"] >= 0.95 * sent, rx
    # (not after the stream: the FC's receiver times out once the frames stop, and a
    # loaded machine may run the simulator on for a while before the test looks)
    assert connected
    assert names.get("AttitudeState", 0) >= 5
    assert snap["flight_telemetry"] == "Disconnected"  # nobody did the handshake


@pytest.mark.slow
def test_pipilot_sim_headless_json_summary(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["sim", "--headless", "--duration", "4", "--json", "--firmware", "patched"])
    assert rc == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    for key in ("frames_sent", "frames_accepted", "frames_rejected", "telemetry_connected",
                "telemetry_objects", "armed", "drift_m"):
        assert key in summary
    assert summary["frames_sent"] > 200
    # every frame pipilot wrote reached the simulated wire
    assert summary["frames_seen"] == summary["frames_sent"]
    rejected = summary["frames_rejected"]
    # taken, or refused for its failsafe flag (the core's shutdown frames, and any its
    # watchdog sent on a loaded machine): next to none lost
    decided = summary["frames_accepted"] + rejected["failsafe_flag"]
    assert 0.95 * summary["frames_seen"] <= decided <= summary["frames_seen"], summary
    assert rejected["failsafe_flag"] >= CoreConfig().shutdown.failsafe_frames, summary
    assert summary["telemetry_connected"] is True
    assert summary["telemetry_objects"] >= 10
    assert summary["armed"] is False
    assert summary["drift_m"] == 0.0
    assert summary["sim_error"] is None


def test_pipilot_sim_rejects_bad_wind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--headless", "--duration", "1", "--wind", "north"]) == 1
    assert "--wind" in capsys.readouterr().err


def test_pipilot_sim_refuses_a_period_the_stock_decoder_cannot_follow(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--headless", "--duration", "1", "--period-ms", "5"]) == 1
    assert "period" in capsys.readouterr().err
    # and with the patched decoder the same period is fine
    assert main(["sim", "--headless", "--duration", "1", "--period-ms", "5",
                 "--firmware", "patched", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames_accepted"] >= 0.5 * summary["frames_sent"]


def test_realtime_telemetry_latency_holds_the_bytes_back() -> None:
    # The flight side sends AttitudeState within 130 ms of starting; with 0.6 s of
    # latency nothing may arrive before 0.6 s (a loaded machine only delays it more).
    latency = 0.6
    model = SimulatedCC3D(seed=1)
    with RealtimeSim(model, telemetry_latency_s=latency) as rs:
        tel = serial.Serial(rs.telemetry_port, 9600, timeout=0)
        try:
            first = None
            while time.monotonic() - rs._t0 < 5.0:
                if tel.read(4096):
                    first = rs.model_time() + rs.lag_s  # the time on the model's clock
                    break
                time.sleep(0.005)
        finally:
            tel.close()
        assert rs.error is None
    assert first is not None, "no telemetry within 5 s"
    assert first >= latency


def test_realtime_telemetry_latency_must_be_a_delay() -> None:
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="latency"):
            RealtimeSim(SimulatedCC3D(), telemetry_latency_s=bad)


@pytest.mark.parametrize("bad", ["-0.1", "3", "nan"])
def test_pipilot_sim_rejects_a_bad_telemetry_latency(
        capsys: pytest.CaptureFixture[str], bad: str) -> None:
    assert main(["sim", "--headless", "--duration", "1", "--telemetry-latency", bad]) == 1
    assert "--telemetry-latency" in capsys.readouterr().err
