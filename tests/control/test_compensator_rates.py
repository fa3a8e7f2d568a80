"""The drift loop asks the FC for its telemetry rates; a link that refuses is reported.

Against the simulated CC3D's flight side through the session engine, in lock step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from pipilot.control.compensator import DriftCompensator
from pipilot.core.clock import VirtualClock
from pipilot.sim import LockstepSim


def configure(sim: LockstepSim) -> list[str]:
    sim.wait_connected()
    comp = DriftCompensator(sim.vehicle, flying=lambda: False)
    failed = asyncio.run(comp.configure_rates())
    assert comp.rate_errors == failed
    return failed


def test_rates_are_set_as_configured() -> None:
    sim = LockstepSim(seed=1)
    assert configure(sim) == []
    meta = sim.flight_telemetry.meta
    assert meta["AccelState"]["telemetry_period_ms"] == 100
    assert meta["AttitudeState"]["telemetry_period_ms"] == 200
    assert meta["AccelState"]["telemetry_update_mode"] == "periodic"
    assert sim.flight_telemetry.stats["acks_sent"] == 2
    assert sim.telemetry.stats["tx_retries"] == 0


def test_only_the_period_changes_in_metadata_the_ground_has_seen() -> None:
    sim = LockstepSim(seed=1)
    sim.wait_connected()
    flight_meta = sim.flight_telemetry.meta["AccelState"]
    flight_meta.update(logging_update_mode="periodic", logging_period_ms=500)  # set on the FC
    asyncio.run(sim.telemetry.request("AccelStateMeta"))
    assert configure(sim) == []
    meta = sim.flight_telemetry.meta["AccelState"]
    assert meta["telemetry_period_ms"] == 100 and meta["telemetry_update_mode"] == "periodic"
    assert meta["logging_update_mode"] == "periodic" and meta["logging_period_ms"] == 500


def test_a_lost_ack_is_retried_by_the_session() -> None:
    sim = LockstepSim(seed=1)
    sim.wait_connected()
    sim.telemetry.wire.down = False            # the first ACK is lost on the line
    sim.model.add_task("line back", 0.5, lambda _t: setattr(sim.telemetry.wire, "down", True))
    assert configure(sim) == []
    assert sim.telemetry.stats["tx_retries"] == 1
    assert sim.flight_telemetry.meta["AttitudeState"]["telemetry_period_ms"] == 200


def test_a_refusing_link_is_reported_and_the_loop_goes_on() -> None:
    sim = LockstepSim(seed=1)
    sim.wait_connected()
    sim.telemetry.wire.up = False              # nothing reaches the flight side
    assert configure(sim) == ["AccelState", "AttitudeState"]
    st = sim.telemetry.stats
    assert st["tx_failures"] == 2 and st["tx_retries"] == 4   # each tried three times
    assert sim.flight_telemetry.meta["AccelState"]["telemetry_period_ms"] == 1000


def test_no_telemetry_link_is_a_link_error_before_anything_is_published() -> None:
    from pipilot.core.mixer import Mixer
    from pipilot.errors import LinkError

    class Bare:
        def __init__(self) -> None:
            self.clock = VirtualClock()
            self.mixer = Mixer(clock=self.clock)
            self.telemetry = None

    vehicle = Bare()
    comp = DriftCompensator(vehicle, flying=lambda: True)
    with pytest.raises(LinkError, match="no telemetry link"):
        asyncio.run(comp.start())
    assert comp._task is None
    assert vehicle.mixer.sources["drift"].stamp is None  # nothing published


def test_a_loop_failing_every_tick_logs_one_traceback(caplog: pytest.LogCaptureFixture) -> None:
    class Idle:                                # the tick below never reads the link
        clock = VirtualClock()
        telemetry = None

    comp = DriftCompensator(Idle(), flying=lambda: False, rate_hz=1000.0)  # type: ignore[arg-type]

    def broken_tick() -> None:
        raise RuntimeError("bad sample")

    comp.tick = broken_tick  # type: ignore[method-assign]

    async def run() -> None:
        task = asyncio.create_task(comp._run())
        while comp.errors < 20:
            await asyncio.sleep(0.005)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.ERROR, logger="pipilot.control.compensator"):
        asyncio.run(run())
    recs = [r for r in caplog.records if r.name == "pipilot.control.compensator"]
    assert comp.errors >= 20
    assert [r.exc_info is not None for r in recs] == [True, False]
    assert f"{comp.errors} in all" in recs[1].getMessage()  # the count, flushed as it ended


def test_angles_wrap_to_the_short_way_round() -> None:
    from pipilot.control.compensator import wrap_deg

    assert wrap_deg(0.0) == 0.0
    assert wrap_deg(190.0) == -170.0
    assert wrap_deg(-190.0) == 170.0
    assert wrap_deg(179.0 - (-179.0)) == -2.0   # yaw across the seam
    assert wrap_deg(720.5) == pytest.approx(0.5)
