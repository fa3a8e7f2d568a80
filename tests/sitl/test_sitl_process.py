"""The SITL process itself: loopback only, clean UAVTalk answers, no orphans.

Needs a built SITL (``PIPILOT_SITL`` or ``LIBREPILOT_DIR``, see
test_conformance.py); the argument checks at the end run without one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipilot.errors import PipilotError
from pipilot.sim.sitl import SitlError, SitlProcess
from pipilot.uavtalk import PacketParser, PacketType, encode_packet
from pipilot.uavtalk.definitions import load_definitions
from tests.sitl.test_conformance import BINARY

ROOT = Path(__file__).resolve().parents[2]
needs_sitl = pytest.mark.skipif(
    BINARY is None, reason="not run: set PIPILOT_SITL (a built SITL) or LIBREPILOT_DIR "
                           "(a LibrePilot 16.09 tree built with tools/sitl/build.sh)")


def _udp_binds(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/udp gives them) bound to ``port``."""
    found = []
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                addr, _, hexport = line.split()[1].rpartition(":")
                if int(hexport, 16) == port:
                    found.append(addr)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


@needs_sitl
def test_sitl_listens_on_loopback_only_and_offers_a_pty() -> None:
    assert BINARY is not None
    with SitlProcess(BINARY) as sitl:
        assert sitl.port is not None
        time.sleep(0.5)
        assert _udp_binds(sitl.port) == ["0100007F"]  # 127.0.0.1, nothing else
        fd = os.open(sitl.sbus_port, os.O_RDWR | os.O_NOCTTY)
        try:
            assert os.isatty(fd)
        finally:
            os.close(fd)


@needs_sitl
def test_object_request_gets_the_object_and_no_nack() -> None:
    """16.09's POSIX COM layer returned 0 for a send: UAVTalk then NACKed every request."""
    assert BINARY is not None
    reg = load_definitions()
    fs = reg["FlightStatus"]
    with SitlProcess(BINARY) as sitl, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        assert sitl.port is not None
        s.connect(("127.0.0.1", sitl.port))
        s.settimeout(0.2)
        parser = PacketParser(reg)
        packets = []
        deadline = time.monotonic() + 8.0
        next_req = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() >= next_req:
                s.send(encode_packet(PacketType.OBJ_REQ, fs.object_id, 0))
                next_req = time.monotonic() + 0.5
            try:
                packets += parser.feed(s.recv(4096))
            except (TimeoutError, ConnectionRefusedError):
                continue
            answers = [p for p in packets if p.object_id == fs.object_id]
            if any(p.type == PacketType.OBJ for p in answers):
                # a NACK would follow the object at once: listen a little longer
                end = time.monotonic() + 0.5
                while time.monotonic() < end:
                    try:
                        packets += parser.feed(s.recv(4096))
                    except TimeoutError:
                        continue
                break
        answers = [p.type for p in packets if p.object_id == fs.object_id]
        assert PacketType.OBJ in answers, answers
        assert PacketType.NACK not in answers, answers


@needs_sitl
def test_stop_leaves_no_process_and_no_files() -> None:
    assert BINARY is not None
    sitl = SitlProcess(BINARY).start()
    pid, workdir = sitl.pid, sitl.workdir
    assert pid is not None and workdir is not None and _alive(pid)
    sitl.stop()
    assert not _alive(pid)
    assert not workdir.exists()
    sitl.stop()  # twice is harmless


@needs_sitl
def test_sitl_dies_with_a_killed_parent() -> None:
    """Even a SIGKILLed pipilot leaves no firmware running (PR_SET_PDEATHSIG)."""
    code = (
        "import sys, time\n"
        "from pipilot.sim.sitl import SitlProcess\n"
        f"s = SitlProcess({str(BINARY)!r}).start()\n"
        "print(s.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env=env)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    assert _alive(pid)
    parent.kill()
    parent.wait(10)
    deadline = time.monotonic() + 5.0
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_missing_binary_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SitlError, match="not found"):
        SitlProcess(tmp_path / "nope")
    (tmp_path / "plain").write_text("")
    with pytest.raises(SitlError, match="not executable"):
        SitlProcess(tmp_path / "plain")
    assert issubclass(SitlError, PipilotError)


def test_sim_cli_backend_sitl_needs_a_binary() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PIPILOT_SITL"}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run([sys.executable, "-m", "pipilot", "sim", "--backend", "sitl",
                        "--headless", "--duration", "1"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 1
    assert "--sitl" in r.stderr and "Traceback" not in r.stderr


def test_build_script_refuses_a_tree_that_is_not_librepilot(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("not LibrePilot\n")
    r = subprocess.run([str(ROOT / "tools/sitl/build.sh"), str(tmp_path)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == (f"build.sh: {tmp_path} is not a LibrePilot 16.09 source tree "
                                "(no flight/targets/boards/simposix/firmware/Makefile)")
    r = subprocess.run([str(ROOT / "tools/sitl/build.sh")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "usage:" in r.stderr
