"""Where the compensated hover drift comes from: an error budget against ground truth.

The drift estimator separates ground velocity from wind only through the
moment of lift-off (ground velocity zero) and the kinematic acceleration
integrated from there; in a steady hover the split is unobservable, so an
error ``e`` (m/s) in it when the hover starts becomes about ``60 s x e`` of
drift. For each simulator case this flies examples/hover.toml with
compensation on, logs the estimator against the simulator's ground truth, and
prints one JSON object with, per run:

- ``drift_on_m``; ``velocity_error_mps``: the estimator's ground-velocity
  error averaged over the hover (north, east), and
  ``drift_from_velocity_error_m``, its length times the hover time.
- ``wind_error_at_hover_mps``: estimated minus true wind when the hover starts.
- ``kinematics_error_mps``: velocity error of integrating the estimator's
  kinematic model (AccelState and AttitudeState samples plus its model of the
  flight controller's attitude error and of the accelerometer bias) from
  lift-off to the start of the hover; ``kinematics_error_true_fc_mps``: the
  same with the flight controller's true attitude error in place of those
  models. ``..._10s_mps``: the same 10 s after lift-off.
- with ``--oracle``: ``drift_oracle_bias_m``, the drift when the estimator's
  accelerometer-bias state starts at the true bias with a tight prior;
  ``drift_oracle_kinematics_m``, when its kinematic acceleration is replaced
  by the true one (noise settings matched: accel_noise 0.005, drag_noise
  0.03); ``drift_oracle_kinematics_bias_m``, both.

``--quad accel_noise=0,accel_bias=0`` flies every run with those simulated
craft parameters (pipilot.sim.dynamics.QuadParams): what-ifs of the IMU. The
mass, drag, hover throttle and gusts are the mission's ``[sim]`` keys.

Ground truth feeds only this diagnosis (the oracle runs patch the estimator's
prediction step), never the estimator of a normal run.

    PYTHONPATH=. python bench/drift_budget.py [--seeds 0,1,2,3,4] [--wind-from 270,0]
        [--oracle] [--quad NAME=VALUE,...]
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from pipilot.control.drift import GRAVITY, DriftEstimator, EstimatorConfig
from pipilot.mission.events import EventKind
from pipilot.mission.lockstep import run_lockstep, sim_lockstep
from pipilot.mission.runner import run_spec
from pipilot.mission.spec import MissionSpec, load_mission
from pipilot.sim.dynamics import QuadParams
from pipilot.sim.model import PHYSICS_DT

ROOT = Path(__file__).resolve().parents[1]
ORACLE_NOISE = {"accel_noise": 0.005, "drag_noise": 0.03}
ORACLES = {"bias": {"bias"}, "kinematics": {"kinematics"},
           "kinematics_bias": {"kinematics", "bias"}}
SIM_KEYS = {"mass": "mass_kg", "drag_xy": "drag", "thrust_to_weight": "hover_throttle",
            "gust_sigma": "gust_mps"}
"""Craft parameters the [sim] table sets (it overrides --quad)."""
LAG_S = 0.05
"""AccelState lags the true specific force by about the FC's AccelTau: compare there."""


