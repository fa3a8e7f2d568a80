"""A simulated sysfs and /dev/serial/by-id in which real ptys show up as USB
serial adapters or on-board UARTs, for the device identity checks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipilot.link.identity import DeviceProbe

USB_ROOT = "devices/pci0000:00/0000:00:14.0/usb1"


class FakeSysfs:
    """`usb(tty, serial=...)` makes the device `tty` is look like a USB adapter
    (keyed by its device number, as /sys/dev/char is); `probe` reads the tree."""

    def __init__(self, root: Path) -> None:
        self.sys = root / "sys"
        self.by_id = root / "by-id"
        (self.sys / "dev" / "char").mkdir(parents=True)
        (self.sys / "devices").mkdir()
        self.by_id.mkdir()
        self.probe = DeviceProbe(str(self.sys), str(self.by_id))

    def _char(self, tty: str) -> Path:
        rdev = os.stat(tty).st_rdev
        return self.sys / "dev" / "char" / f"{os.major(rdev)}:{os.minor(rdev)}"

    def _point(self, tty: str, class_dir: Path, device: Path) -> None:
        class_dir.mkdir(parents=True, exist_ok=True)
        link = class_dir / "device"
        if link.is_symlink():
            link.unlink()
        link.symlink_to(device)
        char = self._char(tty)
        if char.is_symlink():
            char.unlink()
        char.symlink_to(class_dir)

    def usb(self, tty: str, serial: str | None = "A50285BI", usb_port: str = "1-1.2",
            vendor: str = "0403", product: str = "6001", interface: str = "00",
            port_number: str = "0") -> None:
        """`tty` is now a port of a USB serial adapter plugged into `usb_port`."""
        name = f"ttyUSB{os.minor(os.stat(tty).st_rdev)}"
        dev = self.sys / USB_ROOT / usb_port
        if dev.exists():                # the socket gets a new adapter
            shutil.rmtree(dev)
        dev.mkdir(parents=True)
        (dev / "idVendor").write_text(vendor + "\n")
        (dev / "idProduct").write_text(product + "\n")
        if serial is not None:
            (dev / "serial").write_text(serial + "\n")
        iface = dev / f"{usb_port}:1.{int(interface)}"
        iface.mkdir()
        (iface / "bInterfaceNumber").write_text(interface + "\n")
        port = iface / name
        port.mkdir()
        (port / "port_number").write_text(port_number + "\n")
        self._point(tty, port / "tty" / name, port)

    def unplug(self, tty: str) -> None:
        """The device `tty` is goes away: its number no longer names it (call
        while `tty` still exists; whoever gets the number next is a stranger)."""
        self._char(tty).unlink()

    def hardware(self, tty: str, where: str = "platform/soc/fe201000.serial") -> None:
        """`tty` is now an on-board UART at `where`."""
        dev = self.sys / "devices" / where
        dev.mkdir(parents=True, exist_ok=True)
        self._point(tty, dev / "tty" / "ttyAMA0", dev)

    def by_id_link(self, tty: str, label: str = "usb-FTDI_FT232R_A50285BI-if00-port0") -> str:
        """Point /dev/serial/by-id/`label` at `tty` (as udev does); returns it."""
        link = self.by_id / label
        if link.is_symlink():
            link.unlink()
        link.symlink_to(tty)
        return str(link)
