"""Which device a serial port's name refers to, so that a lost port is reopened
only when the same device is back.

A name is not a device: /dev/pts/N goes to the next pty anyone opens once the
old one is gone (Linux hands out the lowest free number), and /dev/ttyUSB0 to
the next USB serial adapter plugged in. When a port is first opened its
identity is recorded (`DeviceProbe.identify_fd`); a reopen compares the
identity found under the name with it (`DeviceIdentity.differs`), before the
device is opened and again on the opened fd, and refuses anything else.

What counts as the same device:

* USB (sysfs shows a USB device above the tty): the same vendor:product, USB
  interface and port of the adapter, and the same serial number. An adapter
  without a serial number is known by the USB socket it is plugged into (the
  kernel's bus-port path, e.g. 1-1.2): the same model in the same socket is
  taken for the same adapter. Its tty number may change (ttyUSB0 comes back
  as ttyUSB1), so the /dev/serial/by-id link that pointed at it is tried too.
* Other hardware (a UART on the board): the same device number and the same
  device in sysfs.
* A pty, or a tty sysfs knows no hardware for: never, once lost. A pty lives
  as long as its master end is open; whatever gets its number afterwards
  belongs to whoever opened it, and nothing readable from the slave side
  proves otherwise (device and inode numbers are reused with the number).

The sysfs and /dev/serial/by-id roots are parameters so tests can present
simulated trees.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace

from pipilot.errors import LinkError

PTY_SLAVE_MAJORS = range(136, 144)
SYSFS = "/sys"
BY_ID = "/dev/serial/by-id"


class DeviceChanged(LinkError):
    """The port's name now refers to another device than the one first opened."""

    def __init__(self, port: str, what: str) -> None:
        super().__init__(port, f"device changed: {what}; not opened")
        self.what = what


def _rdev_text(rdev: int) -> str:
    return f"{os.major(rdev)}:{os.minor(rdev)}"


@dataclass(frozen=True)
class DeviceIdentity:
    """What identifies a tty device (see the module docstring for the rules).

    `kind` is "usb", "hardware" (a device sysfs knows, not on USB), "pty" or
    "virtual" (a tty without hardware behind it, or no sysfs to ask).
    """

    rdev: int
    kind: str
    sys_device: str = ""        # the device behind the tty in sysfs (resolved path)
    vendor: str = ""            # USB idVendor, idProduct, serial
    product: str = ""
    serial: str = ""
    interface: str = ""         # USB bInterfaceNumber
    port_number: str = ""       # the port of a multi-port adapter
    usb_port: str = ""          # USB bus-port path: the socket it is plugged into
    by_id: str = ""             # a /dev/serial/by-id link to it, seen at the first open

    def describe(self) -> str:
        if self.kind == "usb":
            serial = f"serial {self.serial}" if self.serial else "no serial number"
            return (f"USB {self.vendor}:{self.product} {serial}, interface {self.interface}"
                    f"{' port ' + self.port_number if self.port_number else ''} "
                    f"at {self.usb_port} ({_rdev_text(self.rdev)})")
        if self.kind == "hardware":
            return f"{_rdev_text(self.rdev)} at {self.sys_device}"
        return f"{self.kind} {_rdev_text(self.rdev)}"

    def differs(self, new: DeviceIdentity) -> str:
        """"" when `new` is this device, else what differs (for the log and the
        failsafe reason)."""
        if self.kind == "pty":
            return (f"a lost pty is never reopened: its number goes to the next pty "
                    f"anyone opens (was pty {_rdev_text(self.rdev)}, now {new.describe()})")
        if self.kind == "virtual":
            return (f"{self.describe()} has no hardware identity to prove it is back "
                    f"(now {new.describe()})")
        if new.kind != self.kind:
            return f"{self.describe()} is now {new.describe()}"
        if self.kind == "hardware":
            if (self.rdev, self.sys_device) != (new.rdev, new.sys_device):
                return f"{self.describe()} is now {new.describe()}"
            return ""
        diffs = [f"{what} {old or 'none'} -> {now or 'none'}" for what, old, now in (
            ("USB vendor:product", f"{self.vendor}:{self.product}",
             f"{new.vendor}:{new.product}"),
            ("serial number", self.serial, new.serial),
            ("USB interface", self.interface, new.interface),
            ("adapter port", self.port_number, new.port_number),
            # without a serial number the socket stands in for it
            ("USB socket", self.usb_port if not self.serial else "",
             new.usb_port if not self.serial else ""),
        ) if old != now]
        return ", ".join(diffs)


