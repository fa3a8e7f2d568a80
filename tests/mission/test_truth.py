"""A mission records the simulator's ground truth whichever mode the simulator runs in.

The lock-step model and the real-time runner both implement
`pipilot.core.truth.GroundTruth`; the mission reads only that.
"""

from __future__ import annotations

import time

import pytest

from pipilot.core.clock import VirtualClock
from pipilot.core.truth import GroundTruth
from pipilot.core.vehicle import Vehicle
from pipilot.link.transport import FrameSink
from pipilot.mission.api import Mission
from pipilot.mission.events import EventKind
from pipilot.mission.io import VehicleIO
from pipilot.sim.model import SimulatedCC3D
from pipilot.sim.runner import RealtimeSim

from .simflight import SimFlight

PLACE = (1.5, -2.0, 0.0)  # NED, on the ground: the resting craft stays there


def _model() -> SimulatedCC3D:
    model = SimulatedCC3D(seed=0)
    model.quad.truth.position[:] = PLACE
    return model


def _io(sim: GroundTruth) -> VehicleIO:
    return VehicleIO(Vehicle.create(FrameSink(lambda t, f: None), clock=VirtualClock(), sim=sim))


def test_lockstep_model_truth_is_read():
    model = _model()
    assert _io(model).truth_position() == PLACE
    snap = model.truth_snapshot()
    assert snap.on_ground and snap.velocity == (0.0, 0.0, 0.0) and snap.time == 0.0


def test_realtime_sim_truth_is_read_as_its_model_steps():
    model = _model()
    with RealtimeSim(model) as sim:
        io = _io(sim)
        deadline = time.monotonic() + 10.0
        while sim.truth_snapshot().time < 0.1:
            assert time.monotonic() < deadline, "the simulator thread does not step"
            time.sleep(0.01)
        assert io.truth_position() == PLACE
        with sim.lock:
            model_now = model.now
        assert 0.1 <= sim.truth_snapshot().time <= model_now
    assert sim.error is None


def test_no_sim_no_truth():
    io = VehicleIO(Vehicle.create(FrameSink(lambda t, f: None), clock=VirtualClock()))
    assert io.truth_position() is None


@pytest.mark.parametrize("mode", ["lockstep", "realtime"])
def test_mission_records_truth_from_either_simulator(mode):
    # flown on the lock-step simulator; in "realtime" the vehicle's truth comes
    # from a RealtimeSim instead (unstarted: its snapshot stays where it was made)
    flight = SimFlight()
    flight.sim.model.quad.truth.position[:] = PLACE
    if mode == "realtime":
        flight.vehicle.sim = RealtimeSim(_model())
    out = {}

    async def main():
        await flight.linked()
        async with Mission(flight.vehicle, drift=False) as m:
            await m.arm()
            await m.disarm()
        out["m"] = m

    flight.run(main)
    m = out["m"]
    assert m.completed, m.abort_reason
    rows = [r for r in m.samples if "north" in r]
    assert rows and len(rows) == len(m.samples)
    assert all((r["north"], r["east"], r["down"]) == PLACE for r in rows)
    steps = [e for e in m.events.history if e.kind is EventKind.STEP_DONE]
    assert [e.data["truth_ned"] for e in steps] == [list(PLACE), list(PLACE)]
