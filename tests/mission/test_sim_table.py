"""The [sim] table: the simulated craft and its conditions, validated, and never
read by what flies."""

from __future__ import annotations

import asyncio
import dataclasses
import math

import pytest

from pipilot.errors import ConfigError
from pipilot.mission.lockstep import run_lockstep, sim_lockstep
from pipilot.mission.runner import run_spec
from pipilot.mission.spec import SimSpec, parse_mission
from pipilot.sim.craft import thrust_to_weight
from pipilot.sim.dynamics import QuadParams
from pipilot.sim.model import SimulatedCC3D

MINIMAL = '[[steps]]\naction = "arm"\n'


def sim_table(body: str) -> SimSpec:
    spec = parse_mission(f"[sim]\n{body}\n{MINIMAL}")
    assert spec.sim is not None
    return spec.sim


def test_every_key_is_read():
    sim = sim_table("mass_kg = 1.2\ndrag = 0.5\nhover_throttle = 0.55\nwind_mps = 0.5\n"
                    "wind_from_deg = 90\ngust_mps = 0.3\ntelemetry_latency_s = 0.06\n"
                    "texture = 0.4\nseed = 7\nmount_tilt_deg = 1\nmount_tilt_axis_deg = 90\n"
                    "firmware = 'patched'")
    assert sim == SimSpec(mount_tilt_deg=1.0, mount_tilt_axis_deg=90.0, wind_mps=0.5,
                          wind_from_deg=90.0, gust_mps=0.3, seed=7, firmware="patched",
                          mass_kg=1.2, drag=0.5, hover_throttle=0.55,
                          telemetry_latency_s=0.06, texture=0.4)


@pytest.mark.parametrize(("body", "key", "words"), [
    ("mass_kg = 0", "sim.mass_kg", ">= 0.05"),
    ("mass_kg = -1", "sim.mass_kg", ">= 0.05"),
    ("mass_kg = 'heavy'", "sim.mass_kg", "must be a number"),
    ("mass_kg = true", "sim.mass_kg", "must be a number"),
    ("mass_kg = nan", "sim.mass_kg", "finite"),
    ("drag = 0", "sim.drag", "> 0"),
    ("drag = inf", "sim.drag", "finite"),
    ("hover_throttle = 0.95", "sim.hover_throttle", "<= 0.9"),
    ("hover_throttle = 0.05", "sim.hover_throttle", ">= 0.1"),
    ("wind_mps = -1", "sim.wind_mps", ">= 0"),
    ("wind_from_deg = 400", "sim.wind_from_deg", "<= 360"),
    ("gust_mps = -0.1", "sim.gust_mps", ">= 0"),
    ("gust_mps = 11", "sim.gust_mps", "<= 10"),
    ("telemetry_latency_s = -0.01", "sim.telemetry_latency_s", ">= 0"),
    ("telemetry_latency_s = 5", "sim.telemetry_latency_s", "<= 2"),
    ("texture = 1.5", "sim.texture", "<= 1"),
    ("texture = -0.1", "sim.texture", ">= 0"),
    ("seed = 1.5", "sim.seed", "whole number"),
    ("seed = -1", "sim.seed", ">= 0"),
    ("mount_tilt_deg = 30", "sim.mount_tilt_deg", "<= 20"),
    ("mass = 1", "sim.mass", "unknown key"),
    ("hover = 0.5", "sim.hover", "unknown key"),
])
def test_bad_values_name_the_key(body, key, words):
    with pytest.raises(ConfigError) as err:
        sim_table(body)
    assert err.value.key == key
    assert words in str(err.value), str(err.value)


def test_unknown_key_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        sim_table("weight = 1")
    for known in ("mass_kg", "drag", "hover_throttle", "telemetry_latency_s", "texture"):
        assert known in str(err.value)


