"""Connection admission (pipilot.server.guard) against the real server on 127.0.0.1.

Half-sent requests are closed after the header timeout, excess connections
are reset without a traceback (and logged at most once per interval), a
connection with the token is not counted against the unauthenticated cap, and
the oldest half-sent request makes room for a newcomer once it is old enough.

Where an age is the subject (timeouts, eviction), the guard reads a
VirtualClock (``guard_clock``): the test moves it just short of the bound and
just past it, so the bound is checked on both sides, exactly, without waiting
it out on a loaded machine's wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from pipilot.core.clock import VirtualClock
from pipilot.core.config import CoreConfig
from pipilot.core.vehicle import Vehicle
from pipilot.link.transport import FrameSink
from pipilot.server import runner
from pipilot.server.app import ServerConfig
from pipilot.server.guard import Guard, GuardConfig
from pipilot.server.runner import serve
from tests.server.flood import HALF_REQUEST

TOKEN = "guard-token"
AUTH = {"Authorization": f"token {TOKEN}"}


@contextlib.asynccontextmanager
async def server(guard: GuardConfig, thread: bool = False, observers_open: bool = False
                 ) -> AsyncIterator[int]:
    vehicle = Vehicle.create(FrameSink(lambda t, frame: None), CoreConfig(), VirtualClock(10.0))
    await vehicle.start()
    try:
        async with serve(vehicle, ServerConfig(token=TOKEN, port=0,
                                               observers_open=observers_open),
                         out=io.StringIO(),
                         thread=thread, guard=guard) as url:
            yield int(url.split("/?")[0].rsplit(":", 1)[1])
    finally:
        await vehicle.stop()


class GuardTime:
    """The virtual time the server's guards measure connection ages on."""

    def __init__(self) -> None:
        self.clock = VirtualClock(100.0)
        self.guards: list[Guard] = []

    def make(self, *args: Any, **kw: Any) -> Guard:
        guard = Guard(*args, clock=self.clock.now, **kw)
        self.guards.append(guard)
        return guard

    def advance(self, dt: float) -> None:
        self.clock.advance(dt)

    async def admitted(self, n: int) -> None:
        """Wait (real time) until the guard holds @n connections: a connection's
        age starts when the server accepts it, which with the server on its own
        thread can come after the client's write returned."""
        end = asyncio.get_running_loop().time() + 5.0
        while sum(g.connections for g in self.guards) < n:
            assert asyncio.get_running_loop().time() < end, "the server did not accept"
            await asyncio.sleep(0.005)


@pytest.fixture
def guard_clock(monkeypatch: pytest.MonkeyPatch) -> GuardTime:
    time = GuardTime()
    monkeypatch.setattr(runner, "Guard", time.make)
    return time


async def half_sent(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HALF_REQUEST)
    await writer.drain()
    return reader, writer


