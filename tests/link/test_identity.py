"""Device identities: what makes a reopened port the same device (simulated
sysfs trees over real ptys), and that another device is never touched."""

import fcntl
import os
import struct
import termios
from dataclasses import replace

import pytest

from pipilot.errors import LinkError
from pipilot.link import serialport
from pipilot.link.identity import DeviceChanged, DeviceIdentity, DeviceProbe, RefusalLog
from pipilot.link.serialport import open_sbus_port, reopen_sbus_port
from pipilot.link.virtual import VirtualLink
from tests.link.fakesys import FakeSysfs

TIOCGEXCL = 0x80045440      # asm-generic: is the tty in exclusive mode


def exclusive(fd):
    return struct.unpack("i", fcntl.ioctl(fd, TIOCGEXCL, b"\0" * 4))[0] != 0


USB = DeviceIdentity(os.makedev(188, 0), "usb", "/sys/devices/x/1-1.2:1.0/ttyUSB0",
                     vendor="0403", product="6001", serial="A50285BI", interface="00",
                     port_number="0", usb_port="1-1.2")
NO_SERIAL = replace(USB, vendor="1a86", product="7523", serial="")


@pytest.mark.parametrize(("old", "new", "differs"), [
    # the same adapter back under another number, in another socket
    (USB, replace(USB, rdev=os.makedev(188, 1), usb_port="1-1.4"), ""),
    (USB, replace(USB, serial="FT9XQ2LK"), "serial number A50285BI -> FT9XQ2LK"),
    (USB, replace(USB, serial=""), "serial number A50285BI -> none"),
    (USB, replace(USB, product="6010"), "USB vendor:product 0403:6001 -> 0403:6010"),
    (USB, replace(USB, interface="01"), "USB interface 00 -> 01"),   # the other port
    (USB, replace(USB, port_number="1"), "adapter port 0 -> 1"),
    # no serial number: the socket stands in for it
    (NO_SERIAL, replace(NO_SERIAL, rdev=os.makedev(188, 3)), ""),
    (NO_SERIAL, replace(NO_SERIAL, usb_port="1-1.3"), "USB socket 1-1.2 -> 1-1.3"),
    (NO_SERIAL, replace(NO_SERIAL, serial="X1"), "serial number none -> X1"),
    # a lost pty is never the same again, whatever comes under its number
    (DeviceIdentity(os.makedev(136, 4), "pty"), DeviceIdentity(os.makedev(136, 4), "pty"),
     "a lost pty is never reopened"),
    (DeviceIdentity(os.makedev(216, 0), "virtual"), DeviceIdentity(os.makedev(216, 0), "virtual"),
     "no hardware identity"),
    (DeviceIdentity(os.makedev(204, 64), "hardware", "/sys/devices/platform/soc/fe201000.serial"),
     DeviceIdentity(os.makedev(204, 64), "hardware", "/sys/devices/platform/soc/fe201000.serial"),
     ""),
    (DeviceIdentity(os.makedev(204, 64), "hardware", "/sys/devices/platform/soc/fe201000.serial"),
     DeviceIdentity(os.makedev(204, 65), "hardware", "/sys/devices/platform/soc/fe201400.serial"),
     "204:64 at /sys/devices/platform/soc/fe201000.serial is now 204:65"),
    (USB, DeviceIdentity(os.makedev(136, 0), "pty"), "is now pty 136:0"),
])
def test_what_counts_as_the_same_device(old, new, differs):
    got = old.differs(new)
    assert (got == "") if differs == "" else (differs in got)


@pytest.fixture
def sysfs(tmp_path):
    return FakeSysfs(tmp_path)


@pytest.fixture
def links():
    made = []

    def make():
        made.append(VirtualLink(keep=True))
        return made[-1]

    yield make
    for link in made:
        link.close()


def test_the_probe_reads_a_usb_adapter_from_sysfs(sysfs, links):
    link = links()
    sysfs.usb(link.path, serial="A50285BI", usb_port="1-1.2", interface="01",
              port_number="1")
    by_id = sysfs.by_id_link(link.path)
    got = sysfs.probe.identify(link.path)
    assert (got.kind, got.vendor, got.product, got.serial, got.interface, got.port_number,
            got.usb_port) == ("usb", "0403", "6001", "A50285BI", "01", "1", "1-1.2")
    assert got.rdev == os.stat(link.path).st_rdev and got.by_id == ""
    with open_sbus_port(link.path, probe=sysfs.probe) as port:
        assert port.identity == replace(got, by_id=by_id)   # recorded at the first open
    sysfs.usb(link.path, serial=None)
    assert sysfs.probe.identify(link.path).serial == ""


def test_the_probe_reads_an_on_board_uart(sysfs, links):
    link = links()
    sysfs.hardware(link.path)
    got = sysfs.probe.identify(link.path)
    assert got.kind == "hardware" and got.sys_device.endswith("platform/soc/fe201000.serial")


def test_a_real_pty_is_a_pty(links):
    link = links()
    assert DeviceProbe().identify(link.path).kind == "pty"
    with open_sbus_port(link.path) as port:
        assert port.identity.kind == "pty" and port.identity.by_id == ""


