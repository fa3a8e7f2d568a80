"""udp:HOST:PORT as a byte stream (the SITL's telemetry link)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from pipilot.errors import LinkError
from pipilot.link.stream import open_stream
from pipilot.link.udp import MAX_DATAGRAM, open_udp, parse_udp_spec


def test_parse_udp_spec() -> None:
    assert parse_udp_spec("udp:127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert parse_udp_spec("udp:9000") == ("127.0.0.1", 9000)
    assert parse_udp_spec("udp:[::1]:9000") == ("::1", 9000)
    for bad in ("udp:127.0.0.1:x", "udp:127.0.0.1:0", "udp:127.0.0.1:70000", "tcp:1:2"):
        with pytest.raises(LinkError):
            parse_udp_spec(bad)


def test_only_loopback_by_default() -> None:
    async def main() -> None:
        with pytest.raises(LinkError, match="loopback"):
            await open_udp("udp:192.0.2.1:9000")

    asyncio.run(main())


def test_round_trip_through_a_datagram_peer() -> None:
    """Each write is one datagram; the peer's datagrams are stream bytes; close is clean."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2.0)
    port = peer.getsockname()[1]

    async def main() -> None:
        stream = await open_stream(f"udp:127.0.0.1:{port}")
        stream.write(b"hello")
        await stream.drain()
        data, addr = await asyncio.to_thread(peer.recvfrom, 4096)
        assert data == b"hello"
        stream.write(bytes(MAX_DATAGRAM + 10))
        first, _ = await asyncio.to_thread(peer.recvfrom, 4096)
        second, _ = await asyncio.to_thread(peer.recvfrom, 4096)
        assert (len(first), len(second)) == (MAX_DATAGRAM, 10)
        peer.sendto(b"abc", addr)
        peer.sendto(b"def", addr)
        got = b""
        while len(got) < 6:
            got += await asyncio.wait_for(stream.read(), 2.0)
        assert got == b"abcdef"
        assert stream.backlog() == 0
        stream.close()
        await asyncio.wait_for(stream.wait_closed(), 2.0)
        assert stream.is_closing()

    try:
        asyncio.run(main())
    finally:
        peer.close()


def test_nobody_listening_is_not_fatal() -> None:
    """ICMP port-unreachable while the SITL starts must not end the stream."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()

    async def main() -> None:
        stream = await open_udp(f"udp:127.0.0.1:{port}")
        for _ in range(3):
            stream.write(b"x")
            await asyncio.sleep(0.05)
        assert not stream.is_closing()
        assert stream.errors >= 1          # the refusals were seen, and shrugged off
        stream.close()
        await asyncio.wait_for(stream.wait_closed(), 2.0)
        assert await stream.read() == b""  # a closed stream reads as ended

    asyncio.run(main())
