"""InvenSense MPU-6050 gyro and accelerometer over I2C: body rates stamped on the Pi's clock.

The flow deck's optical flow is mostly the craft's own rotation; subtracting
it needs body rates at the flow's rate and with little delay, which the
CC3D's 9600-baud telemetry cannot carry (see docs/sensors.md). An MPU-6050 on
the Pi's I2C gives them.

Facts from the InvenSense "MPU-6000 and MPU-6050 Product Specification"
(PS-MPU-6000A-00, rev. 3.4) and "Register Map and Descriptions"
(RM-MPU-6000A-00, rev. 4.2):

- 7-bit I2C address 0x68 with AD0 low, 0x69 with AD0 high (PS 9.2); 8-bit
  register addresses; 16-bit values big-endian two's complement, high byte
  at the lower address (RM 4.17-4.19).
- WHO_AM_I (0x75) reads 0x68 whatever AD0 is (RM 4.32).
- PWR_MGMT_1 (0x6B) resets to 0x40: SLEEP (bit 6) set, so the chip powers up
  asleep; bit 7 DEVICE_RESET; CLKSEL (bits 2:0) = 1 selects the PLL on the
  X gyro, recommended over the internal 8 MHz oscillator (RM 4.28, PS 6.4).
  The gyros need about 30 ms to start (PS 6.1, start-up time).
- SMPLRT_DIV (0x19): sample rate = gyro output rate / (1 + SMPLRT_DIV); the
  gyro output rate is 1 kHz with the DLPF on (DLPF_CFG 1..6), 8 kHz without
  (RM 4.2).
- CONFIG (0x1A) DLPF_CFG (bits 2:0): gyro bandwidth / delay 256 Hz / 0.98 ms,
  188 / 1.9, 98 / 2.8, 42 / 4.8, 20 / 8.3, 10 / 13.4, 5 / 18.6 (RM 4.3).
- GYRO_CONFIG (0x1B) FS_SEL (bits 4:3): +-250, 500, 1000, 2000 deg/s at
  131, 65.5, 32.8, 16.4 LSB per deg/s (RM 4.4, PS 6.1).
- ACCEL_CONFIG (0x1C) AFS_SEL (bits 4:3): +-2, 4, 8, 16 g at 16384, 8192,
  4096, 2048 LSB per g (RM 4.5, PS 6.2).
- INT_STATUS (0x3A) bit 0 DATA_RDY_INT: a new sample is in the data
  registers; reading INT_STATUS clears it (RM 4.16, INT_PIN_CFG default).
- ACCEL_XOUT_H (0x3B) .. GYRO_ZOUT_L (0x48): 14 bytes, accel X, Y, Z,
  TEMP_OUT, gyro X, Y, Z, read in one burst so that they come from the same
  sample (RM 4.17-4.19, "the data registers ... are updated ... when the
  serial interface is idle": a burst read is coherent).
- Temperature in deg C = TEMP_OUT / 340 + 36.53 (RM 4.18).
- Gyro zero-rate output tolerance +-20 deg/s at 25 deg C (PS 6.1): the bias
  must be measured at rest before flight.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipilot.sensors.bus import I2cBus, SensorError

ADDRESS = 0x68
ADDRESS_AD0_HIGH = 0x69
WHO_AM_I_VALUE = 0x68

REG_SMPLRT_DIV = 0x19
REG_CONFIG = 0x1A
REG_GYRO_CONFIG = 0x1B
REG_ACCEL_CONFIG = 0x1C
REG_INT_STATUS = 0x3A
REG_ACCEL_XOUT_H = 0x3B
REG_PWR_MGMT_1 = 0x6B
REG_WHO_AM_I = 0x75
BURST_LEN = 14
_BURST = struct.Struct(f">{BURST_LEN // 2}h")
"""The burst: accel X, Y, Z, temperature, gyro X, Y, Z, big-endian two's complement."""

PWR_RESET = 0x80
PWR_SLEEP = 0x40
CLKSEL_PLL_XGYRO = 0x01
DATA_RDY = 0x01

