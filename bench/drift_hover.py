"""Hover drift in the simulator, drift compensation off against on.

The issue's figure: a 60 s hover (examples/hover.toml) with the board mounted
2 degrees off level and a 0.5 m/s wind, over several simulator seeds (sensor
biases and noise) and wind directions. Prints one JSON object: per run the
ground-truth drift over the hover with and without compensation, and
medians, percentiles and the ratio off / on.

    PYTHONPATH=. python bench/drift_hover.py [--seeds 0,1,2,3,4] [--wind-from 0,90,180,270]

``--mismatch`` flies, per seed, a craft drawn away from what the mission and
the drift estimator assume (mass +-20 %, drag +-50 %, hover throttle +-15 %,
telemetry latency 20-100 ms, floor texture 0.3-1) in a 0.5 m/s wind from a
random direction with 0.3 m/s gusts; the mission keeps its own
``[mission] hover_throttle`` and ``[drift.estimator] drag_coeff``. Altitude is
open loop, so each run also reports the hover's true heights and its time on
the ground: a craft that never lifted has no drift to speak of.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _percentile import pct

from pipilot.cli.mission import fly_sim
from pipilot.mission.spec import SimSpec, load_mission
from pipilot.sim.model import SimulatedCC3D

ROOT = Path(__file__).resolve().parents[1]
MISMATCH_KEYS = ("mass_kg", "drag", "hover_throttle", "telemetry_latency_s", "texture",
                 "wind_from_deg")
MISMATCH_CONDITIONS = {"mass": "+-20 %", "drag": "+-50 %", "hover_throttle": "+-15 %",
                       "telemetry_latency_s": [0.02, 0.1], "texture": [0.3, 1.0],
                       "wind_mps": 0.5, "gust_mps": 0.3, "wind_from": "random"}


def mismatched(sim: SimSpec, seed: int) -> SimSpec:
    """The [sim] table with a craft drawn for ``seed`` away from the standard one."""
    rnd = random.Random(seed)
    std = SimSpec()
    standard_hover = SimulatedCC3D().hover_throttle()
    drawn = dict(
        seed=seed, mass_kg=round(std.mass_kg * rnd.uniform(0.8, 1.2), 3),
        drag=round(std.drag * rnd.uniform(0.5, 1.5), 3),
        hover_throttle=round(standard_hover * rnd.uniform(0.85, 1.15), 4),
        telemetry_latency_s=round(rnd.uniform(0.02, 0.1), 3),
        texture=round(rnd.uniform(0.3, 1.0), 2), wind_mps=0.5, gust_mps=0.3,
        wind_from_deg=round(rnd.uniform(0.0, 360.0), 1))
    # drawn last, so the craft above stays what it was before the flow deck
    # existed (the drift loop's runs do not read the deck at all)
    drawn.update(flow_scale=round(rnd.uniform(0.9, 1.1), 3),
                 range_scale=round(rnd.uniform(0.9, 1.1), 3))
    return dataclasses.replace(sim, **drawn)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--wind-from", default="270,0")
    p.add_argument("--mission", default=str(ROOT / "examples" / "hover.toml"))
    p.add_argument("--firmware", choices=("stock", "patched"),
                   help="simulated firmware (default: the mission's [sim] table)")
    p.add_argument("--mismatch", action="store_true",
                   help="draw each seed's craft away from what the mission assumes")
    args = p.parse_args()
    base = load_mission(args.mission)
    assert base.sim is not None
    runs = []
    t0 = time.perf_counter()
    winds = [None] if args.mismatch else [float(x) for x in args.wind_from.split(",")]
    for wind_from in winds:
        for seed in (int(x) for x in args.seeds.split(",")):
            if wind_from is None:
                sim = mismatched(base.sim, seed)
            else:
                sim = dataclasses.replace(base.sim, seed=seed, wind_from_deg=wind_from)
            sim = dataclasses.replace(sim, firmware=args.firmware or base.sim.firmware)
            spec = dataclasses.replace(base, sim=sim)
            _, off = fly_sim(spec, drift=False, handle_sigint=False)
            _, on = fly_sim(spec, drift=True, handle_sigint=False)
            run = {
                "seed": seed, "wind_from_deg": sim.wind_from_deg,
                "drift_off_m": off["drift_m"], "drift_on_m": on["drift_m"],
                "ratio": round(off["drift_m"] / max(on["drift_m"], 1e-6), 2),
                "final_speed_on_mps": on["hover_final_speed_mps"],
                "max_speed_on_mps": on["hover_max_speed_mps"],
                "completed": off["completed"] and on["completed"],
            }
            if args.mismatch:
                run["craft"] = {k: getattr(sim, k) for k in MISMATCH_KEYS}
                run["craft"]["hover_throttle"] = on["sim"]["hover_throttle"]
                for mode, s in (("off", off), ("on", on)):
                    run[f"max_excursion_{mode}_m"] = s["max_excursion_m"]
                    run[f"height_{mode}_m"] = [s["hover_height_min_m"], s["hover_height_max_m"]]
                    run[f"on_ground_{mode}_s"] = s["hover_on_ground_s"]
            runs.append(run)
    on_m = [r["drift_on_m"] for r in runs]
    off_m = [r["drift_off_m"] for r in runs]
    ratios = sorted(r["ratio"] for r in runs)

    def spread(xs: list[float]) -> dict[str, float]:
        return {"median": round(statistics.median(xs), 3), "p10": round(pct(xs, 0.1), 3),
                "p90": round(pct(xs, 0.9), 3)}

    flew = [r for r in runs if r.get("on_ground_on_s", 0.0) < 1.0]
    out: dict[str, Any] = {
        "benchmark": "drift_hover",
        "mismatch": args.mismatch,
        "mission": Path(args.mission).name,
        "conditions": {"mount_tilt_deg": base.sim.mount_tilt_deg, "wind_mps": base.sim.wind_mps,
                       "hover_s": 60, "firmware": args.firmware or base.sim.firmware},
        "runs": runs,
        "drift_off_m": spread(off_m),
        "drift_on_m": spread(on_m),
        "ratio_median": round(statistics.median(ratios), 2),
        "ratio_min": ratios[0],
        "runs_at_least_10x": sum(r >= 10 for r in ratios),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    if args.mismatch:
        out["conditions"].update(MISMATCH_CONDITIONS)
        out["conditions"]["mission_hover_throttle"] = base.mission.hover_throttle
        out["conditions"]["estimator_drag_coeff"] = base.estimator.drag_coeff
        out["runs_airborne"] = len(flew)
        for mode in ("off", "on"):
            xs = [r[f"max_excursion_{mode}_m"] for r in flew]
            out[f"max_excursion_{mode}_m"] = ({"median": round(statistics.median(xs), 3),
                                               "p90": round(pct(xs, 0.9), 3), "max": max(xs)}
                                              if xs else None)
        heights = [r["height_on_m"][1] for r in flew]
        out["hover_height_max_on_m"] = ({"median": round(statistics.median(heights), 1),
                                         "max": max(heights)} if heights else None)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
