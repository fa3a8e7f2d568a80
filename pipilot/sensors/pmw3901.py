"""PMW3901 optical-flow sensor driver over SPI (the Crazyflie Flow deck v2's flow chip).

Facts from the PixArt PMW3901MB-TXQT datasheet:

- Product_ID (0x00) reads 0x49, Inverse_Product_ID (0x5F) reads 0xB6.
- Power_Up_Reset (0x3A): writing 0x5A resets the chip; afterwards registers
  0x02..0x06 are read once to clear the motion state.
- A write sets bit 7 of the address; a read sends the address with bit 7 clear.
- Motion_Burst (0x16) returns 12 bytes: Motion, Observation, Delta_X_L,
  Delta_X_H, Delta_Y_L, Delta_Y_H, SQUAL, RawData_Sum, Maximum_RawData,
  Minimum_RawData, Shutter_Upper, Shutter_Lower. Motion bit 7 (MOT) says
  motion has occurred since the last read; the deltas are signed 16-bit
  counts accumulated since then.
- Frames with SQUAL below 0x19 while Shutter_Upper is 0x1F (the shutter at
  its limit: too dark or no texture) carry no usable motion.
- After the reset, the datasheet's performance-optimisation register
  sequence (with its two waits and two conditional branches) must be written.
- Optics: 42 degree field of view, 35x35 pixel array, ~121 Hz frame rate,
  working range from 80 mm, maximum speed 7.4 rad/s.

The datasheet gives no count scale. A count is a tenth of a pixel: Bitcraze
measured it so for the Flow deck (their Kalman flow update multiplies the
deltas by 0.1 before its 35 pixels over 42 degrees), and PX4's PMW3901 driver
divides the deltas by 385-500 to get radians, against 477 here.

pimoroni's ``pmw3901`` package opens its own spidev and drives chip select
through RPi.GPIO, so it cannot take a bus object (nor a simulated bus): this
driver speaks to any `SpiBus`.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipilot.sensors.bus import SensorError, SpiBus

REG_PRODUCT_ID = 0x00
REG_MOTION = 0x02
REG_MOTION_BURST = 0x16
REG_POWER_UP_RESET = 0x3A
REG_INVERSE_PRODUCT_ID = 0x5F
REG_BANK = 0x7F
PRODUCT_ID = 0x49
INVERSE_PRODUCT_ID = 0xB6
RESET_VALUE = 0x5A
MOTION_BIT = 0x80
SQUAL_MIN = 0x19
SHUTTER_UPPER_MAX = 0x1F
BURST_LEN = 12

FOV_DEG = 42.0
PIXELS = 35
COUNTS_PER_PIXEL = 10
COUNTS_PER_RAD = COUNTS_PER_PIXEL * PIXELS / math.radians(FOV_DEG)
"""Delta_X/Delta_Y counts per radian of image motion (about 477)."""
FRAME_RATE_HZ = 121.0
MIN_RANGE_M = 0.080
MAX_RATE_RAD_S = 7.4

WAIT = -1
#: The performance-optimisation writes from the datasheet, as (register, value);
#: (WAIT, ms) pauses. Bank 0x0E holds the calibration read in between (see `_tune`).
_TUNE_START = ((0x7F, 0x00), (0x55, 0x01), (0x50, 0x07), (0x7F, 0x0E), (0x43, 0x10))
_TUNE_MIDDLE = ((0x7F, 0x00), (0x51, 0x7B), (0x50, 0x00), (0x55, 0x00), (0x7F, 0x0E))
_TUNE_CAL = ((0x7F, 0x00), (0x61, 0xAD), (0x51, 0x70), (0x7F, 0x0E))
_TUNE_END = (
    (0x7F, 0x00), (0x61, 0xAD), (0x7F, 0x03), (0x40, 0x00), (0x7F, 0x05), (0x41, 0xB3),
    (0x43, 0xF1), (0x45, 0x14), (0x5B, 0x32), (0x5F, 0x34), (0x7B, 0x08), (0x7F, 0x06),
    (0x44, 0x1B), (0x40, 0xBF), (0x4E, 0x3F), (0x7F, 0x08), (0x65, 0x20), (0x6A, 0x18),
    (0x7F, 0x09), (0x4F, 0xAF), (0x5F, 0x40), (0x48, 0x80), (0x49, 0x80), (0x57, 0x77),
    (0x60, 0x78), (0x61, 0x78), (0x62, 0x08), (0x63, 0x50), (0x7F, 0x0A), (0x45, 0x60),
    (0x7F, 0x00), (0x4D, 0x11), (0x55, 0x80), (0x74, 0x21), (0x75, 0x1F), (0x4A, 0x78),
    (0x4B, 0x78), (0x44, 0x08), (0x45, 0x50), (0x64, 0xFF), (0x65, 0x1F), (0x7F, 0x14),
    (0x65, 0x67), (0x66, 0x08), (0x63, 0x70), (0x7F, 0x15), (0x48, 0x48), (0x7F, 0x07),
    (0x41, 0x0D), (0x43, 0x14), (0x4B, 0x0E), (0x45, 0x0F), (0x44, 0x42), (0x4C, 0x80),
    (0x7F, 0x10), (0x5B, 0x02), (0x7F, 0x07), (0x40, 0x41), (0x70, 0x00), (WAIT, 10),
    (0x32, 0x44), (0x7F, 0x07), (0x40, 0x40), (0x7F, 0x06), (0x62, 0xF0), (0x63, 0x00),
    (0x7F, 0x0D), (0x48, 0xC0), (0x6F, 0xD5), (0x7F, 0x00), (0x5B, 0xA0), (0x4E, 0xA8),
    (0x5A, 0x50), (0x40, 0x80), (WAIT, 240), (0x7F, 0x14), (0x6F, 0x1C), (0x7F, 0x00),
)


@dataclass(frozen=True)
class FlowSample:
    """One motion burst: counts accumulated since the previous one, and image quality."""

    dx: int
    """Delta_X, counts (signed)."""
    dy: int
    """Delta_Y, counts (signed)."""
    motion: bool
    """MOT: the chip saw motion since the last read (deltas are 0 when it did not)."""
    squal: int
    """Surface quality 0..255: about how many features the chip tracks."""
    shutter: int
    """Shutter time, 13 bits (Shutter_Upper:Shutter_Lower): long when dark."""
    raw_sum: int
    raw_max: int
    raw_min: int

    @property
    def valid(self) -> bool:
        """Whether the deltas can be trusted: SQUAL at least 0x19.

        The datasheet discards frames with SQUAL < 0x19 at full shutter (too
        dark); a low SQUAL in good light (a featureless floor, lost tracking)
        is no better for a position hold, so any SQUAL below it is refused.
        """
        return self.squal >= SQUAL_MIN and not self.saturated

    @property
    def saturated(self) -> bool:
        """A delta register hit its 16-bit limit: motion was lost (read too seldom)."""
        return any(d in (-32768, 32767) for d in (self.dx, self.dy))

    @property
    def dark(self) -> bool:
        """The shutter is at its limit: too little light."""
        return (self.shutter >> 8) >= SHUTTER_UPPER_MAX

    @property
    def status(self) -> str:
        if self.saturated:
            return "saturated"
        if not self.valid:
            return "too dark" if self.dark else "poor surface"
        return "ok" if self.motion else "no motion"


class Pmw3901:
    """The PMW3901 on ``spi`` (mode 3). ``init()`` resets, checks the IDs and tunes it.

    ``device`` names the bus in error messages (``/dev/spidev0.0``); ``sleep``
    waits (injected so the simulator can run in virtual time).
    """

    def __init__(self, spi: SpiBus, *, device: str = "spi",
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.spi = spi
        self.device = device
        self.sleep = sleep

    def _xfer(self, values: list[int]) -> list[int]:
        try:
            got = self.spi.xfer2(values)
        except OSError as exc:
            raise SensorError(self.device, f"PMW3901 SPI transfer failed: "
                                           f"{exc.strerror or exc}") from None
        if len(got) != len(values):
            raise SensorError(self.device, f"PMW3901 SPI transfer returned {len(got)} "
                                           f"bytes for {len(values)}")
        return got

    def read(self, reg: int) -> int:
        return self._xfer([reg & 0x7F, 0])[1]

    def write(self, reg: int, value: int) -> None:
        self._xfer([reg | 0x80, value & 0xFF])

    def _writes(self, seq: tuple[tuple[int, int], ...]) -> None:
        for reg, value in seq:
            if reg == WAIT:
                self.sleep(value / 1000)
            else:
                self.write(reg, value)

    def init(self) -> None:
        """Power-up reset, ID check, then the datasheet's optimisation sequence."""
        self.write(REG_POWER_UP_RESET, RESET_VALUE)
        self.sleep(0.005)
        self.check_id()
        for reg in range(REG_MOTION, REG_MOTION + 5):
            self.read(reg)
        self._tune()

    def check_id(self) -> None:
        """Raise a SensorError naming what answered unless both IDs are right."""
        pid, inv = self.read(REG_PRODUCT_ID), self.read(REG_INVERSE_PRODUCT_ID)
        if pid == PRODUCT_ID and inv == INVERSE_PRODUCT_ID:
            return
        hint = (" (nothing answers: check the wiring, chip select and 3.3 V)"
                if (pid, inv) in ((0x00, 0x00), (0xFF, 0xFF)) else "")
        raise SensorError(self.device, f"no PMW3901: product id 0x{pid:02X} / inverse "
                                       f"0x{inv:02X}, expected 0x{PRODUCT_ID:02X} / "
                                       f"0x{INVERSE_PRODUCT_ID:02X}{hint}")

    def _tune(self) -> None:
        self._writes(_TUNE_START)
        self.write(0x48, 0x04 if self.read(0x67) & 0x80 else 0x02)
        self._writes(_TUNE_MIDDLE)
        if self.read(0x73) == 0x00:
            c1, c2 = self.read(0x70), self.read(0x71)
            # two checks in sequence, as the datasheet writes them (not if/else)
            if c1 <= 28:
                c1 += 14
            if c1 > 28:
                c1 += 11
            c1 = max(0, min(0x3F, c1))
            c2 = c2 * 45 // 100
            self._writes(_TUNE_CAL)
            self.write(0x70, c1)
            self.write(0x71, c2)
        self._writes(_TUNE_END)

    def read_motion(self) -> FlowSample:
        """One motion burst (the counts since the previous burst)."""
        data = self._xfer([REG_MOTION_BURST] + [0] * BURST_LEN)[1:]
        (motion, _obs, dx, dy, squal, raw_sum, raw_max, raw_min,
         sh_up, sh_lo) = struct.unpack("<BBhhBBBBBB", bytes(data))
        moved = bool(motion & MOTION_BIT)
        return FlowSample(dx=dx if moved else 0, dy=dy if moved else 0, motion=moved,
                          squal=squal, shutter=((sh_up & 0x1F) << 8) | sh_lo,
                          raw_sum=raw_sum, raw_max=raw_max, raw_min=raw_min)
