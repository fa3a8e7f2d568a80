"""Missions on the real craft: the S.Bus link through the flight core, telemetry
through a UAVTalk session, both wrapped in the Vehicle facade."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipilot.core.config import CoreConfig, load
from pipilot.core.telemetry import TelemetrySession
from pipilot.core.vehicle import Vehicle
from pipilot.errors import LinkError
from pipilot.mission.api import Mission
from pipilot.mission.events import MissionEvent
from pipilot.mission.runner import run_spec
from pipilot.mission.spec import MissionSpec
from pipilot.uavtalk.session import TelemetryTimeout

DEFAULT_TELEMETRY_PORT = "/dev/ttySOFT0"


async def fly_real(spec: MissionSpec, *, drift: bool = True,
                   on_event: Callable[[MissionEvent], None] | None = None,
                   config_path: str | None = None, sbus_port: str | None = None,
                   telemetry_port: str = DEFAULT_TELEMETRY_PORT, baud: int = 9600,
                   connect_timeout_s: float = 10.0) -> tuple[Mission, dict[str, Any]]:
    """Connect telemetry first (no telemetry, no flight), then start the core and fly."""
    config = load(config_path) if config_path else CoreConfig()
    session = await TelemetrySession.open(telemetry_port, baud)
    await session.start()
    try:
        try:
            await session.wait_connected(timeout=connect_timeout_s)
        except TelemetryTimeout as exc:
            raise LinkError(telemetry_port, f"no telemetry connection: {exc}") from exc
        vehicle = Vehicle.create(sbus_port or config.link.port, config)
        vehicle.attach_telemetry(session)
        async with vehicle:
            return await run_spec(spec, vehicle, drift=drift, on_event=on_event,
                                  handle_sigint=True)
    finally:
        await session.stop()
