"""Opening the Pi's buses: one-line errors, and the smbus2 adapter's combined transfers."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipilot.sensors.bus import SensorError, Smbus2Bus, open_i2c, open_spi, spi_node
from pipilot.sensors.vl53l1x import Vl53l1x


class Msg:
    """smbus2.i2c_msg's two constructors, recording what the driver asked for."""

    def __init__(self, kind: str, addr: int, data: bytes | int) -> None:
        self.kind, self.addr = kind, addr
        self.buf = bytes(data)   # bytes(n) for a read: n zero bytes to be filled

    @staticmethod
    def write(addr: int, data: bytes) -> Msg:
        return Msg("w", addr, data)

    @staticmethod
    def read(addr: int, n: int) -> Msg:
        return Msg("r", addr, n)

    def __iter__(self):   # smbus2's read message iterates over its bytes
        return iter(self.buf)


class FakeSMBus:
    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.transfers: list[list[tuple[str, int, bytes]]] = []

    def i2c_rdwr(self, *msgs: Msg) -> None:
        self.transfers.append([(m.kind, m.addr, m.buf) for m in msgs])
        for m in msgs:
            if m.kind == "r":
                m.buf = self.answer[:len(m.buf)]

    def close(self) -> None:
        pass


def test_smbus2_adapter_sends_a_repeated_start_read() -> None:
    smbus = FakeSMBus(b"\xea\xcc")
    bus = Smbus2Bus(smbus, Msg)
    Vl53l1x(bus).check_id()
    assert smbus.transfers == [[("w", 0x29, b"\x01\x0f"), ("r", 0x29, b"\x00\x00")]]
    bus.write(0x29, b"\x00\x87\x40")
    assert smbus.transfers[-1] == [("w", 0x29, b"\x00\x87\x40")]


def test_spi_node_names() -> None:
    assert spi_node("/dev/spidev0.1") == (0, 1)
    with pytest.raises(SensorError, match="not a spidev node"):
        spi_node("/dev/spidev0")


def test_absent_nodes_name_the_config_line(tmp_path: Path) -> None:
    with pytest.raises(SensorError, match=r"^/dev/spidev7\.3: no such device node: enable SPI "
                                          r"with dtparam=spi=on in /boot/firmware/config.txt"):
        open_spi("/dev/spidev7.3")
    with pytest.raises(SensorError, match=r"^/dev/i2c-77: no such device node: enable I2C "
                                          r"with dtparam=i2c_arm=on"):
        open_i2c(77)
