"""The benchmark script runs and reports what it promises (figures are not judged here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_bench_quick_prints_json() -> None:
    r = subprocess.run([sys.executable, "bench/uavtalk.py", "--quick"], cwd=REPO,
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    stream = report["stream"]
    assert stream["packets"] > 1000
    assert "python" in report["twins"]
    per_mb = stream["packets"] / (stream["bytes"] / 1e6)
    for twin in report["twins"].values():
        for key in ("framing_mb_s", "framing_packets_s", "decode_objects_s", "decode_mb_s"):
            s = twin[key]
            assert 0 < s["min"] <= s["p10"] <= s["median"] <= s["p90"] <= s["max"], (key, s)
        # packets/s and MB/s come from the same runs over the same stream
        ratio = twin["framing_packets_s"]["median"] / twin["framing_mb_s"]["median"]
        assert ratio == pytest.approx(per_mb, rel=0.05)
    s = report["session_objects_s"]
    assert 0 < s["min"] <= s["median"] <= s["max"], s
    base = report["baseline_bytewise"]
    # The firmware-style parser loses packets after line noise (ours loses none: the
    # script itself checks every twin found every packet).
    assert 0 < base["packets_found"] < base["packets_in_stream"]
    assert set(report["speedup_vs_bytewise"]) == set(report["twins"])
    for impl, speedup in report["speedup_vs_bytewise"].items():
        expected = report["twins"][impl]["framing_mb_s"]["median"] / base["framing_mb_s"]["median"]
        assert speedup == pytest.approx(expected, rel=0.05, abs=0.1)
