"""The real-flight path end to end: flight core and telemetry session over the
simulator's pty pairs, on the wall clock (as on the rig)."""

from __future__ import annotations

import asyncio

import pytest

from pipilot.mission.real import fly_real
from pipilot.mission.spec import parse_mission
from pipilot.sim.model import SimulatedCC3D
from pipilot.sim.runner import RealtimeSim

PILOT_HOVER = 0.47
"""The hover throttle a pilot would configure for the simulator's default craft."""

MISSION = """
name = "realtime"
[mission]
hover_throttle = {hover}
[safety]
telemetry_timeout_s = 3.0
[[steps]]
action = "arm"
[[steps]]
action = "climb"
throttle = 0.54
seconds = 2
[[steps]]
action = "hover"
seconds = 2
[[steps]]
action = "land"
seconds = 6
[[steps]]
action = "disarm"
"""


@pytest.mark.slow
def test_mission_over_ptys_in_real_time():
    model = SimulatedCC3D(seed=0, mount_tilt_deg=(0.0, 2.0), wind=(0.0, 0.5))
    # the pilot's figure for the craft, as on the rig; the model's own is only
    # compared with it, never handed to the flight side
    spec = parse_mission(MISSION.format(hover=PILOT_HOVER))
    assert spec.mission.hover_throttle == pytest.approx(model.hover_throttle(), abs=0.01)
    heights = []

    def watch(ev):
        heights.append(model.truth.altitude)

    with RealtimeSim(model) as sim:
        mission, summary = asyncio.run(fly_real(
            spec, sbus_port=sim.sbus_port, telemetry_port=sim.telemetry_port, on_event=watch))
    assert summary["completed"], summary
    assert max(heights) > 1.0  # it flew
    assert not model.armed and model.truth.on_ground
    assert mission.drift is not None and mission.drift.rate_errors == []  # metaobjects taken
    assert mission.drift.last_trim is not None


def test_no_telemetry_is_a_link_error(tmp_path):
    from pipilot.errors import LinkError, PipilotError

    spec = parse_mission(MISSION.format(hover=0.5))
    with pytest.raises((LinkError, PipilotError)):
        asyncio.run(fly_real(spec, telemetry_port=str(tmp_path / "no-such-port"),
                             connect_timeout_s=0.5))


HOLD_MISSION = """
name = "realtime-hold"
[mission]
hover_throttle = 0.47
[safety]
telemetry_timeout_s = 3.0
land_seconds = 8
[hold]
enabled = true
target_height_m = 0.8
[[steps]]
action = "arm"
[[steps]]
action = "climb"
throttle = 0.54
seconds = 3
[[steps]]
action = "hold"
seconds = 2
[[steps]]
action = "land"
seconds = 8
[[steps]]
action = "disarm"
"""


@pytest.mark.slow
def test_a_hold_mission_flies_in_real_time_on_the_deck_it_is_given():
    """`mission run --flowdeck --imu` as wired on the rig, the drivers over the
    simulated buses: the deck is opened on the flight's clock, read by a reader
    thread, its IMU gives the rates, the FC is asked for the attitude period, and
    the hold flies the climb on its height loop.

    Whether the whole mission completes is not asserted: the simulator and the
    flight code share one process here, without the real-time priorities of
    `pipilot mission run`, and on a loaded 2-core machine a stall of half a
    second (seen: AttitudeState stale for 0.53 s) drops the simulated craft.
    What is asserted is the wiring and that the run ends safely either way."""
    import threading

    from pipilot.cli._flowdeck import deck_poller, sim_drivers

    model = SimulatedCC3D(seed=1)
    spec = parse_mission(HOLD_MISSION)
    events = []
    heights: list[float] = []
    done = threading.Event()

    def sample() -> None:   # the true height, 20 times a second (truth: a test only)
        while not done.wait(0.05):
            with sim.lock:
                heights.append(model.truth.altitude)

    with RealtimeSim(model) as sim:
        def deck(clock):
            return deck_poller(sim_drivers(sim, clock, texture=1.0, seed=1, imu=True), clock)

        watcher = threading.Thread(target=sample, daemon=True)
        watcher.start()
        try:
            mission, summary = asyncio.run(fly_real(
                spec, sbus_port=sim.sbus_port, telemetry_port=sim.telemetry_port,
                on_event=events.append, deck=deck))
        finally:
            done.set()
            watcher.join()
    said = [str(e) for e in events]
    assert summary["flow_hold"] and not summary["drift_compensation"], said
    hold = mission.flow_hold
    assert hold is not None and hold.imu_rates
    assert hold.attitude_period_set and hold.attitude_period_ms == 200
    assert any(e.endswith("holding") for e in said), said   # fresh flow, range, attitude
    assert any("hold rates from the IMU" in e for e in said) or hold.rates_source == "imu"
    # the height loop flew the climb towards 0.8 m (generous: real time, loaded)
    assert 0.4 < max(heights) < 1.5, said
    # completed, or aborted into its failsafe: disarmed on the floor either way
    assert summary["completed"] or "failsafe land done: disarmed" in " ".join(said), said
    assert not model.armed and model.truth.on_ground
