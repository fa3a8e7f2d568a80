"""TelemetrySession over a real socket pair against a flight side: the simulated
CC3D's (tests.sim.flightside), or, where a test's subject is a flight side or a
link that misbehaves on purpose (withheld or refused ACKs, a flight side that
sends nothing periodic, packets lost at random), the scripted peer
(tests.uavtalk.flightpeer).

Time is a VirtualClock that a driver task moves 50 ms per 2 ms of loop time
(waking the session, whose timers sleep until the engine's next deadline), so
the firmware's seconds-long timers pass quickly, and a stalled loop stalls
virtual time with it (no flaky timing on a loaded machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

import pytest

from pipilot.core.clock import VirtualClock
from pipilot.core.telemetry import TelemetrySession
from pipilot.errors import LinkError
from pipilot.sim.model import SimulatedCC3D
from pipilot.uavtalk import ALL_INSTANCES, PacketParser, PacketType, encode_packet, load_definitions
from pipilot.uavtalk.handshake import LinkState
from pipilot.uavtalk.opl import read_opl
from pipilot.uavtalk.session import TelemetryError, TelemetryNack, TelemetryTimeout
from tests.sim.flightside import SimFlight, packets, tick_in_real_time
from tests.uavtalk.flightpeer import FlightPeer

pytestmark = pytest.mark.timeout(60)

REG = load_definitions()
STEP = 0.05  # virtual seconds per driver step


class FlightSide(Protocol):
    """What a PeerLink drives: ground bytes in, flight bytes out, on the test's time."""

    status: str
    gcs_status: str

    def feed(self, data: bytes, now: float) -> bytes: ...
    def tick(self, now: float) -> bytes: ...


