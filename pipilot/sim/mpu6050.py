"""Register-level model of an MPU-6050 on the simulated I2C bus, fed by the craft's truth.

`Mpu6050Model` answers `pipilot.sensors.mpu6050`'s driver byte for byte:
8-bit register pointer with auto-increment, WHO_AM_I, the power-up sleep
and the reset bit, the sample-rate divider, DLPF, full-scale ranges, the
data-ready flag and the 14-byte data block. It sits on `SimI2cBus` at 0x68
beside the VL53L1X at 0x29.

What it measures comes from a truth provider returning `ImuTruth` (body
rates and specific force in the body frame: `SimulatedCC3D.imu_truth`), is
turned into the chip's axes by its mounting, low-passed by the configured
DLPF (a first-order lag with the delay the register map gives), and carries
the datasheet's errors (PS-MPU-6000A-00, sections 6.1-6.2): gyro rate noise
density 0.005 deg/s/sqrt(Hz), accelerometer 400 ug/sqrt(Hz) over the
filter's noise bandwidth; a gyro zero-rate offset drawn within the
+-20 deg/s tolerance; accelerometer zero-g offsets within +-50 mg (X, Y) and
+-80 mg (Z). ``vibration_dps`` / ``vibration_mps2`` add the airframe's
vibration (not a chip figure: the simulated CC3D's own gyro carries
0.25 deg/s rms). Samples saturate at the full-scale range. The bias does not
drift with temperature in the model (the chip's ZRO varies by up to
+-20 deg/s over -40..85 deg C): a limit of what it shows.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipilot.core.clock import Clock
from pipilot.sensors import mpu6050 as mpu

GYRO_NOISE_DENSITY_DPS = 0.005
ACCEL_NOISE_DENSITY_G = 400e-6
GYRO_ZRO_DPS = 20.0
ACCEL_ZERO_G = (0.050, 0.050, 0.080)
TEMPERATURE_C = 30.0

_BLOCK = struct.Struct(f">{mpu.BURST_LEN // 2}h")
"""The data registers: accel X, Y, Z, temperature, gyro X, Y, Z, big-endian int16."""


@dataclass(frozen=True)
class ImuTruth:
    """What an IMU fixed to the airframe physically experiences, in the body frame (FRD)."""

    rates: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Body rates p, q, r, rad/s."""
    specific_force: tuple[float, float, float] = (0.0, 0.0, -mpu.G)
    """Non-gravitational acceleration along body x, y, z, m/s^2 (level at rest: -g on z)."""


ImuTruthProvider = Callable[[], ImuTruth]


