"""tools/_doctable.py: the splice and command line every docs-table generator uses."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _doctable() -> Any:
    spec = importlib.util.spec_from_file_location("_doctable", REPO / "tools" / "_doctable.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(dt: Any, report: Path, doc: Path, *args: str) -> int:
    def render(data: dict[str, Any]) -> str:
        return f"| figure | {data['figure']} |"

    return int(dt.main([str(report), "--doc", str(doc), *args], name="t", description="t",
                       render=render, doc=doc, start="<!-- s -->", end="<!-- e -->"))


def test_a_block_is_replaced_then_up_to_date_and_check_changes_nothing(tmp_path: Path) -> None:
    dt = _doctable()
    report, doc = tmp_path / "r.json", tmp_path / "d.md"
    report.write_text(json.dumps({"figure": 7}))
    doc.write_text("before\n<!-- s -->\nold\n<!-- e -->\nafter\n")
    assert _run(dt, report, doc, "--check") == 1
    assert "old" in doc.read_text()
    assert _run(dt, report, doc) == 0
    assert doc.read_text() == "before\n<!-- s -->\n| figure | 7 |\n<!-- e -->\nafter\n"
    assert _run(dt, report, doc, "--check") == 0


def test_no_block_a_bad_report_or_a_missing_file_is_exit_2(tmp_path: Path) -> None:
    dt = _doctable()
    report, doc = tmp_path / "r.json", tmp_path / "d.md"
    report.write_text(json.dumps({"figure": 1}))
    doc.write_text("no block here\n")
    assert _run(dt, report, doc) == 2
    doc.write_text("<!-- e -->\n<!-- s -->\n")          # markers in the wrong order
    assert _run(dt, report, doc) == 2
    doc.write_text("<!-- s -->\n<!-- e -->\n")
    report.write_text("{not json")
    assert _run(dt, report, doc) == 2
    report.write_text(json.dumps({"other": 1}))         # render's KeyError
    assert _run(dt, report, doc) == 2
    assert _run(dt, tmp_path / "missing.json", doc) == 2
    assert doc.read_text() == "<!-- s -->\n<!-- e -->\n"
