"""Who may hold a connection to the web server, and for how long.

The server accepts its own connections (not asyncio's `create_server`), so an
excess one is refused before any transport or request handler exists: it is
closed at once with a reset, and a log line says so at most every
`LOG_INTERVAL_S`. Running out of descriptors pauses accepting for a moment
instead of logging a traceback for every attempt.

Limits: `max_connections` in all, of which at most `max_unauthenticated` have
not yet presented the token (every connection starts that way). When those
are all taken, the oldest one that has sat there for `evict_after_s` makes
room for the newcomer, so a slow trickle of half-sent requests cannot lock a
pilot's page out. A request's headers must be complete within
`header_timeout_s` of the connection opening or of the previous response
(slowloris); a connection that presented the token may idle for
`idle_timeout_s`. A request being served (a websocket for its whole life) is
exempt: pages are bounded by `ServerConfig.max_pages` instead.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

LOG_INTERVAL_S = 10.0
ACCEPT_BATCH = 64
"""Connections accepted per wake-up: the loop's other work runs between batches."""
NO_DESCRIPTORS_PAUSE_S = 0.1
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close sends a reset, no TIME_WAIT
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


@dataclass(frozen=True)
class GuardConfig:
    max_connections: int = 256
    max_unauthenticated: int = 64
    header_timeout_s: float = 5.0
    idle_timeout_s: float = 30.0
    evict_after_s: float = 1.0
    sweep_interval_s: float = 0.5


class _Conn:
    __slots__ = ("authenticated", "busy", "since", "transport")

    def __init__(self, since: float) -> None:
        self.transport: asyncio.Transport | None = None
        self.authenticated = False
        self.busy = 0
        self.since = since


