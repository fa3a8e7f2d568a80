"""`pipilot fly` serves the page: URL printed (the token only to a terminal), status answers."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipilot.link.virtual import VirtualLink

ROOT = Path(__file__).parents[2]


def test_fly_serves_the_page_with_the_config_token(tmp_path):
    cfg = tmp_path / "pilot.toml"
    cfg.write_text('[realtime]\nmlockall = false\n[server]\ntoken = "cfg-token"\n'
                   "heartbeat_timeout_ms = 250\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path)}
    env.pop("PIPILOT_TOKEN", None)
    with VirtualLink(callback=lambda data, times: None) as link:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipilot", "fly", "--sbus-port", link.path, "--config",
             str(cfg), "--http-port", "0"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            # stdout is a pipe, as under systemd: the URL, never the token itself
            m = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=TOKEN \(TOKEN not shown.*"
                          r"config's \[server\] token", line)
            assert m and "cfg-token" not in line, line
            base = f"http://127.0.0.1:{m.group(1)}"
            req = urllib.request.Request(f"{base}/api/status",
                                         headers={"Authorization": "token cfg-token"})
            deadline = time.monotonic() + 20
            while True:  # frames flow from the core to the page's statistics
                with urllib.request.urlopen(req, timeout=10) as r:
                    body = json.loads(r.read())
                if body["sbus"]["frames_sent"] > 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert body["armed"] is False and body["telemetry_connected"] is False
            assert body["sbus"]["frames_sent"] > 0
            try:
                urllib.request.urlopen(f"{base}/api/status", timeout=10)
                raise AssertionError("status without the token must be refused")
            except urllib.error.HTTPError as exc:
                assert exc.code == 401
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
            time.sleep(0.1)
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["stopped"]
    assert "cfg-token" not in out + err


def test_fly_refuses_a_public_address_without_a_token(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "pipilot", "fly", "--sbus-port", "/dev/null",
                        "--http-host", "0.0.0.0", "--token", ""], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "non-loopback" in r.stderr and "Traceback" not in r.stderr
