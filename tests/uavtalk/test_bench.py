"""The benchmark script runs and reports what it promises (figures are not judged here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_quick_prints_json() -> None:
    r = subprocess.run([sys.executable, "bench/uavtalk.py", "--quick"], cwd=REPO,
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["stream"]["packets"] > 1000
    assert "python" in report["twins"]
    for twin in report["twins"].values():
        assert twin["framing_mb_s"]["median"] > 0
        assert twin["decode_objects_s"]["median"] > 0
    assert report["session_objects_s"]["median"] > 0
    base = report["baseline_bytewise"]
    assert base["framing_mb_s"]["median"] > 0
    # The firmware-style parser loses packets after line noise; ours loses none.
    assert base["packets_found"] <= base["packets_in_stream"]
    assert set(report["speedup_vs_bytewise"]) == set(report["twins"])
