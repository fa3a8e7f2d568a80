"""Run the web server beside a vehicle: what `pipilot sim` and `pipilot fly` call."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any, TextIO

from aiohttp import web

from pipilot.errors import ConfigError
from pipilot.server.adapter import VehicleAdapter
from pipilot.server.app import ServerConfig, make_app
from pipilot.server.settings import login_line, page_url

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def serve(vehicle: Any, config: ServerConfig, token_source: str = "",
                out: TextIO | None = None) -> AsyncIterator[str]:
    """Serve the page for `vehicle` until the block ends; print and yield its login URL."""
    app = make_app(VehicleAdapter(vehicle), config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError("server.port",
                          f"cannot listen on {config.host}:{config.port}: {exc.strerror}"
                          ) from None
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else config.port
    url = page_url(config, port)
    stream = out or sys.stdout
    terminal = bool(getattr(stream, "isatty", lambda: False)())
    print(login_line(config, port, token_source, terminal), file=stream, flush=True)
    try:
        yield url
    finally:
        await runner.cleanup()
