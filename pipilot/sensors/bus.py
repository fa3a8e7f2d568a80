"""The buses the flow-deck drivers talk over, and how to open the Pi's.

A driver takes a bus object, never a device path, so the same driver runs on
the Pi (``spidev``, ``smbus2``) and against the register models in
``pipilot.sim.flowdeck``. ``spidev`` and ``smbus2`` are optional extras
(``pip install pipilot[sensors]``) imported only when a real bus is opened.

A bus that is missing, not enabled or not answering becomes one
`SensorError` line naming the device node and the fix, never a traceback.
"""

from __future__ import annotations

import os
import re
from typing import Any, Protocol

from pipilot.errors import PipilotError

CONFIG_TXT = "/boot/firmware/config.txt"
SPI_FIX = f"enable SPI with dtparam=spi=on in {CONFIG_TXT} and reboot"
I2C_FIX = f"enable I2C with dtparam=i2c_arm=on in {CONFIG_TXT} and reboot"

#: PMW3901MB-TXQT datasheet (PixArt, "SPI" section): SPI mode 3, SCLK up to 2 MHz.
PMW3901_SPI_MODE = 3
PMW3901_SPI_MAX_HZ = 2_000_000
#: ``xfer2`` keeps chip select low for the whole transfer and cannot pause between
#: the address and the data byte, where the datasheet asks for t_SRAD (35 us for
#: a register read). At 400 kHz one byte lasts 20 us, the speed known to work
#: with this chip over spidev on the Pi; the datasheet's 2 MHz leaves no gap.
PMW3901_SPI_HZ = 400_000


class SensorError(PipilotError):
    """A sensor or its bus is missing, disabled, mis-wired or answered wrongly."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(f"{device}: {message}")
        self.device = device


class SpiBus(Protocol):
    """What the PMW3901 driver needs of a SPI device (``spidev.SpiDev`` has it)."""

    def xfer2(self, values: list[int]) -> list[int]:
        """Clock ``values`` out with chip select held low throughout; return what came in."""
        ...


class I2cBus(Protocol):
    """What the VL53L1X driver needs of an I2C bus: combined write-then-read transfers."""

    def write(self, addr: int, data: bytes) -> None:
        """One write message to the device at ``addr``."""
        ...

    def write_read(self, addr: int, data: bytes, length: int) -> bytes:
        """A write then a read of ``length`` bytes with a repeated start."""
        ...


def spi_node(dev: str) -> tuple[int, int]:
    """``/dev/spidevB.C`` -> (bus, chip select); anything else is a SensorError."""
    m = re.fullmatch(r"/dev/spidev(\d+)\.(\d+)", dev)
    if not m:
        raise SensorError(dev, "not a spidev node: give /dev/spidevB.C, e.g. /dev/spidev0.0")
    return int(m.group(1)), int(m.group(2))


def i2c_node(bus: int) -> str:
    return f"/dev/i2c-{bus}"


def open_spi(dev: str, speed_hz: int = PMW3901_SPI_HZ) -> Any:
    """Open a spidev node for the PMW3901 (mode 3); errors name the node and the fix."""
    bus, cs = spi_node(dev)
    if not os.path.exists(dev):
        raise SensorError(dev, f"no such device node: {SPI_FIX}")
    try:
        import spidev  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise SensorError(dev, "the spidev module is not installed: "
                               "pip install 'pipilot[sensors]'") from None
    spi = spidev.SpiDev()
    try:
        spi.open(bus, cs)
        spi.mode = PMW3901_SPI_MODE
        spi.max_speed_hz = min(speed_hz, PMW3901_SPI_MAX_HZ)
    except OSError as exc:
        spi.close()
        raise SensorError(dev, f"cannot open: {exc.strerror or exc}"
                               " (are you in the spi group?)") from None
    return spi


class Smbus2Bus:
    """`I2cBus` over an ``smbus2.SMBus`` (combined transfers through ``i2c_rdwr``)."""

    def __init__(self, bus: Any, msg: Any) -> None:
        self._bus = bus
        self._msg = msg   # smbus2.i2c_msg

    def write(self, addr: int, data: bytes) -> None:
        self._bus.i2c_rdwr(self._msg.write(addr, data))

    def write_read(self, addr: int, data: bytes, length: int) -> bytes:
        read = self._msg.read(addr, length)
        self._bus.i2c_rdwr(self._msg.write(addr, data), read)
        return bytes(read)

    def close(self) -> None:
        self._bus.close()


def open_i2c(bus: int) -> Smbus2Bus:
    """Open ``/dev/i2c-N``; errors name the node and the fix."""
    dev = i2c_node(bus)
    if not os.path.exists(dev):
        raise SensorError(dev, f"no such device node: {I2C_FIX}")
    try:
        import smbus2  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise SensorError(dev, "the smbus2 module is not installed: "
                               "pip install 'pipilot[sensors]'") from None
    try:
        return Smbus2Bus(smbus2.SMBus(bus), smbus2.i2c_msg)
    except OSError as exc:
        raise SensorError(dev, f"cannot open: {exc.strerror or exc}"
                               " (are you in the i2c group?)") from None
