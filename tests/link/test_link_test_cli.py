"""`pipilot link-test` on the virtual link, with and without a loopback."""

import json
import os
import select
import subprocess
import sys
import threading
import tty
from pathlib import Path

import pytest

from pipilot.cli.link_test import pattern_channels

ROOT = Path(__file__).parents[2]


class Loopback:
    """A pty whose far end echoes every byte back (TX jumpered to RX)."""

    def __init__(self, echo=True):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.echo = echo
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            if select.select([self.master], [], [], 0.05)[0]:
                data = os.read(self.master, 4096)
                if self.echo:
                    os.write(self.master, data)

    def close(self):
        self.stop.set()
        self.thread.join()
        os.close(self.master)
        os.close(self.slave)


def link_test(*args):
    return subprocess.run([sys.executable, "-m", "pipilot", "link-test", *args],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("pattern", ["neutral", "sweep"])
def test_loopback_frames_are_verified(pattern):
    lb = Loopback()
    try:
        r = link_test("--port", lb.path, "--duration", "1", "--pattern", pattern, "--json")
    finally:
        lb.close()
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["frames_sent"] >= 70 and res["write_errors"] == 0
    assert res["loopback"]["frames_verified"] >= 0.9 * res["frames_sent"]
    assert res["loopback"]["frames_corrupt"] == 0
    assert abs(res["mean_period_s"] - 0.007) < 0.0007
    assert 0 <= res["lateness_p50_s"] <= res["lateness_p99_s"] <= res["lateness_max_s"] < 1.0
    # the longest gap between two writes spans at least one period, and less than the run
    assert res["mean_period_s"] * 0.9 <= res["longest_gap_s"] < 1.0


def test_without_loopback_the_text_report_says_so():
    lb = Loopback(echo=False)
    try:
        r = link_test("--port", lb.path, "--duration", "0.5", "--period-ms", "14")
    finally:
        lb.close()
    assert r.returncode == 0, r.stderr
    assert "mean period" in r.stdout and "lateness p50" in r.stdout
    assert "longest gap" in r.stdout and "no jumper" in r.stdout


def test_bad_period_and_port():
    r = link_test("--port", "/dev/ttyNOPE", "--period-ms", "2")
    assert r.returncode == 1 and "--period-ms" in r.stderr
    r = link_test("--port", "/dev/ttyNOPE", "--duration", "0.2")
    assert r.returncode == 1 and "no such port" in r.stderr


def test_sweep_can_never_arm():
    for t in [i * 0.05 for i in range(100)]:
        ch = pattern_channels("sweep", t)
        assert ch[0] == 172 and ch[1] == 992        # throttle off, yaw centred
        assert all(172 <= v <= 1811 for v in ch)
    assert len({pattern_channels("sweep", t)[5] for t in (0, 0.5, 1.0)}) == 3
