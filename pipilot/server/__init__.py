"""The browser controller: aiohttp server for the page in web/, its websocket and /api/status."""

from pipilot.server.app import ServerConfig, make_app
from pipilot.server.port import VehiclePort

__all__ = ["ServerConfig", "VehiclePort", "make_app"]
