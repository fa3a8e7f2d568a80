"""The browser controller: aiohttp server for the page in web/, its websocket and /api/status."""

from pipilot.server.app import ServerConfig, make_app
from pipilot.server.port import ArmIntent, VehiclePort
from pipilot.server.protocol import Sticks

__all__ = ["ArmIntent", "ServerConfig", "Sticks", "VehiclePort", "make_app"]
