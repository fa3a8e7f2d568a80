"""Which twin `pipilot.sbus` picks, checked in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sbus_twins import load_twin

ROOT = Path(__file__).resolve().parents[2]


def implementation(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "PIPILOT_PURE_PYTHON"}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), environ.get("PYTHONPATH", "")])
    environ.update(env)
    out = subprocess.run(
        [sys.executable, "-c", "import pipilot.sbus as s; print(s.IMPLEMENTATION)"],
        env=environ, capture_output=True, text=True, check=True, timeout=60,
    )
    return out.stdout.strip()


def test_pure_python_forced() -> None:
    assert implementation(PIPILOT_PURE_PYTHON="1") == "python"


def test_compiled_twin_chosen_by_default() -> None:
    load_twin("cython")  # skips (or fails under PIPILOT_REQUIRE_CYTHON=1) when not built
    assert implementation() == "cython"
    assert implementation(PIPILOT_PURE_PYTHON="0") == "cython"
