"""Flow-deck hold against no compensation and the drift loop, on mismatched craft.

Per seed a craft is drawn away from what the mission, the drift estimator and
the hold assume (bench/drift_hover.py's `mismatched`: mass +-20 %, drag
+-50 %, hover throttle +-15 %, flow and range scale +-10 %, telemetry latency
20-100 ms, texture 0.3-1, 0.5 m/s wind from a random direction with 0.3 m/s
gusts) on the stock firmware, and examples/hold.toml (a 60 s hold at 1 m) is
flown three ways: no compensation (``[hold] enabled = false``, no drift
loop: an open-loop climb and a plain hover), the accelerometer drift loop,
and the flow hold. A second set flies the flow hold with the floor's texture
gone for 5 s in the middle of the hold. Prints one JSON object.

The flow hold takes its body rates from the deck's MPU-6050 (``--rates imu``,
the default) or, with ``--rates attitude``, from AttitudeState differences
on a deck without an IMU, as before the IMU was wired. ``--flow-noise K``
flies a PMW3901 whose count noise is K times the model's (pipilot.sim.flowdeck
states it as an assumption; the datasheet gives none), and ``--noise-sweep
K1,K2`` flies the flow hold again at each of those: how the figures depend on it.
``--kp-sweep K1,K2`` flies it again on a FC whose attitude loop gain is each K
(``[sim] attitude_kp``) while the hold's lead still assumes the stock 2.5.

    PYTHONPATH=. nice python bench/hold.py [--seeds 0-39] [--jobs 2] [--runs FILE]
                                           [--rates imu|attitude] [--flow-noise K]
                                           [--noise-sweep K1,K2] [--kp-sweep K1,K2]

``--runs FILE`` keeps each finished flight as a JSON line and skips those
already there, so an interrupted run resumes. Each flight records the commit it
flew (``code``, `code_version`); the report counts its flights per commit
(``"code"``; "unrecorded" for flights kept from before the field existed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from _percentile import pct

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drift_hover import MISMATCH_CONDITIONS, mismatched

from pipilot.cli.mission import fly_sim
from pipilot.mission.events import EventKind
from pipilot.mission.spec import MissionSpec, load_mission
from pipilot.sensors.pmw3901 import FRAME_RATE_HZ
from pipilot.sim.flowdeck import COUNTS_PER_RAD, expected_squal, frame_noise_counts

ROOT = Path(__file__).resolve().parents[1]
MODES = ("off", "drift", "flow")
DROPOUT_AT_S = 37.0
"""Simulator time the texture goes: about 30 s into the hold step, which starts
near 7 s (deck start-up, link, arming, a 4 s climb); each run reports where."""
DROPOUT_S = 5.0
STOCK_ATTITUDE_KP = 2.5
"""LibrePilot 16.09's attitude loop gain, which the hold's attitude_lead_s assumes."""
CRAFT_KEYS = ("mass_kg", "drag", "hover_throttle", "telemetry_latency_s", "texture",
              "wind_from_deg", "flow_scale", "range_scale")


def _spec(base: MissionSpec, seed: int, mode: str, dropout_at: float | None,
          rates: str = "imu", flow_noise: float = 1.0,
          attitude_kp: float = STOCK_ATTITUDE_KP) -> MissionSpec:
    assert base.sim is not None
    sim = dataclasses.replace(mismatched(base.sim, seed), firmware="stock",
                              imu=rates == "imu", flow_noise=flow_noise,
                              attitude_kp=attitude_kp)
    if dropout_at is not None:
        sim = dataclasses.replace(sim, texture_dropout_at_s=dropout_at,
                                  texture_dropout_s=DROPOUT_S)
    return dataclasses.replace(base, sim=sim, hold_enabled=mode in ("flow", "dropout"),
                               drift_enabled=mode == "drift",
                               hold=dataclasses.replace(base.hold, rates=rates))


SETTLE_S = 10.0
"""The first seconds of a hold step, where the take-off's transient settles."""


