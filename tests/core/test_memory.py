"""`pipilot fly` as a process on a Pi's memory: what it locks, what it holds, what it imports.

A Pi Zero 2 has 512 MB. Locking with MCL_CURRENT | MCL_FUTURE alone faulted in
every mapping (184 MB resident for a headless fly, 320 MB locked); the lock
is now taken on fault, over a small address space (bounded thread stacks,
one malloc arena), and `fly` does not load numpy.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipilot.link.virtual import VirtualLink

ROOT = Path(__file__).parents[2]
RSS_SANITY_MB = 120        # a bench figure is about 45 MB: this only catches a regression
LOCK_SLACK_MB = 16         # library pages never touched, idle thread stacks


def env():
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmLck"):
                out[key] = int(rest.split()[0]) / 1024
    return out


def test_fly_locks_no_more_than_it_holds_and_holds_little(tmp_path):
    # the default configuration: mlockall on (root here, so it locks)
    got = []
    with VirtualLink(callback=lambda data, times: got.append(len(data))) as link:
        proc = subprocess.Popen([sys.executable, "-m", "pipilot", "-v", "fly", "--sbus-port",
                                 link.path, "--headless"], env=env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while sum(got) < 100 * 25 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)                      # flying: the pump and the mixer at work
            seen = status(proc.pid) if proc.poll() is None else {}
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert seen, err
    assert json.loads(out.strip().splitlines()[-1])["frames_sent"] >= 100
    if os.geteuid() == 0:                     # CAP_IPC_LOCK: the lock is taken
        assert "memory locked" in err and seen["VmLck"] > 0, err
    assert seen["VmLck"] <= seen["VmRSS"] + LOCK_SLACK_MB, seen
    assert seen["VmRSS"] <= RSS_SANITY_MB, seen


def test_fly_does_not_import_what_it_does_not_need():
    # every command's module is imported to build the parser: none may pull in
    # numpy (the simulator, the drift estimator, batch encoding), the browser
    # tests' playwright, or the simulator itself
    code = ("import sys\n"
            "from pipilot.cli import build_parser\n"
            "build_parser()\n"
            "import pipilot.cli.fly, pipilot.core.telemetry, pipilot.server.runner\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numpy', 'playwright') or m.startswith('pipilot.sim')))\n")
    r = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_batch_encoding_still_finds_numpy():
    from pipilot import sbus

    frames = sbus.encode_batch([[992] * 16, [172] * 16])
    assert frames.shape == (2, 25)
    assert bytes(frames[0]) == sbus.encode([992] * 16)


def test_the_command_line_restores_the_thread_stack_size(monkeypatch):
    import threading

    from pipilot.cli import main

    before = threading.stack_size()
    assert main(["fly", "--sbus-port", "/dev/ttyNOPE", "--headless"]) == 1
    assert threading.stack_size() == before


@pytest.mark.alone     # its page client's heartbeat is real time: nothing beside it
def test_soak_bench_flies_and_reports(tmp_path):
    # the long run is a bench figure (bench/soak.py, 10 min); this checks that it
    # flies the production process from its page and reports what it promises
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--duration", "10",
                        "--sample", "1"], env=env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out["rss_mb"]) == {"start", "end", "max"}
    for key in ("rss_growth_mb_per_h", "lateness_p50_ms", "lateness_p99_ms",
                "lateness_max_ms"):
        assert isinstance(out[key], float), key
    for key in ("missed_slots", "watchdog_frames", "frames_sent", "samples"):
        assert isinstance(out[key], int), key
    assert set(out["vmlck_mb"]) == {"end", "max"}
    rss = out["rss_mb"]
    assert 0 < rss["start"] <= rss["max"] and rss["end"] <= rss["max"]
    assert out["vmlck_mb"]["end"] <= out["vmlck_mb"]["max"]
    assert 0 <= out["lateness_p50_ms"] <= out["lateness_p99_ms"] <= out["lateness_max_ms"]
    # a 7 ms stream for the run's duration (generous: a loaded machine), all of it on the wire
    assert out["duration_s"] / 0.014 <= out["frames_sent"] <= out["duration_s"] / 0.003
    assert 0.9 * out["frames_sent"] <= out["frames_seen_by_sim"] <= out["frames_sent"]
    pilot = out["pilot"]
    assert pilot["seat_taken"] and pilot["armed"] is True and pilot["errors"] == []
    assert pilot["controls_sent"] > 0 and pilot["states_received"] > 0
    assert out["samples"] >= 5
