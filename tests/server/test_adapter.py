"""VehicleAdapter reads the simulator without ever blocking the event loop."""

import threading
import time

from pipilot.core.clock import VirtualClock
from pipilot.core.vehicle import Vehicle
from pipilot.link.transport import FrameSink
from pipilot.server.adapter import VehicleAdapter


class FakeSim:
    def __init__(self):
        self.lock = threading.RLock()
        self.n = 0

    def ground_truth(self):
        with self.lock:
            self.n += 1
            return {"position": [float(self.n), 0.0, 0.0]}


def test_a_busy_sim_lock_returns_the_previous_reading_at_once():
    sim = FakeSim()
    vehicle = Vehicle.create(FrameSink(lambda t, f: None), clock=VirtualClock(), sim=sim)
    adapter = VehicleAdapter(vehicle)
    assert adapter.sim_truth() == {"position": [1.0, 0.0, 0.0]}
    held, release = threading.Event(), threading.Event()

    def stepper():
        with sim.lock:
            held.set()
            release.wait(5)

    t = threading.Thread(target=stepper)
    t.start()
    held.wait(5)
    t0 = time.monotonic()
    assert adapter.sim_truth() == {"position": [1.0, 0.0, 0.0]}
    assert time.monotonic() - t0 < 0.5  # did not wait for the stepping thread
    release.set()
    t.join()
    assert adapter.sim_truth() == {"position": [2.0, 0.0, 0.0]}


def test_no_sim_means_no_truth():
    adapter = VehicleAdapter(Vehicle.create(FrameSink(lambda t, f: None), clock=VirtualClock()))
    assert adapter.sim_truth() is None
    assert "frames_accepted" not in adapter.link_stats()


def test_lockstep_vehicle_receiver_counts_truth_and_a_link_without_counters():
    from pipilot.sim import LockstepSim

    sim = LockstepSim(seed=1, core=True, period_ms=14.0)
    sim.wait_connected()
    sim.run(1.0)
    adapter = VehicleAdapter(sim.vehicle)
    rx = sim.model.receiver.stats
    st = adapter.link_stats()
    assert st["frames_accepted"] == rx.frames_accepted > 0
    assert st["frames_rejected"] == rx.rejected_by_reason()
    assert st["accepted_fraction"] == rx.frames_accepted / rx.frames_seen
    truth = adapter.sim_truth()
    assert truth is not None and truth["position"] == [float(x) for x in sim.truth.position]
    # the lock-step ground side is the engine that flies: it keeps the counters
    link = adapter.telemetry_link()
    assert (link["configured"], link["connected"], link["was_connected"]) == (True, True, True)
    assert 0.0 <= link["age_s"] < 0.5


def test_a_link_without_counters_says_connected_and_whether_it_ever_was():
    class Bare:                                 # only what TelemetryLink promises
        connected = True

    vehicle = Vehicle.create(FrameSink(lambda t, f: None), clock=VirtualClock())
    vehicle.attach_telemetry(Bare())  # type: ignore[arg-type]
    adapter = VehicleAdapter(vehicle)
    assert adapter.telemetry_link() == {"configured": True, "connected": True,
                                        "was_connected": True, "age_s": None}
    Bare.connected = False
    assert adapter.telemetry_link() == {"configured": True, "connected": False,
                                        "was_connected": True, "age_s": None}