class DeviceProbe:
    """Reads device identities from sysfs and /dev/serial/by-id (roots injectable)."""

    def __init__(self, sysfs: str = SYSFS, by_id_dir: str = BY_ID) -> None:
        self.sysfs = sysfs
        self.by_id_dir = by_id_dir

    def identify(self, path: str) -> DeviceIdentity:
        """The identity of the device `path` names now (following links), without
        opening it. OSError if there is none; LinkError if it is no device."""
        st = os.stat(path)
        if not stat.S_ISCHR(st.st_mode):
            raise LinkError(path, "not a tty (S.Bus needs a serial port)")
        return self._identify(st.st_rdev)

    def identify_fd(self, fd: int, *, by_id: bool = False) -> DeviceIdentity:
        """The identity of the device an open fd holds; with `by_id`, also the
        /dev/serial/by-id link to it (recorded at the first open)."""
        ident = self._identify(os.fstat(fd).st_rdev)
        if by_id and ident.kind != "pty":
            ident = replace(ident, by_id=self.by_id_link(ident.rdev))
        return ident

    def by_id_link(self, rdev: int) -> str:
        """The /dev/serial/by-id entry that points at device `rdev`, or ""."""
        try:
            names = sorted(os.listdir(self.by_id_dir))
        except OSError:
            return ""
        for name in names:
            link = os.path.join(self.by_id_dir, name)
            try:
                st = os.stat(link)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == rdev:
                return link
        return ""

    def _identify(self, rdev: int) -> DeviceIdentity:
        node = os.path.join(self.sysfs, "dev", "char", _rdev_text(rdev))
        device = os.path.join(node, "device")
        if not os.path.exists(device):
            kind = "pty" if os.major(rdev) in PTY_SLAVE_MAJORS and not os.path.exists(node) \
                else "virtual"
            return DeviceIdentity(rdev, kind)
        start = os.path.realpath(device)
        top = os.path.realpath(os.path.join(self.sysfs, "devices"))
        interface = ""
        d = start
        while d.startswith(top + os.sep):
            if not interface:
                interface = _attr(d, "bInterfaceNumber")
            if os.path.exists(os.path.join(d, "idVendor")):
                return DeviceIdentity(
                    rdev, "usb", start, vendor=_attr(d, "idVendor"),
                    product=_attr(d, "idProduct"), serial=_attr(d, "serial"),
                    interface=interface, port_number=_attr(start, "port_number"),
                    usb_port=os.path.basename(d))
            d = os.path.dirname(d)
        return DeviceIdentity(rdev, "hardware", start)


def _attr(directory: str, name: str) -> str:
    try:
        with open(os.path.join(directory, name), encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def reopen_names(path: str, expect: DeviceIdentity) -> list[str]:
    """Where to look for a lost device: its name, then the by-id link it had."""
    return [path] + ([expect.by_id] if expect.by_id and expect.by_id != path else [])


def check_name(path: str, expect: DeviceIdentity, probe: DeviceProbe) -> None:
    """Before opening: raise DeviceChanged if `path` now names another device,
    LinkError if nothing is there."""
    try:
        found = probe.identify(path)
    except FileNotFoundError:
        gone = "a lost pty is never reopened" if expect.kind == "pty" else "not back yet"
        raise LinkError(path, f"no such port ({gone})") from None
    except OSError as exc:
        raise LinkError(path, f"cannot look at it: {exc.strerror}") from None
    why = expect.differs(found)
    if why:
        raise DeviceChanged(path, why)


def check_fd(path: str, fd: int, expect: DeviceIdentity, probe: DeviceProbe) -> None:
    """After opening, before anything touches the device: the fd holds `expect`'s
    device (the name may have been repointed since `check_name`)."""
    why = expect.differs(probe.identify_fd(fd))
    if why:
        raise DeviceChanged(path, why)


def open_checked(path: str, expect: DeviceIdentity, probe: DeviceProbe) -> int:
    """An fd on `path` (read/write, no controlling tty, non-blocking) only if it
    is `expect`'s device, checked before opening and on the fd: nothing is set
    on the device yet (open `/proc/self/fd/N` to configure exactly it)."""
    check_name(path, expect, probe)
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise LinkError(path, f"cannot open serial port: {exc.strerror}") from None
    try:
        check_fd(path, fd, expect, probe)
    except BaseException:
        os.close(fd)
        raise
    return fd


class RefusalLog:
    """Rate limit for a repeated refusal: log the first, a changed one, and
    then at most one every `interval_s`."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self.count = 0
        self._last = ""
        self._last_t = -1e18

    def should_log(self, what: str, now: float) -> bool:
        self.count += 1
        if what != self._last or now - self._last_t >= self.interval_s:
            self._last, self._last_t = what, now
            return True
        return False
