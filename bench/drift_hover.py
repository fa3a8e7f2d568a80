"""Hover drift in the simulator, drift compensation off against on.

The issue's figure: a 60 s hover (examples/hover.toml) with the board mounted
2 degrees off level and a 0.5 m/s wind, over several simulator seeds (sensor
biases and noise) and wind directions. Prints one JSON object: per run the
ground-truth drift over the hover with and without compensation, and
medians, percentiles and the ratio off / on.

    PYTHONPATH=. python bench/drift_hover.py [--seeds 0,1,2,3,4] [--wind-from 0,90,180,270]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

from pipilot.cli.mission import fly_sim
from pipilot.mission.spec import load_mission

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--wind-from", default="270,0")
    p.add_argument("--mission", default=str(ROOT / "examples" / "hover.toml"))
    p.add_argument("--firmware", choices=("stock", "patched"),
                   help="simulated firmware (default: the mission's [sim] table)")
    args = p.parse_args()
    base = load_mission(args.mission)
    assert base.sim is not None
    runs = []
    t0 = time.perf_counter()
    for wind_from in (float(x) for x in args.wind_from.split(",")):
        for seed in (int(x) for x in args.seeds.split(",")):
            sim = dataclasses.replace(base.sim, seed=seed, wind_from_deg=wind_from,
                                      firmware=args.firmware or base.sim.firmware)
            spec = dataclasses.replace(base, sim=sim)
            _, off = fly_sim(spec, drift=False, handle_sigint=False)
            _, on = fly_sim(spec, drift=True, handle_sigint=False)
            runs.append({
                "seed": seed, "wind_from_deg": wind_from,
                "drift_off_m": off["drift_m"], "drift_on_m": on["drift_m"],
                "ratio": round(off["drift_m"] / max(on["drift_m"], 1e-6), 2),
                "final_speed_on_mps": on["hover_final_speed_mps"],
                "max_speed_on_mps": on["hover_max_speed_mps"],
                "completed": off["completed"] and on["completed"],
            })
    on_m = [r["drift_on_m"] for r in runs]
    off_m = [r["drift_off_m"] for r in runs]
    ratios = sorted(r["ratio"] for r in runs)

    def pct(xs: list[float], q: float) -> float:
        xs = sorted(xs)
        return round(xs[min(len(xs) - 1, round(q * (len(xs) - 1)))], 3)

    out = {
        "benchmark": "drift_hover",
        "mission": Path(args.mission).name,
        "conditions": {"mount_tilt_deg": base.sim.mount_tilt_deg, "wind_mps": base.sim.wind_mps,
                       "hover_s": 60, "firmware": args.firmware or base.sim.firmware},
        "runs": runs,
        "drift_off_m": {"median": round(statistics.median(off_m), 3), "p10": pct(off_m, 0.1),
                        "p90": pct(off_m, 0.9)},
        "drift_on_m": {"median": round(statistics.median(on_m), 3), "p10": pct(on_m, 0.1),
                       "p90": pct(on_m, 0.9)},
        "ratio_median": round(statistics.median(ratios), 2),
        "ratio_min": ratios[0],
        "runs_at_least_10x": sum(r >= 10 for r in ratios),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