def test_defaults_are_the_standard_craft():
    sim = sim_lockstep(**dataclasses.asdict(SimSpec()), core=False)
    assert sim.model.params == QuadParams()
    assert sim.model.hover_throttle() == SimulatedCC3D().hover_throttle()
    assert sim.telemetry.wire.latency_s == 0.0
    assert sim.model.texture == 1.0


def test_the_craft_figures_reach_the_model():
    spec = SimSpec(mass_kg=1.3, drag=0.2, hover_throttle=0.6, gust_mps=0.3, texture=0.4,
                   telemetry_latency_s=0.05)
    sim = sim_lockstep(**dataclasses.asdict(spec), core=False)
    p = sim.model.params
    assert (p.mass, p.drag_xy, p.gust_sigma) == (1.3, 0.2, 0.3)
    assert sim.model.hover_throttle() == pytest.approx(0.6, abs=1e-9)
    assert sim.model.texture == 0.4
    assert sim.telemetry.wire.latency_s == 0.05


@pytest.mark.parametrize("hover", [0.1, 0.3, 0.468, 0.75, 0.9])
def test_thrust_to_weight_inverts_the_hover_throttle(hover):
    model = SimulatedCC3D(params=QuadParams(thrust_to_weight=thrust_to_weight(hover)))
    assert model.hover_throttle() == pytest.approx(hover, abs=1e-12)


@pytest.mark.parametrize("hover", [0.0, 0.02, 1.0, 1.2])
def test_a_hover_throttle_the_channel_cannot_fly_is_refused(hover):
    with pytest.raises(ValueError, match="flying range"):
        thrust_to_weight(hover)


def test_gusts_move_the_wind_around_its_mean():
    def winds(gust: float) -> list[tuple[float, float]]:
        sim = sim_lockstep(wind_mps=0.5, wind_from_deg=270, gust_mps=gust, seed=3, core=False)
        sim.model.quad.truth.on_ground = False
        sim.model.quad.truth.position[2] = -100.0  # aloft, falling: the gusts only blow there
        out = []
        for _ in range(40):
            sim.model.step(0.25)
            w = sim.model.quad.wind
            out.append((float(w[0]), float(w[1])))
        return out

    calm = winds(0.0)
    assert all(w == pytest.approx((0.0, 0.5), abs=1e-9) for w in calm)  # from the west
    gusty = winds(0.3)
    spread = max(math.hypot(n - 0.0, e - 0.5) for n, e in gusty)
    assert 0.05 < spread < 2.0


def _first_object_time(latency: float) -> float:
    sim = sim_lockstep(seed=1, core=False, telemetry_latency_s=latency)
    while not sim.telemetry.received:
        sim.run(0.001)
        assert sim.now < 5.0
    return sim.now


def test_telemetry_latency_delays_what_the_ground_receives():
    base = _first_object_time(0.0)
    late = _first_object_time(0.1)
    # the ground looks at the wire every 5 ms: the delay shows to within a tick
    assert 0.1 - 0.006 <= late - base <= 0.1 + 0.006


def test_telemetry_latency_still_connects_and_updates():
    sim = sim_lockstep(seed=1, core=False, telemetry_latency_s=0.08)
    sim.wait_connected()
    sim.run(2.0)
    got = sim.telemetry.latest("AttitudeState")
    assert got is not None and got[1] < 0.5


FLIGHT = """
name = "mismatch"
[mission]
hover_throttle = 0.47
[safety]
land_seconds = 4
[drift]
enabled = false
[[steps]]
action = "arm"
[[steps]]
action = "climb"
throttle = 0.54
seconds = 3
[[steps]]
action = "hover"
seconds = 5
[[steps]]
action = "land"
seconds = 4
[[steps]]
action = "disarm"
[sim]
{sim}
"""


class TruthOnly:
    """The simulator as a mission may see it: ground truth, nothing else."""

    def __init__(self, model: SimulatedCC3D) -> None:
        self._model = model
        self.lock = None

    def truth_snapshot(self):
        return self._model.truth_snapshot()

    def ground_truth(self) -> dict[str, object]:
        return self._model.ground_truth()

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"flight code read the simulator's {name!r}")