class _Truth:
    """Ground truth every physics step: velocity and the FC's attitude error."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.t: list[float] = []
        self.v: list[np.ndarray] = []
        self.fc_err: list[np.ndarray] = []
        model.add_task("budget:truth", PHYSICS_DT, self._log)

    def _log(self, now: float) -> None:
        q = self.model.quad
        board_true = q.truth.r @ q.mount
        # specific force on the board (private: a diagnosis may look inside the model)
        f_board = q.mount.T @ q._specific_force
        self.t.append(now)
        self.v.append(q.truth.velocity[:2].copy())
        # true minus computed NED acceleration from the FC's attitude error
        self.fc_err.append(((board_true - self.model.estimator.r) @ f_board)[:2])

    def _at(self, series: list[np.ndarray], t: float) -> np.ndarray:
        i = min(len(self.t) - 1, max(0, bisect.bisect_left(self.t, t)))
        return series[i]

    def velocity(self, t: float) -> np.ndarray:
        return self._at(self.v, t)

    def fc_error(self, t: float) -> np.ndarray:
        return self._at(self.fc_err, t)


def fly_case(base: MissionSpec, seed: int, wind_from: float, *, oracle: str | None = None,
             quad: dict[str, Any] | None = None) -> dict[str, Any]:
    """One hover with compensation on; ``oracle``: None or a key of ``ORACLES``."""
    assert base.sim is not None
    known = ORACLES[oracle] if oracle is not None else set()
    cond = dataclasses.replace(base.sim, seed=seed, wind_from_deg=wind_from)
    params = dataclasses.replace(QuadParams(), **(quad or {}))
    sim = sim_lockstep(**dataclasses.asdict(cond), params=params)
    truth = _Truth(sim.model)
    estimator = base.estimator
    if "kinematics" in known:
        estimator = dataclasses.replace(estimator, **ORACLE_NOISE)
    # the mission flies its own [mission] hover_throttle, as `mission run --sim` does
    spec = dataclasses.replace(base, sim=cond, estimator=estimator)

    steps: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    current: dict[str, float] = {}
    predict = DriftEstimator._predict
    update = DriftEstimator.update
    ground_update = DriftEstimator._ground_update

    def spy_ground_update(self: DriftEstimator) -> None:
        ground_update(self)
        if "bias" in known:
            self.x[8:10] = sim.model.quad.accel_bias[:2]
            self.P[8, 8] = self.P[9, 9] = 1e-8

    def spy_update(self: DriftEstimator, sample: Any, **kw: Any) -> Any:
        current["t"] = sample.t
        est = update(self, sample, **kw)
        samples.append({"t": sample.t, "x": self.x.copy(), "airborne": not est.on_ground})
        return est

    def spy_predict(self: DriftEstimator, a_h: np.ndarray, dt: float, rot: np.ndarray,
                    share: float) -> None:
        t = current["t"]
        if dt > 0:
            x = self.x
            d_term = share * GRAVITY * x[6:8]
            beta_term = -(1.0 - share) * rot[0:2, 0:2] @ x[8:10]
            true_a = (truth.velocity(t - LAG_S) - truth.velocity(t - dt - LAG_S)) / dt
            steps.append({"t": t, "dt": dt, "a_h": a_h.copy(), "model": a_h + d_term + beta_term,
                          "true": true_a})
            if "kinematics" in known:
                a_h = true_a - d_term - beta_term
        predict(self, a_h, dt, rot, share)

    hover: dict[str, float] = {}

    def on_event(ev: Any) -> None:
        if getattr(ev, "action", None) == "hover":
            if ev.kind is EventKind.STEP_STARTED:
                hover["start"] = ev.t
            elif ev.kind is EventKind.STEP_DONE:
                hover["end"] = ev.t

    with mock.patch.object(DriftEstimator, "_predict", spy_predict), \
            mock.patch.object(DriftEstimator, "update", spy_update), \
            mock.patch.object(DriftEstimator, "_ground_update", spy_ground_update):
        _, summary = run_lockstep(sim, lambda: run_spec(spec, sim.vehicle, drift=True,
                                                         on_event=on_event))
    out: dict[str, Any] = {"seed": seed, "wind_from_deg": wind_from,
                           "drift_on_m": summary.get("drift_m")}
    if oracle is not None or not steps or "start" not in hover or "end" not in hover:
        return out
    t_lift = steps[0]["t"] - steps[0]["dt"]
    fc0 = truth.fc_error(t_lift - 0.3)  # at rest: the estimator's ground calibration
    kin_model = np.zeros(2)
    kin_true_fc = np.zeros(2)
    kin: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    marks = [("hover_start", hover["start"]), ("liftoff_10s", t_lift + 10.0)]
    for s in steps:
        while marks and s["t"] > marks[0][1]:
            kin[marks.pop(0)[0]] = (kin_model.copy(), kin_true_fc.copy())
        kin_model += (s["model"] - s["true"]) * s["dt"]
        fc = truth.fc_error(s["t"] - LAG_S) - fc0
        kin_true_fc += (s["a_h"] + fc - s["true"]) * s["dt"]
    wind = sim.model.quad.wind_mean[:2]
    at_start = next(s for s in samples if s["t"] >= hover["start"])
    errs = [s["x"][0:2] - truth.velocity(s["t"]) for s in samples
            if hover["start"] <= s["t"] <= hover["end"]]
    v_err = np.mean(errs, axis=0)

    def r(v: np.ndarray) -> list[float]:
        return [round(float(a), 4) for a in v]

    out.update({
        "hover_s": round(hover["end"] - hover["start"], 2),
        "velocity_error_mps": r(v_err),
        "drift_from_velocity_error_m": round(float(np.hypot(*v_err))
                                             * (hover["end"] - hover["start"]), 3),
        "wind_error_at_hover_mps": r(at_start["x"][2:4] - wind),
        "kinematics_error_mps": r(kin["hover_start"][0]),
        "kinematics_error_true_fc_mps": r(kin["hover_start"][1]),
        "kinematics_error_10s_mps": r(kin["liftoff_10s"][0]),
        "kinematics_error_true_fc_10s_mps": r(kin["liftoff_10s"][1]),
    })
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--wind-from", default="270,0")
    p.add_argument("--mission", default=str(ROOT / "examples" / "hover.toml"))
    p.add_argument("--oracle", action="store_true", help="also fly the oracle runs per case")
    p.add_argument("--quad", default="", help="simulated craft parameters, NAME=VALUE,...")
    args = p.parse_args()
    quad: dict[str, Any] = {}
    for item in filter(None, args.quad.split(",")):
        name, _, value = item.partition("=")
        if name not in {f.name for f in dataclasses.fields(QuadParams)}:
            p.error(f"--quad: unknown parameter {name!r}")
        if name in SIM_KEYS:
            p.error(f"--quad: {name} is the mission's [sim] {SIM_KEYS[name]}: set it there")
        quad[name] = float(value)
    base = load_mission(args.mission)
    if base.sim is None:
        p.error("the mission has no [sim] table")
    t0 = time.perf_counter()
    runs = []
    for wind_from in (float(x) for x in args.wind_from.split(",")):
        for seed in (int(x) for x in args.seeds.split(",")):
            run = fly_case(base, seed, wind_from, quad=quad)
            if args.oracle:
                for name in ORACLES:
                    run[f"drift_oracle_{name}_m"] = fly_case(
                        base, seed, wind_from, oracle=name, quad=quad)["drift_on_m"]
            runs.append(run)

    def norm(key: str) -> list[float]:
        return [float(np.hypot(*r[key])) for r in runs if key in r]

    def stats(xs: list[float]) -> dict[str, float]:
        if not xs:
            return {}
        return {"median": round(statistics.median(xs), 4), "max": round(max(xs), 4)}

    out: dict[str, Any] = {
        "benchmark": "drift_budget",
        "mission": Path(args.mission).name,
        "quad": quad,
        "runs": runs,
        "drift_on_m": stats([r["drift_on_m"] for r in runs]),
        "velocity_error_mps": stats(norm("velocity_error_mps")),
        "wind_error_at_hover_mps": stats(norm("wind_error_at_hover_mps")),
        "kinematics_error_mps": stats(norm("kinematics_error_mps")),
        "kinematics_error_true_fc_mps": stats(norm("kinematics_error_true_fc_mps")),
        "kinematics_error_10s_mps": stats(norm("kinematics_error_10s_mps")),
        "kinematics_error_true_fc_10s_mps": stats(norm("kinematics_error_true_fc_10s_mps")),
        "estimator_config": dataclasses.asdict(EstimatorConfig()),
        "wall_s": 0.0,
    }
    if args.oracle:
        for name in ORACLES:
            key = f"drift_oracle_{name}_m"
            out[key] = stats([r[key] for r in runs])
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
