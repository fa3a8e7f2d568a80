"""TelemetrySession: the ground side of UAVTalk over any asyncio byte stream.

It runs the handshake (pipilot.uavtalk.handshake) with keepalive and
reconnection, keeps the latest value of every object with its age, feeds
per-object subscriptions, answers the flight side's acknowledged objects and
requests, and offers object requests and acknowledged sends with timeout and
retry. All timers run on the clock passed in (polled every ``poll_interval``
of loop time), so tests can drive them with a VirtualClock.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pipilot.core.clock import Clock, MonotonicClock
from pipilot.errors import LinkError, PipilotError
from pipilot.link.identity import (
    DeviceChanged,
    DeviceIdentity,
    DeviceProbe,
    RefusalLog,
    open_checked,
    reopen_names,
)
from pipilot.link.portspec import is_tcp, parse_tcp
from pipilot.uavtalk import ALL_INSTANCES, Packet, PacketParser, PacketType, encode_packet
from pipilot.uavtalk.definitions import Registry, load_definitions
from pipilot.uavtalk.handshake import Handshake, HandshakeTiming, LinkState
from pipilot.uavtalk.opl import OplWriter

log = logging.getLogger(__name__)

StreamPair = tuple[asyncio.StreamReader, asyncio.StreamWriter]
_OBJ_TYPES = (PacketType.OBJ, PacketType.OBJ_TS, PacketType.OBJ_ACK, PacketType.OBJ_ACK_TS)
_U32 = 0xFFFFFFFF
#: Unsent bytes beyond this mean nobody reads the other end: drop, don't hoard.
MAX_WRITE_BACKLOG = 64 * 1024


class TelemetryError(PipilotError):
    """A telemetry transaction failed (timeout, NACK, closed link, unknown object)."""


class TelemetryTimeout(TelemetryError):
    """No answer from the flight side after all retries."""


class TelemetryNack(TelemetryError):
    """The flight side refused the object (NACK)."""


class Subscription:
    """Async iterator of one object's values; keeps the newest ``maxsize`` if slow."""

    def __init__(self, session: TelemetrySession, key: tuple[int, int] | None,
                 maxsize: int) -> None:
        self._session = session
        self.key = key
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self.dropped = 0
        self.closed = False

    def _put(self, values: Any) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(values)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        if self.closed and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        """Stop the iteration (pending values are still delivered first)."""
        self._session._unsubscribe(self)
        if not self.closed:
            self.closed = True
            if self._queue.empty():  # wake a reader blocked in get()
                self._queue.put_nowait(None)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class _Waiter:
    """A pending transaction: ACK/NACK for a send, object(s) for a request."""

    def __init__(self, future: asyncio.Future[Any], deadline: float) -> None:
        self.future = future
        self.deadline = deadline
        self.collected: dict[int, dict[str, Any]] = {}


