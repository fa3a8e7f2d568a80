"""Open the S.Bus UART: 100000 baud 8E2 through termios2, exclusive, non-blocking.

100000 baud is not a standard POSIX rate, so the port is set with TCSETS2 and
BOTHER (any rate the UART's clock can make). Every way this goes wrong gets a
`LinkError` that says what to do: missing port, permission (and which group
to join), busy, not a tty, settings the UART refused, the Pi's mini UART.

A pty slave accepts the rate but silently clears PARENB; `SerialPort.settings`
records what was requested and, on a real UART, verified by reading back.

`SerialPort.identity` records which device was opened; `reopen_sbus_port`
opens a lost port again only if the same device is back (pipilot.link.identity).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import logging
import os
import stat
import struct
import termios
from dataclasses import dataclass

from pipilot.errors import LinkError
from pipilot.link.identity import (
    PTY_SLAVE_MAJORS,
    DeviceChanged,
    DeviceIdentity,
    DeviceProbe,
    check_fd,
    check_name,
    reopen_names,
)

log = logging.getLogger(__name__)

# asm-generic ioctls (x86, arm, arm64): struct termios2 is 44 bytes
TCGETS2 = 0x802C542A
TCSETS2 = 0x402C542B
BOTHER = 0o010000
CBAUD = 0o010017
IBSHIFT = 16
TERMIOS2 = struct.Struct("=IIII B 19s II")
MINI_UART_DRIVERS = ("bcm2835-aux-uart",)
PI_FIX = ("on a Raspberry Pi use the PL011 (/dev/ttyAMA0 or /dev/serial0 with "
          "dtoverlay=disable-bt in config.txt)")


@dataclass(frozen=True)
class PortSettings:
    """Line settings: S.Bus is 100000 baud, 8 data bits, even parity, 2 stop bits."""

    baudrate: int = 100_000
    bytesize: int = 8
    parity: str = "E"
    stopbits: int = 2

    def __str__(self) -> str:
        return f"{self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"


SBUS_SETTINGS = PortSettings()


class SerialPort:
    """An open, configured, exclusive, non-blocking serial port.

    `fd` is the file descriptor (the frame pump writes to it), `settings` the
    line settings in force, `is_pty` whether the kernel could not apply
    parity (a pty: the virtual link), `path` the name it was opened by,
    `identity` the device first opened (a reopen must find the same one).
    """

    def __init__(self, path: str, fd: int, settings: PortSettings, is_pty: bool,
                 identity: DeviceIdentity | None = None) -> None:
        self.path = path
        self.fd = fd
        self.settings = settings
        self.is_pty = is_pty
        self.identity = identity

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def read(self, n: int = 4096) -> bytes:
        """Non-blocking read: b"" when nothing is waiting."""
        try:
            return os.read(self.fd, n)
        except BlockingIOError:
            return b""

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            _close(fd)

    def __enter__(self) -> SerialPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "pty" if self.is_pty else "uart"
        return f"<SerialPort {self.path} {kind} {self.settings} fd={self.fd}>"


def _close(fd: int) -> None:
    """Close a port fd, clearing exclusive mode first: on a pty it outlives the fd
    while the other end is open, and would make the next open "busy"."""
    try:
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, termios.TIOCNXCL)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def access_hint(path: str) -> str:
    """What to do when opening the device at ``path`` was refused (EACCES)."""
    try:
        st = os.stat(path)
    except OSError:
        return "check the device's group and permissions"
    return permission_hint(path, st.st_gid, st.st_mode)


UDEV_HINT = ('a udev rule giving it to group dialout, mode 0660 (e.g. SUBSYSTEM=="tty", '
             'KERNEL=="{name}", GROUP="dialout", MODE="0660" in /etc/udev/rules.d/; '
             'kernel/softuart/99-softuart.rules for the soft UART)')


def permission_hint(path: str, gid: int, mode: int) -> str:
    """What to do about a device node the user may not open.

    Joining the node's group only helps when that group is an ordinary one with
    read/write permission; a node of group root (gid 0) is root's alone.
    """
    rule = UDEV_HINT.format(name=os.path.basename(path))
    if gid == 0:
        return (f"the device belongs to root alone (group root, mode {mode & 0o777:o}): "
                f"add {rule}, or run as root")
    try:
        name = grp.getgrgid(gid).gr_name
    except KeyError:
        return f"the device's group {gid} has no name here: add {rule}"
    if mode & 0o060 != 0o060:
        return f"group {name} may not read and write it (mode {mode & 0o777:o}): add {rule}"
    return f"add your user to the '{name}' group (sudo usermod -aG {name} $USER) and log in again"


def _driver(path: str) -> str:
    name = os.path.basename(os.path.realpath(path))
    try:
        return os.path.basename(os.path.realpath(f"/sys/class/tty/{name}/device/driver"))
    except OSError:
        return ""


def _open_fd(path: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LinkError(path, "no such port (is the UART enabled? enable_uart=1 in "
                              "config.txt on a Pi; check the name)") from None
    except PermissionError:
        raise LinkError(path, f"permission denied: {access_hint(path)}") from None
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise LinkError(path, "port busy: another program holds it exclusively "
                                  "(a serial console or getty? another pipilot?)") from None
        if exc.errno in (errno.ENXIO, errno.ENODEV, errno.EIO):
            raise LinkError(path, f"device not present ({exc.strerror})") from None
        raise LinkError(path, f"cannot open: {exc.strerror}") from None


def configure(fd: int, settings: PortSettings) -> bytes:
    """Apply raw mode and `settings` with TCSETS2; returns the struct read back."""
    raw = fcntl.ioctl(fd, TCGETS2, bytes(TERMIOS2.size))
    iflag, oflag, cflag, lflag, line, cc, _isp, _osp = TERMIOS2.unpack(raw)
    iflag = termios.IGNBRK | (termios.INPCK if settings.parity != "N" else 0)
    oflag = 0
    lflag = 0
    cflag &= ~(CBAUD | (CBAUD << IBSHIFT) | termios.CSIZE | termios.PARENB | termios.PARODD
               | termios.CSTOPB | termios.CRTSCTS | termios.HUPCL)
    cflag |= BOTHER | (BOTHER << IBSHIFT) | termios.CLOCAL | termios.CREAD
    cflag |= {5: termios.CS5, 6: termios.CS6, 7: termios.CS7, 8: termios.CS8}[settings.bytesize]
    if settings.parity in ("E", "O"):
        cflag |= termios.PARENB | (termios.PARODD if settings.parity == "O" else 0)
    if settings.stopbits == 2:
        cflag |= termios.CSTOPB
    ccl = bytearray(cc)
    ccl[termios.VMIN] = 0
    ccl[termios.VTIME] = 0
    new = TERMIOS2.pack(iflag, oflag, cflag, lflag, line, bytes(ccl),
                        settings.baudrate, settings.baudrate)
    fcntl.ioctl(fd, TCSETS2, new)
    return bytes(fcntl.ioctl(fd, TCGETS2, bytes(TERMIOS2.size)))


def _verify(path: str, readback: bytes, settings: PortSettings, driver: str) -> None:
    _i, _o, cflag, _l, _line, _cc, _ispeed, ospeed = TERMIOS2.unpack(readback)
    problems = []
    if abs(ospeed - settings.baudrate) > settings.baudrate * 0.02:
        problems.append(f"baud rate {ospeed} instead of {settings.baudrate}")
    if settings.parity != "N" and not cflag & termios.PARENB:
        problems.append("no parity")
    if settings.stopbits == 2 and not cflag & termios.CSTOPB:
        problems.append("1 stop bit")
    if cflag & termios.CSIZE != termios.CS8 and settings.bytesize == 8:
        problems.append("not 8 data bits")
    if problems:
        hint = f"; this is the Pi's mini UART, which cannot do parity: {PI_FIX}" \
            if driver in MINI_UART_DRIVERS or "no parity" in problems else ""
        raise LinkError(path, f"the UART refused {settings}: {', '.join(problems)}{hint}")


def open_sbus_port(path: str, settings: PortSettings = SBUS_SETTINGS, *,
                   expect: DeviceIdentity | None = None,
                   probe: DeviceProbe | None = None) -> SerialPort:
    """Open `path` for S.Bus: exclusive, non-blocking, `settings` applied and checked.

    With `expect` (the identity of a port opened before) the device must be that
    one: checked before opening and on the fd before anything is set, else
    `DeviceChanged`. Without, the port records what it opened."""
    probe = probe or DeviceProbe()
    if expect is not None:
        check_name(path, expect, probe)
    driver = _driver(path)
    if driver in MINI_UART_DRIVERS:
        raise LinkError(path, f"this is the Pi's mini UART, which cannot do parity; {PI_FIX}")
    fd = _open_fd(path)
    exclusive = False
    try:
        if not os.isatty(fd):
            raise LinkError(path, "not a tty (S.Bus needs a serial port)")
        if expect is not None:
            check_fd(path, fd, expect, probe)
            identity = expect
        else:
            identity = probe.identify_fd(fd, by_id=True)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LinkError(path, "port busy: another program has it open "
                                  "(another pipilot, a serial console?)") from None
        fcntl.ioctl(fd, termios.TIOCEXCL)
        exclusive = True
        is_pty = os.major(os.fstat(fd).st_rdev) in PTY_SLAVE_MAJORS
        try:
            readback = configure(fd, settings)
        except OSError as exc:
            raise LinkError(path, f"the UART refused {settings}: {exc.strerror}") from None
        if not is_pty:
            _verify(path, readback, settings, driver)
        termios.tcflush(fd, termios.TCIOFLUSH)
    except BaseException:
        if exclusive:
            _close(fd)
        else:       # not ours to change: another program's exclusive mode stays
            os.close(fd)
        raise
    log.info("opened %s (%s, %s; %s)", path, "pty" if is_pty else driver or "uart", settings,
             identity.describe())
    return SerialPort(path, fd, settings, is_pty, identity)


def reopen_sbus_port(path: str, expect: DeviceIdentity, settings: PortSettings = SBUS_SETTINGS,
                     probe: DeviceProbe | None = None) -> SerialPort:
    """Open a lost port again, only if its device is back: under `path`, or under
    the /dev/serial/by-id link it had (a USB adapter back under another
    number). `DeviceChanged` when something else is there (never opened, nor
    touched), else the `LinkError` of `path` (not back yet, busy...)."""
    changed: DeviceChanged | None = None
    first: LinkError | None = None
    for name in reopen_names(path, expect):
        try:
            return open_sbus_port(name, settings, expect=expect, probe=probe)
        except DeviceChanged as exc:
            changed = changed or exc
        except LinkError as exc:
            first = first or exc
    if changed is not None:
        raise changed
    assert first is not None
    raise first


def is_char_device(path: str) -> bool:
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False
