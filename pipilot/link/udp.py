"""UDP as an asyncio byte stream: the telemetry link of LibrePilot's SITL.

The simposix firmware serves UAVTalk over UDP: every datagram it receives is
fed to its telemetry port as bytes, and it answers the address the latest
datagram came from. ``open_udp`` gives the same (StreamReader, StreamWriter)
pair a serial port gives, so a TelemetrySession cannot tell the difference:
each write is one datagram, every datagram received is appended to the reader.

Only public asyncio APIs are used: a datagram endpoint, a StreamReaderProtocol
fed by it, and a thin Transport that turns ``write`` into ``sendto``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any

from pipilot.errors import LinkError

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


class _DatagramFeeder(asyncio.DatagramProtocol):
    """Hands every datagram to a StreamReaderProtocol as stream bytes."""

    def __init__(self, stream: asyncio.StreamReaderProtocol, spec: str) -> None:
        self.stream = stream
        self.spec = spec
        self.errors = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.stream.data_received(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while nobody listens yet: the handshake retries.
        self.errors += 1
        log.debug("udp %s: %s", self.spec, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stream.connection_lost(exc)


class _DatagramStreamTransport(asyncio.Transport):
    """The write side of a connected datagram endpoint, as a stream transport."""

    def __init__(self, datagrams: asyncio.DatagramTransport) -> None:
        super().__init__()
        self._dt = datagrams

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(bytes(data))
        for i in range(0, len(view), MAX_DATAGRAM):
            self._dt.sendto(view[i:i + MAX_DATAGRAM].tobytes())

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        # asyncio's datagram transports buffer when the socket would block, but only
        # the selector implementation says how much: report it where it is known.
        size = getattr(self._dt, "get_write_buffer_size", None)
        return int(size()) if callable(size) else 0

    def is_closing(self) -> bool:
        return self._dt.is_closing()

    def close(self) -> None:
        self._dt.close()

    def abort(self) -> None:
        self._dt.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._dt.get_extra_info(name, default)

    def pause_reading(self) -> None:
        pass  # datagrams cannot be held back; the reader's buffer is bounded by the session

    def resume_reading(self) -> None:
        pass


async def open_udp(spec: str, *, loopback_only: bool = True
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect a UDP socket to ``udp:HOST:PORT`` and wrap it as a reader/writer pair.

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
    reader = asyncio.StreamReader(limit=2**16)
    stream = asyncio.StreamReaderProtocol(reader)
    try:
        dt, _ = await loop.create_datagram_endpoint(lambda: _DatagramFeeder(stream, spec),
                                                    remote_addr=(host, port))
    except OSError as exc:
        raise LinkError(spec, f"cannot open UDP socket: {exc}") from None
    transport = _DatagramStreamTransport(dt)
    stream.connection_made(transport)
    return reader, asyncio.StreamWriter(transport, stream, reader, loop)