def hold_span(m: Any) -> tuple[float, float] | None:
    """Mission times the longest hold step began and ended (None: none ended)."""
    starts = {e.step: e.t for e in m.events.history
              if e.kind is EventKind.STEP_STARTED and e.action == "hold"}
    spans = [(starts[e.step], e.t) for e in m.events.history
             if e.kind is EventKind.STEP_DONE and e.step in starts]
    return max(spans, key=lambda span: span[1] - span[0]) if spans else None


def anatomy(m: Any) -> dict[str, float] | None:
    """Where a hold step's excursion comes from, from the true positions: how far the
    craft settled from where the step began (the mean after its first SETTLE_S:
    the take-off's transient), how far it strayed from that mean afterwards (gusts,
    and the estimate's own walk), and how far the estimate's error moved."""
    span = hold_span(m)
    if span is None:
        return None
    t0, t1 = span
    rows = [(r["north"], r["east"]) for r in m.samples if t0 <= r["t"] <= t1 and "north" in r]
    late = [(r["north"], r["east"]) for r in m.samples
            if t0 + SETTLE_S <= r["t"] <= t1 and "north" in r]
    if not rows or not late:
        return None
    mean = (statistics.fmean(n for n, _ in late), statistics.fmean(e for _, e in late))
    out = {"settled_offset_m": round(math.dist(rows[0], mean), 4),
           "settled_spread_m": round(max(math.dist(p, mean) for p in late), 4)}
    # the estimate's error (true minus estimated position), against its value at the start
    errs = [(r["north"] - r["est_pn"], r["east"] - r["est_pe"]) for r in m.samples
            if t0 <= r["t"] <= t1 and "north" in r and "est_pn" in r]
    if errs:
        out["estimate_walk_m"] = round(max(math.dist(e, errs[0]) for e in errs), 4)
    return out


def overshoot(m: Any) -> float | None:
    """How far the craft rose above the height it then held, from take-off to the end
    of the (longest) hold step (the climb's overshoot, mostly; gusts' height errors
    too): the highest true height less the mean true height after the step's first
    SETTLE_S.
    Against the settled height, not the target: the hold holds the ranger's reading,
    so a ranger reading short holds the craft above the target by its scale error."""
    span = hold_span(m)
    if span is None:
        return None
    t0, t1 = span
    heights = [(r["t"], -r["down"]) for r in m.samples if r["t"] <= t1 and "down" in r]
    settled = [h for t, h in heights if t >= t0 + SETTLE_S]
    if not settled:
        return None
    top = max(h for _, h in heights)
    return round(max(0.0, top - statistics.fmean(settled)), 4)


