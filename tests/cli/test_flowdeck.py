"""The flow deck as `pipilot sim` and `pipilot fly` set it up: the drivers over the
real-time model's register models, and one clear line when the real deck is missing."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time

from pipilot.cli._flowdeck import sim_drivers
from pipilot.core.clock import MonotonicClock
from pipilot.sensors.reader import FlowDeckPoller, TimedFlow, TimedRange
from pipilot.sim.model import SimulatedCC3D
from pipilot.sim.runner import RealtimeSim


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipilot", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_drivers_read_the_realtime_models_deck_through_the_register_models() -> None:
    clock = MonotonicClock()
    with RealtimeSim(SimulatedCC3D(seed=3)) as sim:
        flow, ranger = sim_drivers(sim, clock, texture=1.0, seed=3)   # IDs checked here
        poller = FlowDeckPoller(flow, ranger, clock)
        flows: list[TimedFlow] = []
        ranges: list[TimedRange] = []
        deadline = time.monotonic() + 5.0   # a loaded machine; the ranger answers in 0.1 s
        while time.monotonic() < deadline and not (ranges and len(flows) > 10):
            for item in poller.poll():
                if isinstance(item, TimedFlow):
                    flows.append(item)
                elif isinstance(item, TimedRange):
                    ranges.append(item)
            time.sleep(0.01)
        ranger.stop()
        with sim.lock:
            true_height = sim.model.flowdeck_truth().height_m
    assert len(flows) > 10 and ranges
    assert all(a.t <= b.t for a, b in itertools.pairwise(flows))
    valid = [r.sample.range_m for r in ranges if r.sample.valid]
    # on the ground: the deck sits at its clearance, seen by the ranger within noise
    assert valid and all(abs(r - true_height) < 0.02 for r in valid)


def test_fly_with_a_missing_deck_refuses_to_start_in_one_line() -> None:
    out = run_cli("fly", "--sbus-port", "/dev/null", "--headless", "--flowdeck",
                  "--spi", "/dev/spidev9.9")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "/dev/spidev9.9" in lines[0] and "dtparam=spi=on" in lines[0]
    assert '"stopped"' not in out.stdout   # nothing was streamed


def test_sim_refuses_a_texture_outside_0_to_1() -> None:
    out = run_cli("sim", "--headless", "--duration", "1", "--texture", "1.5")
    assert out.returncode == 1 and "--texture" in out.stderr and "Traceback" not in out.stderr
