"""What a simulator knows and a real craft does not: its ground truth.

Both simulator modes implement `GroundTruth`: the lock-step model
(`pipilot.sim.model.SimulatedCC3D`) and the real-time runner
(`pipilot.sim.runner.RealtimeSim`). Truth is for mission summaries,
benchmarks and the web page's sim panel only. Flight logic is written against
`pipilot.core.vehicle.FlightVehicle`, which has no way to reach it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

Vector3 = tuple[float, float, float]


@dataclass(frozen=True)
class TruthSnapshot:
    """The simulated airframe at one instant (immutable: safe to hand across threads)."""

    time: float
    """Simulator time, s."""
    position: Vector3
    """North, east, down from the origin, m."""
    velocity: Vector3
    """North, east, down, m/s."""
    attitude_deg: Vector3
    """Roll, pitch, yaw of the airframe, degrees."""
    on_ground: bool


class SimLock(Protocol):
    """The part of `threading.Lock`/`RLock` a reader that must not block uses."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


class GroundTruth(Protocol):
    """A simulator seen from outside the flight path: summaries, benchmarks, the sim panel."""

    @property
    def lock(self) -> SimLock | None:
        """The lock the simulator steps under when it runs in a thread of its own
        (None when its owner steps it). `ground_truth()` takes it; a reader on an
        event loop may try it without blocking and fall back on an older reading."""
        ...

    def truth_snapshot(self) -> TruthSnapshot:
        """The airframe's truth as of the latest simulation step; never blocks."""
        ...

    def ground_truth(self) -> dict[str, object]:
        """The sim panel's JSON: truth in NED metres, m/s and degrees, wind, and the
        simulated receiver's frame counters (``"receiver"``)."""
        ...
