"""Run the web server beside a vehicle: what `pipilot sim` and `pipilot fly` call.

By default the server runs on an event loop of its own in a thread of its
own, so the flight loop (the core's mixing, which refreshes the frame pump)
never waits for a request: the two only share the interpreter lock, which a
busy thread hands over every `sys.getswitchinterval()` (5 ms). The page's
setpoints cross to the flight loop with `call_soon_threadsafe`
(`VehicleAdapter`). Connections are admitted by `pipilot.server.guard`
(caps, header and idle timeouts), and a stop closes the pages with 1001
(going away) and ends within `STOP_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sys
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import TextIO

from aiohttp import web

from pipilot.core.vehicle import ServedVehicle
from pipilot.errors import ConfigError
from pipilot.server import app as app_module
from pipilot.server.adapter import VehicleAdapter
from pipilot.server.app import ServerConfig, make_app
from pipilot.server.guard import Guard, GuardConfig
from pipilot.server.port import VehiclePort
from pipilot.server.settings import login_line, page_url

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 0.25
"""aiohttp's wait for request handlers once the pages are closed (it waits twice)."""
THREADED = True
"""Whether `serve` runs the server on a thread of its own (bench/web_flood.py compares)."""
STOP_TIMEOUT_S = 2.0
"""The longest a stop waits for the server's thread; the pages get 1001 well before."""


@contextlib.asynccontextmanager
async def _serving(vehicle_port: VehiclePort, config: ServerConfig, guard_config: GuardConfig,
                   started: Callable[[str, Guard], None]) -> AsyncIterator[None]:
    """The server on the running loop: app, runner, guarded listener."""
    app = make_app(vehicle_port, config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_TIMEOUT_S,
                           keepalive_timeout=guard_config.idle_timeout_s)

    def connection() -> asyncio.Protocol:
        server = runner.server  # set by runner.setup(), before the guard listens
        if server is None:
            raise RuntimeError("the web server is not set up")
        return server()

    guard = Guard(connection, guard_config)
    # outermost, so its view of a request covers every other middleware's work
    app.middlewares.insert(0, guard.middleware(lambda r: app_module.allowed(r)[1]))
    listening = False
    try:
        await runner.setup()
        try:
            port = await guard.listen(config.host, config.port)
        except OSError as exc:
            raise ConfigError("server.port", f"cannot listen on {config.host}:{config.port}: "
                                             f"{exc.strerror}") from None
        listening = True
        started(page_url(config, port), guard)
        yield
    finally:
        if listening:
            guard.close()
        await runner.cleanup()


class WebThread:
    """The web server on its own event loop in its own thread."""

    def __init__(self, vehicle: ServedVehicle, config: ServerConfig,
                 guard_config: GuardConfig) -> None:
        self.vehicle = vehicle
        self.config = config
        self.guard_config = guard_config
        self.guard: Guard | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._started: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    async def start(self) -> str:
        """Start the thread; return the page's URL once it listens (or raise why not)."""
        flight_loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, args=(flight_loop,),
                                        name="pipilot-web", daemon=True)
        self._thread.start()
        return await asyncio.wrap_future(self._started)

    def _run(self, flight_loop: asyncio.AbstractEventLoop) -> None:
        try:
            asyncio.run(self._main(flight_loop))
        except BaseException as exc:
            if not self._started.done():
                self._started.set_exception(exc)
            else:
                log.exception("the web server failed")

    async def _main(self, flight_loop: asyncio.AbstractEventLoop) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def started(url: str, guard: Guard) -> None:
            self.guard = guard
            self._started.set_result(url)

        async with _serving(VehicleAdapter(self.vehicle, flight_loop), self.config,
                            self.guard_config, started):
            await self._stop.wait()

    async def stop(self) -> None:
        """Close the pages (1001) and the server; wait at most STOP_TIMEOUT_S."""
        thread = self._thread
        if thread is None:
            return
        loop, stop = self.loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # its loop has already ended
                loop.call_soon_threadsafe(stop.set)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while thread.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if thread.is_alive():
            log.warning("the web server did not stop within %g s; leaving it behind",
                        STOP_TIMEOUT_S)


@contextlib.asynccontextmanager
async def serve(vehicle: ServedVehicle, config: ServerConfig, token_source: str = "",
                out: TextIO | None = None, *, thread: bool | None = None,
                guard: GuardConfig | None = None) -> AsyncIterator[str]:
    """Serve the page for `vehicle` until the block ends; print and yield its login URL.

    `thread=False` runs the server on the caller's loop (for comparison only:
    then the flight loop shares every request's work)."""
    guard_config = guard or GuardConfig()
    if thread is None:
        thread = THREADED
    stream = out or sys.stdout
    terminal = bool(getattr(stream, "isatty", lambda: False)())

    def announce(url: str) -> None:
        port = urllib.parse.urlsplit(url).port
        assert port is not None
        print(login_line(config, port, token_source, terminal), file=stream, flush=True)

    if thread:
        server = WebThread(vehicle, config, guard_config)
        try:
            url = await server.start()
        except BaseException:
            await server.stop()
            raise
        announce(url)
        try:
            yield url
        finally:
            await server.stop()
        return
    urls: list[str] = []
    async with _serving(VehicleAdapter(vehicle), config, guard_config,
                        lambda url, _: urls.append(url)):
        announce(urls[0])
        yield urls[0]
