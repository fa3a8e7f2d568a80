#!/usr/bin/env python3
"""Web flood benchmark: does a flood of idle connections disturb the flight?

A real `pipilot fly` streams S.Bus to a simulated CC3D (on ptys, in this
process) and serves its page; a page (a websocket client in this process)
arms the craft and flies it at low throttle, sending its sticks at 20 Hz. N
idle, half-sent HTTP requests are then opened from other processes, held for
a second and dropped at once (tests/server/flood.py). Per run it reports:
the pump's watchdog frames during the flood (the core fell silent for
`watchdog.stale_ms`), the flight loop's worst gap between two mixes before
and after the flood (`max_mix_gap_ms`: the worst event-loop stall plus the
20 ms mix interval), the seat states the pilot's page saw, its control
round trips, whether /api/status answered while flooded, and the craft's
state from the simulator.

Candidates, each run `--repeat` times, interleaved so they meet the same load:
- `same-loop`: the web server on the flight loop (the default), behind the
  connection guard;
- `thread`: the web server on its own loop and thread (sharing the GIL);
- `control`: the same flood aimed at a separate server process, `pipilot
  fly` left alone: what the flood's load on the machine does by itself.
A `-fifo` suffix (e.g. `thread-fifo`) runs `pipilot fly` as configured by
default: its flight loop and the threads it starts at SCHED_FIFO 10
(`realtime.loop_priority`, below the pump's 50); without it `loop_priority = 0`
leaves them SCHED_OTHER at nice -10.

Prints one JSON object: every run, and per candidate the worst and median
figures.

    PYTHONPATH=. python bench/web_flood.py [--connections 20000] [--repeat 3]
        [--candidates same-loop,thread,control,same-loop-fifo,thread-fifo,control-fifo]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.server import flood

ROOT = Path(__file__).parents[1]
LAUNCH = ("import os, sys, pipilot.server.runner as r; r.THREADED = {threaded}; "
          "from pipilot.cli import main; sys.exit(main(sys.argv[1:]))")
SINK_SERVER = """
import asyncio, io
from pipilot.link.transport import FrameSink
from pipilot.core.clock import VirtualClock
from pipilot.core.config import CoreConfig
from pipilot.core.vehicle import Vehicle
from pipilot.server.app import ServerConfig
from pipilot.server.runner import serve

async def main():
    vehicle = Vehicle.create(FrameSink(lambda t, f: None), CoreConfig(), VirtualClock(1.0))
    await vehicle.start()
    async with serve(vehicle, ServerConfig(token="x", port=0), out=io.StringIO(),
                     thread=False) as url:
        print(url.split("/?")[0].rsplit(":", 1)[1], flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


async def run(candidate: str, n: int) -> dict[str, Any]:
    base = candidate.removesuffix("-fifo")
    launcher = LAUNCH.format(threaded=base == "thread")
    loop_priority = None if base != candidate else 0
    with tempfile.TemporaryDirectory() as d:
        if base != "control":
            return await flood.fly_through_flood(n, Path(d), launcher=launcher,
                                                     loop_priority=loop_priority)
        sink = subprocess.Popen([sys.executable, "-c", SINK_SERVER], cwd=ROOT,
                                stdout=subprocess.PIPE, text=True)
        try:
            assert sink.stdout is not None
            port = int(sink.stdout.readline())
            original = flood.Flood.__init__

            def elsewhere(self: flood.Flood, host: str, _port: int, count: int) -> None:
                original(self, host, port, count)

            flood.Flood.__init__ = elsewhere  # type: ignore[method-assign]
            try:
                return await flood.fly_through_flood(n, Path(d), launcher=launcher,
                                                     loop_priority=loop_priority)
            finally:
                flood.Flood.__init__ = original  # type: ignore[method-assign]
        finally:
            sink.kill()
            sink.wait()


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"runs": 0}
    wd = [r["watchdog_frames"] for r in ok]
    gap = [r["mix_gap_worst_ms_after"] for r in ok]
    return {
        "runs": len(ok),
        "watchdog_frames_total": sum(wd),
        "runs_with_watchdog_frames": sum(1 for w in wd if w),
        "mix_gap_worst_ms_max": max(gap),
        "mix_gap_worst_ms_median": statistics.median(gap),
        "runs_with_seat_silent": sum(1 for r in ok if "silent" in r["pilot_seat_states"]),
        "runs_with_seat_silent_while_page_on_time": sum(
            1 for r in ok if "silent" in r["pilot_seat_states"]
            and r["pilot_send_gap_worst_ms"] < 250),
        "runs_status_failed": sum(1 for r in ok if r["status_while_flooded"] != "ok"),
        "runs_disarmed_or_failsafe": sum(1 for r in ok if not r["armed"]
                                         or r["failsafe_state"] != "normal"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--connections", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--candidates",
                    default="same-loop,thread,control,same-loop-fifo,thread-fifo,control-fifo")
    args = ap.parse_args()
    candidates = args.candidates.split(",")
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in candidates}
    for _ in range(args.repeat):
        for c in candidates:
            try:
                runs[c].append(asyncio.run(run(c, args.connections)))
            except Exception as exc:  # a run that could not start (a busy pty) is reported
                runs[c].append({"error": repr(exc)[:300]})
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(json.dumps({
        "connections": args.connections,
        "loadavg_at_end": load,
        "summary": {c: summary(r) for c, r in runs.items()},
        "runs": runs,
    }, indent=1))


if __name__ == "__main__":
    main()
