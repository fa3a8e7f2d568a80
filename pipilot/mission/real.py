"""Missions on the real craft: the S.Bus link through the flight core, telemetry
through a UAVTalk session, both wrapped in the Vehicle facade; with a flow deck,
its reader thread feeding the mission's hold."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from pipilot.core.clock import Clock, MonotonicClock
from pipilot.core.config import CoreConfig, load
from pipilot.core.telemetry import TelemetrySession
from pipilot.core.vehicle import Vehicle
from pipilot.errors import LinkError, PipilotError
from pipilot.mission.api import Mission
from pipilot.mission.events import MissionEvent
from pipilot.mission.runner import run_spec
from pipilot.mission.spec import MissionSpec
from pipilot.sensors.reader import FlowDeckPoller, SensorReader
from pipilot.uavtalk.session import TelemetryTimeout

DEFAULT_TELEMETRY_PORT = "/dev/ttySOFT0"


async def fly_real(spec: MissionSpec, *, drift: bool = True,
                   on_event: Callable[[MissionEvent], None] | None = None,
                   config_path: str | None = None, sbus_port: str | None = None,
                   telemetry_port: str = DEFAULT_TELEMETRY_PORT, baud: int = 9600,
                   connect_timeout_s: float = 10.0,
                   deck: Callable[[Clock], FlowDeckPoller] | None = None
                   ) -> tuple[Mission, dict[str, Any]]:
    """Open the flow deck if there is one, connect telemetry (no telemetry, no
    flight), then start the core and fly.

    ``deck`` opens the deck's drivers, initialised, on the clock the flight runs
    on (blocking: it runs on a worker thread), before anything connects: a deck
    that does not answer stops the mission with its `SensorError`. A
    `SensorReader` thread then reads it for the mission's hold."""
    config = load(config_path) if config_path else CoreConfig()
    clock = MonotonicClock()
    poller = None if deck is None else await asyncio.to_thread(deck, clock)
    with contextlib.ExitStack() as stack:
        reader = None
        if poller is not None:
            if poller.ranger is not None:
                stack.callback(_stop_ranger, poller)
            reader = SensorReader(poller)
            reader.start(asyncio.get_running_loop())
            stack.callback(reader.stop)   # before the ranger: the thread reads it
        session = await TelemetrySession.open(telemetry_port, baud)
        await session.start()
        try:
            try:
                await session.wait_connected(timeout=connect_timeout_s)
            except TelemetryTimeout as exc:
                raise LinkError(telemetry_port, f"no telemetry connection: {exc}") from exc
            vehicle = Vehicle.create(sbus_port or config.link.port, config, clock)
            vehicle.attach_telemetry(session)
            async with vehicle:
                return await run_spec(spec, vehicle, drift=drift, on_event=on_event,
                                      handle_sigint=True, deck=reader, telemetry_baud=baud)
        finally:
            await session.stop()


def _stop_ranger(poller: FlowDeckPoller) -> None:
    """Stop the VL53L1X ranging (best effort: the bus may be what failed)."""
    assert poller.ranger is not None
    with contextlib.suppress(PipilotError):
        poller.ranger.stop()
