"""The hub's loops survive a failure on every tick and log it once, then as a count."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from pipilot.core.clock import VirtualClock
from pipilot.server import view
from pipilot.server.app import Hub, ServerConfig
from tests.server.fake import FakeVehicle

LOGGER = "pipilot.server.app"


def test_a_watchdog_failing_every_tick_withdraws_the_pilot_and_logs_once(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    vehicle = FakeVehicle(VirtualClock())
    hub = Hub(vehicle, ServerConfig(token="t", port=0, heartbeat_timeout=0.01), vehicle.clock)

    def broken(_vehicle: object) -> str:
        raise RuntimeError("no flight status")

    monkeypatch.setattr(view, "armed_state", broken)

    async def run() -> None:
        task = asyncio.create_task(hub.watchdog())
        while hub.watchdog_failures.failures < 20:
            await asyncio.sleep(0.005)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.ERROR, logger=LOGGER):
        asyncio.run(run())
    n = hub.watchdog_failures.failures
    assert len(vehicle.withdrawals) == n >= 20  # every failed tick still fails safe
    recs = [r for r in caplog.records if r.name == LOGGER]
    assert [r.exc_info is not None for r in recs] == [True, False]
    assert f"{n - 1} more failure(s)" in recs[1].getMessage()


def test_a_page_whose_messages_fail_cannot_flood_the_log(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    vehicle = FakeVehicle(VirtualClock())
    hub = Hub(vehicle, ServerConfig(token="t", port=0), vehicle.clock)
    replies: list[str] = []

    class Page:
        id = "p1"

        def reply(self, text: str) -> None:
            replies.append(text)

    def broken(_client: object, _msg: object) -> None:
        raise RuntimeError("vehicle refused")

    monkeypatch.setattr(hub, "_dispatch", broken)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        for _ in range(500):
            hub.handle(Page(), '{"type": "ping", "t": 1}')  # type: ignore[arg-type]
    recs = [r for r in caplog.records if r.name == LOGGER]
    assert len(replies) == 500 and all('"internal"' in r for r in replies)
    assert len(recs) == 1 and recs[0].exc_info is not None
    assert hub.message_failures.failures == 500