async def closed_within(reader: asyncio.StreamReader, timeout: float) -> bool:
    """Whether the server closes (EOF or reset) within `timeout` s; what it sends first
    (a response) is read and dropped."""
    async def eof() -> None:
        while await reader.read(4096):
            pass
    try:
        await asyncio.wait_for(eof(), timeout)
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def attempt(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A half-sent request, or None if the server reset it while connecting. The
    writer is returned with the reader: dropped, it would close the connection
    from this side and make any "closed" check pass."""
    try:
        return await half_sent(port)
    except ConnectionError:
        return None


async def status(port: int, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{port}/api/status", headers=headers or AUTH,
            timeout=aiohttp.ClientTimeout(total=5)) as r:
        return r.status


@pytest.mark.parametrize("thread", [False, True], ids=["same-loop", "thread"])
async def test_a_half_sent_request_is_closed_after_the_header_timeout(thread, guard_clock):
    async with server(GuardConfig(header_timeout_s=0.5, sweep_interval_s=0.05),
                      thread) as port:
        reader, writer = await half_sent(port)
        await guard_clock.admitted(1)
        guard_clock.advance(0.45)
        assert not await closed_within(reader, 0.3)  # several sweeps, not yet timed out
        guard_clock.advance(0.1)
        assert await closed_within(reader, 5.0)
        writer.close()
        assert await status(port) == 200  # and the server still answers


async def test_an_idle_keepalive_without_the_token_is_closed_a_full_one_is_not(guard_clock):
    cfg = GuardConfig(header_timeout_s=0.5, idle_timeout_s=30.0, sweep_interval_s=0.05)
    async with server(cfg) as port:
        anon_r, anon_w = await asyncio.open_connection("127.0.0.1", port)
        anon_w.write(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert b" 401 " in await asyncio.wait_for(anon_r.readline(), 5)
        pilot_r, pilot_w = await asyncio.open_connection("127.0.0.1", port)
        pilot_w.write(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      + f"Authorization: token {TOKEN}\r\n\r\n".encode())
        assert b" 200 " in await asyncio.wait_for(pilot_r.readline(), 5)
        await asyncio.wait_for(pilot_r.readuntil(b"\r\n\r\n"), 5)
        guard_clock.advance(0.6)
        assert await closed_within(anon_r, 5.0)  # answered, then idle past the header timeout
        guard_clock.advance(20.0)
        assert not await closed_within(pilot_r, 0.3)  # the token holder may idle longer
        guard_clock.advance(10.0)
        assert await closed_within(pilot_r, 5.0)  # up to the idle timeout
        anon_w.close()
        pilot_w.close()


async def test_excess_connections_are_reset_quietly(caplog):
    cfg = GuardConfig(max_connections=8, max_unauthenticated=4, evict_after_s=60.0)
    caplog.set_level(logging.INFO)
    async with server(cfg) as port:
        held = [await half_sent(port) for _ in range(4)]
        await asyncio.sleep(0.2)
        refused = await asyncio.to_thread(_connect_many, port, 200)
        assert refused == 200
        for _, w in held:
            w.close()
        await asyncio.sleep(0.2)
        assert await status(port) == 200  # slots free again
    records = [r for r in caplog.records if r.name == "pipilot.server.guard"]
    assert 1 <= len(records) <= 2, [r.getMessage() for r in records]
    assert not any(r.exc_info for r in caplog.records)
    assert "Traceback" not in caplog.text


def _connect_many(port: int, n: int) -> int:
    """Open `n` connections at once; return how many the server reset or closed."""
    socks = []
    refused = 0
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionResetError:
            refused += 1  # reset before the handshake completed here
            s.close()
            continue
        socks.append(s)
    for s in socks:
        try:
            refused += s.recv(1) == b""
        except ConnectionResetError:
            refused += 1
        s.close()
    return refused


async def test_the_oldest_half_sent_request_makes_room_for_a_newcomer(guard_clock):
    cfg = GuardConfig(max_connections=16, max_unauthenticated=4, evict_after_s=0.3,
                      header_timeout_s=30.0)
    async with server(cfg) as port:
        held = [await half_sent(port) for _ in range(4)]
        await guard_clock.admitted(4)
        guard_clock.advance(0.25)
        early = await attempt(port)  # none is old enough to give way yet
        assert early is None or await closed_within(early[0], 2.0)
        assert guard_clock.guards[0].evicted == 0
        guard_clock.advance(0.1)
        assert await status(port) == 200  # evicts the oldest, then holds the token
        assert await closed_within(held[0][0], 2.0)
        assert not await closed_within(held[1][0], 0.2)
        for _, w in held:
            w.close()


async def test_a_watching_page_does_not_stop_the_eviction_of_half_sent_requests(guard_clock):
    cfg = GuardConfig(max_connections=16, max_unauthenticated=3, evict_after_s=0.3,
                      header_timeout_s=30.0)
    async with server(cfg, observers_open=True) as port, aiohttp.ClientSession() as http:
        watcher = await http.ws_connect(f"http://127.0.0.1:{port}/ws")  # no token: watches
        held = [await half_sent(port) for _ in range(2)]
        await guard_clock.admitted(3)
        guard_clock.advance(0.35)
        assert await status(port) == 200  # the oldest half-sent request gave way
        assert await closed_within(held[0][0], 2.0)
        assert not watcher.closed
        await watcher.close()
        for _, w in held:
            w.close()


async def test_the_token_lifts_a_connection_out_of_the_unauthenticated_cap():
    cfg = GuardConfig(max_connections=16, max_unauthenticated=2, evict_after_s=60.0)
    async with server(cfg) as port, aiohttp.ClientSession() as http:
        pages = [await http.ws_connect(f"http://127.0.0.1:{port}/ws", headers=AUTH)
                 for _ in range(4)]
        held = [await half_sent(port) for _ in range(2)]
        await asyncio.sleep(0.2)
        assert all(not p.closed for p in pages)
        assert not await closed_within(held[0][0], 0.2)
        third = await attempt(port)  # the unauthenticated slots are full
        assert third is None or await closed_within(third[0], 2.0)
        for p in pages:
            await p.close()
        for _, w in held:
            w.close()


async def test_every_address_of_the_host_is_served():
    vehicle = Vehicle.create(FrameSink(lambda t, frame: None), CoreConfig(), VirtualClock(10.0))
    await vehicle.start()
    try:
        async with serve(vehicle, ServerConfig(host="localhost", token=TOKEN, port=0),
                         out=io.StringIO(), thread=False) as url:
            port = int(url.split("/?")[0].rsplit(":", 1)[1])
            hosts = {info[4][0] for info in socket.getaddrinfo(
                "localhost", port, type=socket.SOCK_STREAM)}
            for host in hosts:  # 127.0.0.1 and, where the machine has it, ::1
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n"
                             + f"Authorization: token {TOKEN}\r\n\r\n".encode())
                line = await asyncio.wait_for(reader.readline(), 5)
                writer.close()
                assert line.startswith(b"HTTP/1.1 200"), host
    finally:
        await vehicle.stop()
