"""The drift error budget accounts for the drift it explains (figures are not judged here)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_budget_explains_the_drift_by_the_velocity_error(tmp_path: Path) -> None:
    # examples/hover.toml with a 25 s hover instead of 60: the budget's relation
    # (drift = velocity error x hover time) holds for any hover length, and the
    # shorter flight is less than half the simulation
    text = (REPO / "examples" / "hover.toml").read_text()
    assert "\nseconds = 60\n" in text
    mission = tmp_path / "hover25.toml"
    mission.write_text(text.replace("\nseconds = 60\n", "\nseconds = 25\n"))
    r = subprocess.run(
        [sys.executable, "bench/drift_budget.py", "--seeds", "1", "--wind-from", "0",
         "--mission", str(mission)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    (run,) = report["runs"]
    assert 24 < run["hover_s"] < 26
    # the hover drift is the estimator's mean velocity error times the hover time
    assert run["drift_from_velocity_error_m"] == pytest.approx(run["drift_on_m"], rel=0.35)
    # and that error is the split ground velocity / wind the hover started with
    v_err = math.hypot(*run["velocity_error_mps"])
    w_err = math.hypot(*run["wind_error_at_hover_mps"])
    assert abs(v_err - w_err) < 0.5 * max(v_err, w_err)
    for key in ("kinematics_error_mps", "kinematics_error_true_fc_mps",
                "kinematics_error_10s_mps", "kinematics_error_true_fc_10s_mps"):
        assert len(run[key]) == 2 and all(math.isfinite(x) for x in run[key])