class Mpu6050Model:
    """The MPU-6050 seen through its registers (see the module docstring for its errors)."""

    def __init__(self, truth: ImuTruthProvider, clock: Clock, *,
                 rng: np.random.Generator | None = None, who_am_i: int = mpu.WHO_AM_I_VALUE,
                 mount: str = "x,-y,-z", gyro_bias_dps: tuple[float, float, float] | None = None,
                 vibration_dps: float = 0.0, vibration_mps2: float = 0.0) -> None:
        self.truth = truth
        self.clock = clock
        self.rng = rng or np.random.default_rng(2)
        self.who_am_i = who_am_i
        self.axes = mpu.parse_mount(mount)
        self.gyro_bias = np.radians(np.array(gyro_bias_dps) if gyro_bias_dps is not None
                                    else self.rng.uniform(-GYRO_ZRO_DPS, GYRO_ZRO_DPS, 3))
        self.accel_bias = self.rng.uniform(-1, 1, 3) * np.array(ACCEL_ZERO_G) * mpu.G
        self.vibration = (math.radians(vibration_dps), vibration_mps2)
        self.samples = 0
        self._reset()

    def _reset(self) -> None:
        self.regs = bytearray(0x80)
        self.regs[mpu.REG_PWR_MGMT_1] = mpu.PWR_SLEEP
        self.regs[mpu.REG_WHO_AM_I] = self.who_am_i
        self._next_sample = math.inf
        self._gyro = np.zeros(3)        # chip frame, filtered, rad/s
        self._accel = np.zeros(3)       # chip frame, filtered, m/s^2
        self._last_filter = self.clock.now()

    # -- the chip's sampling ---------------------------------------------------------
    def _to_chip(self, body: tuple[float, float, float]) -> np.ndarray:
        return np.array(self._chip_axes(body), dtype=float)

    def _chip_axes(self, body: tuple[float, float, float]) -> list[float]:
        """`_to_chip` as Python floats."""
        chip = [0.0, 0.0, 0.0]
        for b, (axis, sign) in enumerate(self.axes):
            chip[axis] = sign * body[b]
        return chip

    def _rate_hz(self) -> float:
        dlpf = self.regs[mpu.REG_CONFIG] & 0x07
        base = 8000.0 if dlpf in (0, 7) else 1000.0
        return base / (1 + self.regs[mpu.REG_SMPLRT_DIV])

    def _update(self) -> None:
        now = self.clock.now()
        if now < self._next_sample:
            return
        period = 1.0 / self._rate_hz()
        skipped = math.floor((now - self._next_sample) / period)
        self._next_sample += (skipped + 1) * period
        self._sample(now)

    def _sample(self, now: float) -> None:
        t = self.truth()
        dlpf = self.regs[mpu.REG_CONFIG] & 0x07
        bandwidth, delay = mpu.DLPF.get(dlpf, mpu.DLPF[0])
        dt, self._last_filter = max(0.0, now - self._last_filter), now
        k = 1.0 - math.exp(-dt / delay)
        # Elementwise on Python floats: the operations numpy's would do, in the same order
        # (math.degrees multiplies by the same 180 / pi as np.degrees, and round() rounds
        # half to even on a float as on a numpy float), without numpy's per-call overhead.
        gyro_f = [f + k * (x - f) for f, x in
                  zip(self._gyro.tolist(), self._chip_axes(t.rates), strict=True)]
        accel_f = [f + k * (x - f) for f, x in
                   zip(self._accel.tolist(), self._chip_axes(t.specific_force), strict=True)]
        self._gyro[:] = gyro_f
        self._accel[:] = accel_f
        noise_bw = bandwidth * math.pi / 2
        g_sigma = math.hypot(math.radians(GYRO_NOISE_DENSITY_DPS) * math.sqrt(noise_bw),
                             self.vibration[0])
        a_sigma = math.hypot(ACCEL_NOISE_DENSITY_G * mpu.G * math.sqrt(noise_bw),
                             self.vibration[1])
        g_noise = self.rng.normal(0.0, g_sigma, 3).tolist()
        a_noise = self.rng.normal(0.0, a_sigma, 3).tolist()
        fs_g = (self.regs[mpu.REG_GYRO_CONFIG] >> 3) & 3
        fs_a = (self.regs[mpu.REG_ACCEL_CONFIG] >> 3) & 3
        g_lsb, a_lsb = mpu.GYRO_LSB_PER_DPS[fs_g], mpu.ACCEL_LSB_PER_G[fs_a]
        raw_g = [math.degrees(f + b + n) * g_lsb
                 for f, b, n in zip(gyro_f, self.gyro_bias.tolist(), g_noise, strict=True)]
        raw_a = [(f + b + n) / mpu.G * a_lsb
                 for f, b, n in zip(accel_f, self.accel_bias.tolist(), a_noise, strict=True)]
        temp = (TEMPERATURE_C - 36.53) * 340.0
        values = [*raw_a, temp, *raw_g]
        block = _BLOCK.pack(*(max(-32768, min(32767, round(v))) for v in values))
        self.regs[mpu.REG_ACCEL_XOUT_H:mpu.REG_ACCEL_XOUT_H + mpu.BURST_LEN] = block
        self.regs[mpu.REG_INT_STATUS] |= mpu.DATA_RDY
        self.samples += 1

    def _set(self, reg: int, value: int) -> None:
        if reg == mpu.REG_PWR_MGMT_1:
            if value & mpu.PWR_RESET:
                self._reset()
                return
            was_asleep = bool(self.regs[reg] & mpu.PWR_SLEEP)
            self.regs[reg] = value & 0x7F
            now = self.clock.now()
            if value & mpu.PWR_SLEEP:
                self._next_sample = math.inf
            elif was_asleep:
                t = self.truth()
                self._gyro, self._accel = self._to_chip(t.rates), self._to_chip(t.specific_force)
                self._last_filter = now
                self._next_sample = now + mpu.STARTUP_S
        elif reg in (mpu.REG_WHO_AM_I, mpu.REG_INT_STATUS) or \
                mpu.REG_ACCEL_XOUT_H <= reg < mpu.REG_ACCEL_XOUT_H + mpu.BURST_LEN:
            return   # read-only
        else:
            self.regs[reg] = value

    # -- the I2C side ------------------------------------------------------------------
    def i2c_write(self, data: bytes) -> None:
        """A register address, then values written from it on (auto-increment)."""
        if not data:
            raise OSError(22, "Invalid argument")
        self._update()
        reg = data[0]
        for i, value in enumerate(data[1:]):
            if reg + i >= len(self.regs):
                raise OSError(121, "Remote I/O error")
            self._set(reg + i, value)

    def i2c_write_read(self, data: bytes, length: int) -> bytes:
        """Set the register pointer (and maybe write), then read ``length`` bytes from it."""
        if len(data) > 1:
            self.i2c_write(data)
        if not data:
            raise OSError(22, "Invalid argument")
        self._update()
        reg = data[0]
        if reg + length > len(self.regs):
            raise OSError(121, "Remote I/O error")
        out = bytes(self.regs[reg:reg + length])
        if reg <= mpu.REG_INT_STATUS < reg + length:
            self.regs[mpu.REG_INT_STATUS] &= ~mpu.DATA_RDY & 0xFF
        return out
