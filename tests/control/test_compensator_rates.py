"""The drift loop asks the FC for its telemetry rates; a link that refuses is reported.

Against the simulated CC3D's flight side through the session engine, in lock step.
"""

from __future__ import annotations

import asyncio

from pipilot.control.compensator import DriftCompensator
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