class TelemetrySession:
    """Ground-side UAVTalk session over ``reader``/``writer`` (see module docstring)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        registry: Registry | None = None,
        *,
        clock: Clock | None = None,
        reopen: Callable[[], Awaitable[StreamPair]] | None = None,
        timing: HandshakeTiming | None = None,
        ack_timeout: float = 1.0,
        retries: int = 2,
        poll_interval: float = 0.02,
        reopen_delay: float = 1.0,
    ) -> None:
        self.registry = registry if registry is not None else load_definitions()
        self.clock: Clock = clock or MonotonicClock()
        self._reader, self._writer = reader, writer
        self._reopen = reopen
        self.handshake = Handshake(timing)
        self.ack_timeout = ack_timeout
        self.retries = retries
        self.poll_interval = poll_interval
        self.reopen_delay = reopen_delay
        self.parser = PacketParser(self.registry)
        self._gcs_stats = self.registry["GCSTelemetryStats"]
        self._flight_stats_id = self.registry["FlightTelemetryStats"].object_id
        self._latest: dict[tuple[int, int], tuple[dict[str, Any], float]] = {}
        self._subs: dict[tuple[int, int] | None, list[Subscription]] = defaultdict(list)
        self._waiters: dict[tuple[int, int, str], _Waiter] = {}
        self._locks: dict[tuple[int, int], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: list[asyncio.Task[None]] = []
        self._recorder: OplWriter | None = None
        self._started_at = 0.0
        self._rate_mark = (0.0, 0, 0)
        self._rates = (0.0, 0.0)
        self.tx = {"tx_bytes": 0, "tx_objects": 0, "tx_failures": 0, "tx_retries": 0,
                   "tx_errors": 0, "reopens": 0, "reopen_refusals": 0}
        self._refusals = RefusalLog()
        self.closed = False
        #: Packets or timer steps that raised (logged); should stay 0.
        self.handle_errors = 0

    # ----------------------------------------------------------------- opening
    @classmethod
    async def open(cls, port: str, baud: int = 9600, registry: Registry | None = None, *,
                   probe: DeviceProbe | None = None, **kwargs: Any) -> TelemetrySession:
        """A session on a serial port, pty, ``tcp:`` or ``udp:HOST:PORT``; reopens it if lost.

        A serial port is reopened only if the device first opened is back (a
        lost pty never: pipilot.link.identity); `probe` reads the identities."""
        identity: DeviceIdentity | None = None

        async def reopen() -> StreamPair:
            nonlocal identity
            if port.startswith(("tcp:", "udp:")):
                return await open_stream(port, baud)
            pair, identity = await open_serial_device(port, baud, expect=identity, probe=probe)
            return pair

        reader, writer = await reopen()
        return cls(reader, writer, registry, reopen=reopen, **kwargs)

    # ------------------------------------------------------------- life cycle
    @property
    def state(self) -> LinkState:
        return self.handshake.state

    @property
    def connected(self) -> bool:
        return self.handshake.connected

    def waiting_for(self) -> str:
        return self.handshake.waiting_for()

    async def start(self) -> None:
        """Begin the handshake and the receive and timer tasks."""
        if self._tasks:
            return
        now = self.clock.now()
        self._started_at = now
        self._rate_mark = (now, 0, 0)
        self.closed = False
        self._send_gcs_status(self.handshake.start(now))
        self._tasks = [asyncio.create_task(self._rx_loop(), name="telemetry-rx"),
                       asyncio.create_task(self._timer_loop(), name="telemetry-timers")]

    async def stop(self) -> None:
        """Tell the flight side we are leaving, end subscriptions and close the stream."""
        if not self.closed:
            with contextlib.suppress(Exception):
                self._send_gcs_status(self.handshake.stop(self.clock.now()))
                await asyncio.wait_for(self._writer.drain(), 1.0)
        self.closed = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        self._fail_waiters(TelemetryError("telemetry session stopped"))
        for subs in list(self._subs.values()):
            for s in list(subs):
                s.close()
        self.record_to(None)
        with contextlib.suppress(Exception):
            self._writer.close()
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Return once connected; TelemetryTimeout after ``timeout`` seconds of loop time."""

        async def poll() -> None:
            while not self.connected:
                if self.closed:
                    raise TelemetryError("telemetry session closed")
                await asyncio.sleep(self.poll_interval)

        try:
            await asyncio.wait_for(poll(), timeout)
        except TimeoutError:
            raise TelemetryTimeout(f"not connected after {timeout} s: "
                                   f"{self.waiting_for()}") from None

    # ------------------------------------------------------------------ values
    def _def(self, name: str) -> Any:
        try:
            return self.registry[name]
        except KeyError:
            raise TelemetryError(f"unknown UAVObject {name!r}") from None

    def latest(self, name: str, instance: int = 0) -> tuple[dict[str, Any], float] | None:
        """The newest values of an object and their age in seconds, or None."""
        item = self._latest.get((self._def(name).object_id, instance))
        if item is None:
            return None
        return item[0], self.clock.now() - item[1]

    def subscribe(self, name: str, instance: int = 0, maxsize: int = 64) -> Subscription:
        """Every new value of an object, as an async iterator (``async for v in ...``)."""
        key = (self._def(name).object_id, instance)
        sub = Subscription(self, key, maxsize)
        if self.closed:
            sub.close()
        else:
            self._subs[key].append(sub)
        return sub

    def updates(self, maxsize: int = 256) -> Subscription:
        """Every object update as ``(name, instance, values)``, as an async iterator."""
        sub = Subscription(self, None, maxsize)
        if self.closed:
            sub.close()
        else:
            self._subs[None].append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.key)
        if subs and sub in subs:
            subs.remove(sub)

    # ------------------------------------------------------------ transactions
    async def request(self, name: str, instance: int = 0) -> Any:
        """Ask the flight side for an object (or metaobject); returns its values.

        With ``instance=ALL_INSTANCES`` returns ``{instance: values}`` of every instance.
        """
        defn = self._def(name)
        pkt = encode_packet(PacketType.OBJ_REQ, defn.object_id, instance)
        return await self._transaction(defn, instance, "obj", pkt)

    async def send(self, name: str, values: dict[str, Any], ack: bool = True,
                   instance: int = 0) -> None:
        """Send an object; with ``ack`` wait for the flight's ACK (retrying on timeout).

        Fields left out are taken from the latest values received for the object;
        without those, every field must be given. Raises TelemetryNack or
        TelemetryTimeout when the flight side refuses or never answers.
        """
        defn = self._def(name)
        known = self._latest.get((defn.object_id, instance))
        merged = {**known[0], **values} if known else values
        data = defn.encode(merged)
        ptype = PacketType.OBJ_ACK if ack else PacketType.OBJ
        pkt = encode_packet(ptype, defn.object_id, instance, data)
        if not ack:
            if self.closed:
                raise TelemetryError("telemetry session closed")
            self._write(pkt)
            return
        await self._transaction(defn, instance, "ack", pkt)

    async def _transaction(self, defn: Any, instance: int, kind: str, pkt: bytes) -> Any:
        if self.closed:
            raise TelemetryError("telemetry session closed")
        key = (defn.object_id, instance)
        async with self._locks[key]:
            loop = asyncio.get_running_loop()
            for attempt in range(self.retries + 1):
                if attempt:
                    self.tx["tx_retries"] += 1
                fut: asyncio.Future[Any] = loop.create_future()
                waiter = _Waiter(fut, self.clock.now() + self.ack_timeout)
                self._waiters[(*key, kind)] = waiter
                try:
                    self._write(pkt)
                    return await fut
                except TimeoutError:
                    continue
                finally:
                    if self._waiters.get((*key, kind)) is waiter:
                        del self._waiters[(*key, kind)]
            self.tx["tx_failures"] += 1
            what = "request for" if kind == "obj" else "ACK of"
            raise TelemetryTimeout(f"no answer to {what} {defn.name}[{instance}] after "
                                   f"{self.retries + 1} tries")

    def _fail_waiters(self, exc: Exception) -> None:
        for w in list(self._waiters.values()):
            if not w.future.done():
                w.future.set_exception(exc)
        self._waiters.clear()

    # ---------------------------------------------------------------- sending
    def _write(self, pkt: bytes) -> None:
        if self.closed or self._writer.is_closing():
            self.tx["tx_errors"] += 1
            return
        if self._writer.transport.get_write_buffer_size() > MAX_WRITE_BACKLOG:
            self.tx["tx_errors"] += 1
            return
        try:
            self._writer.write(pkt)
        except (OSError, RuntimeError) as exc:
            self.tx["tx_errors"] += 1
            log.warning("telemetry write failed: %s", exc)
            return
        self.tx["tx_bytes"] += len(pkt)
        self.tx["tx_objects"] += 1

    def _send_gcs_status(self, status: str | None) -> None:
        if status is None:
            return
        st, now = self.parser.stats, self.clock.now()
        tx_rate, rx_rate = self._rates
        values = {
            "Status": status, "TxDataRate": tx_rate, "RxDataRate": rx_rate,
            "TxBytes": self.tx["tx_bytes"] & _U32, "TxFailures": self.tx["tx_failures"] & _U32,
            "TxRetries": self.tx["tx_retries"] & _U32, "RxBytes": st.rx_bytes & _U32,
            "RxFailures": st.rx_errors & _U32, "RxSyncErrors": st.rx_sync_errors & _U32,
            "RxCrcErrors": st.rx_crc_errors & _U32,
        }
        data = self._gcs_stats.encode(values)
        self._latest[(self._gcs_stats.object_id, 0)] = (values, now)
        self._write(encode_packet(PacketType.OBJ, self._gcs_stats.object_id, 0, data))

    # -------------------------------------------------------------- receiving
    async def _rx_loop(self) -> None:
        while not self.closed:
            try:
                data = await self._reader.read(4096)
            except (OSError, ConnectionError) as exc:
                log.warning("telemetry read failed: %s", exc)
                data = b""
            if not data:
                if not await self._reopen_stream():
                    return
                continue
            now = self.clock.now()
            if self._recorder is not None:
                self._recorder.write(data, now)
            for pkt in self.parser.feed(data):
                try:
                    self._handle(pkt, now)
                except Exception:  # one bad packet must not end the session
                    self.handle_errors += 1
                    log.exception("telemetry: cannot handle %r", pkt)

    async def _reopen_stream(self) -> bool:
        """The stream ended: reopen it when we can, else close the session."""
        if self._reopen is None:
            log.warning("telemetry stream closed by the other end")
            self.closed = True
            self.handshake.stop(self.clock.now())
            self._fail_waiters(TelemetryError("telemetry stream closed"))
            for subs in list(self._subs.values()):
                for s in list(subs):
                    s.close()
            return False
        self.handshake.link_down(self.clock.now(), "stream closed; reopening")
        with contextlib.suppress(Exception):
            self._writer.close()
        while not self.closed:
            await asyncio.sleep(self.reopen_delay)
            try:
                self._reader, self._writer = await self._reopen()
            except DeviceChanged as exc:
                self.tx["reopen_refusals"] += 1
                if self._refusals.should_log(exc.what, self.clock.now()):
                    log.error("telemetry reopen refused: %s (%d refusals)", exc,
                              self._refusals.count)
                continue
            except (PipilotError, OSError) as exc:
                log.warning("telemetry reopen failed: %s", exc)
                continue
            self.tx["reopens"] += 1
            self._refusals = RefusalLog()
            self.parser.reset()
            self._send_gcs_status(self.handshake.start(self.clock.now()))
            return True
        return False

    def _handle(self, pkt: Packet, now: float) -> None:
        self.handshake.on_rx(now)
        t, oid, inst, defn = pkt.type, pkt.object_id, pkt.instance_id, pkt.definition
        if t in _OBJ_TYPES:
            acked = t in (PacketType.OBJ_ACK, PacketType.OBJ_ACK_TS)
            if defn is None or inst == ALL_INSTANCES:
                if acked:
                    self._write(encode_packet(PacketType.NACK, oid, inst))
                return
            values = pkt.values
            assert values is not None
            self._latest[(oid, inst)] = (values, now)
            if acked:
                self._write(encode_packet(PacketType.ACK, oid, inst))
            if oid == self._flight_stats_id:
                self._send_gcs_status(self.handshake.on_flight_status(values["Status"], now))
            for sub in self._subs.get((oid, inst), ()):
                sub._put(values)
            for sub in self._subs.get(None, ()):
                sub._put((defn.name, inst, values))
            self._resolve_object(oid, inst, values)
        elif t == PacketType.ACK:
            w = self._waiters.get((oid, inst, "ack"))
            if w is not None and not w.future.done():
                w.future.set_result(None)
        elif t == PacketType.NACK:
            name = defn.name if defn is not None else f"0x{oid:08X}"
            for kind in ("ack", "obj"):
                w = self._waiters.get((oid, inst, kind))
                if w is not None and not w.future.done():
                    w.future.set_exception(TelemetryNack(f"flight side refused {name}[{inst}]"))
        elif t == PacketType.OBJ_REQ:
            item = self._latest.get((oid, inst))
            if defn is not None and item is not None and inst != ALL_INSTANCES:
                self._write(encode_packet(PacketType.OBJ, oid, inst, defn.encode(item[0])))
            else:
                self._write(encode_packet(PacketType.NACK, oid, inst))

    def _resolve_object(self, oid: int, inst: int, values: dict[str, Any]) -> None:
        w = self._waiters.get((oid, inst, "obj"))
        if w is not None and not w.future.done():
            w.future.set_result(values)
        w = self._waiters.get((oid, ALL_INSTANCES, "obj"))
        if w is not None and not w.future.done():
            # Instances arrive in reverse order; instance 0 closes the answer.
            w.collected[inst] = values
            if inst == 0:
                w.future.set_result(dict(sorted(w.collected.items())))

    # ----------------------------------------------------------------- timers
    async def _timer_loop(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.poll_interval)
            try:
                self._tick(self.clock.now())
            except Exception:  # the timers must keep running whatever happens
                self.handle_errors += 1
                log.exception("telemetry: timer step failed")

    def _tick(self, now: float) -> None:
        self._update_rates(now)
        was_connected = self.connected
        self._send_gcs_status(self.handshake.tick(now))
        if self.handshake.probe_due(now):
            self._write(encode_packet(PacketType.OBJ_REQ, self._flight_stats_id, 0))
        if was_connected and not self.connected:
            log.warning("telemetry link lost: %s", self.waiting_for())
        for w in list(self._waiters.values()):
            if now >= w.deadline and not w.future.done():
                w.future.set_exception(TimeoutError())

    def _update_rates(self, now: float) -> None:
        t0, tx0, rx0 = self._rate_mark
        if now - t0 >= 1.0:
            tx, rx = self.tx["tx_bytes"], self.parser.stats.rx_bytes
            self._rates = ((tx - tx0) / (now - t0), (rx - rx0) / (now - t0))
            self._rate_mark = (now, tx, rx)

    # ------------------------------------------------------------------ stats
    @property
    def stats(self) -> dict[str, Any]:
        """Link statistics: receive counters, transmit counters, rates, link state."""
        now = self.clock.now()
        last = self.handshake._last_rx
        return {
            **self.parser.stats.as_dict(),
            **self.tx,
            "tx_rate_bps": self._rates[0],
            "rx_rate_bps": self._rates[1],
            "state": self.state.value,
            "connected": self.connected,
            "flight_status": self.handshake.flight_status,
            "connects": self.handshake.connects,
            "link_losses": self.handshake.link_losses,
            "last_rx_age_s": None if last is None else now - last,
            "uptime_s": now - self._started_at if self._tasks else 0.0,
            "recording": self._recorder.path if self._recorder else None,
            "handle_errors": self.handle_errors,
        }

    # -------------------------------------------------------------- recording
    def record_to(self, path: str | Path | None) -> None:
        """Record the received stream to a GCS .opl log (None stops recording)."""
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None
        if path is not None:
            self._recorder = OplWriter.open(path, self.clock.now())