G = 9.80665
GYRO_RANGES_DPS = (250, 500, 1000, 2000)
GYRO_LSB_PER_DPS = (131.0, 65.5, 32.8, 16.4)
ACCEL_RANGES_G = (2, 4, 8, 16)
ACCEL_LSB_PER_G = (16384.0, 8192.0, 4096.0, 2048.0)
#: DLPF_CFG -> (gyro bandwidth Hz, gyro delay s); 0 is the 8 kHz unfiltered path (RM 4.3).
DLPF = {0: (256.0, 0.00098), 1: (188.0, 0.0019), 2: (98.0, 0.0028), 3: (42.0, 0.0048),
        4: (20.0, 0.0083), 5: (10.0, 0.0134), 6: (5.0, 0.0186)}
STARTUP_S = 0.030
RESET_S = 0.100
DEFAULT_RATE_HZ = 500.0
DEFAULT_DLPF = 2
CALIBRATION_SAMPLES = 500
CALIBRATION_MAX_SPREAD_DPS = 1.0
"""Standard deviation of the gyro during calibration above which the craft was not at rest."""
CALIBRATION_ACCEL_TOLERANCE = 0.15
"""Largest |accel| / g - 1 accepted as at rest (a tilted board still reads 1 g)."""


def gyro_output_hz(dlpf: int) -> float:
    """The gyro output rate the sample-rate divider divides (RM 4.2)."""
    return 8000.0 if dlpf == 0 else 1000.0


def parse_mount(mount: str) -> tuple[tuple[int, int], ...]:
    """``"x,-y,-z"`` -> for each body axis (forward, right, down), (chip axis, sign).

    The default ``"x,-y,-z"`` is the chip face up with its X arrow forward:
    chip Y points left and chip Z up, so body right = -Y and body down = -Z.
    Only proper rotations are accepted (each chip axis once, right-handed).
    """
    parts = [p.strip().lower() for p in mount.split(",")]
    err = SensorError("MPU-6050", f"bad mounting {mount!r}: give the chip axis along body "
                                  "forward, right, down, e.g. 'x,-y,-z' (face up, X forward)")
    if len(parts) != 3:
        raise err
    axes: list[tuple[int, int]] = []
    for p in parts:
        sign = -1 if p.startswith("-") else 1
        name = p.lstrip("+-")
        if name not in ("x", "y", "z"):
            raise err
        axes.append(("xyz".index(name), sign))
    if sorted(a for a, _ in axes) != [0, 1, 2]:
        raise err
    # determinant of the signed permutation: the permutation's parity times the signs
    perm = [a for a, _ in axes]
    inversions = sum(1 for i in range(3) for j in range(i + 1, 3) if perm[i] > perm[j])
    det = (-1) ** inversions * axes[0][1] * axes[1][1] * axes[2][1]
    if det != 1:
        raise SensorError("MPU-6050", f"mounting {mount!r} is a mirror image, not a rotation: "
                                      "flip the sign of one axis")
    return tuple(axes)


@dataclass(frozen=True)
class ImuSample:
    """One sample in the body frame (FRD), bias removed from the rates."""

    rates: tuple[float, float, float]
    """Body rates p, q, r, rad/s."""
    accel: tuple[float, float, float]
    """Specific force along body x, y, z, m/s^2 (about (0, 0, -9.81) level at rest)."""
    temperature_c: float


