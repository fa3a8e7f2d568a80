"""`pipilot telemetry` and `pipilot log` against the simulated CC3D's flight side on a pty."""

from __future__ import annotations

import itertools
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipilot.sim.model import SimulatedCC3D
from pipilot.uavtalk import PacketType, encode_packet, load_definitions
from pipilot.uavtalk.opl import OplWriter
from tests.sim.flightside import SimFlight

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
REG = load_definitions()


#: The simulated board is mounted rolled this much: AttitudeState shows it.
BOARD_ROLL_DEG = 3.5


class PtyPeer(threading.Thread):
    """A flight side answering on the master side of a pty, in real time (None: silent)."""

    def __init__(self, peer: SimFlight | None) -> None:
        super().__init__(daemon=True)
        self.peer = peer
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.02)
            now = time.monotonic()
            out = b""
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    data = b""
                if self.peer is not None:
                    out += self.peer.feed(data, now)
            if self.peer is not None:
                out += self.peer.tick(now)
            if out:
                os.write(self.master, out)

    def close(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(2)
        os.close(self.master)
        os.close(self.slave)


def board_roll(roll: float) -> bool:
    """The flight side's attitude estimate shows the board's mounting roll."""
    return abs(roll - BOARD_ROLL_DEG) < 1.0


@pytest.fixture
def pty_peer() -> Iterator[PtyPeer]:
    model = SimulatedCC3D(seed=0, mount_tilt_deg=(BOARD_ROLL_DEG, 0.0), start=time.monotonic())
    p = PtyPeer(SimFlight(model=model))
    p.start()
    yield p
    p.close()


def pipilot(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "pipilot", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO)


def test_telemetry_json(pty_peer: PtyPeer) -> None:
    r = pipilot("telemetry", "--port", pty_peer.path, "--objects", "AttitudeState,FlightStatus",
                "--json", "--duration", "4")
    assert r.returncode == 0, r.stderr
    assert "waiting for the flight controller" in r.stderr
    assert ": connected" in r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    names = {x["name"] for x in lines}
    assert names == {"AttitudeState", "FlightStatus"}
    att = [x for x in lines if x["name"] == "AttitudeState"]
    assert len(att) >= 5 and board_roll(att[0]["values"]["Roll"]) and att[0]["instance"] == 0
    assert pty_peer.peer is not None and pty_peer.peer.gcs_status == "Disconnected"  # said bye


def test_telemetry_requests_named_objects_once(pty_peer: PtyPeer) -> None:
    """Objects the flight side never sends by itself are fetched once after connecting."""
    r = pipilot("telemetry", "--port", pty_peer.path, "--objects", "HwSettings", "--json",
                "--duration", "3")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["name"] for x in lines] == ["HwSettings"]
    assert pty_peer.peer is not None
    assert lines[0]["values"] == pty_peer.peer.flight.values("HwSettings")


def test_telemetry_text_and_waiting_without_flight_side() -> None:
    silent = PtyPeer(None)
    silent.start()
    try:
        r = pipilot("telemetry", "--port", silent.path, "--duration", "1.5")
    finally:
        silent.close()
    assert r.returncode == 0
    assert r.stdout == ""
    assert "waiting for the flight controller to answer the handshake" in r.stderr
    assert "FlightTelemetryStats.Status: nothing yet" in r.stderr


def test_telemetry_user_errors(tmp_path: Path) -> None:
    r = pipilot("telemetry", "--port", str(tmp_path / "nope"), "--duration", "1")
    assert r.returncode == 1
    assert "cannot open serial port" in r.stderr and "Traceback" not in r.stderr
    silent = PtyPeer(None)
    try:
        r = pipilot("telemetry", "--port", silent.path, "--objects", "AttitudeState,Bogus")
    finally:
        silent.close()
    assert r.returncode == 1
    assert "unknown UAVObject(s): Bogus" in r.stderr