def test_a_real_uart_if_the_machine_has_one():
    if not os.path.exists("/dev/ttyS0"):
        pytest.skip("no /dev/ttyS0 on this machine")
    got = DeviceProbe().identify("/dev/ttyS0")
    assert got.kind in ("hardware", "usb") and got.sys_device.startswith("/sys/devices/")


def test_not_a_device(tmp_path):
    (tmp_path / "plain").write_bytes(b"")
    with pytest.raises(LinkError, match="not a tty"):
        DeviceProbe().identify(str(tmp_path / "plain"))


def test_another_adapter_is_refused_without_being_opened(sysfs, links, monkeypatch):
    first, other = links(), links()
    sysfs.usb(first.path, serial="A50285BI")
    with open_sbus_port(first.path, probe=sysfs.probe) as port:
        ident = port.identity
    sysfs.usb(other.path, serial="FT9XQ2LK", usb_port="1-1.3")
    opened = []
    real_open = serialport._open_fd
    monkeypatch.setattr(serialport, "_open_fd", lambda p: opened.append(p) or real_open(p))
    with pytest.raises(DeviceChanged, match="serial number A50285BI -> FT9XQ2LK") as exc:
        reopen_sbus_port(other.path, ident, probe=sysfs.probe)
    assert "device changed" in str(exc.value) and opened == []


def test_a_name_repointed_after_the_check_is_caught_on_the_fd(sysfs, links, monkeypatch):
    """The name changes between the look and the open: the opened fd is checked
    before anything is set on it, and closed without touching its modes."""
    first, other = links(), links()
    sysfs.usb(first.path, serial="A50285BI")
    with open_sbus_port(first.path, probe=sysfs.probe) as port:
        ident = port.identity
    sysfs.usb(other.path, serial="FT9XQ2LK", usb_port="1-1.3")
    theirs = os.open(other.path, os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.ioctl(theirs, termios.TIOCEXCL)          # the other program's settings
        before = termios.tcgetattr(theirs)
        monkeypatch.setattr(serialport, "check_name", lambda *a: None)   # the race
        with pytest.raises(DeviceChanged):
            open_sbus_port(other.path, expect=ident, probe=sysfs.probe)
        assert exclusive(theirs) and termios.tcgetattr(theirs) == before
        fcntl.flock(theirs, fcntl.LOCK_EX | fcntl.LOCK_NB)   # and no lock left behind
    finally:
        os.close(theirs)


def test_the_same_adapter_is_reopened_under_its_name_or_its_by_id_link(sysfs, links):
    first = links()
    sysfs.usb(first.path, serial="A50285BI")
    by_id = sysfs.by_id_link(first.path)
    with open_sbus_port(first.path, probe=sysfs.probe) as port:
        ident = port.identity
    assert ident.by_id == by_id
    back = links()                                   # back, same socket, same serial
    sysfs.usb(back.path, serial="A50285BI")
    with reopen_sbus_port(back.path, ident, probe=sysfs.probe) as port:
        assert port.path == back.path and port.identity == ident
    other, moved = links(), links()                 # another adapter took the name,
    sysfs.usb(other.path, serial="FT9XQ2LK", usb_port="1-1.3")
    sysfs.usb(moved.path, serial="A50285BI", usb_port="1-1.4")   # ours is elsewhere
    sysfs.by_id_link(moved.path)
    with reopen_sbus_port(other.path, ident, probe=sysfs.probe) as port:
        assert port.path == by_id
        assert os.fstat(port.fd).st_rdev == os.stat(moved.path).st_rdev
    sysfs.by_id_link(other.path)                     # by-id now points at the other one
    with pytest.raises(DeviceChanged):
        reopen_sbus_port(first.path, ident, probe=sysfs.probe)


def test_nothing_there_is_a_plain_link_error(sysfs, links, tmp_path):
    link = links()
    sysfs.usb(link.path)
    with open_sbus_port(link.path, probe=sysfs.probe) as port:
        ident = port.identity
    with pytest.raises(LinkError, match="no such port") as exc:
        reopen_sbus_port(str(tmp_path / "gone"), ident, probe=sysfs.probe)
    assert not isinstance(exc.value, DeviceChanged)


def test_a_busy_port_keeps_the_other_programs_exclusive_mode(links):
    """Refused as busy (the other program holds its lock): its exclusive mode
    is its own and stays set. Only root gets that far (the kernel refuses
    others an exclusive tty at open)."""
    link = links()
    theirs = os.open(link.path, os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.flock(theirs, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.ioctl(theirs, termios.TIOCEXCL)
        with pytest.raises(LinkError, match="busy"):
            open_sbus_port(link.path)
        assert exclusive(theirs)
    finally:
        os.close(theirs)


def test_refusals_are_logged_once_then_rate_limited():
    log = RefusalLog(interval_s=10.0)
    assert log.should_log("a", 0.0)
    assert not log.should_log("a", 0.5) and not log.should_log("a", 9.9)
    assert log.should_log("b", 10.0)               # something else differs now
    assert not log.should_log("b", 15.0)
    assert log.should_log("b", 20.0) and log.count == 6