@dataclass(frozen=True)
class ImuConfig:
    """The driver's settings, validated; ``SensorError`` names the bad one."""

    rate_hz: float = DEFAULT_RATE_HZ
    dlpf: int = DEFAULT_DLPF
    gyro_range_dps: int = 500
    accel_range_g: int = 8
    mount: str = "x,-y,-z"

    def __post_init__(self) -> None:
        if self.dlpf not in DLPF:
            raise SensorError("MPU-6050", f"DLPF setting {self.dlpf}: give 0..6")
        if self.gyro_range_dps not in GYRO_RANGES_DPS:
            raise SensorError("MPU-6050", f"gyro range {self.gyro_range_dps} deg/s: give one "
                                          f"of {', '.join(map(str, GYRO_RANGES_DPS))}")
        if self.accel_range_g not in ACCEL_RANGES_G:
            raise SensorError("MPU-6050", f"accel range {self.accel_range_g} g: give one of "
                                          f"{', '.join(map(str, ACCEL_RANGES_G))}")
        base = gyro_output_hz(self.dlpf)
        if not (math.isfinite(self.rate_hz) and base / 256 <= self.rate_hz <= base):
            raise SensorError("MPU-6050", f"sample rate {self.rate_hz:g} Hz: give "
                                          f"{base / 256:g}..{base:g} Hz with DLPF {self.dlpf}")
        parse_mount(self.mount)

    @property
    def divider(self) -> int:
        """SMPLRT_DIV for the rate asked (the nearest the chip can do)."""
        return max(0, min(255, round(gyro_output_hz(self.dlpf) / self.rate_hz) - 1))

    @property
    def actual_rate_hz(self) -> float:
        return gyro_output_hz(self.dlpf) / (1 + self.divider)


