"""Soak: the production process flown from its page for a long time.

`pipilot fly --sbus-port <pty> --telemetry-port <pty>` runs in a process of its
own against the simulated CC3D (in this process, see bench/_flyrig.py), serving
its page; a scripted pilot on the page's websocket takes the seat, arms and
moves throttle, roll, pitch and yaw smoothly for `--duration` seconds. The fly
process's VmRSS and VmLck are sampled every `--sample` s; at the end it gets
SIGTERM (failsafe frames, then exit) and its final stats JSON gives the frame
timing.

Prints one JSON object: RSS start/end/max, the RSS growth per hour (least
squares over the samples after `--warmup`), VmLck, frames sent, missed slots,
watchdog frames (failsafe frames the pump sent because the core stalled),
lateness p50/p99/max, and what the pilot did. Targets: 0 watchdog frames,
RSS growth <= 1 MB/h. The machine's load average is included: the figures
are measurements on whatever else runs there.

Usage: python bench/soak.py [--duration 600] [--sample 5] [--warmup S] [--tree DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _flyrig as rig

TARGET_GROWTH_MB_PER_H = 1.0


async def soak(duration: float, sample_s: float, warmup_s: float,
               tree: Path | None = None) -> dict[str, Any]:
    mb = 1 / 1024
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="pipilot-soak-") as tmp, rig.SimHost() as sim:
        proc = await rig.spawn(rig.fly_args(sim, page=True), tree=tree, workdir=Path(tmp))
        stop = asyncio.Event()
        report = rig.PilotReport()
        flying: asyncio.Task[rig.PilotReport] | None = None
        samples: list[tuple[float, dict[str, int]]] = []
        try:
            await proc.wait_started(sim)
            url = await proc.wait_url()
            t0 = time.monotonic()
            flying = asyncio.create_task(rig.pilot(url, stop, sim.hover_throttle(), report))
            while (t := time.monotonic() - t0) < duration:
                if flying.done():
                    flying.result()                  # the pilot failed: say why
                    raise RuntimeError("the pilot stopped flying")
                st = rig.proc_status(proc.pid)
                if not st:
                    raise RuntimeError(f"fly exited: {proc.stderr_tail()}")
                samples.append((t, st))
                await asyncio.sleep(min(sample_s, max(0.0, duration - t)))
            st = rig.proc_status(proc.pid)
            if st:
                samples.append((time.monotonic() - t0, st))
        finally:
            stop.set()
            if flying is not None:
                await asyncio.wait_for(asyncio.shield(flying), 10.0)
            stats = await proc.stop()
        frames_seen = sim.frames_seen()
    rss = [(t, s["VmRSS"] * mb) for t, s in samples]
    after = [(t, v) for t, v in rss if t >= warmup_s]
    growth = rig.slope_per_hour(after)
    lck = [s.get("VmLck", 0) * mb for _, s in samples]
    return {
        "duration_s": round(samples[-1][0], 1) if samples else 0.0,
        "samples": len(samples),
        "warmup_s": warmup_s,
        "rss_mb": {"start": round(rss[0][1], 1), "end": round(rss[-1][1], 1),
                   "max": round(max(v for _, v in rss), 1)},
        "rss_growth_mb_per_h": round(growth, 2),
        "rss_growth_samples": len(after),
        "vmlck_mb": {"end": round(lck[-1], 1), "max": round(max(lck), 1)},
        "vmrss_over_vmlck": round(rss[-1][1] / lck[-1], 3) if lck[-1] else None,
        "threads": samples[-1][1].get("Threads"),
        **rig.timing(stats),
        "frames_seen_by_sim": frames_seen,
        "pilot": report.as_dict(),
        "targets_met": {"watchdog_frames": stats.get("watchdog_frames") == 0,
                        "rss_growth": growth <= TARGET_GROWTH_MB_PER_H},
        "loadavg": {"start": [round(x, 2) for x in load_start],
                    "end": [round(x, 2) for x in os.getloadavg()]},
        "cpus": os.cpu_count(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of flight (600)")
    ap.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    ap.add_argument("--warmup", type=float, default=None,
                    help="samples before this are left out of the growth fit "
                         "(default: 60 s, or a third of a shorter run)")
    ap.add_argument("--tree", default=None, metavar="DIR",
                    help="run `pipilot fly` from another checkout (its extensions built)")
    args = ap.parse_args()
    if args.duration <= 0 or args.sample <= 0:
        ap.error("--duration and --sample must be positive")
    warmup = args.warmup if args.warmup is not None else min(60.0, args.duration / 3)
    tree = Path(args.tree).resolve() if args.tree else None
    print(json.dumps(asyncio.run(soak(args.duration, args.sample, warmup, tree)),
                     sort_keys=True))


if __name__ == "__main__":
    main()
