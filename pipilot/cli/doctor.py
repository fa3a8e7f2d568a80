"""`pipilot doctor`: check the serial set-up the rig needs, one pass/fail line each.

Checks the soft-UART module (loaded, ports, error counters), the Raspberry
Pi UART pitfalls: the Linux console on serial0, Bluetooth holding the PL011
(leaving only the parity-less mini UART), membership of the dialout
group, and the flow deck: SPI and I2C enabled (their device nodes) and the
PMW3901's and VL53L1X's IDs answering, and an MPU-6050 IMU on the same I2C
bus answering, waking and reading about 1 g at rest. What cannot be checked here (not a
Pi, counters readable by root only) is reported as SKIP with the reason,
never guessed.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from pipilot.cli._output import json_text
from pipilot.sensors.bus import (
    I2C_FIX,
    SPI_FIX,
    I2cBus,
    SensorError,
    SpiBus,
    i2c_node,
    open_i2c,
    open_spi,
)
from pipilot.sensors.mpu6050 import ADDRESS as MPU_ADDRESS
from pipilot.sensors.mpu6050 import G, Mpu6050
from pipilot.sensors.pmw3901 import Pmw3901
from pipilot.sensors.vl53l1x import Vl53l1x

NAME = "doctor"
HELP = "check the soft-UART module, the Raspberry Pi UART set-up and the flow deck"

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
_Bus = TypeVar("_Bus")
SOFTUART_COUNTERS = ("tx_late_aborts", "tx_dropped", "rx_missed_edges", "rx_rebuilt_pairs",
                     "rx_false_starts")
BT_OVERLAYS = ("disable-bt", "pi3-disable-bt", "miniuart-bt", "pi3-miniuart-bt")


@dataclass(frozen=True)
class Check:
    status: str
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.status:4}  {self.name}: {self.detail}"


@dataclass
class System:
    """Where to look: a filesystem root and the caller's identity (tests fake both)."""

    root: Path = Path("/")
    uid: int = field(default_factory=os.getuid)
    groups: tuple[int, ...] = field(default_factory=lambda: tuple(os.getgroups()))
    spi_dev: str = "/dev/spidev0.0"
    i2c_bus: int = 1
    open_spi: Callable[[str], SpiBus] = open_spi
    open_i2c: Callable[[int], I2cBus] = open_i2c
    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def path(self, p: str) -> Path:
        return self.root / p.lstrip("/")

    def read(self, p: str) -> str | None:
        try:
            return self.path(p).read_text(errors="replace")
        except OSError:
            return None


def pi_model(sys_: System) -> str | None:
    for p in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        model = sys_.read(p)
        if model and "raspberry pi" in model.lower():
            return model.strip("\0\n ")
    return None


def parse_proc_driver(text: str) -> dict[int, dict[str, int]]:
    """Counters per line from /proc/tty/driver/softuart (absent ones are 0)."""
    ports: dict[int, dict[str, int]] = {}
    for line in text.splitlines():
        m = re.match(r"\s*(\d+):\s+uart:\S+", line)
        if not m:
            continue
        counts = {k: 0 for k in ("tx", "rx", "fe", "pe", "brk", "oe")}
        counts.update({k: int(v) for k, v in re.findall(r"\b(tx|rx|fe|pe|brk|oe):(\d+)", line)})
        ports[int(m.group(1))] = counts
    return ports


def check_module(sys_: System) -> Iterator[Check]:
    if not sys_.path("/sys/module/softuart").is_dir():
        yield Check(FAIL, "softuart module", "not loaded (install with dkms from "
                    "kernel/softuart, then `sudo modprobe softuart`)")
        return
    ttys = sorted(p.name for p in sys_.path("/sys/class/tty").glob("ttySOFT*"))
    if not ttys:
        yield Check(FAIL, "softuart module", "loaded but no /dev/ttySOFTn: is the "
                    "device-tree overlay (softuart.dtbo) enabled in config.txt?")
        return
    yield Check(PASS, "softuart module", f"loaded, ports: {', '.join(ttys)}")

    proc = sys_.read("/proc/tty/driver/softuart")
    icounts = parse_proc_driver(proc) if proc is not None else None
    for tty in ttys:
        n = int(tty.removeprefix("ttySOFT"))
        base = sys_.path(f"/sys/class/tty/{tty}")
        extra = {}
        for name in SOFTUART_COUNTERS:
            try:
                extra[name] = int((base / name).read_text())
            except (OSError, ValueError):
                continue
        parts = [f"{k} {v}" for k, v in extra.items()]
        errors = extra.get("tx_late_aborts", 0) + extra.get("tx_dropped", 0)
        if icounts is not None and n in icounts:
            c = icounts[n]
            parts = [f"tx {c['tx']} rx {c['rx']} frame {c['fe']} parity {c['pe']} "
                     f"overrun {c['oe']} break {c['brk']}", *parts]
            errors += c["fe"] + c["pe"] + c["oe"]
        elif icounts is None:
            parts.append("frame/parity/overrun counters need root (/proc/tty/driver)")
        try:
            line = (base / "softuart_line").read_text()
        except OSError:
            line = ""
        if line.strip() == "loopback":
            parts.append("test-only loopback line")
        yield Check(FAIL if errors else PASS, f"{tty} counters", "; ".join(parts) or "none")
        yield check_node(sys_, tty)