class Mpu6050:
    """The MPU-6050 on ``i2c`` at ``address``. ``init()`` checks, wakes and configures it."""

    def __init__(self, i2c: I2cBus, *, address: int = ADDRESS, device: str = "i2c",
                 config: ImuConfig | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.i2c = i2c
        self.address = address
        self.device = device
        self.config = config or ImuConfig()
        self.sleep = sleep
        self.now = now
        self._axes = parse_mount(self.config.mount)
        self._gyro_scale = math.radians(1.0) / GYRO_LSB_PER_DPS[
            GYRO_RANGES_DPS.index(self.config.gyro_range_dps)]
        self._accel_scale = G / ACCEL_LSB_PER_G[ACCEL_RANGES_G.index(self.config.accel_range_g)]
        self.bias = (0.0, 0.0, 0.0)
        """Gyro bias in the body frame, rad/s, subtracted from every sample (`calibrate`)."""

    @property
    def delay_s(self) -> float:
        """The configured DLPF's gyro delay (RM 4.3): how old a fresh sample's rates are."""
        return DLPF[self.config.dlpf][1]

    def _fail(self, what: str, exc: OSError) -> SensorError:
        hint = " (no device answers at that address: check the wiring, 3.3 V and AD0)" \
            if exc.errno in (5, 6, 121) else ""
        return SensorError(self.device, f"MPU-6050 at 0x{self.address:02X}: {what} failed: "
                                        f"{exc.strerror or exc}{hint}")

    def read(self, reg: int, length: int) -> bytes:
        try:
            got = self.i2c.write_read(self.address, bytes((reg,)), length)
        except OSError as exc:
            raise self._fail(f"read of 0x{reg:02X}", exc) from None
        if len(got) != length:
            raise SensorError(self.device, f"MPU-6050 read of 0x{reg:02X} returned "
                                           f"{len(got)} bytes for {length}")
        return got

    def read8(self, reg: int) -> int:
        return self.read(reg, 1)[0]

    def write8(self, reg: int, value: int) -> None:
        try:
            self.i2c.write(self.address, bytes((reg, value)))
        except OSError as exc:
            raise self._fail(f"write of 0x{reg:02X}", exc) from None

    def check_id(self) -> None:
        who = self.read8(REG_WHO_AM_I)
        if who != WHO_AM_I_VALUE:
            raise SensorError(self.device, f"no MPU-6050 at 0x{self.address:02X}: WHO_AM_I "
                                           f"0x{who:02X}, expected 0x{WHO_AM_I_VALUE:02X}")

    def init(self) -> None:
        """Check the ID, reset, wake on the gyro PLL, set rate, filter and ranges."""
        self.check_id()
        self.write8(REG_PWR_MGMT_1, PWR_RESET)
        self.sleep(RESET_S)
        self.write8(REG_PWR_MGMT_1, CLKSEL_PLL_XGYRO)   # SLEEP cleared
        c = self.config
        self.write8(REG_SMPLRT_DIV, c.divider)
        self.write8(REG_CONFIG, c.dlpf)
        self.write8(REG_GYRO_CONFIG, GYRO_RANGES_DPS.index(c.gyro_range_dps) << 3)
        self.write8(REG_ACCEL_CONFIG, ACCEL_RANGES_G.index(c.accel_range_g) << 3)
        if self.read8(REG_PWR_MGMT_1) & PWR_SLEEP:
            raise SensorError(self.device, f"MPU-6050 at 0x{self.address:02X} stays asleep "
                                           "after the wake-up write (PWR_MGMT_1 bit 6)")
        self.sleep(STARTUP_S)

    def data_ready(self) -> bool:
        """A new sample since the last call (reading INT_STATUS clears the flag)."""
        return bool(self.read8(REG_INT_STATUS) & DATA_RDY)

    def _to_body(self, chip: Sequence[float]) -> tuple[float, float, float]:
        (a0, s0), (a1, s1), (a2, s2) = self._axes
        return (s0 * chip[a0], s1 * chip[a1], s2 * chip[a2])

    def read_raw(self) -> tuple[tuple[float, float, float], tuple[float, float, float], float]:
        """(body rates rad/s without bias removal, body specific force m/s^2, deg C)."""
        b = self.read(REG_ACCEL_XOUT_H, BURST_LEN)
        v = _BURST.unpack(b)
        accel = self._to_body([x * self._accel_scale for x in v[0:3]])
        gyro = self._to_body([x * self._gyro_scale for x in v[4:7]])
        return gyro, accel, v[3] / 340.0 + 36.53

    def read_sample(self) -> ImuSample:
        """The latest sample, bias removed (one 14-byte burst)."""
        gyro, accel, temp = self.read_raw()
        bx, by, bz = self.bias
        return ImuSample((gyro[0] - bx, gyro[1] - by, gyro[2] - bz), accel, temp)

    def poll(self) -> ImuSample | None:
        """A sample when a new one is ready, else None (never waits)."""
        return self.read_sample() if self.data_ready() else None

    def calibrate(self, samples: int = CALIBRATION_SAMPLES, *,
                  timeout_s: float | None = None) -> tuple[float, float, float]:
        """Measure the gyro bias at rest (the mean of ``samples`` samples) and keep it.

        The zero-rate output is up to +-20 deg/s (PS 6.1), far more than the
        rotation the flow compensation must remove. A craft that moves during
        calibration (gyro spread above 1 deg/s, or |accel| off 1 g by more
        than 15 %) is refused with a SensorError; the old bias stays.
        """
        if samples < 10:
            raise SensorError(self.device, "MPU-6050 calibration needs at least 10 samples")
        period = 1.0 / self.config.actual_rate_hz
        deadline = self.now() + (timeout_s if timeout_s is not None else 4 * samples * period + 1)
        got: list[tuple[tuple[float, float, float], tuple[float, float, float]]] = []
        while len(got) < samples:
            if self.now() > deadline:
                raise SensorError(self.device, f"MPU-6050 gave {len(got)} of {samples} "
                                               "calibration samples in time (data ready "
                                               "never set?)")
            if self.data_ready():
                gyro, accel, _ = self.read_raw()
                got.append((gyro, accel))
            else:
                self.sleep(period / 2)
        n = float(len(got))
        mean = [sum(g[i] for g, _ in got) / n for i in range(3)]
        spread = max(math.sqrt(sum((g[i] - mean[i]) ** 2 for g, _ in got) / n)
                     for i in range(3))
        acc = [sum(a[i] for _, a in got) / n for i in range(3)]
        norm = math.sqrt(sum(x * x for x in acc))
        if math.degrees(spread) > CALIBRATION_MAX_SPREAD_DPS or \
                abs(norm / G - 1.0) > CALIBRATION_ACCEL_TOLERANCE:
            raise SensorError(self.device, "MPU-6050 calibration refused: the craft moved "
                                           f"(gyro spread {math.degrees(spread):.2f} deg/s, "
                                           f"|accel| {norm / G:.2f} g); keep it still")
        self.bias = (mean[0], mean[1], mean[2])
        return self.bias
