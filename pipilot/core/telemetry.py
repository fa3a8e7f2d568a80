"""TelemetrySession: the ground side of UAVTalk over an asyncio byte stream.

A thin driver of the sans-IO engine `pipilot.uavtalk.session.GroundSession`
(handshake, keepalive, requests, ACK/NACK and retries, statistics): it reads
the stream into the engine, writes what the engine has to send, sleeps until
the engine's next deadline or the next bytes, and turns the engine's events
into awaitable results and per-object subscriptions. It also reopens a lost
stream (the same device only: pipilot.link.identity) and records the received
bytes to a GCS .opl log. Streams come from pipilot.link.stream.

Timers run on the clock passed in. With a clock other than the loop's own time
(a VirtualClock moved by a test), call `wake()` after moving it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pipilot.core.clock import Clock, MonotonicClock
from pipilot.errors import PipilotError
from pipilot.link.identity import DeviceChanged, DeviceIdentity, DeviceProbe, RefusalLog
from pipilot.link.stream import ByteStream, PairStream, open_serial_device, open_stream
from pipilot.uavtalk.definitions import Registry
from pipilot.uavtalk.handshake import Handshake, HandshakeTiming
from pipilot.uavtalk.opl import OplWriter
from pipilot.uavtalk.session import (
    EngineDriver,
    GroundSession,
    LinkChanged,
    ObjectUpdated,
    SessionOptions,
    TelemetryError,
    TelemetryTimeout,
    TransactionDone,
    TransactionFailed,
)

__all__ = ["MAX_WRITE_BACKLOG", "Subscription", "TelemetrySession"]

log = logging.getLogger(__name__)

StreamPair = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Reopen = Callable[[], Awaitable["ByteStream | StreamPair"]]
#: Unsent bytes beyond this mean nobody reads the other end: drop, don't hoard.
MAX_WRITE_BACKLOG = 64 * 1024
#: Seconds added to every timer sleep so that it ends at or after the deadline.
TIMER_SLACK = 1e-4


def _as_stream(stream: ByteStream | StreamPair | asyncio.StreamReader,
               writer: asyncio.StreamWriter | None = None) -> ByteStream:
    if isinstance(stream, ByteStream):
        return stream
    if isinstance(stream, tuple):
        return PairStream(*stream)
    if writer is None:
        raise TypeError("a StreamReader needs its StreamWriter")
    return PairStream(stream, writer)


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


class TelemetrySession(EngineDriver):
    """Ground-side UAVTalk session over a byte stream (see the module docstring).

    ``stream`` is a pipilot.link.stream.ByteStream, or an asyncio StreamReader
    with its StreamWriter as ``writer``."""

    def __init__(
        self,
        stream: ByteStream | asyncio.StreamReader,
        writer: asyncio.StreamWriter | None = None,
        registry: Registry | None = None,
        *,
        clock: Clock | None = None,
        reopen: Reopen | None = None,
        timing: HandshakeTiming | None = None,
        ack_timeout: float = 1.0,
        retries: int = 2,
        reopen_delay: float = 1.0,
    ) -> None:
        options = SessionOptions(timing or HandshakeTiming(), ack_timeout, retries)
        self.engine = GroundSession(clock or MonotonicClock(), registry, options)
        self.registry = self.engine.registry
        self.clock: Clock = self.engine.clock
        self._stream = _as_stream(stream, writer)
        self._reopen = reopen
        self.reopen_delay = reopen_delay
        self._subs: dict[tuple[int, int] | None, list[Subscription]] = defaultdict(list)
        self._results: dict[int, asyncio.Future[Any]] = {}
        self._state_waiters: list[asyncio.Future[None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._recorder: OplWriter | None = None
        self._refusals = RefusalLog()

    # ----------------------------------------------------------------- opening
    @classmethod
    async def open(cls, port: str, baud: int = 9600, registry: Registry | None = None, *,
                   probe: DeviceProbe | None = None, **kwargs: Any) -> TelemetrySession:
        """A session on a serial port, pty, ``tcp:`` or ``udp:HOST:PORT``; reopens it if lost.

        A serial port is reopened only if the device first opened is back (a
        lost pty never: pipilot.link.identity); `probe` reads the identities."""
        identity: DeviceIdentity | None = None

        async def reopen() -> ByteStream:
            nonlocal identity
            if port.startswith(("tcp:", "udp:")):
                return await open_stream(port, baud)
            stream, identity = await open_serial_device(port, baud, expect=identity,
                                                        probe=probe)
            return stream

        return cls(await reopen(), None, registry, reopen=reopen, **kwargs)

    # ------------------------------------------------------------- the engine
    @property
    def handshake(self) -> Handshake:
        return self.engine.handshake

    @property
    def parser(self) -> Any:
        return self.engine.parser

    @property
    def ack_timeout(self) -> float:
        return self.engine.options.ack_timeout

    @property
    def retries(self) -> int:
        return self.engine.options.retries

    @property
    def handle_errors(self) -> int:
        return self.engine.handle_errors

    @property
    def closed(self) -> bool:
        return self.engine.closed

    def wake(self) -> None:
        """Re-check the timers now (after moving a clock that is not the loop's)."""
        self._wake.set()

    def _flush(self) -> None:
        """Write what the engine has to send and hand its events out."""
        stream = self._stream
        if self.engine.closed or stream.is_closing():
            self.engine.discard_output()
        else:
            data = self.engine.data_to_send(room=MAX_WRITE_BACKLOG - stream.backlog())
            if data:
                try:
                    stream.write(data)
                except (OSError, RuntimeError) as exc:
                    self.engine.counters["tx_errors"] += 1
                    self.engine.counters["tx_bytes"] -= len(data)  # counted, never sent
                    log.warning("telemetry write failed: %s", exc)
        for event in self.engine.events():
            if isinstance(event, ObjectUpdated):
                for sub in self._subs.get((event.object_id, event.instance), ()):
                    sub._put(event.values)
                for sub in self._subs.get(None, ()):
                    sub._put((event.name, event.instance, event.values))
            elif isinstance(event, TransactionDone | TransactionFailed):
                fut = self._results.pop(event.tid, None)
                if fut is not None and not fut.done():
                    if isinstance(event, TransactionDone):
                        fut.set_result(event.result)
                    else:
                        fut.set_exception(event.error)
            elif isinstance(event, LinkChanged):
                self._wake_state_waiters()
        if self.engine.closed:
            self._wake_state_waiters()

    def _wake_state_waiters(self) -> None:
        for fut in self._state_waiters:
            if not fut.done():
                fut.set_result(None)
        self._state_waiters.clear()

    # ------------------------------------------------------------- life cycle
    async def start(self) -> None:
        """Begin the handshake and the receive and timer tasks."""
        if self._tasks:
            return
        self.engine.start()
        self._flush()
        self._tasks = [asyncio.create_task(self._rx_loop(), name="telemetry-rx"),
                       asyncio.create_task(self._timer_loop(), name="telemetry-timers")]

    async def stop(self) -> None:
        """Tell the flight side we are leaving, end subscriptions and close the stream."""
        if not self.engine.closed:
            self.engine.stop()
            self._write_farewell()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._stream.drain(), 1.0)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        self._flush()
        self._end_subscriptions()
        self.record_to(None)
        with contextlib.suppress(Exception):
            self._stream.close()
            await asyncio.wait_for(self._stream.wait_closed(), 1.0)

    def _write_farewell(self) -> None:
        """The farewell packet: written although the engine is now closed."""
        data = self.engine.data_to_send(room=MAX_WRITE_BACKLOG - self._stream.backlog())
        if data and not self._stream.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                self._stream.write(data)

    def _end_subscriptions(self) -> None:
        for subs in list(self._subs.values()):
            for s in list(subs):
                s.close()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Return once connected; TelemetryTimeout after ``timeout`` seconds of loop time."""

        async def wait() -> None:
            while not self.connected:
                if self.closed:
                    raise TelemetryError("telemetry session closed")
                fut = asyncio.get_running_loop().create_future()
                self._state_waiters.append(fut)
                await fut

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise TelemetryTimeout(f"not connected after {timeout} s: "
                                   f"{self.waiting_for()}") from None

    # ------------------------------------------------------------------ values
    def subscribe(self, name: str, instance: int = 0, maxsize: int = 64) -> Subscription:
        """Every new value of an object, as an async iterator (``async for v in ...``)."""
        key = (self.engine.definition(name).object_id, instance)
        return self._add_subscription(Subscription(self, key, maxsize))

    def updates(self, maxsize: int = 256) -> Subscription:
        """Every object update as ``(name, instance, values)``, as an async iterator."""
        return self._add_subscription(Subscription(self, None, maxsize))

    def _add_subscription(self, sub: Subscription) -> Subscription:
        if self.closed:
            sub.close()
        else:
            self._subs[sub.key].append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.key)
        if subs and sub in subs:
            subs.remove(sub)

    # ------------------------------------------------------------ transactions
    async def _result(self, tid: int) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._results[tid] = fut
        self._flush()
        self._wake.set()  # a new deadline for the timer task
        try:
            return await fut
        except asyncio.CancelledError:  # the caller gave up (a timeout): free the object's slot
            self.engine.abandon(tid)
            self._flush()
            raise
        finally:
            self._results.pop(tid, None)

    # -------------------------------------------------------------- receiving
    async def _rx_loop(self) -> None:
        while not self.closed:
            try:
                data = await self._stream.read()
            except (OSError, ConnectionError) as exc:
                log.warning("telemetry read failed: %s", exc)
                data = b""
            if not data:
                if not await self._reopen_stream():
                    return
                continue
            if self._recorder is not None:
                self._recorder.write(data, self.clock.now())
            self.engine.receive_data(data)
            self._flush()
            self._wake.set()  # the deadlines may have moved

    async def _reopen_stream(self) -> bool:
        """The stream ended: reopen it when we can, else close the session."""
        if self._reopen is None:
            log.warning("telemetry stream closed by the other end")
            self.engine.close("stream closed")
            self._flush()
            self._end_subscriptions()
            return False
        self.engine.link_down("stream closed; reopening")
        self._flush()
        with contextlib.suppress(Exception):
            self._stream.close()
        while not self.closed:
            await asyncio.sleep(self.reopen_delay)
            try:
                stream = await self._reopen()
            except DeviceChanged as exc:
                self.engine.counters["reopen_refusals"] += 1
                if self._refusals.should_log(exc.what, self.clock.now()):
                    log.error("telemetry reopen refused: %s (%d refusals)", exc,
                              self._refusals.count)
                continue
            except (PipilotError, OSError) as exc:
                log.warning("telemetry reopen failed: %s", exc)
                continue
            self._stream = _as_stream(stream)
            self._refusals = RefusalLog()
            self.engine.link_up()
            self._flush()
            self._wake.set()
            return True
        return False

    # ----------------------------------------------------------------- timers
    async def _timer_loop(self) -> None:
        """Sleep until the engine's next deadline (or a wake-up), then run its timers."""
        while not self.closed:
            self._wake.clear()
            due = self.engine.next_deadline()
            now = self.clock.now()
            if due is not None and now >= due:
                self.engine.tick()
                self._flush()
                continue
            # The slack keeps a wake-up (asyncio fires timers up to its clock
            # resolution early) from landing just before the deadline.
            delay = None if due is None else due - now + TIMER_SLACK
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    # ------------------------------------------------------------------ stats
    @property
    def stats(self) -> dict[str, Any]:
        """Link statistics: receive counters, transmit counters, rates, link state."""
        return {**super().stats,
                "recording": self._recorder.path if self._recorder else None}

    # -------------------------------------------------------------- recording
    def record_to(self, path: str | Path | None) -> None:
        """Record the received stream to a GCS .opl log (None stops recording)."""
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None
        if path is not None:
            self._recorder = OplWriter.open(path, self.clock.now())
