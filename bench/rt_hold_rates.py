"""The real-time hold's body rates: does the deck's IMU reach the hold in time?

`pipilot sim` and `pipilot fly --flowdeck --imu` read the MPU-6050 at 500 Hz
on the `SensorReader` thread, beside the flow deck, and the hold takes its
rates from it while the newest sample is younger than `imu_timeout_s`
(50 ms); older, it falls back to AttitudeState differences. This runs the
real-time simulator (its model stepping on a thread, as `pipilot sim`), the
deck's drivers over the simulated buses and a reader thread for ``--seconds``,
with and without the IMU, and reports, from the samples as the event loop
receives them:

- ``imu_hz``: IMU samples a second that reached the loop;
- ``imu_gap_ms``: p50, p99 and max of the gap between consecutive samples'
  stamps, and ``arrival_gap_ms`` between the loop's receptions of them;
- ``stale_share``: the share of 20 ms hold ticks at which the newest IMU
  sample was older than `imu_timeout_s` (the hold would fly on AttitudeState);
- ``cpu_per_s``: the process's CPU seconds per wall second (the model's
  thread included), and ``reader_faults``, ``dropped``.

    PYTHONPATH=. python bench/rt_hold_rates.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import time
from typing import Any

from _percentile import pct

from pipilot.cli._flowdeck import deck_poller, sim_drivers
from pipilot.control.holdconfig import HoldConfig
from pipilot.core.clock import MonotonicClock
from pipilot.sensors.reader import SensorReader, TimedImu
from pipilot.sim.model import SimulatedCC3D
from pipilot.sim.runner import RealtimeSim

TICK_S = 0.02


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def measure(sim: RealtimeSim, seconds: float, imu: bool) -> dict[str, Any]:
    clock = MonotonicClock()
    drivers = await asyncio.to_thread(sim_drivers, sim, clock, texture=1.0, seed=0, imu=imu)
    reader = SensorReader(deck_poller(drivers, clock))
    timeout = HoldConfig().imu_timeout_s
    stamps: list[float] = []
    arrivals: list[float] = []
    ticks = stale = 0
    cpu0, t0 = _cpu(), clock.now()
    reader.start(asyncio.get_running_loop())

    async def read() -> None:
        while True:
            items = await reader.get()
            now = clock.now()
            for item in items:
                if isinstance(item, TimedImu):
                    stamps.append(item.t)
                    arrivals.append(now)

    task = asyncio.create_task(read())
    try:
        while clock.now() - t0 < seconds:
            await asyncio.sleep(TICK_S)
            ticks += 1
            now = clock.now()
            if imu and (not stamps or now - stamps[-1] > timeout):
                stale += 1
    finally:
        task.cancel()
        reader.stop()
        drivers.ranger.stop()
    wall = clock.now() - t0
    cpu = _cpu() - cpu0

    def gaps(xs: list[float]) -> dict[str, float | None]:
        d = [(b - a) * 1e3 for a, b in itertools.pairwise(xs)]
        if not d:
            return {"p50": None, "p99": None, "max": None}
        return {"p50": pct(d, 0.5), "p99": pct(d, 0.99), "max": max(d)}

    return {
        "imu": imu,
        "seconds": round(wall, 2),
        "imu_hz": round(len(stamps) / wall, 1),
        "imu_gap_ms": gaps(stamps),
        "arrival_gap_ms": gaps(arrivals),
        "stale_share": round(stale / ticks, 4) if imu and ticks else None,
        "cpu_per_s": round(cpu / wall, 3),
        "reader_faults": reader.faults,
        "dropped": reader.dropped,
    }


async def main(seconds: float) -> dict[str, Any]:
    runs = []
    for imu in (False, True):
        with RealtimeSim(SimulatedCC3D(seed=0)) as sim:
            runs.append(await measure(sim, seconds, imu))
    return {"bench": "rt_hold_rates", "imu_timeout_s": HoldConfig().imu_timeout_s,
            "loadavg_1min": _loadavg(), "runs": runs}


def _loadavg() -> float | None:
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return None


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=20.0)
    a = p.parse_args()
    t = time.monotonic()
    out = asyncio.run(main(a.seconds))
    out["wall_s"] = round(time.monotonic() - t, 1)
    print(json.dumps(out, indent=2))