def check_node(sys_: System, tty: str) -> Check:
    """The device node should belong to dialout, like every serial port."""
    name = f"/dev/{tty} permissions"
    try:
        st = sys_.path(f"/dev/{tty}").stat()
    except OSError:
        return Check(FAIL, name, "no device node: is udev (or devtmpfs) running?")
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    if group == "dialout" and st.st_mode & 0o060 == 0o060:
        return Check(PASS, name, "group dialout, read/write")
    fix = "install kernel/softuart/99-softuart.rules in /etc/udev/rules.d/"
    if st.st_gid == 0:   # joining group root is no fix: the node is root's alone
        return Check(FAIL, name, f"group root, mode {st.st_mode & 0o777:o}: only root may "
                     f"open it; {fix} (it gives the port to group dialout), or run as root")
    return Check(FAIL, name, f"group {group}, mode {st.st_mode & 0o777:o}: {fix}")


def check_console(sys_: System, model: str | None) -> Check:
    name = "console on serial0"
    if model is None:
        return Check(SKIP, name, "not a Raspberry Pi: cannot check")
    cmdline = sys_.read("/proc/cmdline") or ""
    hits = re.findall(r"console=(serial0|serial1|ttyAMA0|ttyS0)\S*", cmdline)
    if hits:
        return Check(FAIL, name, f"kernel console on {hits[0]}: remove "
                     f"console={hits[0]},... from cmdline.txt and reboot")
    return Check(PASS, name, "no serial console on the kernel command line")


def _config_txt(sys_: System) -> str | None:
    for p in ("/boot/firmware/config.txt", "/boot/config.txt"):
        text = sys_.read(p)
        if text is not None:
            return text
    return None


def check_pl011(sys_: System, model: str | None) -> Check:
    name = "serial0 is the PL011"
    if model is None:
        return Check(SKIP, name, "not a Raspberry Pi: cannot check")
    link = sys_.path("/dev/serial0")
    target = os.readlink(link) if link.is_symlink() else None
    config = _config_txt(sys_)
    overlays = re.findall(r"^\s*dtoverlay\s*=\s*([\w-]+)", config or "", re.MULTILINE)
    bt_off = [o for o in overlays if o in BT_OVERLAYS]
    if target is None:
        return Check(FAIL, name, "/dev/serial0 missing: enable_uart=1 in config.txt")
    if Path(target).name == "ttyAMA0":
        return Check(PASS, name, f"/dev/serial0 -> {target}"
                     + (f" (dtoverlay={bt_off[0]})" if bt_off else ""))
    return Check(FAIL, name, f"/dev/serial0 -> {target}, the mini UART (no parity, so no "
                 "S.Bus 8E2): add dtoverlay=disable-bt to config.txt and reboot")


def check_groups(sys_: System) -> Check:
    name = "dialout group"
    if sys_.uid == 0:
        return Check(PASS, name, "running as root")
    try:
        gid = grp.getgrnam("dialout").gr_gid
    except KeyError:
        return Check(SKIP, name, "this system has no dialout group: cannot check")
    if gid in sys_.groups:
        return Check(PASS, name, "member of dialout: serial ports can be opened")
    return Check(FAIL, name, "not in dialout: `sudo usermod -aG dialout $USER`, then log in again")


def _bus_node(sys_: System, model: str | None, name: str, node: str, param: str,
              fix: str) -> Check:
    if sys_.path(node).exists():
        return Check(PASS, name, f"{node} present")
    if model is None:
        return Check(SKIP, name, f"not a Raspberry Pi and no {node}: cannot check")
    if re.search(rf"^\s*dtparam\s*=(?:[^#\n]*,)?\s*{param}\s*=\s*on\b", _config_txt(sys_) or "",
                 re.MULTILINE):
        return Check(FAIL, name, f"no {node} although config.txt has dtparam={param}=on: "
                     "reboot")
    return Check(FAIL, name, f"no {node}: {fix}")


@contextlib.contextmanager
def _closing(bus: _Bus) -> Iterator[_Bus]:
    """Close a real bus after the check (the simulated ones have nothing to close)."""
    try:
        yield bus
    finally:
        close = getattr(bus, "close", None)
        if close is not None:
            close()


def check_flowdeck(sys_: System, model: str | None, required: bool = False) -> list[Check]:
    """SPI and I2C enabled, then the PMW3901 and VL53L1X answering with their IDs.

    The deck is optional: unless `required` (``--flowdeck``), what would fail is
    reported as SKIP with the reason, so a craft without one passes."""
    checks = _flowdeck_checks(sys_, model)
    if required:
        return checks
    return [Check(SKIP, c.name, f"{c.detail} (a flow deck is optional; "
                  "`pipilot doctor --flowdeck` requires it)") if c.status == FAIL else c
            for c in checks]


