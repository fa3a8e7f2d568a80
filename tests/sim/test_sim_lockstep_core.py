"""Lock-step with pipilot's own FlightCore and mixer driving the simulated CC3D."""

from __future__ import annotations

import asyncio

import pytest

from pipilot.core.setpoints import ArmRequest, Setpoint
from pipilot.sim import LockstepSim
from pipilot.sim.manual import Armed


def test_mixer_arms_and_flies_the_sim() -> None:
    sim = LockstepSim(seed=2, core=True, period_ms=14.0)
    mixer = sim.vehicle.mixer
    assert sim.vehicle.sim is sim.model
    for _ in range(15):
        mixer.publish("pilot", Setpoint(arm=ArmRequest.ARM))
        sim.run(0.1)
    assert sim.model.manual.armed is Armed.ARMED
    for _ in range(30):
        mixer.publish("pilot", Setpoint(throttle=0.6))
        sim.run(0.1)
    assert sim.truth.altitude > 1.0
    assert sim.telemetry.connected
    got = sim.vehicle.telemetry.latest("FlightStatus")
    assert got is not None and got[0]["Armed"] == "Armed"


def test_stock_decoder_at_7ms_through_the_core() -> None:
    sim = LockstepSim(seed=3, core=True, period_ms=7.0)
    sim.run(5.0)
    st = sim.model.receiver.stats
    assert sim.frames_sent >= 700
    assert 0.45 < st.frames_accepted / st.frames_seen < 0.7


def test_a_mission_coroutine_runs_on_virtual_time() -> None:
    sim = LockstepSim(seed=4, core=True, period_ms=14.0)

    async def mission() -> float:
        v = sim.vehicle
        t0 = v.clock.now()
        while sim.model.manual.armed is not Armed.ARMED:
            v.mixer.publish("mission", Setpoint(arm=ArmRequest.ARM))
            await sim.sleep(0.05)
        v.mixer.publish("mission", Setpoint(throttle=0.0))
        settings = await v.telemetry.request("FlightModeSettings")
        assert settings["Arming"] == "Yaw Left"
        return v.clock.now() - t0

    took = asyncio.run(mission())
    assert 1.0 < took < 3.0


def test_the_simulated_fc_is_calibrated_like_pipilots_default_config() -> None:
    from pipilot.core.calibration import Calibration
    from pipilot.sim.manual import ManualControlSettings

    cal = Calibration()
    fc = ManualControlSettings()
    for fn in ("throttle", "yaw", "roll", "pitch", "accessory0", "accessory1", "accessory2",
               "accessory3"):
        name = fn.capitalize() if not fn.startswith("acc") else f"Accessory{fn[-1]}"
        c = cal.calibration_for(fn)
        assert fc.channel_number[name] == cal.channel_of(fn)
        assert (fc.channel_min[name], fc.channel_neutral[name], fc.channel_max[name]) == (
            c.min, c.neutral, c.max)


def test_the_sim_command_demo_pilot_arms_climbs_and_hovers() -> None:
    from pipilot.cli.sim import _demo_hover, hover_throttle

    sim = LockstepSim(seed=5, core=True, period_ms=14.0)
    # the pilot's figure for the craft (--hover-throttle 0.47), never the model's;
    # the model's is only checked to be near it, the premise of "hovers"
    hover = hover_throttle(0.47)
    assert hover == pytest.approx(sim.model.hover_throttle(), abs=0.01)

    async def fly() -> None:
        task = asyncio.create_task(_demo_hover(sim.vehicle, hover, sleep=sim.sleep))
        while sim.now < 10.0:
            await asyncio.sleep(0)
        task.cancel()

    asyncio.run(fly())
    assert sim.model.manual.armed is Armed.ARMED
    assert sim.truth.altitude > 1.0
    assert abs(sim.truth.velocity[2]) < 0.5  # holding, not climbing away


@pytest.mark.parametrize("end", ["released", "pilot lost"])
def test_an_arm_request_ended_before_the_sequence_time_does_not_arm(end: str) -> None:
    # LibrePilot arms once the yaw stick has stayed beyond -0.2 for more than
    # 1000 ms: the gesture must end on the wire when the request ends
    sim = LockstepSim(seed=6, core=True, period_ms=14.0)
    mixer = sim.vehicle.mixer
    sim.run(1.0)
    t0 = sim.now
    held = 0.94 if end == "released" else 0.65   # a pilot lost: the request stays
    while sim.now - t0 < held:                    # fresh for ARM_HOLD_S (0.25 s) more
        mixer.publish("pilot", Setpoint(arm=ArmRequest.ARM))
        sim.run(0.01)
    assert sim.model.manual.armed is Armed.ARMING
    if end == "released":
        for _ in range(100):
            mixer.publish("pilot", Setpoint())
            sim.run(0.01)
    else:
        sim.run(1.0)
    assert sim.model.manual.armed is Armed.DISARMED
