"""The sans-IO session engine against the scripted flight peer, on a VirtualClock.

No event loop and no sockets: the tests move bytes between engine and peer by
hand and jump the clock straight to the engine's next deadline, which is how
every driver runs it.
"""

from __future__ import annotations

import pytest

from pipilot.core.clock import VirtualClock
from pipilot.uavtalk import ALL_INSTANCES, PacketParser, PacketType, encode_packet, load_definitions
from pipilot.uavtalk.handshake import LinkState
from pipilot.uavtalk.session import (
    GroundSession,
    LinkChanged,
    ObjectUpdated,
    SessionOptions,
    TelemetryError,
    TelemetryNack,
    TelemetryTimeout,
    TransactionDone,
    TransactionFailed,
)
from tests.uavtalk.flightpeer import FlightPeer

REG = load_definitions()
PEER_STEP = 0.5  # the peer's own timers are looked at this often


class Rig:
    """Engine and peer wired back to back; records what the engine did."""

    def __init__(self, **options: object) -> None:
        self.clock = VirtualClock()
        self.engine = GroundSession(self.clock, REG, SessionOptions(**options))  # type: ignore[arg-type]
        self.peer = FlightPeer(REG)
        self.events: list[object] = []
        self.wakeups = 0
        self.sent = PacketParser(REG)
        self.packets: list[object] = []

    def exchange(self) -> None:
        """Bytes both ways until neither side has more to say."""
        while data := self.engine.data_to_send():
            self.packets += self.sent.feed(data)
            reply = self.peer.feed(data, self.clock.now())
            if reply:
                self.engine.receive_data(reply)
        self.events += self.engine.events()

    def run(self, seconds: float) -> None:
        """Advance to each engine deadline (or peer step) in turn."""
        end = self.clock.now() + seconds
        next_peer = self.clock.now()
        self.exchange()
        while True:
            due = self.engine.next_deadline()
            t = min(x for x in (due, next_peer, end) if x is not None)
            if t > self.clock.now():
                self.clock.set(t)
            if t >= end and t != due and t != next_peer:
                return
            if t == next_peer:
                next_peer += PEER_STEP
                reply = self.peer.tick(t)
                if reply:
                    self.engine.receive_data(reply)
            if due is not None and t >= due:
                self.wakeups += 1
                self.engine.tick()
            self.exchange()
            if t >= end:
                return

    def result(self, tid: int) -> TransactionDone | TransactionFailed:
        found = [e for e in self.events
                 if isinstance(e, TransactionDone | TransactionFailed) and e.tid == tid]
        assert len(found) == 1
        return found[0]

    def sent_of(self, ptype: int, name: str) -> list[object]:
        oid = REG[name].object_id
        return [p for p in self.packets if p.type == ptype and p.object_id == oid]  # type: ignore[attr-defined]


def connected_rig(**options: object) -> Rig:
    rig = Rig(**options)
    rig.engine.start()
    rig.run(1.0)
    assert rig.engine.connected and rig.peer.status == "Connected"
    return rig


def test_handshake_events_and_a_timer_that_wakes_only_when_due() -> None:
    rig = Rig()
    rig.peer.silent = True
    rig.engine.start()
    assert rig.engine.next_deadline() == pytest.approx(1.0)  # the handshake retry
    rig.run(0.999)
    assert len(rig.sent_of(PacketType.OBJ, "GCSTelemetryStats")) == 1 and rig.wakeups == 0
    rig.run(0.002)
    assert len(rig.sent_of(PacketType.OBJ, "GCSTelemetryStats")) == 2 and rig.wakeups == 1
    rig.peer.silent = False
    rig.run(2.0)
    changes = [e for e in rig.events if isinstance(e, LinkChanged)]
    assert [c.state for c in changes] == [LinkState.HANDSHAKE_REQ, LinkState.HANDSHAKE_ACK,
                                          LinkState.CONNECTED]
    assert changes[-1].connected
    # Connected for a minute: the keepalive holds the flight side, and the
    # engine wakes a few dozen times, not every few milliseconds.
    before = rig.wakeups
    rig.run(60.0)
    assert rig.engine.connected and rig.peer.status == "Connected"
    assert 20 <= rig.wakeups - before <= 60
    assert rig.engine.stats["link_losses"] == 0


def test_link_loss_is_reported_and_the_engine_reconnects() -> None:
    rig = connected_rig()
    rig.peer.silent = True
    rig.run(7.0)
    assert not rig.engine.connected and rig.engine.stats["link_losses"] == 1
    lost = [e for e in rig.events if isinstance(e, LinkChanged) and not e.connected]
    assert lost[-1].previous is LinkState.CONNECTED
    probes = rig.sent_of(PacketType.OBJ_REQ, "FlightTelemetryStats")
    assert probes  # it asked before giving up on a quiet link
    rig.peer.silent = False
    rig.run(3.0)
    assert rig.engine.connected and rig.engine.stats["connects"] == 2


