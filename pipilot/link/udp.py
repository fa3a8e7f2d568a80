"""UDP as a byte stream: the telemetry link of LibrePilot's SITL.

The simposix firmware serves UAVTalk over UDP: every datagram it receives is
fed to its telemetry port as bytes, and it answers the address the latest
datagram came from. ``open_udp`` gives a `pipilot.link.stream.ByteStream` like
a serial port's, so a TelemetrySession cannot tell the difference: each write
is one datagram (split above MAX_DATAGRAM), every datagram received is bytes
to read. Only public asyncio APIs are used (a datagram endpoint).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any

from pipilot.errors import LinkError
from pipilot.link.stream import ByteStream

log = logging.getLogger(__name__)

#: Largest datagram written at once; longer writes are split (UAVTalk packets are < 300 bytes).
MAX_DATAGRAM = 1024


def parse_udp_spec(spec: str) -> tuple[str, int]:
    """``udp:HOST:PORT`` (or ``udp:PORT`` for 127.0.0.1) -> (host, port); LinkError if malformed."""
    if not spec.startswith("udp:"):
        raise LinkError(spec, "not a udp:HOST:PORT spec")
    host, _, port_text = spec[4:].rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise LinkError(spec, f"bad UDP port {port_text!r} (expected udp:HOST:PORT)") from None
    if not 1 <= port <= 65535:
        raise LinkError(spec, f"UDP port {port} out of range 1..65535")
    return host, port


class _Datagrams(asyncio.DatagramProtocol):
    """Collects every datagram received as stream bytes."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.buffer = bytearray()
        self.errors = 0
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter: asyncio.Future[None] | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.buffer += data
        self.wake()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while nobody listens yet: the handshake retries.
        self.errors += 1
        log.debug("udp %s: %s", self.spec, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        self.wake()

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


class DatagramStream(ByteStream):
    """A connected UDP socket as a byte stream: each write goes out in datagrams
    of at most MAX_DATAGRAM bytes; every datagram received is read as bytes."""

    def __init__(self, transport: asyncio.DatagramTransport, protocol: _Datagrams) -> None:
        self._transport = transport
        self._protocol = protocol

    @property
    def errors(self) -> int:
        """Errors the socket reported (ICMP unreachable while nobody listens)."""
        return self._protocol.errors

    async def read(self) -> bytes:
        proto = self._protocol
        while not proto.buffer and not proto.lost.done():
            await proto.wait()
        data = bytes(proto.buffer)
        proto.buffer.clear()
        return data

    def write(self, data: bytes) -> None:
        view = memoryview(bytes(data))
        for i in range(0, len(view), MAX_DATAGRAM):
            self._transport.sendto(view[i:i + MAX_DATAGRAM].tobytes())

    def backlog(self) -> int:
        # asyncio's datagram transports buffer when the socket would block, but only
        # the selector implementation says how much: report it where it is known.
        size = getattr(self._transport, "get_write_buffer_size", None)
        return int(size()) if callable(size) else 0

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    async def drain(self) -> None:
        return  # a datagram is sent whole or dropped; nothing waits to drain

    def close(self) -> None:
        self._transport.close()

    async def wait_closed(self) -> None:
        await self._protocol.lost


async def open_udp(spec: str, *, loopback_only: bool = True) -> DatagramStream:
    """Connect a UDP socket to ``udp:HOST:PORT`` as a byte stream.

    With ``loopback_only`` (the default) only loopback addresses are accepted:
    the SITL is a local process and pipilot opens nothing towards other hosts.
    """
    host, port = parse_udp_spec(spec)
    if loopback_only:
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = host == "localhost"
        if not local:
            raise LinkError(spec, "UDP telemetry is for a local SITL: use a loopback address")
        if host == "localhost":
            host = "127.0.0.1"
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Datagrams(spec), remote_addr=(host, port))
    except OSError as exc:
        raise LinkError(spec, f"cannot open UDP socket: {exc}") from None
    return DatagramStream(transport, protocol)
