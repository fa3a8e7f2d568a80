"""tools/flow_rotation_table.py: docs/sensors.md holds what the committed bench report gives."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / "docs" / "flow-rotation-report.json"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flow_rotation_table",
                                                  REPO / "tools" / "flow_rotation_table.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_docs_table_is_the_committed_report() -> None:
    assert _tool().main([str(REPORT), "--doc", str(REPO / "docs" / "sensors.md"), "--check"]) == 0


def test_the_table_is_written_between_the_markers_and_then_up_to_date(tmp_path: Path) -> None:
    tool = _tool()
    doc = tmp_path / "doc.md"
    doc.write_text(f"before\n{tool.START}\nold figures\n{tool.END}\nafter\n")
    assert tool.main([str(REPORT), "--doc", str(doc), "--check"]) == 1
    assert tool.main([str(REPORT), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "old figures" not in text and text.startswith("before\n") and text.endswith("after\n")
    report = json.loads(REPORT.read_text())
    mpu = report["worst_over_seeds"]["mpu6050/500hz"]["heights"]
    row = next(line for line in text.splitlines()
               if line.startswith("| MPU-6050 on the Pi | 500 Hz"))
    assert " / ".join(f"{mpu[h]['velocity_error_p95_mps']:.3f}" for h in ("0.5", "1", "1.5")) in row
    assert tool.main([str(REPORT), "--doc", str(doc), "--check"]) == 0


def test_telemetry_rows_take_the_worst_latency() -> None:
    tool = _tool()
    fig = {"velocity_error_rms_mps": 0.0, "velocity_error_p95_mps": 0.0,
           "position_error_max_m": 0.0, "share_of_median": 0.0, "share_of_p90": 0.0}

    def src(x: float) -> dict[str, object]:
        return {"rate_error_rms_dps": x, "delay_s": x, "dropped": x,
                "heights": {"1": dict(fig, velocity_error_p95_mps=x)}}

    merged = tool.merge_latencies({"gyro_telemetry/a/lat20ms/latest": src(0.1),
                                   "gyro_telemetry/a/lat100ms/latest": src(0.3),
                                   "gyro_telemetry/a/lat50ms/latest": src(0.2),
                                   "mpu6050/500hz": src(0.05)})
    assert set(merged) == {"gyro_telemetry/a/latest", "mpu6050/500hz"}
    g = merged["gyro_telemetry/a/latest"]
    assert g["rate_error_rms_dps"] == 0.3 and g["heights"]["1"]["velocity_error_p95_mps"] == 0.3
    assert g["latencies_ms"] == [20, 50, 100]


def test_a_report_of_another_kind_is_refused(tmp_path: Path) -> None:
    tool = _tool()
    doc = tmp_path / "doc.md"
    doc.write_text(f"{tool.START}\n{tool.END}\n")
    other = tmp_path / "r.json"
    other.write_text(json.dumps({"bench": "drift_hover"}))
    assert tool.main([str(other), "--doc", str(doc)]) == 2