def test_requests_are_answered_one_at_a_time_per_object() -> None:
    rig = connected_rig()
    rig.peer.set("SystemStats", REG["SystemStats"].defaults() | {"FlightTime": 77})
    rig.peer.silent = True  # hold the answers back to see the queue
    first = rig.engine.request("SystemStats")
    second = rig.engine.request("SystemStats")
    other = rig.engine.request("FlightStatus")
    rig.exchange()
    assert len(rig.sent_of(PacketType.OBJ_REQ, "SystemStats")) == 1
    assert len(rig.sent_of(PacketType.OBJ_REQ, "FlightStatus")) == 1
    assert rig.engine.pending() == 3
    rig.peer.silent = False
    rig.run(1.5)  # the first try was lost: the retry is answered, then the queued one
    assert rig.result(first).result["FlightTime"] == 77  # type: ignore[union-attr]
    assert rig.result(second).result["FlightTime"] == 77  # type: ignore[union-attr]
    assert isinstance(rig.result(other), TransactionDone)
    assert rig.engine.pending() == 0
    assert rig.engine.latest("SystemStats")[0]["FlightTime"] == 77  # type: ignore[index]
    assert any(isinstance(e, ObjectUpdated) and e.name == "SystemStats" for e in rig.events)


def test_all_instances_and_a_refused_instance() -> None:
    rig = connected_rig()
    wp = REG["Waypoint"]
    for i in range(3):
        rig.peer.set("Waypoint", wp.defaults() | {"Velocity": float(i)}, instance=i)
    tid = rig.engine.request("Waypoint", ALL_INSTANCES)
    nacked = rig.engine.request("Waypoint", 9)
    rig.run(0.1)
    got = rig.result(tid).result  # type: ignore[union-attr]
    assert sorted(got) == [0, 1, 2] and [got[i]["Velocity"] for i in range(3)] == [0, 1, 2]
    failed = rig.result(nacked)
    assert isinstance(failed, TransactionFailed) and isinstance(failed.error, TelemetryNack)
    assert "Waypoint[9]" in str(failed.error)


def test_acked_send_retries_then_times_out_on_the_injected_clock() -> None:
    rig = connected_rig(ack_timeout=0.5, retries=3)
    values = REG["FlightModeSettings"].defaults()
    rig.peer.withhold_acks = 1
    ok = rig.engine.send("FlightModeSettings", values)
    rig.run(1.0)
    assert isinstance(rig.result(ok), TransactionDone)  # type: ignore[arg-type]
    assert rig.engine.stats["tx_retries"] == 1
    rig.peer.withhold_acks = 100
    t0 = rig.clock.now()
    lost = rig.engine.send("FlightModeSettings", values)
    rig.run(5.0)
    failed = rig.result(lost)  # type: ignore[arg-type]
    assert isinstance(failed, TransactionFailed) and isinstance(failed.error, TelemetryTimeout)
    assert "after 4 tries" in str(failed.error)
    tries = [p for p in rig.sent_of(PacketType.OBJ_ACK, "FlightModeSettings")][-4:]
    assert len(tries) == 4
    assert rig.engine.stats["tx_failures"] == 1 and rig.engine.stats["tx_retries"] == 4
    assert rig.clock.now() - t0 >= 4 * 0.5
    rig.peer.nack_ids.add(REG["FlightModeSettings"].object_id)
    refused = rig.engine.send("FlightModeSettings", values)
    rig.run(0.1)
    assert isinstance(rig.result(refused).error, TelemetryNack)  # type: ignore[arg-type, union-attr]


def test_update_period_keeps_the_metadata_last_received() -> None:
    rig = connected_rig()
    meta = REG["AttitudeStateMeta"]
    custom = meta.defaults() | {"logging_period_ms": 321}
    rig.peer.set("AttitudeStateMeta", custom)
    tid = rig.engine.request("AttitudeStateMeta")
    rig.run(0.1)
    assert rig.result(tid).result["logging_period_ms"] == 321  # type: ignore[union-attr]
    tid = rig.engine.set_update_period("AttitudeState", 50)
    rig.run(0.1)
    assert isinstance(rig.result(tid), TransactionDone)
    written = rig.peer.get("AttitudeStateMeta")
    assert written is not None
    assert written["telemetry_period_ms"] == 50 and written["telemetry_update_mode"] == "periodic"
    assert written["logging_period_ms"] == 321


