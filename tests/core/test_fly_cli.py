"""`pipilot fly` as a process: SIGTERM/SIGINT end in failsafe frames, then exit 0."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipilot.link.virtual import VirtualLink
from pipilot.sbus import FrameDecoder

ROOT = Path(__file__).parents[2]


def env():
    return {**os.environ, "PYTHONPATH": str(ROOT)}


class Frames:
    def __init__(self):
        self.dec = FrameDecoder()
        self.frames = []
        self.lock = threading.Lock()

    def __call__(self, data, _times):
        with self.lock:
            self.frames.extend(self.dec.feed(data))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_fly_streams_until_signalled_then_sends_failsafe(tmp_path, sig):
    cfg = tmp_path / "pilot.toml"
    cfg.write_text("[realtime]\nmlockall = false\n[shutdown]\nfailsafe_frames = 20\n")
    got = Frames()
    with VirtualLink(callback=got) as link:
        proc = subprocess.Popen([sys.executable, "-m", "pipilot", "fly", "--sbus-port",
                                 link.path, "--config", str(cfg), "--headless"], env=env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(got.frames) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        time.sleep(0.1)
    assert proc.returncode == 0, err
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["stopped"] and stats["frames_sent"] >= 40
    frames = got.frames
    assert not frames[0].failsafe             # standby: valid frames, throttle off
    assert frames[0].channels[0] == 172
    n = sum(f.failsafe for f in frames)
    assert n >= 20 and all(f.failsafe for f in frames[-n:])
    assert "stock firmware at 7.00 ms" in err   # the start-up rate warning


def test_fly_config_errors_name_the_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[link]\nperiod_ms = 5.0\n")
    r = subprocess.run([sys.executable, "-m", "pipilot", "fly", "--sbus-port", "/dev/null",
                        "--config", str(cfg)], env=env(), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1
    assert "config link.period_ms" in r.stderr and "6.08" in r.stderr


def test_fly_port_errors_are_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pipilot", "fly", "--sbus-port", "/dev/ttyNOPE",
                        "--headless"],
                       env=env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "pipilot: error: /dev/ttyNOPE: no such port" in r.stderr
    assert "Traceback" not in r.stderr


async def test_the_stop_signal_fails_safe_before_the_web_server_winds_down(monkeypatch):
    # the web server's shutdown waits for its handlers (a pilot's websocket may
    # still be publishing): the failsafe frames must not wait for it
    import asyncio
    import contextlib

    from pipilot.cli import fly as fly_cli
    from pipilot.core.config import CoreConfig, RealtimeConfig
    from pipilot.core.flightcore import FlightCore
    from pipilot.core.setpoints import Setpoint
    from pipilot.core.vehicle import Vehicle
    from pipilot.server.app import ServerConfig

    seen = {}

    @contextlib.asynccontextmanager
    async def slow_serve(vehicle, web, token_source=""):
        async def pilot():
            while True:                         # the page keeps flying
                vehicle.mixer.publish("pilot", Setpoint(throttle=0.5))
                await asyncio.sleep(0.01)
        task = asyncio.create_task(pilot())
        try:
            yield "http://test"
        finally:
            seen["running"] = vehicle.core.running
            seen["reason"] = vehicle.core.failsafe.reason
            await asyncio.sleep(0.3)            # handlers finishing
            task.cancel()

    monkeypatch.setattr(fly_cli, "serve", slow_serve)
    cap = Frames()
    with VirtualLink(callback=cap) as link:
        cfg = CoreConfig(realtime=RealtimeConfig(mlockall=False, gc_freeze=False))
        vehicle = Vehicle(FlightCore(link.path, cfg))
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, stop.set)
        await fly_cli.fly(vehicle, stop, ServerConfig(port=0))
        await asyncio.sleep(0.05)
    assert seen == {"running": False, "reason": "shutdown"}
    with cap.lock:
        assert cap.frames[-1].failsafe