class _Tracked(asyncio.Protocol):
    """The request handler's protocol, with the guard told when the connection ends."""

    def __init__(self, guard: Guard, conn: _Conn, inner: asyncio.Protocol) -> None:
        self._guard, self._conn, self._inner = guard, conn, inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._conn.transport = transport
        self._guard._by_transport[transport] = self._conn
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard._forget(self._conn)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class Guard:
    """Accepts connections on a listening socket for `factory` (aiohttp's `web.Server`)."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], config: GuardConfig | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.factory = factory
        self.config = config or GuardConfig()
        self.clock = clock
        self.refused = 0
        self.evicted = 0
        self.timed_out = 0
        self._conns: set[_Conn] = set()
        self._waiting: collections.OrderedDict[_Conn, None] = collections.OrderedDict()
        self._by_transport: dict[asyncio.BaseTransport, _Conn] = {}
        self._socks: list[socket.socket] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._resume: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_log = -1e9
        self._unlogged = 0

    @property
    def connections(self) -> int:
        return len(self._conns)

    @property
    def unauthenticated(self) -> int:
        return len(self._waiting)

    def stats(self) -> dict[str, int]:
        return {"connections": self.connections, "unauthenticated": self.unauthenticated,
                "refused": self.refused, "evicted": self.evicted, "timed_out": self.timed_out}

    async def listen(self, host: str, port: int, backlog: int = 1024) -> int:
        """Bind every address `host` resolves to, listen and start accepting; return
        the port (useful with port 0: the first address's, reused for the others)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        try:
            for family, type_, proto, _, addr in dict.fromkeys(infos):
                sock = socket.socket(family, type_, proto)
                self._socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if port == 0 and len(self._socks) > 1:
                    addr = (addr[0], self._socks[0].getsockname()[1], *addr[2:])
                sock.bind(addr)
                sock.listen(backlog)
                sock.setblocking(False)
        except BaseException:
            for sock in self._socks:
                sock.close()
            self._socks = []
            raise
        for sock in self._socks:
            loop.add_reader(sock.fileno(), self._accept, sock)
        self._sweeper = loop.create_task(self._sweep(), name="web-guard-sweeper")
        return int(self._socks[0].getsockname()[1])

    def close(self) -> None:
        """Stop accepting (open connections stay, for the server's own shutdown)."""
        if self._loop is not None:
            for sock in self._socks:
                self._loop.remove_reader(sock.fileno())
                sock.close()
        self._socks = []
        if self._resume is not None:
            self._resume.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()

    # -- accepting ----------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._out_of_descriptors(exc, listener)
                    return
                raise
            if self._admit():
                self._start(conn)
            else:
                self._refuse(conn)

    def _admit(self) -> bool:
        c = self.config
        if len(self._conns) >= c.max_connections:
            return False
        if len(self._waiting) < c.max_unauthenticated:
            return True
        # the oldest that is not being served: a watcher's page (no token, a
        # websocket) is a request in progress and keeps its slot
        oldest = next((w for w in self._waiting if not w.busy), None)
        if oldest is None or self.clock() - oldest.since < c.evict_after_s:
            return False
        self.evicted += 1
        self._drop(oldest)
        return True

    def _refuse(self, sock: socket.socket) -> None:
        self.refused += 1
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        sock.close()
        self._complain(f"refusing connections: {len(self._conns)} open "
                       f"({len(self._waiting)} without the token)")

    def _out_of_descriptors(self, exc: OSError, listener: socket.socket) -> None:
        assert self._loop is not None
        self._complain(f"cannot accept connections: {exc.strerror}; pausing "
                       f"{NO_DESCRIPTORS_PAUSE_S:g} s")
        self._loop.remove_reader(listener.fileno())
        self._resume = self._loop.call_later(NO_DESCRIPTORS_PAUSE_S, self._resume_accepting,
                                             listener)

    def _resume_accepting(self, listener: socket.socket) -> None:
        self._resume = None
        if listener in self._socks and self._loop is not None:
            self._loop.add_reader(listener.fileno(), self._accept, listener)

    def _complain(self, text: str) -> None:
        now = self.clock()
        if now - self._last_log >= LOG_INTERVAL_S:
            more = f" ({self._unlogged} more since the last report)" if self._unlogged else ""
            log.warning("web server %s%s", text, more)
            self._last_log, self._unlogged = now, 0
        else:
            self._unlogged += 1

    def _start(self, sock: socket.socket) -> None:
        assert self._loop is not None
        sock.setblocking(False)
        conn = _Conn(self.clock())
        self._conns.add(conn)
        self._waiting[conn] = None
        protocol = _Tracked(self, conn, self.factory())
        task = self._loop.create_task(self._attach(sock, conn, protocol))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attach(self, sock: socket.socket, conn: _Conn, protocol: _Tracked) -> None:
        assert self._loop is not None
        try:
            await self._loop.connect_accepted_socket(lambda: protocol, sock)
        except OSError:
            self._forget(conn)
            sock.close()

    # -- bookkeeping ------------------------------------------------------------
    def _forget(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        self._waiting.pop(conn, None)
        if conn.transport is not None:
            self._by_transport.pop(conn.transport, None)

    def _drop(self, conn: _Conn) -> None:
        self._forget(conn)
        if conn.transport is not None:
            conn.transport.abort()

    async def _sweep(self) -> None:
        c = self.config
        while True:
            await asyncio.sleep(c.sweep_interval_s)
            now = self.clock()
            for conn in list(self._conns):
                if conn.busy or conn.transport is None:
                    continue
                limit = c.idle_timeout_s if conn.authenticated else c.header_timeout_s
                if now - conn.since > limit:
                    self.timed_out += 1
                    self._drop(conn)

    # -- requests -------------------------------------------------------------
    def middleware(self, authenticated: Callable[[web.Request], bool]
                   ) -> Callable[..., Awaitable[web.StreamResponse]]:
        """An aiohttp middleware: a request in progress is exempt from the timeouts,
        and one for which `authenticated(request)` holds lifts its connection
        out of the unauthenticated ones for good."""

        @web.middleware
        async def guard(request: web.Request,
                        handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                        ) -> web.StreamResponse:
            conn = self._by_transport.get(request.transport) if request.transport else None
            if conn is None:  # not one of ours (a test server)
                return await handler(request)
            if not conn.authenticated and authenticated(request):
                conn.authenticated = True
                self._waiting.pop(conn, None)
            conn.busy += 1
            try:
                return await handler(request)
            finally:
                conn.busy -= 1
                conn.since = self.clock()

        return guard
