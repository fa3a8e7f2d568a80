import itertools
import os
import time

import pytest

from pipilot.link.serialport import open_sbus_port
from pipilot.link.virtual import BYTE_TIME, VirtualLink, WireReader


def test_byte_time_is_12_bits_at_100000_baud():
    assert pytest.approx(120e-6) == BYTE_TIME


def test_stamps_follow_the_wire():
    r = WireReader(-1)
    t = r.stamp(10.0, 25)
    assert t[0] == pytest.approx(10.0 + 120e-6)
    assert t[-1] == pytest.approx(10.0 + 3.0e-3)
    # a write that arrives while the wire is busy queues behind it
    t2 = r.stamp(10.001, 2)
    assert t2[0] == pytest.approx(t[-1] + 120e-6)
    # after a silence the next byte starts when written
    assert r.stamp(11.0, 1)[0] == pytest.approx(11.0 + 120e-6)


def test_bytes_written_to_the_port_reach_the_reader_with_times():
    got = []
    with VirtualLink(callback=lambda d, t: got.append((d, t))) as link, \
            open_sbus_port(link.path) as port:
        os.write(port.fd, bytes(range(25)))
        deadline = time.monotonic() + 5
        while sum(len(d) for d, _ in got) < 25 and time.monotonic() < deadline:
            time.sleep(0.005)
    data = b"".join(d for d, _ in got)
    times = [t for _, ts in got for t in ts]
    assert data == bytes(range(25))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= BYTE_TIME - 1e-9 for g in gaps)  # float slack at a large uptime


def test_loopback_direction():
    with VirtualLink() as link, open_sbus_port(link.path) as port:
        link.write_to_port(b"\x0f\x00")
        deadline = time.monotonic() + 5
        data = b""
        while len(data) < 2 and time.monotonic() < deadline:
            data += port.read()
            time.sleep(0.005)
        assert data == b"\x0f\x00"


def test_closing_the_far_end_makes_writes_fail():
    link = VirtualLink()
    port = open_sbus_port(link.path)
    link.close()
    with pytest.raises(OSError):
        for _ in range(3):
            os.write(port.fd, b"\x0f" * 25)
    port.close()