def fly(sim_body: str, *, drift: bool = False):
    from pipilot.cli.mission import fly_sim

    spec = parse_mission(FLIGHT.format(sim=sim_body))
    return fly_sim(spec, drift=drift, handle_sigint=False)


def test_the_mission_flies_its_own_hover_throttle_not_the_craft_s():
    m, s = fly("hover_throttle = 0.45\nmass_kg = 1.1")
    assert s["completed"], s
    assert s["sim"]["hover_throttle"] == 0.45 and s["sim"]["mass_kg"] == 1.1
    hover = next(e for e in m.events.history
                 if e.kind.value == "step_started" and e.action == "hover")
    thr = {r["throttle"] for r in m.samples
           if hover.t + 0.1 <= r["t"] <= hover.t + 4.9 and "throttle" in r}
    assert thr == {0.47}
    # more thrust than the craft needs: open-loop altitude climbs through the hover
    assert s["hover_height_max_m"] > s["hover_height_min_m"] + 1.0


def test_a_craft_heavier_than_the_mission_thinks_stays_on_the_ground():
    # the climb's throttle (0.54) is below this craft's hover throttle: it never lifts
    _, s = fly("hover_throttle = 0.6")
    assert s["completed"], s
    assert s["hover_height_max_m"] <= 0.01
    assert s["hover_on_ground_s"] == pytest.approx(5.0, abs=0.1)
    assert s["max_excursion_m"] == 0.0


def test_mission_and_drift_loop_read_nothing_of_the_simulator_but_truth():
    spec = parse_mission(FLIGHT.format(sim="hover_throttle = 0.45\nfirmware = 'patched'"))
    spec = dataclasses.replace(spec, drift_enabled=True)
    sim = sim_lockstep(**dataclasses.asdict(spec.sim))
    vehicle = sim.vehicle
    vehicle.sim = TruthOnly(sim.model)

    async def main():
        result = await run_spec(spec, vehicle, drift=True)
        await asyncio.sleep(0)
        return result

    m, s = run_lockstep(sim, main)
    assert s["completed"], s
    assert m.drift is not None and m.drift.last_trim is not None  # the loop ran
    assert "max_excursion_m" in s and s["height_error_p90_m"] is None


def _roll_after_a_step(attitude_kp: float) -> float:
    """Roll (degrees, as the FC reports it) 0.5 s into a 20-degree roll stick step."""
    spec = parse_mission(f"""
[mission]
hover_throttle = 0.47
[[steps]]
action = "arm"
[[steps]]
action = "climb"
throttle = 0.55
seconds = 2
[[steps]]
action = "move"
roll = {20 / 42:.4f}
throttle = 0.5
seconds = 1
[sim]
attitude_kp = {attitude_kp}
""")
    assert spec.sim is not None
    sim = sim_lockstep(**dataclasses.asdict(spec.sim))
    m, _summary = run_lockstep(sim, lambda: run_spec(spec, sim.vehicle, drift=False))
    start = next(e.t for e in m.events.history if e.action == "move")
    rows = [r for r in m.samples if "roll_deg" in r and r["t"] <= start + 0.5]
    return float(rows[-1]["roll_deg"])


def test_attitude_kp_sets_how_fast_the_fc_tilts() -> None:
    """[sim] attitude_kp is the FC's attitude loop gain. 0.5 s into a 20-degree step
    (the telemetry shows it about 0.2 s late) the stock 2.5 has tilted a little over
    half way (a 0.4 s lag), 7.5 nearly all of it."""
    stock, stiff = _roll_after_a_step(2.5), _roll_after_a_step(7.5)
    assert 8.0 < stock < 14.0
    assert stiff > 16.0
    assert sim_table("attitude_kp = 7.5").attitude_kp == 7.5
    with pytest.raises(ConfigError, match=r"sim\.attitude_kp"):
        sim_table("attitude_kp = 0")