def _flowdeck_checks(sys_: System, model: str | None) -> list[Check]:
    i2c = i2c_node(sys_.i2c_bus)
    spi_check = _bus_node(sys_, model, "SPI (flow sensor)", sys_.spi_dev, "spi", SPI_FIX)
    i2c_check = _bus_node(sys_, model, "I2C (range sensor)", i2c, "i2c_arm", I2C_FIX)
    checks = [spi_check]
    if spi_check.status == PASS:
        try:
            with _closing(sys_.open_spi(sys_.spi_dev)) as spi:
                Pmw3901(spi, device=sys_.spi_dev).check_id()
            checks.append(Check(PASS, "PMW3901", f"product id 0x49 on {sys_.spi_dev}"))
        except SensorError as exc:
            checks.append(Check(FAIL, "PMW3901", str(exc)))
    else:
        checks.append(Check(SKIP, "PMW3901", f"needs {sys_.spi_dev}"))
    checks.append(i2c_check)
    if i2c_check.status == PASS:
        try:
            with _closing(sys_.open_i2c(sys_.i2c_bus)) as bus:
                Vl53l1x(bus, device=i2c).check_id()
            checks.append(Check(PASS, "VL53L1X", f"model id 0xEACC at 0x29 on {i2c}"))
        except SensorError as exc:
            checks.append(Check(FAIL, "VL53L1X", str(exc)))
    else:
        checks.append(Check(SKIP, "VL53L1X", f"needs {i2c}"))
    return checks


IMU_SAMPLE_TIMEOUT_S = 0.2


def check_imu(sys_: System, model: str | None, required: bool = False) -> list[Check]:
    """I2C enabled, an MPU-6050 at 0x68 with WHO_AM_I 0x68 that wakes and gives a sample
    of about 1 g (the craft at rest). Optional unless `required` (``--imu``), as the deck."""
    i2c = i2c_node(sys_.i2c_bus)
    node = _bus_node(sys_, model, "I2C (IMU)", i2c, "i2c_arm", I2C_FIX)
    checks = [node]
    if node.status != PASS:
        checks.append(Check(SKIP, "MPU-6050", f"needs {i2c}"))
    else:
        try:
            with _closing(sys_.open_i2c(sys_.i2c_bus)) as bus:
                imu = Mpu6050(bus, device=i2c, now=sys_.now, sleep=sys_.sleep)
                imu.init()
                deadline = sys_.now() + IMU_SAMPLE_TIMEOUT_S
                while not imu.data_ready():
                    if sys_.now() > deadline:
                        raise SensorError(i2c, "MPU-6050 woke but gave no sample within "
                                               f"{IMU_SAMPLE_TIMEOUT_S * 1000:.0f} ms")
                    sys_.sleep(0.005)
                s = imu.read_sample()
            g = sum(a * a for a in s.accel) ** 0.5 / G
            if abs(g - 1.0) > 0.15:
                checks.append(Check(FAIL, "MPU-6050", f"awake at 0x{MPU_ADDRESS:02X} on {i2c} but "
                                    f"reads {g:.2f} g at rest (expected about 1 g): a damaged "
                                    "or moving sensor"))
            else:
                checks.append(Check(PASS, "MPU-6050", f"WHO_AM_I 0x68 at 0x{MPU_ADDRESS:02X} on "
                                    f"{i2c}, awake, {g:.2f} g, {s.temperature_c:.0f} deg C"))
        except SensorError as exc:
            checks.append(Check(FAIL, "MPU-6050", str(exc)))
    if required:
        return checks
    return [Check(SKIP, c.name, f"{c.detail} (an IMU on the Pi is optional; "
                  "`pipilot doctor --imu` requires it)") if c.status == FAIL else c
            for c in checks]


def run_checks(sys_: System, flowdeck: bool = False, imu: bool = False) -> list[Check]:
    """Every check; `flowdeck` and `imu` make those sensors' failures count."""
    model = pi_model(sys_)
    checks = [Check(PASS, "Raspberry Pi", model) if model
              else Check(SKIP, "Raspberry Pi", "not a Raspberry Pi: Pi UART checks skipped")]
    checks += list(check_module(sys_))
    checks += [check_console(sys_, model), check_pl011(sys_, model), check_groups(sys_)]
    checks += check_flowdeck(sys_, model, required=flowdeck)
    checks += check_imu(sys_, model, required=imu)
    return checks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.add_argument("--flowdeck", action="store_true",
                        help="this craft has a flow deck: its buses and sensors must answer")
    parser.add_argument("--imu", action="store_true",
                        help="this craft has an MPU-6050 on the Pi's I2C: it must answer")


def run(args: argparse.Namespace) -> int:
    checks = run_checks(System(), flowdeck=args.flowdeck, imu=args.imu)
    if args.json:
        print(json_text([asdict(c) for c in checks], indent=2))
    else:
        for c in checks:
            print(c.line())
    return 1 if any(c.status == FAIL for c in checks) else 0