def test_the_engine_answers_the_flight_side() -> None:
    rig = connected_rig()
    fs = REG["FlightStatus"]
    rig.engine.receive_data(
        encode_packet(PacketType.OBJ_ACK, fs.object_id, 0, fs.encode(fs.defaults()))
        + encode_packet(PacketType.OBJ_ACK, 0x1234, 0, b"xx")
        + encode_packet(PacketType.OBJ_REQ, REG["GCSTelemetryStats"].object_id, 0)
        + encode_packet(PacketType.OBJ_REQ, fs.object_id + 2, 0))
    rig.exchange()
    kinds = [(p.type, p.object_id) for p in rig.packets[-4:]]  # type: ignore[attr-defined]
    assert kinds == [(PacketType.ACK, fs.object_id), (PacketType.NACK, 0x1234),
                     (PacketType.OBJ, REG["GCSTelemetryStats"].object_id),
                     (PacketType.NACK, fs.object_id + 2)]


def test_a_full_link_drops_packets_instead_of_hoarding_them() -> None:
    rig = connected_rig()
    big = REG["HwSettings"].defaults()
    for _ in range(10):
        rig.engine.send("HwSettings", big, ack=False)
    size = len(encode_packet(PacketType.OBJ, 0, 0, REG["HwSettings"].encode(big)))
    before = rig.engine.stats
    data = rig.engine.data_to_send(room=3 * size)
    assert len(data) == 3 * size
    after = rig.engine.stats
    assert after["tx_errors"] - before["tx_errors"] == 7
    assert after["tx_bytes"] - before["tx_bytes"] == 3 * size


def test_closing_fails_what_is_pending_and_refuses_more() -> None:
    rig = connected_rig()
    rig.peer.silent = True
    tid = rig.engine.request("SystemStats")
    queued = rig.engine.request("SystemStats")
    rig.engine.close("stream closed")
    failed = [e for e in rig.engine.events() if isinstance(e, TransactionFailed)]
    assert [f.tid for f in failed] == [tid, queued]
    assert all("stream closed" in str(f.error) for f in failed)
    assert rig.engine.pending() == 0
    assert rig.engine.closed and rig.engine.next_deadline() is None
    with pytest.raises(TelemetryError, match="closed"):
        rig.engine.request("SystemStats")
    with pytest.raises(TelemetryError, match="unknown UAVObject 'Nope'"):
        rig.engine.latest("Nope")


def test_stop_says_disconnected() -> None:
    rig = connected_rig()
    rig.engine.stop()
    rig.exchange()
    assert rig.peer.gcs_status == "Disconnected" and rig.engine.state is LinkState.STOPPED


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="ack_timeout"):
        SessionOptions(ack_timeout=0)
    with pytest.raises(ValueError, match="retries"):
        SessionOptions(retries=-1)


def test_a_handler_failing_on_every_packet_logs_one_traceback_then_counts(
        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    rig = connected_rig()

    def broken(pkt: object, now: float) -> None:
        raise RuntimeError("bad packet")

    rig.engine._handle = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="pipilot.uavtalk.session"):
        rig.run(30.0)                       # the peer keeps talking: every packet fails
    recs = [r for r in caplog.records if r.name == "pipilot.uavtalk.session"]
    errors = rig.engine.handle_errors
    assert errors > 20
    assert recs[0].exc_info is not None and all(r.exc_info is None for r in recs[1:])
    assert 2 <= len(recs) <= 5              # a line per 10 s of virtual time, not per packet
    assert "more failure(s)" in recs[-1].getMessage()


def test_an_abandoned_request_frees_its_object_for_the_next() -> None:
    # Found by the SITL conformance run: a caller's 150 ms timeout left its
    # request active for the whole retry budget, and every later request for
    # the same object queued behind it (one took 1.3 s instead of 0.25 s).
    rig = connected_rig()
    rig.peer.set("SystemStats", REG["SystemStats"].defaults() | {"FlightTime": 5})
    rig.peer.silent = True
    first = rig.engine.request("SystemStats")
    queued = rig.engine.request("SystemStats")
    rig.exchange()
    rig.engine.abandon(queued)                 # a queued one just goes
    assert rig.engine.pending() == 1
    rig.peer.silent = False
    nxt = rig.engine.request("SystemStats")
    rig.engine.abandon(first)                  # the active one ends: the next goes out now
    rig.exchange()
    assert len(rig.sent_of(PacketType.OBJ_REQ, "SystemStats")) == 2
    assert rig.result(nxt).result["FlightTime"] == 5  # type: ignore[union-attr]
    assert rig.engine.pending() == 0
    assert not [e for e in rig.events if isinstance(e, TransactionDone | TransactionFailed)
                and e.tid in (first, queued)]
