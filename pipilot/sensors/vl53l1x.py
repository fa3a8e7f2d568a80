"""VL53L1X time-of-flight ranger driver over I2C (the Flow deck v2's height sensor).

Facts from the ST VL53L1X datasheet (DS12385) and the ultra-lite driver
manuals (UM2356, UM2510):

- 7-bit I2C address 0x29; 16-bit register addresses sent big-endian, and
  multi-byte registers are big-endian too.
- IDENTIFICATION__MODEL_ID (0x010F, 16 bits) reads 0xEACC.
- FIRMWARE__SYSTEM_STATUS (0x00E5) reads non-zero once the device has booted
  (boot takes up to 1.2 ms after XSHUT rises).
- The default configuration block is written from 0x2D to 0x87 in one go,
  followed by one ranging that is thrown away, then
  VHV_CONFIG__TIMEOUT_MACROP_LOOP_BOUND (0x0008) = 0x09 and 0x000B = 0x00
  (the temperature calibration starts from the previous value).
- SYSTEM__MODE_START (0x0087): 0x40 starts back-to-back ranging, 0x00 stops.
- GPIO_HV_MUX__CTRL (0x0030) bit 4 is the interrupt polarity (0: active high);
  GPIO__TIO_HV_STATUS (0x0031) bit 0 equals the active level when a range is
  ready; SYSTEM__INTERRUPT_CLEAR (0x0086) = 0x01 clears it for the next one.
- RESULT__RANGE_STATUS (0x0089) low 5 bits, mapped by the ULD's table to the
  documented range status: 0 valid, 1 sigma failure, 2 signal failure (too
  far or too dark), 4 out of bounds (phase), 7 wrapped target; others are
  hardware or internal failures.
- RESULT__FINAL_CROSSTALK_CORRECTED_RANGE_MM_SD0 (0x0096): the range in mm;
  RESULT__PEAK_SIGNAL_COUNT_RATE_CROSSTALK_CORRECTED_MCPS_SD0 (0x0098): the
  signal rate in MCPS, 9.7 fixed point.
- Maximum range about 4 m in long distance mode in the dark (1.3 m in short
  mode); timing budget 20 ms (short mode) to 1000 ms. The default block set
  here is long mode with the ULD's default budget of 100 ms.
- Distance mode (UM2510, VL53L1X_SetDistanceMode): short writes
  PHASECAL_CONFIG__TIMEOUT_MACROP (0x004B) = 0x14, RANGE_CONFIG__VCSEL_PERIOD_A
  (0x0060) = 0x07, _B (0x0063) = 0x05, RANGE_CONFIG__VALID_PHASE_HIGH (0x0069)
  = 0x38, SD_CONFIG__WOI_SD0 (0x0078, 16 bits) = 0x0705,
  SD_CONFIG__INITIAL_PHASE_SD0 (0x007A, 16 bits) = 0x0606; long writes 0x0A,
  0x0F, 0x0D, 0xB8, 0x0F0D, 0x0E0E. The mode is read back from VCSEL_PERIOD_A.
- Timing budget (UM2510, VL53L1X_SetTimingBudgetInMs): the pair
  RANGE_CONFIG__TIMEOUT_MACROP_A_HI (0x005E) / _B_HI (0x0061), 16 bits each,
  from one table per mode (`BUDGETS`): 15 (short only), 20, 33, 50, 100, 200
  and 500 ms. The inter-measurement period SYSTEM__INTERMEASUREMENT_PERIOD
  (0x006C, 32 bits) must not be shorter than the budget: it is set to the
  budget, in oscillator ticks: ms x (RESULT__OSC_CALIBRATE_VAL (0x00DE) &
  0x3FF) x 1.075 (VL53L1X_SetInterMeasurementInMs).
- The ULD offers short and long only; the full API's medium mode needs
  timeouts computed from the macro period, which this driver does not do:
  asking for it is a clear error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pipilot.sensors.bus import I2cBus, SensorError

ADDRESS = 0x29
REG_GPIO_HV_MUX_CTRL = 0x0030
REG_GPIO_TIO_HV_STATUS = 0x0031
REG_INTERRUPT_CLEAR = 0x0086
REG_MODE_START = 0x0087
REG_RANGE_STATUS = 0x0089
REG_RANGE_MM = 0x0096
REG_SIGNAL_RATE = 0x0098
REG_SYSTEM_STATUS = 0x00E5
REG_MODEL_ID = 0x010F
MODEL_ID = 0xEACC
START_RANGING = 0x40
STOP_RANGING = 0x00
CONFIG_START = 0x2D

LONG_MODE_MAX_M = 4.0
SHORT_MODE_MAX_M = 1.3
REG_PHASECAL_TIMEOUT = 0x004B
REG_TIMEOUT_A = 0x005E
REG_VCSEL_PERIOD_A = 0x0060
REG_TIMEOUT_B = 0x0061
REG_VCSEL_PERIOD_B = 0x0063
REG_VALID_PHASE_HIGH = 0x0069
REG_INTERMEASUREMENT = 0x006C
REG_WOI_SD0 = 0x0078
REG_INITIAL_PHASE_SD0 = 0x007A
REG_OSC_CALIBRATE = 0x00DE

#: Distance mode -> (0x004B, 0x0060, 0x0063, 0x0069, 0x0078 (16), 0x007A (16)), UM2510.
MODES = {
    "short": (0x14, 0x07, 0x05, 0x38, 0x0705, 0x0606),
    "long": (0x0A, 0x0F, 0x0D, 0xB8, 0x0F0D, 0x0E0E),
}
#: Distance mode -> {budget ms: (TIMEOUT_MACROP_A, TIMEOUT_MACROP_B)}, UM2510.
BUDGETS = {
    "short": {15: (0x001D, 0x0027), 20: (0x0051, 0x006E), 33: (0x00D6, 0x006E),
              50: (0x01AE, 0x01E8), 100: (0x02E1, 0x0388), 200: (0x03E1, 0x0496),
              500: (0x0591, 0x05C1)},
    "long": {20: (0x001E, 0x0022), 33: (0x0060, 0x006E), 50: (0x00AD, 0x00C6),
             100: (0x01CC, 0x01EA), 200: (0x02D9, 0x02F8), 500: (0x048F, 0x04A4)},
}
DEFAULT_MODE = "long"
DEFAULT_BUDGET_MS = 100
BOOT_TIMEOUT_S = 0.1
FIRST_RANGE_TIMEOUT_S = 1.0
REG_VHV_TIMEOUT_MACROP_LOOP_BOUND = 0x0008
REG_VHV_START = 0x000B

#: ST's default configuration for registers 0x2D..0x87 (long distance mode).
DEFAULT_CONFIG = bytes((
    0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x02, 0x08, 0x00, 0x08, 0x10, 0x01, 0x01, 0x00,
    0x00, 0x00, 0x00, 0xFF, 0x00, 0x0F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x0B, 0x00,
    0x00, 0x02, 0x0A, 0x21, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0xC8, 0x00, 0x00,
    0x38, 0xFF, 0x01, 0x00, 0x08, 0x00, 0x00, 0x01, 0xCC, 0x0F, 0x01, 0xF1, 0x0D, 0x01,
    0x68, 0x00, 0x80, 0x08, 0xB8, 0x00, 0x00, 0x00, 0x00, 0x0F, 0x89, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x0F, 0x0D, 0x0E, 0x0E, 0x00, 0x00, 0x02, 0xC7, 0xFF,
    0x9B, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
))

#: Raw RESULT__RANGE_STATUS (low 5 bits) -> documented range status (255: internal).
_STATUS_MAP = (255, 255, 255, 5, 2, 4, 1, 7, 3, 0, 255, 255, 9, 13, 255, 255,
               255, 255, 10, 6, 255, 255, 11, 12)
STATUS_TEXT = {0: "ok", 1: "sigma fail", 2: "signal fail (out of range)", 3: "below minimum",
               4: "out of bounds", 5: "hardware fail", 6: "no wrap check", 7: "wrapped target",
               9: "synchronisation", 255: "internal error"}


def check_mode(distance_mode: str, timing_budget_ms: int) -> None:
    """A SensorError naming what is allowed unless the mode and budget are a pair UM2510 gives."""
    if distance_mode == "medium":
        raise SensorError("VL53L1X", "distance mode 'medium' is not supported (ST's ultra-lite "
                                     "driver has short and long only): use short (up to "
                                     "1.3 m) or long (up to 4 m)")
    if distance_mode not in MODES:
        raise SensorError("VL53L1X", f"distance mode {distance_mode!r}: give short or long")
    if timing_budget_ms not in BUDGETS[distance_mode]:
        allowed = ", ".join(str(b) for b in BUDGETS[distance_mode])
        raise SensorError("VL53L1X", f"timing budget {timing_budget_ms} ms in {distance_mode} "
                                     f"mode: give one of {allowed} ms")


def range_status(raw: int) -> int:
    """The documented range status for a raw RESULT__RANGE_STATUS byte."""
    code = raw & 0x1F
    return _STATUS_MAP[code] if code < len(_STATUS_MAP) else 255


@dataclass(frozen=True)
class RangeSample:
    """One ranging result."""

    range_m: float
    """Distance along the beam, m (meaningful only when ``valid``)."""
    status: int
    """Documented range status: 0 valid (see `STATUS_TEXT`)."""
    signal_mcps: float
    """Return signal rate, mega counts per second."""

    @property
    def valid(self) -> bool:
        return self.status == 0

    @property
    def status_text(self) -> str:
        return STATUS_TEXT.get(self.status, f"status {self.status}")


class Vl53l1x:
    """The VL53L1X on ``i2c`` at ``address``. ``init()`` boots, checks and starts ranging."""

    def __init__(self, i2c: I2cBus, *, address: int = ADDRESS, device: str = "i2c",
                 distance_mode: str = DEFAULT_MODE, timing_budget_ms: int = DEFAULT_BUDGET_MS,
                 sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], float] = time.monotonic) -> None:
        check_mode(distance_mode, timing_budget_ms)
        self.i2c = i2c
        self.address = address
        self.device = device
        self.distance_mode = distance_mode
        self.timing_budget_ms = timing_budget_ms
        self.sleep = sleep
        self.now = now
        self._ready_level = 1

    def _fail(self, what: str, exc: OSError) -> SensorError:
        hint = " (no device answers at that address: check the wiring and 3.3 V)" \
            if exc.errno in (5, 6, 121) else ""
        return SensorError(self.device, f"VL53L1X at 0x{self.address:02X}: {what} failed: "
                                        f"{exc.strerror or exc}{hint}")

    def read(self, reg: int, length: int) -> bytes:
        try:
            got = self.i2c.write_read(self.address, reg.to_bytes(2, "big"), length)
        except OSError as exc:
            raise self._fail(f"read of 0x{reg:04X}", exc) from None
        if len(got) != length:
            raise SensorError(self.device, f"VL53L1X read of 0x{reg:04X} returned "
                                           f"{len(got)} bytes for {length}")
        return got

    def read8(self, reg: int) -> int:
        return self.read(reg, 1)[0]

    def read16(self, reg: int) -> int:
        return int.from_bytes(self.read(reg, 2), "big")

    def write(self, reg: int, data: bytes) -> None:
        try:
            self.i2c.write(self.address, reg.to_bytes(2, "big") + data)
        except OSError as exc:
            raise self._fail(f"write of 0x{reg:04X}", exc) from None

    def init(self) -> None:
        """Wait for boot, check the model id, load the default block, start ranging."""
        self.check_id()
        deadline = self.now() + BOOT_TIMEOUT_S
        while self.read8(REG_SYSTEM_STATUS) == 0:
            if self.now() > deadline:
                raise SensorError(self.device, "VL53L1X did not finish booting "
                                               f"within {BOOT_TIMEOUT_S * 1000:.0f} ms")
            self.sleep(0.002)
        self.write(CONFIG_START, DEFAULT_CONFIG)
        self._ready_level = 0 if self.read8(REG_GPIO_HV_MUX_CTRL) & 0x10 else 1
        self.configure(self.distance_mode, self.timing_budget_ms)
        # UM2510's init: one throw-away ranging, then bound the VHV (temperature)
        # calibration to two loops starting from the previous result
        self.start()
        deadline = self.now() + FIRST_RANGE_TIMEOUT_S
        while not self.data_ready():
            if self.now() > deadline:
                raise SensorError(self.device, "VL53L1X gave no first range within "
                                               f"{FIRST_RANGE_TIMEOUT_S:g} s")
            self.sleep(0.005)
        self.write(REG_INTERRUPT_CLEAR, b"\x01")
        self.stop()
        self.write(REG_VHV_TIMEOUT_MACROP_LOOP_BOUND, b"\x09")
        self.write(REG_VHV_START, b"\x00")
        self.start()

    def configure(self, distance_mode: str, timing_budget_ms: int) -> None:
        """Write the distance mode, the timing budget and a matching inter-measurement period.

        Call it with ranging stopped (``init()`` does).
        """
        check_mode(distance_mode, timing_budget_ms)
        phasecal, vcsel_a, vcsel_b, phase_high, woi, initial = MODES[distance_mode]
        self.write(REG_PHASECAL_TIMEOUT, bytes((phasecal,)))
        self.write(REG_VCSEL_PERIOD_A, bytes((vcsel_a,)))
        self.write(REG_VCSEL_PERIOD_B, bytes((vcsel_b,)))
        self.write(REG_VALID_PHASE_HIGH, bytes((phase_high,)))
        self.write(REG_WOI_SD0, woi.to_bytes(2, "big"))
        self.write(REG_INITIAL_PHASE_SD0, initial.to_bytes(2, "big"))
        a, b = BUDGETS[distance_mode][timing_budget_ms]
        self.write(REG_TIMEOUT_A, a.to_bytes(2, "big"))
        self.write(REG_TIMEOUT_B, b.to_bytes(2, "big"))
        pll = self.read16(REG_OSC_CALIBRATE) & 0x3FF
        if pll == 0:
            raise SensorError(self.device, "VL53L1X oscillator calibration (0x00DE) reads 0: "
                                           "cannot set the inter-measurement period")
        self.write(REG_INTERMEASUREMENT, int(pll * timing_budget_ms * 1.075).to_bytes(4, "big"))
        self.distance_mode = distance_mode
        self.timing_budget_ms = timing_budget_ms

    def read_mode(self) -> str | None:
        """The distance mode the chip's VCSEL period A says it is in (None: neither)."""
        vcsel = self.read8(REG_VCSEL_PERIOD_A)
        return next((m for m, v in MODES.items() if v[1] == vcsel), None)

    def check_id(self) -> None:
        model = self.read16(REG_MODEL_ID)
        if model != MODEL_ID:
            raise SensorError(self.device, f"no VL53L1X at 0x{self.address:02X}: model id "
                                           f"0x{model:04X}, expected 0x{MODEL_ID:04X}")

    def start(self) -> None:
        self.write(REG_INTERRUPT_CLEAR, b"\x01")
        self.write(REG_MODE_START, bytes((START_RANGING,)))

    def stop(self) -> None:
        self.write(REG_MODE_START, bytes((STOP_RANGING,)))

    def data_ready(self) -> bool:
        return (self.read8(REG_GPIO_TIO_HV_STATUS) & 1) == self._ready_level

    def read_range(self) -> RangeSample:
        """The latest result; clears the interrupt so the next one can come."""
        status = range_status(self.read8(REG_RANGE_STATUS))
        mm = self.read16(REG_RANGE_MM)
        rate = self.read16(REG_SIGNAL_RATE) / 128.0
        self.write(REG_INTERRUPT_CLEAR, b"\x01")
        return RangeSample(range_m=mm / 1000.0, status=status, signal_mcps=rate)

    def poll(self) -> RangeSample | None:
        """A result when one is ready, else None (never waits)."""
        return self.read_range() if self.data_ready() else None
