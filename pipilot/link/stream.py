"""Byte streams for the telemetry link: serial ports and ptys, TCP, UDP.

A `ByteStream` reads and writes bytes under asyncio and says how much it
still has to send. `FdStream` drives a non-blocking descriptor (a serial port
or pty) with ``loop.add_reader`` / ``loop.add_writer``; `PairStream` wraps an
asyncio (StreamReader, StreamWriter) pair (TCP); pipilot.link.udp's
`DatagramStream` is UDP. Only public asyncio APIs are used.

`open_stream(port, baud)` opens ``tcp:HOST:PORT``, ``udp:HOST:PORT`` or a
device; `open_serial_device` opens a device and returns its identity, so that
a lost adapter is reopened only if it is the same one (pipilot.link.identity).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import logging
import os

from pipilot.errors import LinkError
from pipilot.link.identity import (
    DeviceChanged,
    DeviceIdentity,
    DeviceProbe,
    open_checked,
    reopen_names,
)
from pipilot.link.portspec import is_tcp, parse_tcp

log = logging.getLogger(__name__)

READ_SIZE = 4096
#: Received bytes nobody has read yet beyond which reading pauses.
MAX_READ_BUFFER = 256 * 1024


class ByteStream(abc.ABC):
    """A bidirectional byte stream under asyncio."""

    @abc.abstractmethod
    async def read(self) -> bytes:
        """Some bytes, waiting for them; b"" once the stream has ended. OSError if it failed."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Queue bytes for sending (never blocks). OSError or RuntimeError if closed."""

    @abc.abstractmethod
    def backlog(self) -> int:
        """Bytes written but not yet handed to the kernel."""

    @abc.abstractmethod
    def is_closing(self) -> bool: ...

    @abc.abstractmethod
    async def drain(self) -> None:
        """Return once the backlog has been handed to the kernel (or the stream closed)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close both directions."""

    @abc.abstractmethod
    async def wait_closed(self) -> None:
        """Return once closed."""