async def open_stream(port: str, baud: int = 9600) -> StreamPair:
    """Open ``tcp:HOST:PORT``, ``udp:HOST:PORT`` or a serial device / pty as asyncio streams."""
    if port.startswith("udp:"):
        from pipilot.link.udp import open_udp

        return await open_udp(port)
    if is_tcp(port):
        host, tcp_port = parse_tcp(port)
        try:
            return await asyncio.open_connection(host, tcp_port)
        except (OSError, ValueError) as exc:
            raise LinkError(port, f"cannot connect: {exc}") from None
    return await open_serial(port, baud)


class _SerialWriteProtocol(asyncio.streams.FlowControlMixin):
    """Write side of a serial port; closing it closes the read side too."""

    def __init__(self, read_transport: asyncio.BaseTransport) -> None:
        super().__init__()
        self._read_transport = read_transport
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._read_transport.close()
        if not self._closed.done():
            self._closed.set_result(None)

    def _get_close_waiter(self, stream: asyncio.StreamWriter) -> asyncio.Future[None]:
        return self._closed  # what StreamWriter.wait_closed() awaits


async def open_serial(port: str, baud: int = 9600) -> StreamPair:
    """A serial port (8N1, raw) at ``baud`` as an asyncio reader/writer pair.

    pyserial configures the port; asyncio then drives two duplicates of its
    descriptor as read and write pipes. ``writer.close()`` closes both.
    """
    pair, _identity = await open_serial_device(port, baud)
    return pair


async def open_serial_device(port: str, baud: int = 9600, *,
                             expect: DeviceIdentity | None = None,
                             probe: DeviceProbe | None = None
                             ) -> tuple[StreamPair, DeviceIdentity]:
    """`open_serial`, and the identity of the device opened. With `expect` (the
    device opened before) only that device is opened, under ``port`` or the
    by-id link it had; `DeviceChanged` if another one is there, untouched."""
    import os

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
    loop = asyncio.get_running_loop()
    try:
        identity = expect or probe.identify_fd(ser.fileno(), by_id=True)
        rfile = os.fdopen(os.dup(ser.fileno()), "rb", buffering=0)
        wfile = os.fdopen(os.dup(ser.fileno()), "wb", buffering=0)
    finally:
        ser.close()  # the duplicates keep the port open with its settings
    reader = asyncio.StreamReader()
    rtransport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), rfile)
    wtransport, wproto = await loop.connect_write_pipe(
        lambda: _SerialWriteProtocol(rtransport), wfile)
    return (reader, asyncio.StreamWriter(wtransport, wproto, reader, loop)), identity
