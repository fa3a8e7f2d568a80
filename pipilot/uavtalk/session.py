"""The ground side of a UAVTalk session, sans-IO: bytes and time in, bytes and events out.

`GroundSession` runs the connection handshake with keepalive and link-loss
detection (pipilot.uavtalk.handshake), keeps the latest value of every object
with the time it arrived, answers the flight side's acknowledged objects and
requests, and runs requests and acknowledged sends with timeout and retry
(one transaction at a time per object instance, later ones queued). Time comes
from the injected `Clock`; it knows nothing of asyncio or sockets.

A driver (the asyncio `pipilot.core.telemetry.TelemetrySession`, or the
lock-step simulator on virtual time) does the I/O::

    session.receive_data(data)         # bytes read from the link
    session.tick()                     # when clock.now() >= session.next_deadline()
    link.write(session.data_to_send())
    for event in session.events(): ... # ObjectUpdated, LinkChanged, TransactionDone/Failed

and tells it about the stream itself with `link_down` / `link_up` / `close`.
"""

from __future__ import annotations

import abc
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipilot.errors import PipilotError
from pipilot.faultlog import FailureLog
from pipilot.uavtalk.definitions import Registry, load_definitions
from pipilot.uavtalk.handshake import Handshake, HandshakeTiming, LinkState
from pipilot.uavtalk.packets import ALL_INSTANCES, Packet, PacketParser, PacketType, encode_packet

if TYPE_CHECKING:
    from pipilot.core.clock import Clock

log = logging.getLogger(__name__)

_OBJ_TYPES = (PacketType.OBJ, PacketType.OBJ_TS, PacketType.OBJ_ACK, PacketType.OBJ_ACK_TS)
_ACKED_TYPES = (PacketType.OBJ_ACK, PacketType.OBJ_ACK_TS)
_U32 = 0xFFFFFFFF
#: Rates in the statistics are averaged over windows at least this long (s).
RATE_WINDOW = 1.0


class TelemetryError(PipilotError):
    """A telemetry transaction failed (timeout, NACK, closed link, unknown object)."""


class TelemetryTimeout(TelemetryError):
    """No answer from the flight side after all retries."""


class TelemetryNack(TelemetryError):
    """The flight side refused the object (NACK)."""


@dataclass(frozen=True)
class SessionOptions:
    """Timers of a session, in seconds (tries = 1 + retries)."""

    timing: HandshakeTiming = field(default_factory=HandshakeTiming)
    ack_timeout: float = 1.0
    retries: int = 2

    def __post_init__(self) -> None:
        if not self.ack_timeout > 0:
            raise ValueError(f"ack_timeout must be > 0 s, not {self.ack_timeout!r}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, not {self.retries!r}")


@dataclass(frozen=True)
class ObjectUpdated:
    """An object (or metaobject) arrived from the flight side."""

    name: str
    instance: int
    values: dict[str, Any]
    time: float
    object_id: int


@dataclass(frozen=True)
class LinkChanged:
    """The handshake state changed (``connected`` when both sides agree)."""

    state: LinkState
    previous: LinkState

    @property
    def connected(self) -> bool:
        return self.state is LinkState.CONNECTED


@dataclass(frozen=True)
class TransactionDone:
    """A request was answered (``result``: the values, or {instance: values}) or a send ACKed."""

    tid: int
    result: Any


@dataclass(frozen=True)
class TransactionFailed:
    """A request or acknowledged send ended without success."""

    tid: int
    error: TelemetryError


Event = ObjectUpdated | LinkChanged | TransactionDone | TransactionFailed


@dataclass
class _Transaction:
    tid: int
    name: str
    instance: int
    kind: str            # "obj": awaiting the object(s); "ack": awaiting the ACK
    packet: bytes
    tries: int = 0
    deadline: float = 0.0
    collected: dict[int, dict[str, Any]] = field(default_factory=dict)