class PairStream(ByteStream):
    """An asyncio (StreamReader, StreamWriter) pair as a ByteStream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read(self) -> bytes:
        return await self.reader.read(READ_SIZE)

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    def backlog(self) -> int:
        return int(self.writer.transport.get_write_buffer_size())

    def is_closing(self) -> bool:
        return self.writer.is_closing()

    async def drain(self) -> None:
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()

    async def wait_closed(self) -> None:
        await self.writer.wait_closed()


class FdStream(ByteStream):
    """A non-blocking file descriptor (serial port, pty) on the running loop's selector.

    The stream owns ``fd`` and closes it. A hang-up (EIO on a pty whose other
    end went away) ends the stream like an EOF, with the error kept for `read`.
    """

    def __init__(self, fd: int, name: str = "") -> None:
        self.fd = fd
        self.name = name
        self._loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        self._rx = bytearray()
        self._tx = bytearray()
        self._eof = False
        self._error: OSError | None = None
        self._closed = False
        self._reading = False
        self._rx_waiter: asyncio.Future[None] | None = None
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._resume_reading()

    # ------------------------------------------------------------------ reading
    def _resume_reading(self) -> None:
        if not self._reading and not self._eof and not self._closed:
            self._loop.add_reader(self.fd, self._on_readable)
            self._reading = True

    def _pause_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self.fd)
            self._reading = False

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._end(exc)
            return
        if not data:
            self._end(None)
            return
        self._rx += data
        if len(self._rx) >= MAX_READ_BUFFER:
            self._pause_reading()
        self._wake_reader()

    def _end(self, error: OSError | None) -> None:
        self._eof = True
        self._error = self._error or error
        self._pause_reading()
        self._wake_reader()

    def _wake_reader(self) -> None:
        if self._rx_waiter is not None and not self._rx_waiter.done():
            self._rx_waiter.set_result(None)

    async def read(self) -> bytes:
        while not self._rx and not self._eof:
            self._rx_waiter = self._loop.create_future()
            try:
                await self._rx_waiter
            finally:
                self._rx_waiter = None
        if self._rx:
            data = bytes(self._rx[:READ_SIZE])
            del self._rx[:READ_SIZE]
            self._resume_reading()
            return data
        if self._error is not None and not self._closed:
            error, self._error = self._error, None
            raise error
        return b""

    # ------------------------------------------------------------------ writing
    def write(self, data: bytes) -> None:
        if self._closed:
            raise RuntimeError(f"{self.name or 'stream'} is closed")
        if not data:
            return
        if not self._tx:
            try:
                n = os.write(self.fd, data)
            except (BlockingIOError, InterruptedError):
                n = 0
            data = data[n:]
            if not data:
                return
            self._loop.add_writer(self.fd, self._on_writable)
        self._tx += data

    def _on_writable(self) -> None:
        try:
            n = os.write(self.fd, self._tx)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.warning("%s: write failed: %s", self.name or "stream", exc)
            self._tx.clear()
            self._end(exc)
            n = 0
        del self._tx[:n]
        if not self._tx:
            self._loop.remove_writer(self.fd)
            self._wake_drainers()

    def _wake_drainers(self) -> None:
        for fut in self._drain_waiters:
            if not fut.done():
                fut.set_result(None)
        self._drain_waiters.clear()

    def backlog(self) -> int:
        return len(self._tx)

    async def drain(self) -> None:
        if self._tx and not self._closed:
            fut = self._loop.create_future()
            self._drain_waiters.append(fut)
            await fut

    # ------------------------------------------------------------------ closing
    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pause_reading()
        if self._tx:
            self._loop.remove_writer(self.fd)
            self._tx.clear()
        self._eof = True
        self._wake_reader()
        self._wake_drainers()
        with contextlib.suppress(OSError):
            os.close(self.fd)

    async def wait_closed(self) -> None:
        return  # close() is immediate


async def open_stream(port: str, baud: int = 9600) -> ByteStream:
    """Open ``tcp:HOST:PORT``, ``udp:HOST:PORT`` or a serial device / pty."""
    if port.startswith("udp:"):
        from pipilot.link.udp import open_udp

        return await open_udp(port)
    if is_tcp(port):
        host, tcp_port = parse_tcp(port)
        try:
            return PairStream(*await asyncio.open_connection(host, tcp_port))
        except (OSError, ValueError) as exc:
            raise LinkError(port, f"cannot connect: {exc}") from None
    return await open_serial(port, baud)


async def open_serial(port: str, baud: int = 9600) -> FdStream:
    """A serial port (8N1, raw) at ``baud`` as a ByteStream."""
    stream, _identity = await open_serial_device(port, baud)
    return stream


async def open_serial_device(port: str, baud: int = 9600, *,
                             expect: DeviceIdentity | None = None,
                             probe: DeviceProbe | None = None
                             ) -> tuple[FdStream, DeviceIdentity]:
    """`open_serial`, and the identity of the device opened. With `expect` (the
    device opened before) only that device is opened, under ``port`` or the
    by-id link it had; `DeviceChanged` if another one is there, untouched."""
    import serial

    probe = probe or DeviceProbe()
    guard = -1
    if expect is None:
        name = port
    else:
        changed: DeviceChanged | None = None
        first: LinkError | None = None
        for candidate in reopen_names(port, expect):
            try:
                guard = open_checked(candidate, expect, probe)
                break
            except DeviceChanged as exc:
                changed = changed or exc
            except LinkError as exc:
                first = first or exc
        else:
            if changed is not None:
                raise changed
            assert first is not None
            raise first
        name = f"/proc/self/fd/{guard}"       # exactly the device checked, no other
    try:
        ser = serial.Serial(name, baud, timeout=0)
    except (serial.SerialException, OSError, ValueError) as exc:
        if getattr(exc, "errno", None) == errno.EACCES:
            from pipilot.link.serialport import access_hint

            raise LinkError(port, f"permission denied: {access_hint(port)}") from None
        raise LinkError(port, f"cannot open serial port: {exc}") from None
    finally:
        if guard >= 0:
            os.close(guard)
    try:
        identity = expect or probe.identify_fd(ser.fileno(), by_id=True)
        fd = os.dup(ser.fileno())
    finally:
        ser.close()  # the duplicate keeps the port open with its settings
    return FdStream(fd, port), identity