def fly(args: tuple[str, int, str, str, float, float]) -> dict[str, Any]:
    """One flight: (mission file, seed, mode, rate source, flow noise, the FC's attitude
    Kp) -> its figures."""
    path, seed, mode, rates, flow_noise, attitude_kp = args
    base = load_mission(path)
    dropout_at = DROPOUT_AT_S if mode == "dropout" else None
    spec = _spec(base, seed, mode, dropout_at, rates, flow_noise, attitude_kp)
    t0 = time.perf_counter()
    m, s = fly_sim(spec, drift=mode == "drift", handle_sigint=False)
    holds = [e for e in m.events.history if e.kind is EventKind.HOLD]
    assert spec.sim is not None
    run = {
        "seed": seed, "mode": mode, "rates": rates, "flow_noise": flow_noise,
        "attitude_kp": attitude_kp,
        "completed": s["completed"],
        "abort_reason": s["abort_reason"],
        "max_excursion_m": s.get("max_excursion_m"), "drift_m": s.get("drift_m"),
        "height_error_p90_m": s.get("height_error_p90_m"),
        "height_m": [s.get("hover_height_min_m"), s.get("hover_height_max_m")],
        "on_ground_s": s.get("hover_on_ground_s"),
        "craft": {k: getattr(spec.sim, k) for k in CRAFT_KEYS},
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    run["craft"]["hover_throttle"] = s["sim"]["hover_throttle"]
    if mode == "flow":
        run["anatomy"] = anatomy(m)
        run["overshoot_m"] = overshoot(m)
    if mode == "dropout":
        start = next(e.t for e in m.events.history if e.kind is EventKind.STEP_STARTED
                     and e.action == "hold") + m.started_at
        run["dropout_after_hold_start_s"] = round(DROPOUT_AT_S - start, 2)
        run["hold_events"] = [{"t": round(e.t, 2), "message": e.message} for e in holds]
        run["withdrawn"] = any(e.data.get("state") == "withdrawn" for e in holds)
        run["resumed"] = any(e.message == "hold resumed" for e in holds)
    return run


def flow_floor_m(texture: float, height: float = 1.0, seconds: float = 60.0,
                 poll_hz: float = 100.0, noise: float = 1.0) -> float:
    """Per-axis standard deviation, over ``seconds``, of the random walk that the
    simulated PMW3901's noise leaves in its counts (pipilot.sim.flowdeck's
    `frame_noise_counts`, sqrt(frames per burst) of them a burst, at the model's
    SQUAL): what no estimator fed by this sensor alone can remove."""
    squal = expected_squal(texture, height, height, light=1.0)
    per_burst = frame_noise_counts(squal, noise) * math.sqrt(FRAME_RATE_HZ / poll_hz)
    return per_burst * math.sqrt(poll_hz * seconds) * height / COUNTS_PER_RAD


def _stats(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    v = sorted(xs)
    p90 = pct(v, 0.9)
    return {"median": round(statistics.median(v), 3), "p90": round(p90, 3),
            "max": round(v[-1], 3)}


def _sweep_figures(rs: list[dict[str, Any]]) -> dict[str, Any]:
    """A sweep's seeds, completions, excursion and height error."""
    return {"seeds": len(rs), "completed": sum(r["completed"] for r in rs),
            "max_excursion_m": _stats([r["max_excursion_m"] for r in rs
                                       if r["max_excursion_m"] is not None]),
            "height_error_p90_m": _stats([r["height_error_p90_m"] for r in rs
                                          if r["height_error_p90_m"] is not None])}


def _kp(run: dict[str, Any]) -> float:
    return float(run.get("attitude_kp", STOCK_ATTITUDE_KP))


def code_version(root: Path = ROOT) -> str:
    """The commit the flights fly (``git describe --always --dirty``), so a report
    says which code its figures are from; "unknown" outside a git checkout."""
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _key(seed: int, mode: str, flow_noise: float | None, attitude_kp: float
         ) -> tuple[int, str, float | None, float | None]:
    """A flight's identity in a runs file (without the deck and the hold, the noise and
    the hold's lead are moot; the FC's gain is not, but they are flown stock)."""
    deckless = mode in ("off", "drift")
    return seed, mode, None if deckless else flow_noise, None if deckless else attitude_kp


def summarize(runs: list[dict[str, Any]], *, mission: str, wall_s: float,
              rates: str = "imu", flow_noise: float = 1.0,
              sweep: tuple[float, ...] = (), kp_sweep: tuple[float, ...] = ()
              ) -> dict[str, Any]:
    """The bench's JSON from its flights."""
    stock = STOCK_ATTITUDE_KP
    swept = [r for r in runs if r["mode"] == "flow" and r.get("flow_noise") != flow_noise
             and r.get("flow_noise") in sweep and _kp(r) == stock]
    kp_swept = [r for r in runs if r["mode"] == "flow" and r.get("flow_noise") == flow_noise
                and _kp(r) != stock and _kp(r) in kp_sweep]
    runs = [r for r in runs if r["mode"] in ("off", "drift")
            or (r.get("flow_noise") == flow_noise and _kp(r) == stock)]
    by = {(r["seed"], r["mode"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs if all((r["seed"], m) in by for m in MODES)})
    codes: dict[str, int] = {}
    for r in [*runs, *swept, *kp_swept]:
        codes[r.get("code", "unrecorded")] = codes.get(r.get("code", "unrecorded"), 0) + 1
    out: dict[str, Any] = {
        "benchmark": "hold", "mission": mission,
        "code": dict(sorted(codes.items())),
        "conditions": {**MISMATCH_CONDITIONS, "flow_scale": "+-10 %", "range_scale": "+-10 %",
                       "hold_s": 60, "firmware": "stock", "rates": rates,
                       "flow_noise": flow_noise},
        "seeds": len(seeds),
    }
    for mode in MODES:
        rs = [by[(s, mode)] for s in seeds]
        out[mode] = {
            "completed": sum(r["completed"] for r in rs),
            "max_excursion_m": _stats([r["max_excursion_m"] for r in rs
                                       if r["max_excursion_m"] is not None]),
            "height_error_p90_m": _stats([r["height_error_p90_m"] for r in rs
                                          if r["height_error_p90_m"] is not None]),
        }
    floors = []
    for s in seeds:
        r = by[(s, "flow")]
        r["flow_floor_sigma_m"] = round(flow_floor_m(r["craft"]["texture"],
                                                     noise=flow_noise), 3)
        if r["max_excursion_m"] is not None and r["flow_floor_sigma_m"] > 0:
            floors.append(r["max_excursion_m"] / r["flow_floor_sigma_m"])
    out["flow"]["excursion_over_floor"] = _stats(floors)
    out["flow"]["overshoot_m"] = _stats([by[(s, "flow")]["overshoot_m"] for s in seeds
                                         if by[(s, "flow")].get("overshoot_m") is not None])
    parts = [by[(s, "flow")].get("anatomy") for s in seeds]
    out["flow"]["anatomy"] = {
        k: _stats([p[k] for p in parts if p and k in p])
        for k in ("settled_offset_m", "settled_spread_m", "estimate_walk_m")}
    ratios = []
    for s in seeds:
        off, flow = by[(s, "off")]["max_excursion_m"], by[(s, "flow")]["max_excursion_m"]
        if off is not None and flow is not None:
            ratios.append(round(off / max(flow, 1e-6), 2))
    out["ratio_off_to_flow"] = _stats(ratios) | {"min": min(ratios)} if ratios else None
    out["seeds_at_least_10x"] = sum(r >= 10 for r in ratios)
    drop = sorted((r for r in runs if r["mode"] == "dropout"), key=lambda r: r["seed"])
    out["dropout"] = {
        "runs": len(drop), "seconds": DROPOUT_S, "at_sim_s": DROPOUT_AT_S,
        "completed": sum(r["completed"] for r in drop),
        "withdrawn": sum(r["withdrawn"] for r in drop),
        "resumed": sum(r["resumed"] for r in drop),
        "max_excursion_m": _stats([r["max_excursion_m"] for r in drop
                                   if r["max_excursion_m"] is not None]),
    }
    out["flow_noise_sweep"] = []
    for k in sweep:
        rs = [r for r in swept if r["flow_noise"] == k and r["seed"] in seeds]
        out["flow_noise_sweep"].append({"flow_noise": k, **_sweep_figures(rs)})
    out["attitude_kp_sweep"] = []
    for k in kp_sweep:
        rs = [r for r in kp_swept if _kp(r) == k and r["seed"] in seeds]
        ratios = [by[(r["seed"], "off")]["max_excursion_m"] / max(r["max_excursion_m"], 1e-6)
                  for r in rs if r["max_excursion_m"] is not None
                  and by[(r["seed"], "off")]["max_excursion_m"] is not None]
        out["attitude_kp_sweep"].append({"attitude_kp": k, **_sweep_figures(rs),
                                         "seeds_at_least_10x": sum(x >= 10 for x in ratios)})
    every = runs + swept + kp_swept
    out["runs"] = sorted(every, key=lambda r: (r["seed"], r["mode"], r.get("flow_noise") or 0.0,
                                               _kp(r)))
    out["wall_s"] = round(wall_s, 1)
    out["flight_wall_s"] = round(sum(r.get("wall_s", 0.0) for r in every), 1)
    return out


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(x) for x in text.split(",")]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0-39")
    p.add_argument("--dropout-seeds", default="0-4")
    p.add_argument("--mission", default=str(ROOT / "examples" / "hold.toml"))
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--modes", default=",".join((*MODES, "dropout")),
                   help="which of off, drift, flow, dropout to fly (default: all)")
    p.add_argument("--rates", choices=("imu", "attitude"), default="imu",
                   help="the flow hold's body rates: the deck's MPU-6050 (default) or "
                        "AttitudeState differences (a deck without an IMU)")
    p.add_argument("--flow-noise", type=float, default=1.0, metavar="K",
                   help="the PMW3901 model's count noise times K (default 1)")
    p.add_argument("--noise-sweep", default="", metavar="K1,K2",
                   help="also fly the flow hold with the count noise times each K")
    p.add_argument("--kp-sweep", default="", metavar="K1,K2",
                   help="also fly the flow hold on a FC whose attitude Kp is each K (the "
                        "hold's attitude_lead_s still assumes the stock 2.5)")
    p.add_argument("--runs", metavar="FILE", help="JSON lines of finished flights (resume)")
    p.add_argument("--no-fly", action="store_true",
                   help="fly nothing: sum up the flights already in --runs")
    args = p.parse_args()
    modes = args.modes.split(",")
    sweep = tuple(dict.fromkeys(float(k) for k in args.noise_sweep.split(",")
                                if k and float(k) != args.flow_noise))
    kp_sweep = tuple(dict.fromkeys(float(k) for k in args.kp_sweep.split(",")
                                   if k and float(k) != STOCK_ATTITUDE_KP))
    if "flow" not in modes:
        sweep = kp_sweep = ()
    stock = STOCK_ATTITUDE_KP
    todo = [(args.mission, s, m, args.rates, args.flow_noise, stock)
            for s in _seeds(args.seeds) for m in MODES if m in modes]
    if "dropout" in modes:
        todo += [(args.mission, s, "dropout", args.rates, args.flow_noise, stock)
                 for s in _seeds(args.dropout_seeds)]
    todo += [(args.mission, s, "flow", args.rates, k, stock)
             for k in sweep for s in _seeds(args.seeds)]
    todo += [(args.mission, s, "flow", args.rates, args.flow_noise, k)
             for k in kp_sweep for s in _seeds(args.seeds)]
    runs: list[dict[str, Any]] = []
    if args.runs and Path(args.runs).exists():
        runs = [json.loads(line) for line in Path(args.runs).read_text().splitlines() if line]
        # a file of the other rate source's flights is not mixed into this summary
        runs = [r for r in runs if r["mode"] in ("off", "drift")
                or (r.get("rates", "attitude") == args.rates
                    and r.get("flow_noise") in (args.flow_noise, *sweep))]
        done = {_key(r["seed"], r["mode"], r.get("flow_noise"), _kp(r)) for r in runs}
        todo = [t for t in todo if _key(t[1], t[2], t[4], t[5]) not in done]
    if args.no_fly:
        todo = []
    t0 = time.perf_counter()
    code = code_version()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for run in pool.map(fly, todo):
            run["code"] = code
            runs.append(run)
            if args.runs:
                with open(args.runs, "a", encoding="utf-8") as f:
                    f.write(json.dumps(run) + "\n")
    print(json.dumps(summarize(runs, mission=Path(args.mission).name,
                               wall_s=time.perf_counter() - t0, rates=args.rates,
                               flow_noise=args.flow_noise, sweep=sweep,
                               kp_sweep=kp_sweep)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
