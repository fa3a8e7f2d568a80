"""Memory of the production processes: RSS and locked memory, with frame timing.

For each case it starts the process, lets it warm up, samples
/proc/PID/status (VmRSS, VmHWM, VmLck) every `--sample` s over `--seconds`,
then stops it with SIGTERM and reads the frame timing from the JSON the
process prints at exit (the pump's lateness p50/p99/max, missed slots,
watchdog frames):

- `fly-headless`: `pipilot fly --headless` against the simulated CC3D (in this
  process, on pty pairs; see bench/_flyrig.py), with telemetry;
- `fly-page`: the same serving the page, a scripted pilot flying it;
- `sim-headless`, `sim-page`: `pipilot sim`, the whole stack in one process.

With `--baseline-tree DIR` (another checkout, its extensions built) every case
also runs from that tree, interleaved with this one (A B A B ...) so both see
the same machine load, and the JSON gives both and their ratio. With
`--unlocked` every fly case also runs with `[realtime] mlockall = false`.

Usage: python bench/memory.py [--seconds 20] [--rounds 1] [--cases fly-headless,...]
                              [--baseline-tree DIR] [--unlocked]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

CASES = ("fly-headless", "fly-page", "sim-headless", "sim-page")
WARMUP_S = 5.0


async def measure(case: str, *, tree: Path | None, seconds: float, sample_s: float,
                  locked: bool, workdir: Path) -> dict[str, Any]:
    """One run of `case` from `tree`: memory samples and the exit timing."""
    command, mode = case.split("-")
    page = mode == "page"
    config = None
    if not locked:
        config = workdir / "unlocked.toml"
        config.write_text("[realtime]\nmlockall = false\n")
    # `pipilot sim` has its simulator inside: none here, for it
    with rig.SimHost() if command == "fly" else contextlib.nullcontext() as sim:
        if sim is not None:
            proc = await rig.spawn(rig.fly_args(sim, page=page, config=config), tree=tree,
                                   workdir=workdir)
        else:
            if not locked:
                raise ValueError("pipilot sim has no configuration file: always locked")
            proc = await rig.spawn(rig.sim_args(page=page), tree=tree, workdir=workdir)
        stop = asyncio.Event()
        flying = None
        report = rig.PilotReport()
        try:
            await proc.wait_started(sim)
            if page:
                url = await proc.wait_url()
                hover = rig.HOVER if sim is None else sim.hover_throttle()
                flying = asyncio.create_task(rig.pilot(url, stop, hover, report))
            await asyncio.sleep(WARMUP_S)
            samples: list[dict[str, int]] = []
            t_end = time.monotonic() + seconds
            while time.monotonic() < t_end:
                if flying is not None and flying.done():
                    flying.result()               # the pilot failed: say why
                st = rig.proc_status(proc.pid)
                if not st:
                    raise RuntimeError(f"{case} exited: {proc.stderr_tail()}")
                samples.append(st)
                await asyncio.sleep(sample_s)
            smaps = rig.rollup(proc.pid)
        finally:
            stop.set()
            if flying is not None:
                await asyncio.wait_for(asyncio.shield(flying), 10.0)
            summary = await proc.stop()
    stats = summary.get("core", summary)         # sim nests the core's stats
    mb = 1 / 1024
    rss = [s["VmRSS"] * mb for s in samples]
    lck = [s.get("VmLck", 0) * mb for s in samples]
    return {
        "rss_mb": round(rig.median(rss), 1),
        "rss_max_mb": round(max(rss), 1),
        "hwm_mb": round(samples[-1]["VmHWM"] * mb, 1),
        "vmlck_mb": round(max(lck), 1),
        "anon_mb": round(smaps.get("Anonymous", 0) * mb, 1),
        "file_mb": round((smaps.get("Rss", 0) - smaps.get("Anonymous", 0)) * mb, 1),
        "threads": samples[-1]["Threads"],
        "samples": len(samples),
        **rig.timing(stats),
        **({"pilot": report.as_dict()} if page else {}),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for c in cases:
        if c not in CASES:
            raise SystemExit(f"unknown case {c!r}: {', '.join(CASES)}")
    variants: list[tuple[str, Path | None, bool]] = [("this", None, True)]
    if args.baseline_tree:
        variants.append(("baseline", Path(args.baseline_tree).resolve(), True))
    if args.unlocked:
        variants += [(f"{name}-unlocked", tree, False) for name, tree, _ in list(variants)]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="pipilot-mem-") as tmp:
        for _ in range(args.rounds):
            for case in cases:
                for name, tree, locked in variants:
                    if not locked and case.startswith("sim"):
                        continue
                    r = await measure(case, tree=tree, seconds=args.seconds,
                                      sample_s=args.sample, locked=locked, workdir=Path(tmp))
                    runs.setdefault(case, {}).setdefault(name, []).append(r)
                    print(f"{case} {name}: rss {r['rss_mb']} MB, locked {r['vmlck_mb']} MB, "
                          f"p99 {r['lateness_p99_ms']} ms", file=sys.stderr, flush=True)
    out: dict[str, Any] = {"seconds": args.seconds, "rounds": args.rounds,
                           "loadavg": [round(x, 2) for x in os.getloadavg()],
                           "cpus": os.cpu_count(), "cases": {}}
    for case, by_variant in runs.items():
        entry: dict[str, Any] = {}
        for name, rs in by_variant.items():
            entry[name] = {k: (rig.median([r[k] for r in rs])
                               if isinstance(rs[0][k], int | float) and not isinstance(
                                   rs[0][k], bool) else rs[-1][k]) for k in rs[0]}
            entry[name]["runs"] = len(rs)
        if "baseline" in entry:
            a, b = entry["this"], entry["baseline"]
            entry["ratio"] = {k: round(a[k] / b[k], 3) for k in
                              ("rss_mb", "vmlck_mb", "lateness_p50_ms", "lateness_p99_ms",
                               "lateness_max_ms") if b.get(k)}
        out["cases"][case] = entry
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="sampling time per run")
    ap.add_argument("--sample", type=float, default=1.0, help="seconds between samples")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--baseline-tree", default=None, metavar="DIR")
    ap.add_argument("--unlocked", action="store_true",
                    help="also run the fly cases with mlockall off")
    args = ap.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