def test_log_record_and_dump(pty_peer: PtyPeer, tmp_path: Path) -> None:
    out = tmp_path / "flight.opl"
    r = pipilot("log", "record", "--port", pty_peer.path, "--out", str(out), "--duration", "3")
    assert r.returncode == 0, r.stderr
    assert "recorded to" in r.stderr
    assert out.stat().st_size > 100
    d = pipilot("log", "dump", str(out), "--json")
    assert d.returncode == 0, d.stderr
    items = [json.loads(x) for x in d.stdout.splitlines()]
    att = [x for x in items if x["name"] == "AttitudeState"]
    assert att and board_roll(att[0]["values"]["Roll"]) and att[0]["type"] == "OBJ"
    assert all(a["t_ms"] <= b["t_ms"] for a, b in itertools.pairwise(items))
    assert any(x["name"] == "FlightTelemetryStats" and x["values"]["Status"] == "Connected"
               for x in items)
    text = pipilot("log", "dump", str(out))
    assert text.returncode == 0 and "AttitudeState[0]" in text.stdout
    # Other objects (settings, the stick command) have a Roll field too, and under
    # load one of them can be the first in the log.
    rolls = re.findall(r"\bAttitudeState\[0\] .*?\bRoll=(-?[0-9.]+)", text.stdout)
    assert rolls and board_roll(float(rolls[0]))


def test_log_dump_into_a_closed_pipe(tmp_path: Path) -> None:
    """`pipilot log dump big.opl | head -1` ends quietly when head stops reading."""
    att = REG["AttitudeState"]
    pkt = encode_packet(PacketType.OBJ, att.object_id, 0, att.encode(att.defaults()))
    big = tmp_path / "big.opl"
    with OplWriter.open(big, 0.0) as w:
        for i in range(3000):
            w.write(pkt, i * 0.01)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    head = subprocess.run(f"{sys.executable} -m pipilot log dump {big} | head -1", shell=True,
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert len(head.stdout.splitlines()) == 1
    assert "Traceback" not in head.stderr and "Broken pipe" not in head.stderr


def test_log_dump_damaged(tmp_path: Path) -> None:
    bad = tmp_path / "bad.opl"
    bad.write_bytes(b"\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00abc")
    r = pipilot("log", "dump", str(bad))
    assert r.returncode == 1
    assert "truncated record at byte 0" in r.stderr and "Traceback" not in r.stderr


THING_XML = """<xml><object name="Thing" singleinstance="true" settings="false" category="T">
<description>x</description>
<field name="Speed" units="m/s" type="float" elements="1"/>
<field name="Mode" units="" type="enum" elements="1" options="Slow,Fast"/>
<access gcs="readwrite" flight="readwrite"/>
<telemetrygcs acked="false" updatemode="manual" period="0"/>
<telemetryflight acked="false" updatemode="periodic" period="100"/>
<logging updatemode="manual" period="0"/></object></xml>"""


def test_log_dump_with_other_definitions(tmp_path: Path) -> None:
    """--definitions DIR decodes objects the built-in set does not know."""
    xml = tmp_path / "defs"
    xml.mkdir()
    (xml / "thing.xml").write_text(THING_XML)
    thing = load_definitions(xml)["Thing"]
    log = tmp_path / "thing.opl"
    with OplWriter.open(log, 0.0) as w:
        w.write(encode_packet(PacketType.OBJ, thing.object_id, 0,
                              thing.encode({"Speed": 2.5, "Mode": "Fast"})), 0.25)
    plain = pipilot("log", "dump", str(log), "--json")
    item = json.loads(plain.stdout)
    assert item["values"] is None and item["name"] == f"0x{thing.object_id:08X}"
    assert "1 unknown objects" in plain.stderr
    known = pipilot("log", "dump", str(log), "--json", "--definitions", str(xml))
    item = json.loads(known.stdout)
    assert item == {"t_ms": 250, "type": "OBJ", "name": "Thing", "object_id": thing.object_id,
                    "instance": 0, "values": {"Speed": 2.5, "Mode": "Fast"}}
