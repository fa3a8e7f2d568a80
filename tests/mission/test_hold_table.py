"""tools/hold_table.py turns bench/hold.py's report into docs/hold.md's tables."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / "docs" / "hold-report.json"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hold_table", REPO / "tools" / "hold_table.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_docs_hold_md_holds_what_the_committed_report_gives() -> None:
    tool = _tool()
    assert tool.main([str(REPORT), "--doc", str(REPO / "docs" / "hold.md"), "--check"]) == 0


def test_the_tables_are_written_between_the_markers_and_then_up_to_date(tmp_path: Path) -> None:
    tool = _tool()
    doc = tmp_path / "doc.md"
    doc.write_text(f"before\n{tool.START}\nold figures\n{tool.END}\nafter\n")
    assert tool.main([str(REPORT), "--doc", str(doc), "--check"]) == 1
    assert tool.main([str(REPORT), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "old figures" not in text and text.startswith("before\n") and text.endswith("after\n")
    report = json.loads(REPORT.read_text())
    flow = report["flow"]["max_excursion_m"]
    assert f"| flow hold | {flow['median']:.2f} | {flow['p90']:.2f} | {flow['max']:.2f} |" in text
    for sw in report["attitude_kp_sweep"]:   # a line per FC gain flown
        ex = sw["max_excursion_m"]
        assert (f"attitude loop gain is {sw['attitude_kp']:g} (deg/s)/deg" in text
                and f"median {ex['median']:.2f}, p90 {ex['p90']:.2f}" in text)
    # the per-seed table holds the stock FC's flights, not the sweep's
    stock = {r["seed"]: r for r in report["runs"] if r["mode"] == "flow"
             and r.get("flow_noise", 1.0) == 1.0 and r.get("attitude_kp", 2.5) == 2.5}
    seed, first = min(stock.items())
    row = next(line for line in text.splitlines() if line.startswith(f"| {seed} |"))
    assert f"| {first['max_excursion_m']:.2f} |" in row
    assert tool.main([str(REPORT), "--doc", str(doc), "--check"]) == 0


def test_a_report_of_another_kind_is_refused(tmp_path: Path) -> None:
    tool = _tool()
    doc = tmp_path / "doc.md"
    doc.write_text(f"{tool.START}\n{tool.END}\n")
    other = tmp_path / "r.json"
    other.write_text(json.dumps({"benchmark": "drift_hover"}))
    assert tool.main([str(other), "--doc", str(doc)]) == 2


def _bench() -> ModuleType:
    import sys

    saved = list(sys.path)   # bench/hold.py puts bench/ on it for its helpers
    sys.path.insert(0, str(REPO / "bench"))
    try:
        spec = importlib.util.spec_from_file_location("hold_bench", REPO / "bench" / "hold.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path[:] = saved


def test_the_report_counts_its_flights_per_commit(tmp_path: Path) -> None:
    bench = _bench()
    assert bench.code_version(tmp_path / "nowhere") == "unknown"   # no checkout there
    runs = json.loads(REPORT.read_text())["runs"]
    for r in runs:
        r.pop("code", None)
    for r in runs[:10]:
        r["code"] = "abc1234-dirty"
    summary = bench.summarize(runs, mission="hold.toml", wall_s=0.0, sweep=(10.0,),
                              kp_sweep=(1.5, 5.0))
    assert summary["code"] == {"abc1234-dirty": 10, "unrecorded": len(runs) - 10}


def test_the_overshoot_is_taken_against_the_settled_height() -> None:
    """A climb that tops out at 1.4 m and settles at 1.1 m (a ranger reading short holds
    it above the 1 m target): 0.3 m, from take-off to the hold step's end."""
    from types import SimpleNamespace

    from pipilot.mission.events import EventKind

    bench = _bench()
    ev = [SimpleNamespace(kind=EventKind.STEP_STARTED, action="hold", step=2, t=5.0),
          SimpleNamespace(kind=EventKind.STEP_DONE, action="hold", step=2, t=30.0)]
    samples = [{"t": t / 10, "down": -h} for t, h in
               [*((t, min(1.4, t / 30)) for t in range(0, 60)),   # the climb, over the top
                *((t, 1.1) for t in range(60, 301)),              # settled
                *((t, 2.0) for t in range(301, 320))]]            # after the step: not counted
    m = SimpleNamespace(events=SimpleNamespace(history=ev), samples=samples)
    assert bench.overshoot(m) == pytest.approx(0.3, abs=1e-3)
    m.events.history = ev[:1]
    assert bench.overshoot(m) is None                                 # the step never ended
