"""tools/sitl/table.py: the docs' conformance table comes from a report, never by hand.

Needs no SITL: a sample report in the shape tests/sitl writes goes in, markdown
comes out. The last test holds docs/sim.md to the report committed next to it.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "sitl" / "table.py"


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("sitl_table", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


table = _load()


def _figures(**over: Any) -> dict[str, Any]:
    f: dict[str, Any] = {
        "accepted_per_s_7ms": 72.0, "sent_per_s_7ms": 132.0,
        "accepted_per_s_8ms": 79.8, "sent_per_s_8ms": 101.6,
        "arm_s": 1.0884, "disarm_s": 1.0826, "connect_s": 0.03,
        "arm_flight_clock_s": 1.101, "disarm_flight_clock_s": 1.097,
        "attitude_roll_deg": 16.7, "attitude_pitch_deg": -14.47, "attitude_yaw_deg": 88.51,
        "failsafe_stop_s": 0.348, "failsafe_stop_range_s": [0.32, 0.358],
        "failsafe_flag_s": 0.24, "failsafe_flag_range_s": [0.237, 0.283],
        "flight_mode": "Stabilized1", "lost_answers": 0,
        # sorted as json.dumps(sort_keys=True) leaves it: the table must restore ch1-4 order
        "mapping": {"Pitch": 0.737, "Roll": -0.343, "Throttle": 0.743, "Yaw": 0.363},
        "request_rtt_ms": 18.4,
        "telemetry_rates_hz": {"AttitudeState": 7.8, "FlightTelemetryStats": 0.2},
        "writer_gap_ms_7ms": {"p1": 4.21, "p50": 7.01, "p99": 15.14},
        "writer_gap_ms_8ms": {"p1": 3.19, "p50": 8.0, "p99": 33.6},
    }
    f.update(over)
    return f


def sample() -> dict[str, Any]:
    return {
        "builtin": _figures(),
        "sitl": _figures(arm_s=float("inf"), arm_flight_clock_s=float("inf"),
                         disarm_s=0.7681, disarm_flight_clock_s=1.043,
                         arm_blockers={"CPUOverload": "Critical"},
                         accepted_per_s_7ms=59.6, sent_per_s_7ms=121.2,
                         telemetry_rates_hz={"AttitudeState": 7.9, "GPSTime": 0.2,
                                             "ReceiverActivity": 10.0}),
        "run": {"date_utc": "2026-12-07 01:11 UTC", "cpus": 2, "load_start": [6.03, 6.9, 6.3],
                "load_end": [9.69, 7.65, 6.59], "sitl_binary": "fw_simposix_stock.elf",
                "mapping_us": [1400, 1300, 700, 1600], "stick_unit": 0.5,
                "failsafe_repeats": 5, "rate_window_s": 10.0},
    }


def _row(md: str, label: str) -> list[str]:
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no row {label!r} in\n{md}")


def test_render_states_the_run_and_every_figure() -> None:
    md = table.render(sample())
    assert md.splitlines()[0] == (
        "One run of `tests/sitl` (fw_simposix_stock.elf), 2026-12-07 01:11 UTC, on a 2-core "
        "machine with a load average (1 min) of 6.0 at its start and 9.7 at its end:")
    assert _row(md, "receiver connected, channel map (Throttle, Yaw, Roll, Pitch for ch1-4 = "
                    "1400, 1300, 700, 1600)") == ["0.743, 0.363, -0.343, 0.737"] * 2
    assert _row(md, "flight mode") == ["Stabilized1", "Stabilized1"]
    assert _row(md, "Yaw Left held to Armed, host clock (flight side's clock)") == [
        "1.09 s (1.10 s)", "not within 5 s (alarms: CPUOverload Critical)"]
    assert _row(md, "Yaw Right held to Disarmed, host clock (flight side's clock)") == [
        "1.08 s (1.10 s)", "0.77 s (1.04 s)"]
    assert _row(md, "attitude change in 1 s, roll / pitch / yaw stick at +0.5, airborne") == [
        "+16.7 / -14.5 / +88.5 deg"] * 2
    assert _row(md, "frames stop to ManualControlCommand.Connected False (median of 5, range)"
                ) == ["0.348 s (0.320-0.358)"] * 2
    assert _row(md, "failsafe flag to Connected False (median of 5, range)") == [
        "0.240 s (0.237-0.283)"] * 2
    assert _row(md, "frames accepted at 7 ms, of those sent") == [
        "72.0/s of 132.0/s (55 %)", "59.6/s of 121.2/s (49 %)"]
    assert _row(md, "frames accepted at 8 ms, of those sent") == ["79.8/s of 101.6/s (79 %)"] * 2
    assert _row(md, "the writer's gaps between frames at 8 ms, p1 / p50 / p99") == [
        "3.2 / 8.0 / 33.6 ms"] * 2
    assert _row(md, "request round trip (median of 10)") == ["18.4 ms"] * 2
    assert _row(md, "requests unanswered within 150 ms (asked again)") == ["0", "0"]
    # rates: every object the model publishes, against the SITL's; the rest listed once
    assert _row(md, "AttitudeState") == ["7.8", "7.9"]
    assert _row(md, "FlightTelemetryStats") == ["0.2", "not published"]
    assert "Published by the SITL only (2): GPSTime 0.2, ReceiverActivity 10." in md
    assert "| GPSTime |" not in md


def test_report_without_a_figure_is_refused_by_name() -> None:
    r = sample()
    del r["sitl"]["failsafe_flag_s"]
    del r["run"]["load_end"]
    with pytest.raises(table.ReportError, match=r"run\.load_end, sitl\.failsafe_flag_s"):
        table.render(r)
    r = sample()
    del r["run"]
    with pytest.raises(table.ReportError, match="no 'run' section"):
        table.render(r)
    r = sample()
    del r["builtin"]["mapping"]["Yaw"]
    with pytest.raises(table.ReportError, match=r"builtin\.mapping\.Yaw"):
        table.render(r)
    with pytest.raises(table.ReportError, match="not a JSON object"):
        table.render([1, 2])


DOC = "# title\n\nprose before\n\n{start}\nold table\n{end}\n\nprose after\n"


def test_rewrite_replaces_only_between_the_markers() -> None:
    doc = DOC.format(start=table.START, end=table.END)
    new = table.rewrite(doc, "NEW")
    assert new == (f"# title\n\nprose before\n\n{table.START}\n{table.NOTE}\nNEW\n{table.END}"
                   "\n\nprose after\n")
    assert table.rewrite(new, "NEW") == new
    for bad in ("no markers", f"{table.START}\n{table.START}\n{table.END}",
                f"{table.END}\n{table.START}"):
        with pytest.raises(table.ReportError, match="sitl-table"):
            table.rewrite(bad, "NEW")


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True,
                          text=True, timeout=60)


def test_cli_writes_checks_and_refuses(tmp_path: Path) -> None:
    report, doc = tmp_path / "report.json", tmp_path / "doc.md"
    report.write_text(json.dumps(sample()))
    doc.write_text(DOC.format(start=table.START, end=table.END))
    assert _cli(report, "--doc", doc, "--check").returncode == 1
    assert "old table" in doc.read_text()
    assert _cli(report, "--doc", doc).returncode == 0
    text = doc.read_text()
    assert table.render(sample()) in text and "old table" not in text
    assert text.startswith("# title\n\nprose before\n\n") and text.endswith("\n\nprose after\n")
    assert _cli(report, "--doc", doc, "--check").returncode == 0

    broken = copy.deepcopy(sample())
    del broken["builtin"]["arm_s"]
    report.write_text(json.dumps(broken))
    proc = _cli(report, "--doc", doc)
    assert proc.returncode == 2 and "builtin.arm_s" in proc.stderr
    assert doc.read_text() == text
    report.write_text("{not json")
    assert _cli(report, "--doc", doc).returncode == 2
    proc = _cli(tmp_path / "missing.json", "--doc", doc)
    assert proc.returncode == 2 and "cannot read" in proc.stderr


def test_docs_table_is_the_committed_report() -> None:
    """docs/sim.md holds exactly what tools/sitl/table.py makes of docs/sitl-report.json."""
    proc = _cli(ROOT / "docs" / "sitl-report.json", "--doc", ROOT / "docs" / "sim.md", "--check")
    assert proc.returncode == 0, proc.stderr + " (regenerate: tools/sitl/table.py " \
                                                "docs/sitl-report.json)"