class PeerLink:
    """Runs a flight side on one end of a socket pair, in virtual time."""

    def __init__(self, peer: FlightSide, clock: VirtualClock) -> None:
        self.peer = peer
        self.clock = clock
        self.session: TelemetrySession | None = None  # woken after each clock step
        self.tasks: list[asyncio.Task[None]] = []
        self.writer: asyncio.StreamWriter | None = None
        self.raw_rx = bytearray()
        #: The flight side's bytes are lost on the way (a dead line, ground-bound).
        self.silent = False

    async def attach(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        a, b = socket.socketpair()
        ground = await asyncio.open_connection(sock=a)
        reader, writer = await asyncio.open_connection(sock=b)
        self.writer = writer
        self.tasks += [asyncio.create_task(self._rx(reader))]
        return ground

    def start_clock(self) -> None:
        self.tasks.append(asyncio.create_task(self._tick()))

    async def _rx(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(4096):
            self.raw_rx += data
            self.send(self.peer.feed(data, self.clock.now()))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.002)
            self.clock.advance(STEP)
            self.send(self.peer.tick(self.clock.now()))
            if self.session is not None:
                self.session.wake()

    def send(self, data: bytes) -> None:
        if data and not self.silent and self.writer is not None \
                and not self.writer.is_closing():
            self.writer.write(data)

    def ground_sent(self) -> list:  # type: ignore[type-arg]
        """The packets the ground has sent so far."""
        return packets(bytes(self.raw_rx))

    def hang_up(self) -> None:
        assert self.writer is not None
        self.writer.close()

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.writer is not None:
            self.writer.close()


async def until(cond: Callable[[], bool], virtual_s: float, clock: VirtualClock) -> None:
    """Wait until ``cond()`` holds; fail after ``virtual_s`` of virtual time."""
    end = clock.now() + virtual_s
    while not cond():
        assert clock.now() < end, "condition not reached in time"
        await asyncio.sleep(0.002)


Rig = tuple[TelemetrySession, PeerLink, VirtualClock]


async def _rig(peer: FlightSide, clock: VirtualClock) -> AsyncIterator[Rig]:
    link = PeerLink(peer, clock)
    reader, writer = await link.attach()
    session = TelemetrySession(reader, writer, REG, clock=clock)
    link.session = session
    await session.start()
    link.start_clock()
    yield session, link, clock
    await session.stop()
    await link.close()


#: The simulated CC3D's board is mounted rolled this much: AttitudeState shows it.
BOARD_ROLL_DEG = 8.0


async def until_real(cond: Callable[[], bool], seconds: float) -> None:
    """Wait (loop time) until ``cond()`` holds, at most ``seconds``."""
    end = asyncio.get_running_loop().time() + seconds
    while not cond() and asyncio.get_running_loop().time() < end:
        await asyncio.sleep(0.01)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    """The session against the simulated CC3D's flight side."""
    clock = VirtualClock()
    model = SimulatedCC3D(seed=0, mount_tilt_deg=(BOARD_ROLL_DEG, 0.0))
    async for r in _rig(SimFlight(model=model), clock):
        yield r


@pytest.fixture
async def peer_rig() -> AsyncIterator[Rig]:
    """The session against the scripted peer, for tests that make it misbehave."""
    clock = VirtualClock()
    async for r in _rig(FlightPeer(REG, periodic={"AttitudeState": 0.2, "FlightStatus": 1.0}),
                        clock):
        yield r


async def test_handshake_connects(rig) -> None:  # type: ignore[no-untyped-def]
    session, link, clock = rig
    assert not session.connected
    await until(lambda: session.connected, 10, clock)
    assert session.state is LinkState.CONNECTED
    assert link.peer.status == "Connected"
    assert link.peer.gcs_status == "Connected"
    flight = session.latest("FlightTelemetryStats")
    assert flight is not None and flight[0]["Status"] == "Connected"
    assert session.stats["connects"] == 1
    # The ground keeps the link alive well inside the firmware's 8 s timeout.
    await until(lambda: clock.now() > 20, 40, clock)
    assert session.connected and link.peer.status == "Connected"
    gcs = [p for p in link.ground_sent() if p.name == "GCSTelemetryStats"]
    assert len(gcs) >= 20 / 2.0 - 2
    assert gcs[-1].values["TxBytes"] > 0 and gcs[-1].values["RxBytes"] > 0


async def test_latest_and_subscribe(rig) -> None:  # type: ignore[no-untyped-def]
    session, _link, _clock = rig
    assert session.latest("AttitudeState") is None
    sub = session.subscribe("AttitudeState")
    got = []
    async for values in sub:
        got.append(values)
        if len(got) == 3:
            break
    sub.close()
    # the flight side's attitude estimate: the board's mounting roll
    assert all(abs(v["Roll"] - BOARD_ROLL_DEG) < 1.0 for v in got)
    values, age = session.latest("AttitudeState")
    assert abs(values["Roll"] - BOARD_ROLL_DEG) < 1.0 and 0 <= age < 1.0
    with pytest.raises(TelemetryError, match="unknown UAVObject 'Nope'"):
        session.subscribe("Nope")


async def test_requests(rig) -> None:  # type: ignore[no-untyped-def]
    session, link, clock = rig
    await until(lambda: session.connected, 10, clock)
    t0 = clock.now()
    flight_ms = (await session.request("SystemStats"))["FlightTime"]
    assert t0 * 1000 <= flight_ms <= clock.now() * 1000   # the board's uptime as it answered
    assert session.latest("SystemStats")[0]["FlightTime"] == flight_ms
    meta = await session.request("AttitudeStateMeta")
    assert meta["telemetry_update_mode"] == "periodic" and meta["telemetry_period_ms"] == 130
    # the CC3D's receiver module keeps four AccessoryDesired instances
    model = link.peer.model
    values = [0.0, 0.25, 0.5, 0.75]
    model.manual.cmd.accessory[:] = values
    # no S.Bus here: each 20 ms receiver tick applies the failsafe values, and on a
    # loaded loop the clock driver can step the model before the request arrives
    model.manual.settings.failsafe.update({f"Accessory{k}": v for k, v in enumerate(values)})
    all_acc = await session.request("AccessoryDesired", ALL_INSTANCES)
    assert sorted(all_acc) == [0, 1, 2, 3]
    assert [all_acc[i]["AccessoryVal"] for i in range(4)] == [0.0, 0.25, 0.5, 0.75]
    reqs = [p for p in link.ground_sent() if p.type == PacketType.OBJ_REQ]
    assert reqs[-1].instance_id == ALL_INSTANCES
    with pytest.raises(TelemetryNack, match="AccessoryDesired"):
        await session.request("AccessoryDesired", 7)


async def test_a_request_given_up_by_its_caller_leaves_nothing_behind(rig) -> None:  # type: ignore[no-untyped-def]
    session, link, clock = rig
    await until(lambda: session.connected, 10, clock)
    link.silent = True
    task = asyncio.ensure_future(session.request("SystemStats"))
    await asyncio.sleep(0.01)
    assert session.engine.pending() == 1
    task.cancel()                              # as asyncio.wait_for does on its timeout
    with pytest.raises(asyncio.CancelledError):
        await task
    assert session.engine.pending() == 0       # no retries for nobody, no queue behind it
    link.silent = False
    assert (await session.request("SystemStats"))["FlightTime"] >= 0


async def test_send_with_ack_retry_and_failures(peer_rig) -> None:  # type: ignore[no-untyped-def]
    """A flight side that withholds or refuses its ACKs on purpose."""
    session, link, clock = peer_rig
    await until(lambda: session.connected, 10, clock)
    fm = REG["FlightModeSettings"]
    values = fm.defaults()
    await session.send("FlightModeSettings", values)
    assert link.peer.get("FlightModeSettings") == values
    # a lost ACK is retried
    link.peer.withhold_acks = 1
    await session.send("FlightModeSettings", values)
    assert session.stats["tx_retries"] == 1
    # a refusal is an error at once
    link.peer.nack_ids.add(fm.object_id)
    with pytest.raises(TelemetryNack, match="FlightModeSettings"):
        await session.send("FlightModeSettings", values)
    link.peer.nack_ids.clear()
    # no answer at all: every retry times out
    link.peer.withhold_acks = 10
    t0 = clock.now()
    with pytest.raises(TelemetryTimeout, match="FlightModeSettings"):
        await session.send("FlightModeSettings", values)
    assert clock.now() - t0 >= 3 * session.ack_timeout
    assert session.stats["tx_failures"] == 1
    # unacknowledged send and bad values
    await session.send("AttitudeState", REG["AttitudeState"].defaults(), ack=False)
    with pytest.raises(ValueError, match=r"AttitudeState\.Roll"):
        await session.send("AttitudeState", {"Roll": "level"}, ack=False)


async def test_partial_send_merges_latest(rig) -> None:  # type: ignore[no-untyped-def]
    session, link, clock = rig
    await until(lambda: session.connected, 10, clock)
    before = await session.request("FlightModeSettings")
    with pytest.raises(ValueError, match="missing"):
        await session.send("ActuatorCommand", {"UpdateTime": 3})
    await session.send("FlightModeSettings", {"ArmedTimeout": 12345})
    stored = link.peer.flight.objects["FlightModeSettings"][0]
    assert stored["ArmedTimeout"] == 12345
    assert stored["Arming"] == before["Arming"] == "Yaw Left"   # the rig's, kept
    assert link.peer.model.manual.modes.armed_timeout_ms == 12345  # written through


async def test_link_loss_and_reconnection(rig) -> None:  # type: ignore[no-untyped-def]
    session, link, clock = rig
    await until(lambda: session.connected, 10, clock)
    link.silent = True
    await until(lambda: not session.connected, 10, clock)
    assert session.state is LinkState.HANDSHAKE_REQ
    assert session.stats["link_losses"] == 1
    assert "waiting for the flight controller" in session.waiting_for()
    link.silent = False
    await until(lambda: session.connected, 20, clock)
    assert session.stats["connects"] == 2


async def test_idle_link_is_kept_by_probes(peer_rig) -> None:  # type: ignore[no-untyped-def]
    """No periodic objects at all from the flight side (the scripted peer: no firmware
    falls that quiet): requests keep the link known alive."""
    session, link, clock = peer_rig
    await until(lambda: session.connected, 10, clock)
    link.peer.periodic = {}
    link.peer.periodic_stats = False
    t0 = clock.now()
    await until(lambda: clock.now() > t0 + 60, 120, clock)
    assert session.connected and session.stats["link_losses"] == 0
    fts = REG["FlightTelemetryStats"].object_id
    probes = [p for p in link.peer.received if p.type == PacketType.OBJ_REQ and p.object_id == fts]
    assert len(probes) >= 60 / 6


async def test_flight_reboot_reconnects(rig) -> None:  # type: ignore[no-untyped-def]
    session, link, clock = rig
    await until(lambda: session.connected, 10, clock)
    link.peer = SimFlight(start=clock.now())  # a rebooted flight side
    sent = len(link.raw_rx)
    # It reports Disconnected; the session asks again and both sides reconnect.
    await until(lambda: session.stats["connects"] == 2, 20, clock)
    assert session.connected and link.peer.status == "Connected"
    assert packets(bytes(link.raw_rx[sent:]))[0].name == "GCSTelemetryStats"


async def test_handshake_survives_drops(peer_rig) -> None:  # type: ignore[no-untyped-def]
    """Packets lost at random both ways (the scripted peer drops them on purpose)."""
    session, link, clock = peer_rig
    link.peer.rx_drop = 0.5
    link.peer.tx_drop = 0.3
    await until(lambda: session.connected, 60, clock)
    await until(lambda: link.peer.status == "Connected", 30, clock)


async def test_flight_acked_objects_and_requests(rig) -> None:  # type: ignore[no-untyped-def]
    session, link, clock = rig
    await until(lambda: session.connected, 10, clock)
    fs = REG["FlightStatus"]
    link.send(encode_packet(PacketType.OBJ_ACK, fs.object_id, 0, fs.encode(fs.defaults())))
    link.send(encode_packet(PacketType.OBJ_ACK, 0x1234, 0, b"xx"))
    link.send(encode_packet(PacketType.OBJ_REQ, REG["GCSTelemetryStats"].object_id, 0))
    link.send(encode_packet(PacketType.OBJ_REQ, fs.object_id + 2, 0))
    await until(lambda: sum(p.type in (PacketType.ACK, PacketType.NACK)
                            for p in link.ground_sent()) >= 3, 5, clock)
    got = [(p.type, p.object_id) for p in link.ground_sent() if p.type != PacketType.OBJ
           or p.object_id != REG["GCSTelemetryStats"].object_id]
    assert (PacketType.ACK, fs.object_id) in got
    assert (PacketType.NACK, 0x1234) in got
    assert (PacketType.NACK, fs.object_id + 2) in got


async def test_stop_says_disconnected_and_ends_subscriptions(rig) -> None:  # type: ignore[no-untyped-def]
    session, link, clock = rig
    await until(lambda: session.connected, 10, clock)
    sub = session.subscribe("AttitudeState")
    await session.stop()
    await until(lambda: link.peer.gcs_status == "Disconnected", 5, clock)
    leftover = [v async for v in sub]  # ends instead of waiting forever
    assert sub.closed and len(leftover) <= 64
    assert not session.connected and session.state is LinkState.STOPPED
    with pytest.raises(TelemetryError, match="closed"):
        await session.request("SystemStats")


async def test_eof_without_reopen_closes(rig) -> None:  # type: ignore[no-untyped-def]
    session, link, clock = rig
    await until(lambda: session.connected, 10, clock)
    sub = session.subscribe("AttitudeState")
    link.hang_up()
    await until(lambda: session.closed, 5, clock)
    async for _ in sub:
        pass
    assert not session.connected


@contextlib.asynccontextmanager
async def reopening_session(clock: VirtualClock, failures: list[Exception]
                            ) -> AsyncIterator[tuple[TelemetrySession, list[PeerLink]]]:
    """A started session whose reopen attaches a fresh simulated flight side on a new
    socket pair (after raising each of ``failures`` in turn); the links it made."""
    links: list[PeerLink] = []
    sessions: list[TelemetrySession] = []

    async def reopen() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if links and failures:
            raise failures.pop(0)
        link = PeerLink(SimFlight(start=clock.now()), clock)
        link.session = sessions[0] if sessions else None
        links.append(link)
        pair = await link.attach()
        link.start_clock()
        return pair

    reader, writer = await reopen()
    session = TelemetrySession(reader, writer, REG, clock=clock, reopen=reopen,
                               reopen_delay=0.01)
    sessions.append(session)
    links[0].session = session
    await session.start()
    try:
        yield session, links
    finally:
        await session.stop()
        for link in links:
            await link.close()


async def test_reopen_after_eof() -> None:
    clock = VirtualClock()
    async with reopening_session(clock, []) as (session, links):
        await until(lambda: session.connected, 10, clock)
        await links[0].close()
        await until(lambda: not session.connected, 5, clock)
        await until(lambda: session.stats["reopens"] == 1, 10, clock)
        await until(lambda: session.connected, 20, clock)
        assert session.stats["connects"] == 2


async def test_record_while_flying(rig, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    session, _link, clock = rig
    await until(lambda: session.connected, 10, clock)
    path = tmp_path / "flight.opl"
    session.record_to(path)
    assert session.stats["recording"] == str(path)
    await until(lambda: session.stats["rx_objects"] > 40, 30, clock)
    session.record_to(None)
    records = list(read_opl(path))
    assert records and all(a.time_ms <= b.time_ms for a, b in itertools.pairwise(records))
    parser = PacketParser(REG)
    names = {p.name for r in records for p in parser.feed(r.data)}
    assert "AttitudeState" in names
    raw = path.read_bytes()
    _ms, size = struct.unpack_from("<Iq", raw)
    assert size == len(records[0].data) > 0
    assert raw[12:12 + size] == records[0].data


async def test_real_clock_defaults() -> None:
    """With the real clock and default timings the handshake completes in about a second."""
    a, b = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=a)
    preader, pwriter = await asyncio.open_connection(sock=b)
    loop = asyncio.get_running_loop()
    peer = SimFlight(start=loop.time())
    session = TelemetrySession(reader, writer, REG)

    async def serve() -> None:
        while data := await preader.read(4096):
            pwriter.write(peer.feed(data, loop.time()))

    tasks = [asyncio.create_task(serve()), asyncio.create_task(
        tick_in_real_time(peer, pwriter.write))]
    await session.start()
    try:
        await session.wait_connected(timeout=20)
        assert session.connected
    finally:
        await session.stop()
        for task in tasks:
            task.cancel()
        pwriter.close()


async def test_open_over_tcp() -> None:
    """TelemetrySession.open on tcp:HOST:PORT (the simulator and remote links use TCP)."""
    loop = asyncio.get_running_loop()
    peer = SimFlight(start=loop.time())

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ticker = asyncio.create_task(tick_in_real_time(peer, writer.write))
        try:
            while data := await reader.read(4096):
                writer.write(peer.feed(data, loop.time()))
        finally:
            ticker.cancel()
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    session = await TelemetrySession.open(f"tcp:127.0.0.1:{port}", registry=REG)
    await session.start()
    try:
        await session.wait_connected(timeout=20)
        assert (await session.request("FlightStatus"))["Armed"] == "Disarmed"
    finally:
        await session.stop()
        server.close()
        await server.wait_closed()
    with pytest.raises(LinkError, match="cannot connect"):
        await TelemetrySession.open(f"tcp:127.0.0.1:{port}", registry=REG)


async def test_open_over_udp() -> None:
    """TelemetrySession.open on udp:HOST:PORT, the way the SITL serves UAVTalk."""
    loop = asyncio.get_running_loop()
    peer = SimFlight(start=loop.time())

    class Served(asyncio.DatagramProtocol):
        addr: tuple[str, int] | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.addr = addr
            self.send(peer.feed(data, loop.time()))

        def send(self, data: bytes) -> None:
            if data and self.addr is not None:
                self.transport.sendto(data, self.addr)  # type: ignore[attr-defined]

    transport, served = await loop.create_datagram_endpoint(
        Served, local_addr=("127.0.0.1", 0))
    ticker = asyncio.create_task(tick_in_real_time(peer, served.send))
    port = transport.get_extra_info("sockname")[1]
    session = await TelemetrySession.open(f"udp:127.0.0.1:{port}", registry=REG)
    await session.start()
    try:
        await session.wait_connected(timeout=20)
        assert (await session.request("FlightStatus"))["Armed"] == "Disarmed"
        assert peer.status == "Connected"
    finally:
        await session.stop()
        await until_real(lambda: peer.gcs_status == "Disconnected", 5.0)
        ticker.cancel()
        transport.close()
    assert peer.gcs_status == "Disconnected"


async def test_unread_link_does_not_hoard_memory() -> None:
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    reader, writer = await asyncio.open_connection(sock=a)
    session = TelemetrySession(reader, writer, REG)
    big = REG["HwSettings"].defaults()
    for _ in range(5000):  # nobody reads b
        await session.send("HwSettings", big, ack=False)
    assert writer.transport.get_write_buffer_size() <= 64 * 1024 + 300
    assert session.stats["tx_errors"] > 0
    await session.stop()
    b.close()


async def test_a_failing_handler_does_not_end_the_session(rig) -> None:  # type: ignore[no-untyped-def]
    session, _link, clock = rig
    real = session.handshake.on_flight_status
    calls = []

    def flaky(status: str, now: float) -> str | None:
        calls.append(status)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real(status, now)

    session.handshake.on_flight_status = flaky  # type: ignore[method-assign]
    await until(lambda: session.connected, 20, clock)
    assert session.stats["handle_errors"] == 1


async def test_slow_subscriber_keeps_the_newest(rig) -> None:  # type: ignore[no-untyped-def]
    session, _link, clock = rig
    sub = session.subscribe("SystemStats", maxsize=3)
    for k in range(10):
        sub._put({"k": k})
    sub.close()
    assert [v["k"] async for v in sub] == [7, 8, 9]
    assert sub.dropped == 7
    live = session.subscribe("AttitudeState", maxsize=3)
    await until(lambda: live.dropped >= 3, 20, clock)
    assert live._queue.qsize() == 3


async def test_open_serial_on_a_pty() -> None:
    """open_serial gives a working byte stream, raw, at the requested baud rate."""
    import os
    import termios
    import tty

    from pipilot.link.stream import open_serial

    master, slave = os.openpty()
    tty.setraw(master)
    try:
        stream = await open_serial(os.ttyname(slave), 57600)
        attrs = termios.tcgetattr(slave)
        assert attrs[4] == attrs[5] == termios.B57600
        assert not attrs[3] & termios.ICANON and not attrs[3] & termios.ECHO
        os.write(master, b"\x3c\x00\x0a\x0d\xff")  # bytes a cooked tty would mangle
        got = b""
        while len(got) < 5:
            got += await asyncio.wait_for(stream.read(), 10)
        assert got == b"\x3c\x00\x0a\x0d\xff"
        stream.write(b"\x11\x13\x0d\x0a")
        await stream.drain()
        assert stream.backlog() == 0
        loop = asyncio.get_running_loop()
        back = await loop.run_in_executor(None, os.read, master, 100)
        assert back == b"\x11\x13\x0d\x0a"
        stream.close()
        await asyncio.wait_for(stream.wait_closed(), 5)
        assert stream.is_closing()
        assert await asyncio.wait_for(stream.read(), 5) == b""  # read side closed too
        with pytest.raises(RuntimeError, match="closed"):
            stream.write(b"x")
    finally:
        os.close(master)
        os.close(slave)
    with pytest.raises(LinkError, match="cannot open serial port"):
        await open_serial("/dev/nonexistent-tty", 9600)


async def test_fd_stream_buffers_what_the_device_cannot_take_and_ends_on_hang_up() -> None:
    import os
    import tty

    from pipilot.link.stream import FdStream

    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    stream = FdStream(os.dup(slave), "pty")
    try:
        blob = bytes(range(256)) * 1024       # far more than a pty holds
        stream.write(blob)
        assert 0 < stream.backlog() < len(blob)
        got = bytearray()
        os.set_blocking(master, False)
        loop = asyncio.get_running_loop()
        end = loop.time() + 20
        while len(got) < len(blob) and loop.time() < end:
            with contextlib.suppress(BlockingIOError):
                got += os.read(master, 65536)
            await asyncio.sleep(0.001)
        assert bytes(got) == blob and stream.backlog() == 0
        os.close(master)                      # hang up: the stream ends (EIO or EOF)
        master = -1
        with contextlib.suppress(OSError):
            assert await asyncio.wait_for(stream.read(), 5) == b""
        assert await asyncio.wait_for(stream.read(), 5) == b""
    finally:
        stream.close()
        os.close(slave)
        if master >= 0:
            os.close(master)


async def test_reopen_retries_until_the_port_is_back() -> None:
    clock = VirtualClock()
    failures: list[Exception] = [LinkError("/dev/ttyX", "gone"), OSError("busy")]
    async with reopening_session(clock, failures) as (session, links):
        await until(lambda: session.connected, 10, clock)
        await links[0].close()
        await until(lambda: not session.connected, 5, clock)
        assert session.stats["link_losses"] == 1
        await until(lambda: session.stats["reopens"] == 1, 30, clock)
        assert not failures and len(links) == 2
        await until(lambda: session.connected, 30, clock)


async def _until_real(cond: Callable[[], bool], limit_s: float) -> None:
    """Wait on the loop's real time until ``cond()`` holds; fail after ``limit_s``."""
    end = asyncio.get_running_loop().time() + limit_s
    while not cond():
        assert asyncio.get_running_loop().time() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


async def _lose(master: int, slave: int) -> None:
    """The far end of a pty goes away (the session's reads fail with EIO)."""
    import os

    os.close(master)
    os.close(slave)
    await asyncio.sleep(0.2)


async def test_reopen_never_opens_a_pty_number_handed_to_another_program(
        caplog: pytest.LogCaptureFixture) -> None:
    """The telemetry pty goes away and its number goes to the next pty anyone
    opens: the session must not configure it nor write its handshake into it."""
    import os
    import termios

    from tests.link.ptys import drain, grab_pty

    for _attempt in range(3):
        master, slave = os.openpty()
        path = os.ttyname(slave)
        session = await TelemetrySession.open(path, 57600, REG, reopen_delay=0.05)
        await session.start()
        try:
            await _lose(master, slave)
            pair = await asyncio.get_running_loop().run_in_executor(None, grab_pty, path)
            if pair is None:                 # another program took the number
                continue
            master, slave = pair
            try:
                before = termios.tcgetattr(slave)
                # three reopen attempts refused (0.05 s apart), however long a
                # loaded machine takes to get there
                await _until_real(lambda s=session: s.stats["reopen_refusals"] >= 3, 10.0)
                assert drain(master) == b""
                assert termios.tcgetattr(slave) == before
                assert session.stats["reopens"] == 0
                assert session.stats["reopen_refusals"] >= 3
                refused = [r for r in caplog.records
                           if "telemetry reopen refused" in r.getMessage()]
                assert len(refused) == 1 and "device changed" in refused[0].getMessage()
            finally:
                os.close(master)
                os.close(slave)
            return
        finally:
            await session.stop()
    pytest.skip("other programs took the freed pty number three times running")


async def test_reopen_takes_the_same_adapter_back_and_no_other(tmp_path: Path) -> None:
    """In a simulated sysfs the ptys are USB adapters: another adapter under the
    name is refused (and gets nothing); the same one, back under another
    number and found through its by-id link, is reopened."""
    import os

    from tests.link.fakesys import FakeSysfs
    from tests.link.ptys import drain

    sysfs = FakeSysfs(tmp_path)
    master, slave = os.openpty()
    sysfs.usb(os.ttyname(slave), serial="A50285BI")
    sysfs.by_id_link(os.ttyname(slave))
    name = tmp_path / "ttyUSB0"
    name.symlink_to(os.ttyname(slave))
    session = await TelemetrySession.open(str(name), 57600, REG, probe=sysfs.probe,
                                          reopen_delay=0.05)
    await session.start()
    m2, s2 = os.openpty()
    m3 = s3 = -1
    try:
        sysfs.unplug(os.ttyname(slave))          # as the kernel does when it is pulled
        await _lose(master, slave)
        sysfs.usb(os.ttyname(s2), serial="FT9XQ2LK", usb_port="1-1.3")
        name.unlink()
        name.symlink_to(os.ttyname(s2))          # another adapter took the name
        os.set_blocking(m2, False)
        await _until_real(lambda: session.stats["reopen_refusals"] >= 2, 10.0)
        assert drain(m2) == b"" and session.stats["reopens"] == 0
        assert session.stats["reopen_refusals"] >= 2
        m3, s3 = os.openpty()                    # ours is back under another number
        sysfs.usb(os.ttyname(s3), serial="A50285BI", usb_port="1-1.4")
        sysfs.by_id_link(os.ttyname(s3))
        os.set_blocking(m3, False)
        end = asyncio.get_running_loop().time() + 10
        got = b""
        while not got and asyncio.get_running_loop().time() < end:
            await asyncio.sleep(0.05)
            got = drain(m3)
        assert got and session.stats["reopens"] == 1    # its handshake went there
        assert drain(m2) == b""
    finally:
        await session.stop()
        for fd in (m2, s2, m3, s3):
            if fd >= 0:
                os.close(fd)
