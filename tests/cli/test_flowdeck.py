"""The flow deck as `pipilot sim`, `pipilot fly` and `pipilot mission run` set it up:
the drivers over the real-time model's register models (its MPU-6050 too), the
AttitudeState period asked of the FC, and one clear line when the real deck is
missing."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from typing import Any

import pytest

from pipilot.cli._flowdeck import SIM_IMU, keep_rates, real_drivers, sim_drivers
from pipilot.control.hold import FlowHold
from pipilot.core.clock import MonotonicClock
from pipilot.sensors.bus import SensorError
from pipilot.sensors.reader import FlowDeckPoller, TimedFlow, TimedImu, TimedRange
from pipilot.sim.model import SimulatedCC3D
from pipilot.sim.runner import RealtimeSim
from tests.control.test_hold import FakeVehicle


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipilot", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_drivers_read_the_realtime_models_deck_through_the_register_models() -> None:
    clock = MonotonicClock()
    with RealtimeSim(SimulatedCC3D(seed=3)) as sim:
        flow, ranger, imu = sim_drivers(sim, clock, texture=1.0, seed=3)   # IDs checked here
        assert imu is None
        poller = FlowDeckPoller(flow, ranger, clock)
        flows: list[TimedFlow] = []
        ranges: list[TimedRange] = []
        deadline = time.monotonic() + 5.0   # a loaded machine; the ranger answers in 0.1 s
        while time.monotonic() < deadline and not (ranges and len(flows) > 10):
            for item in poller.poll():
                if isinstance(item, TimedFlow):
                    flows.append(item)
                elif isinstance(item, TimedRange):
                    ranges.append(item)
            time.sleep(0.01)
        ranger.stop()
        with sim.lock:
            true_height = sim.model.flowdeck_truth().height_m
    assert len(flows) > 10 and ranges
    assert all(a.t <= b.t for a, b in itertools.pairwise(flows))
    valid = [r.sample.range_m for r in ranges if r.sample.valid]
    # on the ground: the deck sits at its clearance, seen by the ranger within noise
    assert valid and all(abs(r - true_height) < 0.02 for r in valid)


def test_fly_with_a_missing_deck_refuses_to_start_in_one_line() -> None:
    out = run_cli("fly", "--sbus-port", "/dev/null", "--headless", "--flowdeck",
                  "--spi", "/dev/spidev9.9")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "/dev/spidev9.9" in lines[0] and "dtparam=spi=on" in lines[0]
    assert '"stopped"' not in out.stdout   # nothing was streamed


def test_sim_refuses_a_texture_outside_0_to_1() -> None:
    out = run_cli("sim", "--headless", "--duration", "1", "--texture", "1.5")
    assert out.returncode == 1 and "--texture" in out.stderr and "Traceback" not in out.stderr


def test_the_simulated_deck_carries_the_mpu6050_on_its_i2c_bus() -> None:
    clock = MonotonicClock()
    with RealtimeSim(SimulatedCC3D(seed=4)) as sim:
        drivers = sim_drivers(sim, clock, texture=1.0, seed=4, imu=True)   # calibrated here
        assert drivers.imu is not None and drivers.imu.bias != (0.0, 0.0, 0.0)
        poller = FlowDeckPoller(drivers.flow, drivers.ranger, clock, imu=drivers.imu)
        imus: list[TimedImu] = []
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and len(imus) < 20:
            imus += [i for i in poller.poll_imu() if isinstance(i, TimedImu)]
            time.sleep(0.002)
        drivers.ranger.stop()
    assert len(imus) >= 20
    # on the ground, still: the bias measured away, about 1 g up along body z
    assert all(max(abs(r) for r in i.sample.rates) < 0.05 for i in imus)
    assert all(abs(i.sample.accel[2] + 9.81) < 1.0 for i in imus)


def test_sim_imu_defaults_as_the_missions_sim_table() -> None:
    from pipilot.mission.spec import SimSpec

    assert SIM_IMU is SimSpec().imu


def test_an_imu_asked_for_and_not_answering_is_one_sensor_error(monkeypatch) -> None:
    """`fly --flowdeck --imu` / `mission run --flowdeck --imu` on a deck without one:
    the drivers on buses that have no MPU-6050 at 0x68."""
    from pipilot.sensors import bus
    from pipilot.sim.flowdeck import SimFlowDeck
    from tests.sensors.conftest import Truth

    clock = MonotonicClock()
    hw = SimFlowDeck.create(Truth(), clock)
    monkeypatch.setattr(bus, "open_spi", lambda dev: hw.spi)
    monkeypatch.setattr(bus, "open_i2c", lambda n: hw.i2c)
    assert real_drivers("/dev/spidev0.0", 1, clock).imu is None   # the deck alone is fine
    with pytest.raises(SensorError) as err:
        real_drivers("/dev/spidev0.0", 1, clock, imu=True)
    text = str(err.value)
    assert text.startswith("/dev/i2c-1: ") and "\n" not in text and "0x68" in text


class LinkTelemetry:
    """A link that comes and goes; the FC answers the period writes as ``answers`` says."""

    def __init__(self, answers: list[Exception | None]) -> None:
        self.connected = False
        self.answers = answers
        self.asked: list[tuple[str, int]] = []

    async def set_update_period(self, name: str, period_ms: int, *,
                                mode: str = "periodic") -> None:
        self.asked.append((name, period_ms))
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer


def test_keep_rates_asks_once_connected_retries_and_asks_again_after_a_reconnect() -> None:
    v = FakeVehicle()
    tel = LinkTelemetry([RuntimeError("NACK"), None, None])
    v.telemetry = tel   # type: ignore[assignment]
    hold = FlowHold(v, imu=True)   # type: ignore[arg-type]
    said: list[str] = []

    async def scenario() -> None:
        task = asyncio.create_task(keep_rates(hold, said.append, poll_s=0.01, retry_s=0.01))
        await asyncio.sleep(0.1)
        assert tel.asked == []            # nothing asked of a link that is down
        tel.connected = True
        await until(lambda: said)
        assert tel.asked == [("AttitudeState", 200)] * 2   # refused once, then set
        assert said == ["hold: body rates from the IMU; AttitudeState every 200 ms"]
        assert hold.status().attitude_period_ms == 200
        tel.connected = False             # the FC rebooted: it forgets the period
        await until(lambda: hold.status().attitude_period_ms is None)
        tel.connected = True
        await until(lambda: len(said) == 2)
        assert len(tel.asked) == 3 and hold.status().attitude_period_ms == 200
        task.cancel()

    asyncio.run(scenario())


def test_keep_rates_reports_a_period_the_fc_never_took() -> None:
    v = FakeVehicle()
    tel = LinkTelemetry([RuntimeError("AttitudeStateMeta: NACK")] * 3)
    tel.connected = True
    v.telemetry = tel   # type: ignore[assignment]
    hold = FlowHold(v, imu=False)   # type: ignore[arg-type]
    said: list[str] = []

    async def scenario() -> None:
        task = asyncio.create_task(keep_rates(hold, said.append, poll_s=0.01, retry_s=0.01,
                                              tries=3))
        await until(lambda: said)
        task.cancel()

    asyncio.run(scenario())
    assert tel.asked == [("AttitudeState", 150)] * 3
    assert said == ["hold: body rates from AttitudeState; AttitudeState period not set "
                    "(AttitudeStateMeta: NACK): the FC's own stands"]
    st = hold.status().as_json()
    assert st["attitude_period_ms"] is None
    assert st["attitude_period_error"] == "AttitudeStateMeta: NACK"


def test_keep_rates_asks_nothing_of_a_line_too_slow_and_says_so_once() -> None:
    v = FakeVehicle()
    tel = LinkTelemetry([])
    tel.connected = True
    v.telemetry = tel   # type: ignore[assignment]
    hold = FlowHold(v, imu=True, telemetry_baud=4800)   # type: ignore[arg-type]
    said: list[str] = []

    async def scenario() -> None:
        task = asyncio.create_task(keep_rates(hold, said.append, poll_s=0.01, retry_s=5.0,
                                              tries=3))
        await until(lambda: said, timeout=2.0)       # not after two 5 s retries
        task.cancel()

    asyncio.run(scenario())
    assert tel.asked == []
    assert len(said) == 1 and "4800-baud line has no room" in said[0]


async def until(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


@pytest.mark.slow
@pytest.mark.parametrize("flag, rates", [(None, "imu"), ("--no-imu", "attitude")])
def test_sim_says_where_the_holds_rates_come_from(flag: str | None, rates: str) -> None:
    import json

    out = run_cli("sim", "--headless", "--duration", "6", "--json", *([flag] if flag else []))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["flowdeck"] and summary["hold_rates"] == rates
    with_imu = "with an MPU-6050" in out.stderr
    assert with_imu is (rates == "imu")
    assert f"hold rates from {'the IMU' if rates == 'imu' else 'AttitudeState'}" in out.stderr
    # the period the link budget allows, asked of the simulated FC once connected
    # (6 s: generous for the handshake on a loaded machine)
    period = 200 if rates == "imu" else 150
    assert summary["telemetry_connected"]
    assert summary["hold"]["attitude_period_ms"] == period, out.stderr
    assert f"AttitudeState every {period} ms" in out.stderr


def test_fly_imu_without_the_deck_is_refused_in_one_line() -> None:
    out = run_cli("fly", "--sbus-port", "/dev/null", "--headless", "--imu")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert lines == ["pipilot: error: config --imu: reads the flow deck's MPU-6050: "
                     "add --flowdeck"], out.stderr


def test_fly_gives_the_page_the_hold_of_its_config_file(tmp_path) -> None:
    """`pipilot fly --config FILE --flowdeck --imu`: [hold] and [hold.estimator] reach
    the hold the page engages; ``rates = "attitude"`` is honoured beside an IMU."""
    from pipilot.cli.fly import fly
    from pipilot.core import config as core_config
    from pipilot.core.config import LinkConfig
    from pipilot.core.vehicle import Vehicle

    f = tmp_path / "pipilot.toml"
    f.write_text("[hold]\nmax_tilt_deg = 8\nrates = 'attitude'\n"
                 "[hold.estimator]\nlatency_s = 0.05\n")
    with RealtimeSim(SimulatedCC3D(seed=2)) as sim:
        cfg = core_config.load(f)
        vehicle = Vehicle.create(sim.sbus_port, cfg.replace(link=LinkConfig(port=sim.sbus_port)))

        async def main() -> None:
            deck = await asyncio.to_thread(sim_drivers, sim, vehicle.clock, texture=1.0,
                                           seed=2, imu=True)
            stop = asyncio.Event()
            flying = asyncio.create_task(fly(vehicle, stop, None, "", deck))
            await until(lambda: vehicle.hold is not None)
            stop.set()
            await flying

        asyncio.run(main())
    hold = vehicle.hold
    assert isinstance(hold, FlowHold)
    assert hold.config.max_tilt_deg == 8 and hold.config == cfg.hold.limits
    assert hold.estimator.config.latency_s == 0.05
    assert not hold.imu_rates   # the config said "attitude"


def test_fly_refuses_imu_rates_without_imu_before_anything_opens(tmp_path) -> None:
    f = tmp_path / "pipilot.toml"
    f.write_text("[hold]\nrates = 'imu'\n")
    out = run_cli("fly", "--sbus-port", "/dev/null", "--headless", "--config", str(f),
                  "--flowdeck", "--spi", "/dev/spidev9.9")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "pipilot: error: config hold.rates: is \"imu\": add --imu (the deck's MPU-6050 on "
        "its I2C bus)"], out.stderr
