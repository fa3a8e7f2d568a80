"""The vehicle seams hold in the types: flight logic cannot reach the simulator's truth,
and everything that is handed to a mission, the drift loop or the server fits its seam."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SNIPPET = '''\
from pipilot.control.compensator import DriftCompensator
from pipilot.core.truth import GroundTruth
from pipilot.core.vehicle import FlightVehicle, ObservedVehicle, ServedVehicle, Vehicle
from pipilot.server.adapter import VehicleAdapter
from pipilot.sim.ground import LockstepTelemetry
from pipilot.sim.model import SimulatedCC3D
from pipilot.sim.runner import RealtimeSim


def flight(v: FlightVehicle) -> object:
    return v.sim  # error: flight logic has no simulator


def drift(d: DriftCompensator) -> object:
    return d.vehicle.sim  # error: nor has the drift loop


def summary(v: ObservedVehicle) -> object:
    return None if v.sim is None else v.sim.truth_snapshot().position


def seams(v: Vehicle, model: SimulatedCC3D, rt: RealtimeSim, ground: LockstepTelemetry) -> None:
    truth: list[GroundTruth] = [model, rt]
    observed: ObservedVehicle = v
    served: ServedVehicle = v
    v.attach_telemetry(ground)
    VehicleAdapter(v)
    DriftCompensator(v, flying=lambda: True)
    print(truth, observed, served)
'''


def test_flight_logic_cannot_read_ground_truth_and_the_implementations_fit(tmp_path):
    exe = Path(sys.executable).with_name("mypy")
    mypy = str(exe) if exe.exists() else shutil.which("mypy")
    assert mypy, "mypy is not installed (it is a test extra)"
    snippet = tmp_path / "seams.py"
    snippet.write_text(SNIPPET)
    # its own cache: the suite's mypy run may be writing the project's at the same time
    proc = subprocess.run([mypy, "--strict", "--ignore-missing-imports", "--no-incremental",
                           "--cache-dir", str(tmp_path / "mypy-cache"),
                           "--follow-imports=silent", str(snippet)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    errors = re.findall(r"seams\.py:(\d+): error: (.*)", proc.stdout)
    lines = SNIPPET.splitlines()
    expected = [str(i + 1) for i, line in enumerate(lines) if "# error:" in line]
    assert [n for n, _ in errors] == expected, proc.stdout + proc.stderr
    assert all('has no attribute "sim"' in msg for _, msg in errors), proc.stdout
