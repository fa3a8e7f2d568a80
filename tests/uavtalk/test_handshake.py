"""The ground handshake machine against the scripted flight peer, in lock step (sans-IO)."""

from __future__ import annotations

from pipilot.uavtalk import PacketParser, PacketType, encode_packet, load_definitions
from pipilot.uavtalk.handshake import Handshake, HandshakeTiming, LinkState
from tests.uavtalk.flightpeer import FlightPeer

REG = load_definitions()
GCS = REG["GCSTelemetryStats"]


class Ground:
    """Just enough ground side to drive Handshake from packets."""

    def __init__(self) -> None:
        self.hs = Handshake()
        self.parser = PacketParser(REG)
        self.sent: list[str] = []

    def out(self, status: str | None) -> bytes:
        if status is None:
            return b""
        self.sent.append(status)
        values = GCS.defaults() | {"Status": status}
        return encode_packet(PacketType.OBJ, GCS.object_id, 0, GCS.encode(values))

    def feed(self, data: bytes, now: float) -> bytes:
        out = []
        for p in self.parser.feed(data):
            self.hs.on_rx(now)
            if p.name == "FlightTelemetryStats":
                out.append(self.out(self.hs.on_flight_status(p.values["Status"], now)))
        return b"".join(out)


def run(ground: Ground, peer: FlightPeer, t0: float, t1: float, dt: float = 0.05,
        to_peer: bytes = b"") -> float:
    t = t0
    while t < t1:
        t += dt
        to_ground = peer.feed(to_peer, t) + peer.tick(t) if to_peer else peer.tick(t)
        to_peer = ground.feed(to_ground, t) + ground.out(ground.hs.tick(t))
    return t


def test_lock_step_handshake_keepalive_and_loss() -> None:
    g, peer = Ground(), FlightPeer(REG)
    first = g.out(g.hs.start(0.0))
    assert g.hs.state is LinkState.HANDSHAKE_REQ
    t = run(g, peer, 0.0, 3.0, to_peer=first)
    assert g.hs.connected and peer.status == "Connected"
    assert g.sent[:2] == ["HandshakeReq", "Connected"]
    # 60 s connected: the keepalive holds the flight side's 8 s timeout off
    t = run(g, peer, t, 60.0)
    assert g.hs.connected and peer.status == "Connected"
    assert g.hs.connects == 1
    # the flight side goes quiet: link lost after link_timeout, then reconnected
    peer.silent = True
    t = run(g, peer, t, t + HandshakeTiming().link_timeout + 0.5)
    assert g.hs.state is LinkState.HANDSHAKE_REQ and g.hs.link_losses == 1
    peer.silent = False
    t = run(g, peer, t, t + 20)
    assert g.hs.connected and g.hs.connects == 2


def test_unit_transitions() -> None:
    hs = Handshake(HandshakeTiming(retry_period=1, keepalive_period=2, link_timeout=6,
                                   handshake_timeout=5))
    assert hs.tick(0) is None and hs.state is LinkState.STOPPED
    assert hs.start(0) == "HandshakeReq"
    assert hs.tick(0.5) is None
    assert hs.tick(1.0) == "HandshakeReq"          # retried
    assert hs.on_flight_status("Connected", 1.1) is None  # stale: keep asking
    assert hs.state is LinkState.HANDSHAKE_REQ
    assert hs.on_flight_status("HandshakeAck", 1.2) == "Connected"
    assert hs.state is LinkState.HANDSHAKE_ACK and not hs.connected
    assert hs.tick(2.2) == "Connected"               # repeated until confirmed
    assert hs.tick(6.5) == "HandshakeReq"            # never confirmed: start over
    assert hs.state is LinkState.HANDSHAKE_REQ
    assert hs.on_flight_status("HandshakeAck", 7) == "Connected"
    assert hs.on_flight_status("Connected", 7.1) is None
    assert hs.connected and hs.connects == 1
    assert hs.tick(8.0) is None
    assert hs.tick(9.0) == "Connected"               # keepalive
    hs.on_rx(12.0)
    assert hs.tick(17.9) is None or hs.connected
    assert hs.connected
    assert not hs.probe_due(14.9)
    assert hs.probe_due(15.1)                        # quiet for half the link timeout
    assert not hs.probe_due(15.5)                    # at most one probe per retry period
    assert hs.probe_due(16.2)
    assert hs.tick(18.5) == "HandshakeReq"           # 6.5 s of silence
    assert not hs.probe_due(18.6)                    # only while connected
    assert hs.link_losses == 1
    assert hs.on_flight_status("HandshakeAck", 19) == "Connected"
    assert hs.on_flight_status("Connected", 19.1) is None
    assert hs.on_flight_status("Disconnected", 20) == "HandshakeReq"  # flight dropped us
    assert hs.on_flight_status("HandshakeAck", 20.1) == "Connected"
    assert hs.on_flight_status("Connected", 20.2) is None
    hs.link_down(20.5, "stream closed")
    assert hs.state is LinkState.HANDSHAKE_REQ and hs.link_losses == 2
    assert hs.stop(21) == "Disconnected" and hs.state is LinkState.STOPPED
    hs.link_down(21.5, "stream closed")
    assert hs.state is LinkState.STOPPED
    assert hs.on_flight_status("HandshakeAck", 22) is None
    assert hs.waiting_for() == "not started"


def test_peer_answers_requests_in_reverse_instance_order() -> None:
    peer = FlightPeer(REG)
    wp = REG["Waypoint"]
    for i in range(3):
        peer.set("Waypoint", wp.defaults(), instance=i)
    out = PacketParser(REG).feed(peer.feed(encode_packet(PacketType.OBJ_REQ, wp.object_id,
                                                         0xFFFF), 0.0))
    assert [p.instance_id for p in out] == [2, 1, 0]
    meta = PacketParser(REG).feed(peer.feed(encode_packet(PacketType.OBJ_REQ,
                                                          wp.object_id + 1, 0), 0.0))
    assert meta[0].values == REG["WaypointMeta"].defaults()
    nack = PacketParser(REG).feed(peer.feed(encode_packet(PacketType.OBJ_REQ, 0x10, 0), 0.0))
    assert nack[0].type == PacketType.NACK
