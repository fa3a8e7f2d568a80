"""The drift loop asks the FC for its telemetry rates; a link that refuses is reported."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

from pipilot.control.compensator import DriftCompensator
from pipilot.core.clock import VirtualClock


class LossyTelemetry:
    """Acknowledges a write only after ``lose`` earlier attempts at it timed out."""

    def __init__(self, lose: int) -> None:
        self.lose = lose
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.acked: dict[str, dict[str, Any]] = {}

    async def send(self, name: str, values: dict[str, Any]) -> None:
        self.sent.append((name, values))
        if sum(n == name for n, _ in self.sent) <= self.lose:
            raise TimeoutError(f"{name} ACK: no answer")
        self.acked[name] = values


class Vehicle:
    def __init__(self, telemetry: LossyTelemetry) -> None:
        self.clock = VirtualClock()
        self.telemetry = telemetry


def configure(lose: int) -> tuple[list[str], LossyTelemetry]:
    tel = LossyTelemetry(lose)
    comp = DriftCompensator(Vehicle(tel), flying=lambda: False)
    failed = asyncio.run(comp.configure_rates())
    assert comp.rate_errors == failed
    return failed, tel


def test_rates_are_set_as_configured() -> None:
    failed, tel = configure(lose=0)
    assert failed == []
    assert [n for n, _ in tel.sent] == ["AccelStateMeta", "AttitudeStateMeta"]
    assert tel.acked["AccelStateMeta"]["telemetry_period_ms"] == 100
    assert tel.acked["AttitudeStateMeta"]["telemetry_period_ms"] == 200
    assert tel.acked["AccelStateMeta"]["telemetry_update_mode"] == "periodic"


def test_a_refusing_link_is_reported_and_the_loop_goes_on() -> None:
    failed, tel = configure(lose=10)
    assert failed == ["AccelState", "AttitudeState"]
    assert len(tel.sent) == 2  # a lost ACK is retried by the session, not here


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
    comp = DriftCompensator(Vehicle(LossyTelemetry(0)), flying=lambda: False, rate_hz=1000.0)

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