class GroundSession:
    """Ground-side UAVTalk session engine (see the module docstring)."""

    def __init__(self, clock: Clock, registry: Registry | None = None,
                 options: SessionOptions | None = None) -> None:
        self.clock = clock
        self.registry = registry if registry is not None else load_definitions()
        self.options = options or SessionOptions()
        self.handshake = Handshake(self.options.timing)
        self.parser = PacketParser(self.registry)
        self._gcs_stats = self.registry["GCSTelemetryStats"]
        self._flight_stats_id = self.registry["FlightTelemetryStats"].object_id
        self._latest: dict[tuple[int, int], tuple[dict[str, Any], float]] = {}
        self._active: dict[tuple[int, int], _Transaction] = {}
        self._queued: dict[tuple[int, int], deque[_Transaction]] = {}
        self._next_tid = 1
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self.started = False
        self.closed = False
        self._started_at = 0.0
        self._rate_mark = (0.0, 0, 0)
        self._rates = (0.0, 0.0)
        #: Transmit counters; the driver adds ``reopens`` and ``reopen_refusals``.
        self.counters = {"tx_bytes": 0, "tx_objects": 0, "tx_failures": 0, "tx_retries": 0,
                         "tx_errors": 0, "reopens": 0, "reopen_refusals": 0}
        #: Packets or timer steps that raised (logged); should stay 0.
        self.handle_errors = 0
        self._packet_failures = FailureLog(log, "telemetry: a packet could not be handled",
                                           clock=clock)
        self._timer_failures = FailureLog(log, "telemetry: timer step failed", clock=clock)

    # ------------------------------------------------------------- life cycle
    @property
    def state(self) -> LinkState:
        return self.handshake.state

    @property
    def connected(self) -> bool:
        return self.handshake.connected

    def waiting_for(self) -> str:
        return self.handshake.waiting_for()

    def start(self) -> None:
        """Begin the handshake (HandshakeReq goes out)."""
        now = self.clock.now()
        self.started, self.closed = True, False
        self._started_at = now
        self._rate_mark = (now, self.counters["tx_bytes"], self.parser.stats.rx_bytes)
        self._tracked(lambda: self._send_gcs_status(self.handshake.start(now)))

    def stop(self) -> None:
        """Leave: Disconnected goes out, pending transactions fail, the session is closed."""
        if not self.closed:
            self._tracked(lambda: self._send_gcs_status(self.handshake.stop(self.clock.now())))
        self._close(TelemetryError("telemetry session stopped"))

    def close(self, reason: str) -> None:
        """The stream ended for good (nothing can be sent any more)."""
        if not self.closed:
            self._tracked(lambda: self.handshake.stop(self.clock.now()))
        self._close(TelemetryError(f"telemetry {reason}"))

    def _close(self, error: TelemetryError) -> None:
        self.closed = True
        self.started = False
        for key, txn in list(self._active.items()):
            del self._active[key]
            for t in (txn, *self._queued.pop(key, ())):
                self._events.append(TransactionFailed(t.tid, error))

    def link_down(self, reason: str) -> None:
        """The byte stream went away (EOF, unplugged adapter); the driver will reopen it."""
        self._tracked(lambda: self.handshake.link_down(self.clock.now(), reason))

    def link_up(self) -> None:
        """The byte stream is back: drop any partial packet and shake hands again."""
        self.counters["reopens"] += 1
        self.parser.reset()
        self._tracked(lambda: self._send_gcs_status(self.handshake.start(self.clock.now())))

    def _tracked(self, step: Callable[[], object]) -> None:
        """Run ``step`` and report a change of link state as an event."""
        before = self.handshake.state
        try:
            step()
        finally:
            self._note_state(before)

    def _note_state(self, before: LinkState) -> None:
        after = self.handshake.state
        if after is not before:
            self._events.append(LinkChanged(after, before))
            if before is LinkState.CONNECTED and after is LinkState.HANDSHAKE_REQ:
                log.warning("telemetry link lost: %s", self.waiting_for())

    # ------------------------------------------------------------------ output
    def data_to_send(self, room: int | None = None) -> bytes:
        """Packets to write now. With ``room`` (bytes the link can take), packets
        beyond it are dropped and counted as ``tx_errors`` rather than hoarded."""
        out, self._out = self._out, []
        if room is None:
            sent = out
        else:
            sent = []
            for pkt in out:
                if len(pkt) > room:
                    self.counters["tx_errors"] += 1
                    continue
                sent.append(pkt)
                room -= len(pkt)
        self.counters["tx_objects"] += len(sent)
        data = b"".join(sent)
        self.counters["tx_bytes"] += len(data)
        return data

    def discard_output(self) -> None:
        """Nothing can be written (the stream is closed): drop and count what is pending."""
        self.counters["tx_errors"] += len(self._out)
        self._out = []

    def events(self) -> list[Event]:
        """Events since the last call, in order."""
        out, self._events = self._events, []
        return out

    def _write(self, pkt: bytes) -> None:
        self._out.append(pkt)

    def _send_gcs_status(self, status: str | None) -> None:
        if status is None:
            return
        now = self.clock.now()
        self._update_rates(now)
        st, c = self.parser.stats, self.counters
        tx_rate, rx_rate = self._rates
        values = {
            "Status": status, "TxDataRate": tx_rate, "RxDataRate": rx_rate,
            "TxBytes": c["tx_bytes"] & _U32, "TxFailures": c["tx_failures"] & _U32,
            "TxRetries": c["tx_retries"] & _U32, "RxBytes": st.rx_bytes & _U32,
            "RxFailures": st.rx_errors & _U32, "RxSyncErrors": st.rx_sync_errors & _U32,
            "RxCrcErrors": st.rx_crc_errors & _U32,
        }
        data = self._gcs_stats.encode(values)
        self._latest[(self._gcs_stats.object_id, 0)] = (values, now)
        self._write(encode_packet(PacketType.OBJ, self._gcs_stats.object_id, 0, data))

    # ------------------------------------------------------------------ values
    def definition(self, name: str) -> Any:
        """The definition of ``name``; TelemetryError if the registry has no such object."""
        try:
            return self.registry[name]
        except KeyError:
            raise TelemetryError(f"unknown UAVObject {name!r}") from None

    def latest(self, name: str, instance: int = 0) -> tuple[dict[str, Any], float] | None:
        """The newest values of an object and their age in seconds, or None."""
        item = self._latest.get((self.definition(name).object_id, instance))
        if item is None:
            return None
        return item[0], self.clock.now() - item[1]

    # ------------------------------------------------------------ transactions
    def request(self, name: str, instance: int = 0) -> int:
        """Ask for an object or metaobject (``ALL_INSTANCES``: every instance).

        Returns a transaction id; its TransactionDone carries the values, or
        ``{instance: values}`` for all instances."""
        defn = self.definition(name)
        pkt = encode_packet(PacketType.OBJ_REQ, defn.object_id, instance)
        return self._begin(defn, instance, "obj", pkt)

    def send(self, name: str, values: dict[str, Any], *, ack: bool = True,
             instance: int = 0) -> int | None:
        """Send an object; with ``ack`` a transaction id whose TransactionDone is the ACK.

        Fields left out are taken from the latest values received for the
        object; without those every field must be given (ValueError)."""
        defn = self.definition(name)
        known = self._latest.get((defn.object_id, instance))
        merged = {**known[0], **values} if known else values
        data = defn.encode(merged)
        pkt = encode_packet(PacketType.OBJ_ACK if ack else PacketType.OBJ, defn.object_id,
                            instance, data)
        if not ack:
            self._check_open()
            self._write(pkt)
            return None
        return self._begin(defn, instance, "ack", pkt)

    def set_update_period(self, name: str, period_ms: int, *,
                          mode: str = "periodic") -> int:
        """Have the flight side send ``name`` every ``period_ms`` (an acknowledged
        metadata write; the other metadata fields keep the values last received,
        or the firmware's defaults)."""
        meta = self.definition(name if self.definition(name).is_meta else name + "Meta")
        meta_name = meta.name
        known = self._latest.get((meta.object_id, 0))
        values = dict(known[0]) if known else dict(meta.defaults())
        values.update(telemetry_update_mode=mode, telemetry_period_ms=int(period_ms))
        tid = self.send(meta_name, values)
        assert tid is not None
        return tid

    def _check_open(self) -> None:
        if self.closed:
            raise TelemetryError("telemetry session closed")

    def _begin(self, defn: Any, instance: int, kind: str, pkt: bytes) -> int:
        self._check_open()
        txn = _Transaction(self._next_tid, defn.name, instance, kind, pkt)
        self._next_tid += 1
        key = (defn.object_id, instance)
        if key in self._active:
            self._queued.setdefault(key, deque()).append(txn)
        else:
            self._attempt(key, txn)
        return txn.tid

    def _attempt(self, key: tuple[int, int], txn: _Transaction) -> None:
        if txn.tries:
            self.counters["tx_retries"] += 1
        txn.tries += 1
        txn.collected.clear()
        txn.deadline = self.clock.now() + self.options.ack_timeout
        self._active[key] = txn
        self._write(txn.packet)

    def _finish(self, key: tuple[int, int], event: TransactionDone | TransactionFailed) -> None:
        del self._active[key]
        self._events.append(event)
        waiting = self._queued.get(key)
        if waiting:
            self._attempt(key, waiting.popleft())
            if not waiting:
                del self._queued[key]

    def abandon(self, tid: int) -> None:
        """Nobody waits for transaction ``tid`` any more (its caller gave up): a
        queued one is dropped, an active one ends without further retries and
        the next request for the same object goes out at once. No event follows."""
        for key, waiting in list(self._queued.items()):
            for txn in waiting:
                if txn.tid == tid:
                    waiting.remove(txn)
                    if not waiting:
                        del self._queued[key]
                    return
        for key, txn in list(self._active.items()):
            if txn.tid == tid:
                del self._active[key]
                following = self._queued.get(key)
                if following:
                    self._attempt(key, following.popleft())
                    if not following:
                        del self._queued[key]
                return

    def pending(self) -> int:
        """Transactions in flight or queued."""
        return len(self._active) + sum(len(q) for q in self._queued.values())

    # ----------------------------------------------------------------- receive
    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes read from the link, arrived now."""
        now = self.clock.now()
        before = self.handshake.state
        for pkt in self.parser.feed(data):
            try:
                self._handle(pkt, now)
            except Exception as exc:  # one bad packet must not end the session
                self.handle_errors += 1
                self._packet_failures.failed(exc)
        self._note_state(before)

    def _handle(self, pkt: Packet, now: float) -> None:
        self.handshake.on_rx(now)
        t, oid, inst, defn = pkt.type, pkt.object_id, pkt.instance_id, pkt.definition
        if t in _OBJ_TYPES:
            acked = t in _ACKED_TYPES
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
            self._events.append(ObjectUpdated(defn.name, inst, values, now, oid))
            self._resolve_object(oid, inst, values)
        elif t == PacketType.ACK:
            txn = self._active.get((oid, inst))
            if txn is not None and txn.kind == "ack":
                self._finish((oid, inst), TransactionDone(txn.tid, None))
        elif t == PacketType.NACK:
            txn = self._active.get((oid, inst))
            if txn is not None:
                self._finish((oid, inst), TransactionFailed(
                    txn.tid, TelemetryNack(f"flight side refused {txn.name}[{inst}]")))
        elif t == PacketType.OBJ_REQ:
            item = self._latest.get((oid, inst))
            if defn is not None and item is not None and inst != ALL_INSTANCES:
                self._write(encode_packet(PacketType.OBJ, oid, inst, defn.encode(item[0])))
            else:
                self._write(encode_packet(PacketType.NACK, oid, inst))

    def _resolve_object(self, oid: int, inst: int, values: dict[str, Any]) -> None:
        txn = self._active.get((oid, inst))
        if txn is not None and txn.kind == "obj":
            self._finish((oid, inst), TransactionDone(txn.tid, values))
        txn = self._active.get((oid, ALL_INSTANCES))
        if txn is not None and txn.kind == "obj":
            # Instances arrive in reverse order; instance 0 closes the answer.
            txn.collected[inst] = values
            if inst == 0:
                self._finish((oid, ALL_INSTANCES),
                             TransactionDone(txn.tid, dict(sorted(txn.collected.items()))))

    # ------------------------------------------------------------------ timers
    def next_deadline(self) -> float | None:
        """When `tick` next has work to do (None: not until something arrives or is asked)."""
        due = self.handshake.next_deadline()
        for txn in self._active.values():
            if due is None or txn.deadline < due:
                due = txn.deadline
        return due

    def tick(self) -> None:
        """Run the timers due now: handshake retries, keepalive, probes, link loss,
        transaction retries and timeouts."""
        now = self.clock.now()
        try:
            self._tracked(lambda: self._timers(now))
        except Exception as exc:  # the timers must keep running whatever happens
            self.handle_errors += 1
            self._timer_failures.failed(exc)

    def _timers(self, now: float) -> None:
        self._send_gcs_status(self.handshake.tick(now))
        if self.handshake.probe_due(now):
            self._write(encode_packet(PacketType.OBJ_REQ, self._flight_stats_id, 0))
        for key, txn in list(self._active.items()):
            if now < txn.deadline:
                continue
            if txn.tries <= self.options.retries:
                self._attempt(key, txn)
                continue
            self.counters["tx_failures"] += 1
            what = "request for" if txn.kind == "obj" else "ACK of"
            self._finish(key, TransactionFailed(txn.tid, TelemetryTimeout(
                f"no answer to {what} {txn.name}[{txn.instance}] after {txn.tries} tries")))

    def _update_rates(self, now: float) -> None:
        t0, tx0, rx0 = self._rate_mark
        if now - t0 >= RATE_WINDOW:
            tx, rx = self.counters["tx_bytes"], self.parser.stats.rx_bytes
            self._rates = ((tx - tx0) / (now - t0), (rx - rx0) / (now - t0))
            self._rate_mark = (now, tx, rx)

    # ------------------------------------------------------------------- stats
    @property
    def stats(self) -> dict[str, Any]:
        """Link statistics: receive counters, transmit counters, rates, link state."""
        now = self.clock.now()
        self._update_rates(now)
        last = self.handshake.last_rx
        return {
            **self.parser.stats.as_dict(),
            **self.counters,
            "tx_rate_bps": self._rates[0],
            "rx_rate_bps": self._rates[1],
            "state": self.state.value,
            "connected": self.connected,
            "flight_status": self.handshake.flight_status,
            "connects": self.handshake.connects,
            "link_losses": self.handshake.link_losses,
            "last_rx_age_s": None if last is None else now - last,
            "uptime_s": now - self._started_at if self.started else 0.0,
            "handle_errors": self.handle_errors,
        }


class EngineDriver(abc.ABC):
    """What a driver of a GroundSession shows of it (the asyncio session, the
    lock-step simulator's ground side): state, values, and awaitable
    transactions, each settled by the driver's `_result`."""

    engine: GroundSession

    @abc.abstractmethod
    def _flush(self) -> None:
        """Write what the engine has to send and hand its events out."""

    @abc.abstractmethod
    async def _result(self, tid: int) -> Any:
        """The outcome of transaction ``tid``: its result, or its error raised."""

    async def request(self, name: str, instance: int = 0) -> Any:
        """Ask the flight side for an object (or metaobject); returns its values.

        With ``instance=ALL_INSTANCES`` returns ``{instance: values}`` of every instance.
        """
        return await self._result(self.engine.request(name, instance))

    async def send(self, name: str, values: dict[str, Any], ack: bool = True,
                   instance: int = 0) -> None:
        """Send an object; with ``ack`` wait for the flight's ACK (retrying on timeout).

        Fields left out are taken from the latest values received for the object;
        without those, every field must be given. Raises TelemetryNack or
        TelemetryTimeout when the flight side refuses or never answers.
        """
        tid = self.engine.send(name, values, ack=ack, instance=instance)
        if tid is None:
            self._flush()
            return
        await self._result(tid)

    async def set_update_period(self, name: str, period_ms: int, *,
                                mode: str = "periodic") -> None:
        """Have the flight side send ``name`` every ``period_ms`` (acknowledged)."""
        await self._result(self.engine.set_update_period(name, period_ms, mode=mode))

    @property
    def state(self) -> LinkState:
        return self.engine.state

    @property
    def connected(self) -> bool:
        return self.engine.connected

    def waiting_for(self) -> str:
        return self.engine.waiting_for()

    def latest(self, name: str, instance: int = 0) -> tuple[dict[str, Any], float] | None:
        """The newest values of an object and their age in seconds, or None."""
        return self.engine.latest(name, instance)

    @property
    def stats(self) -> dict[str, Any]:
        """Link statistics: receive counters, transmit counters, rates, link state."""
        return self.engine.stats
