import os
import termios

import pytest

from pipilot.errors import LinkError
from pipilot.link import serialport
from pipilot.link.serialport import TERMIOS2, PortSettings, open_sbus_port
from pipilot.link.virtual import VirtualLink


@pytest.fixture
def link():
    with VirtualLink(keep=True) as v:
        yield v


def test_opens_a_pty_as_8e2_at_100000(link):
    with open_sbus_port(link.path) as port:
        assert port.is_pty
        # a pty clears PARENB, so the settings live on the port object
        assert port.settings == PortSettings(100_000, 8, "E", 2)
        assert str(port.settings) == "100000 8E2"
        raw = TERMIOS2.unpack(serialport.configure(port.fd, port.settings))
        assert raw[-1] == 100_000 and raw[2] & termios.CSTOPB
        assert os.get_blocking(port.fd) is False
    assert port.closed


def test_second_open_is_busy(link):
    with open_sbus_port(link.path), pytest.raises(LinkError, match="busy"):
        open_sbus_port(link.path)


def test_missing_port():
    with pytest.raises(LinkError, match="no such port"):
        open_sbus_port("/dev/ttyDOESNOTEXIST")


def test_not_a_tty(tmp_path):
    f = tmp_path / "plain"
    f.write_bytes(b"")
    with pytest.raises(LinkError, match="not a tty"):
        open_sbus_port(str(f))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_permission_denied_names_the_group(link):
    os.chmod(link.path, 0o660)
    os.setegid(65534)
    os.seteuid(65534)
    try:
        with pytest.raises(LinkError) as exc:
            open_sbus_port(link.path)
    finally:
        os.seteuid(0)
        os.setegid(0)
    assert "permission denied" in str(exc.value) and "group" in str(exc.value)


def test_mini_uart_is_refused(link, monkeypatch):
    monkeypatch.setattr(serialport, "_driver", lambda path: "bcm2835-aux-uart")
    with pytest.raises(LinkError, match="mini UART"):
        open_sbus_port(link.path)


def readback(cflag, speed=100_000):
    return TERMIOS2.pack(0, 0, cflag, 0, 0, bytes(19), speed, speed)


GOOD = termios.CS8 | termios.PARENB | termios.CSTOPB


def test_a_uart_that_refuses_parity_is_reported():
    serialport._verify("/dev/ttyX", readback(GOOD), serialport.SBUS_SETTINGS, "uart-pl011")
    with pytest.raises(LinkError, match=r"no parity.*mini UART"):
        serialport._verify("/dev/ttyS0", readback(termios.CS8 | termios.CSTOPB),
                           serialport.SBUS_SETTINGS, "bcm2835-aux-uart")
    with pytest.raises(LinkError, match="1 stop bit"):
        serialport._verify("/dev/ttyX", readback(termios.CS8 | termios.PARENB),
                           serialport.SBUS_SETTINGS, "")
    with pytest.raises(LinkError, match="baud rate 115200"):
        serialport._verify("/dev/ttyX", readback(GOOD, 115200), serialport.SBUS_SETTINGS, "")


def test_a_real_uart_if_the_machine_has_one():
    """/dev/ttyS0 on a PC or VM is a 16550: it must take 100000 8E2 and read it back."""
    if not os.path.exists("/dev/ttyS0"):
        pytest.skip("no /dev/ttyS0 on this machine")
    try:
        port = open_sbus_port("/dev/ttyS0")
    except LinkError as exc:
        if "device not present" in str(exc) or "busy" in str(exc):
            pytest.skip(str(exc))
        raise
    with port:
        assert not port.is_pty
        raw = TERMIOS2.unpack(serialport.configure(port.fd, port.settings))
        assert raw[2] & termios.PARENB and raw[2] & termios.CSTOPB
        assert abs(raw[-1] - 100_000) <= 2000


@pytest.mark.parametrize("fail", [False, True])
def test_closing_clears_exclusive_mode(link, fail, monkeypatch):
    # a pty's TIOCEXCL outlives the fd while the other end is open: a closed port
    # (or a failed open) must not leave the device busy for the next open
    os.chmod(link.path, 0o666)
    if fail:
        def refuse(fd, settings):
            raise OSError(22, "Invalid argument")
        monkeypatch.setattr(serialport, "configure", refuse)
        with pytest.raises(LinkError, match="refused"):
            open_sbus_port(link.path)
        monkeypatch.undo()
    else:
        open_sbus_port(link.path).close()
    root = os.geteuid() == 0
    if root:                      # root may open an exclusive tty: act as nobody
        os.setegid(65534)
        os.seteuid(65534)
    try:
        port = open_sbus_port(link.path)
    finally:
        if root:
            os.seteuid(0)
            os.setegid(0)
    port.close()
