"""tools/drift_table.py turns a drift_hover --mismatch report into the docs table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = Path(__file__).with_name("drift_mismatch_sample.json")


def _tool():
    spec = importlib.util.spec_from_file_location("drift_table", REPO / "tools" / "drift_table.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_table_is_written_between_the_markers_and_then_up_to_date(tmp_path):
    tool = _tool()
    doc = tmp_path / "doc.md"
    doc.write_text(f"before\n{tool.START}\nold figures\n{tool.END}\nafter\n")
    assert tool.main([str(SAMPLE), "--doc", str(doc), "--check"]) == 1
    assert tool.main([str(SAMPLE), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "old figures" not in text and text.startswith("before\n") and text.endswith("after\n")
    report = json.loads(SAMPLE.read_text())
    (run,) = report["runs"]
    row = next(line for line in text.splitlines() if line.startswith(f"| {run['seed']} |"))
    assert f"| {run['max_excursion_on_m']:.2f} |" in row
    assert f"| {run['craft']['mass_kg']:.2f} |" in row
    assert tool.main([str(SAMPLE), "--doc", str(doc), "--check"]) == 0


def test_a_report_of_another_kind_is_refused(tmp_path):
    tool = _tool()
    doc = tmp_path / "doc.md"
    doc.write_text(f"{tool.START}\n{tool.END}\n")
    other = tmp_path / "r.json"
    other.write_text(json.dumps({"benchmark": "drift_hover", "mismatch": False}))
    assert tool.main([str(other), "--doc", str(doc)]) == 2
