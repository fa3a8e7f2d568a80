"""Register-level models of the flow deck's sensors, behind simulated SPI and I2C buses.

The drivers of `pipilot.sensors` talk bytes to these exactly as to the chips:
`SimSpiBus` (spidev-like ``xfer2``) reaches a `Pmw3901Model`, `SimI2cBus`
(combined write/read with 16-bit register addresses) reaches a
`Vl53l1xModel`. What the sensors see comes from a truth provider, a callable
returning a `SensorTruth`: `ScriptedTruth` for the bench tool, or
``SimulatedCC3D.flowdeck_truth`` for the simulated craft. Truth goes into the
models only; what comes out is bytes, as on the rig.

Figures from the datasheets (PMW3901MB-TXQT; ST DS12385 and UM2356/UM2510),
see `pipilot.sensors.pmw3901` and `pipilot.sensors.vl53l1x`: 42 degree field
of view over 35 pixels, 7.4 rad/s maximum flow, working range from 80 mm;
VL53L1X model id 0xEACC, boot within 1.2 ms, 100 ms default timing budget,
4 m maximum range in the dark in long mode falling to about 0.73 m in
strong ambient light, sigma threshold and minimum signal rate from the
default configuration block. Curves the datasheets do not give (how SQUAL
falls with texture, light and height; how range noise grows) are modelling
assumptions, named as such where they are defined.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pipilot.core.clock import Clock
from pipilot.sensors import mpu6050 as mpu
from pipilot.sensors import pmw3901 as pmw
from pipilot.sensors import vl53l1x as vl
from pipilot.sim.mpu6050 import ImuTruth, ImuTruthProvider, Mpu6050Model

#: PMW3901 counts per radian of image motion: a tenth of a pixel, 35 pixels over 42 degrees.
COUNTS_PER_RAD = pmw.COUNTS_PER_RAD
#: VL53L1X maximum range in long mode: in the dark and in strong ambient light (DS12385).
VL_MAX_DARK_M = vl.LONG_MODE_MAX_M
VL_MAX_BRIGHT_M = 0.73
VL_MAX_SHORT_M = vl.SHORT_MODE_MAX_M
VL_MIN_M = 0.04
BUDGET_S = 0.100
OSC_CALIBRATE = 37
"""RESULT__OSC_CALIBRATE_VAL the model reports: with it the default block's
inter-measurement period (0x006C = 0x0F89) is the default 100 ms budget."""
BOOT_S = 0.0012


@dataclass(frozen=True)
class SensorTruth:
    """What the flow deck's sensors physically see at one instant."""

    height_m: float = 1.0
    """Height of the deck above flat ground, m."""
    velocity_body: tuple[float, float] = (0.0, 0.0)
    """Velocity over the ground along body x (forward) and y (right), m/s."""
    rates: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Body rates p, q, r (roll, pitch, yaw), rad/s."""
    roll: float = 0.0
    pitch: float = 0.0
    """Attitude, rad: the beam and the view reach the ground obliquely."""
    texture: float = 1.0
    """Floor quality 0..1 (0: a featureless surface)."""
    light: float = 1.0
    """Light on the floor for the flow camera 0..1 (0: dark)."""
    ambient: float = 0.0
    """Ambient infrared for the ranger 0..1 (1: strong sunlight)."""


TruthProvider = Callable[[], SensorTruth]


class ScriptedTruth:
    """A deck moving over a textured floor on a fixed path (``pipilot sensors --sim``).

    It hovers at ``height_m`` while swaying north-south and east-west with
    periods of 8 s and 11 s and 0.3 m/s amplitude, rolling and pitching with it.
    For the first ``still_s`` seconds it holds still where the path starts
    (an IMU measures its gyro bias then). ``imu()`` is the matching IMU truth.
    """

    def __init__(self, clock: Clock, height_m: float = 0.8, still_s: float = 0.0) -> None:
        self.clock = clock
        self.height_m = height_m
        self.still_s = still_s
        self.t0 = clock.now()

    def _t(self) -> float:
        return max(0.0, self.clock.now() - self.t0 - self.still_s)

    def __call__(self) -> SensorTruth:
        t = self._t()
        w1, w2 = 2 * math.pi / 8, 2 * math.pi / 11
        vx, vy = 0.3 * math.sin(w1 * t), 0.3 * math.sin(w2 * t)
        pitch, roll = -0.05 * math.cos(w1 * t), 0.05 * math.cos(w2 * t)
        q, p = 0.05 * w1 * math.sin(w1 * t), -0.05 * w2 * math.sin(w2 * t)
        return SensorTruth(height_m=self.height_m + 0.1 * math.sin(0.5 * t),
                           velocity_body=(vx, vy), rates=(p, q, 0.0), roll=roll, pitch=pitch)

    def imu(self) -> ImuTruth:
        """Body rates of the path, and the rotors' thrust as the only specific force."""
        s = self()
        return ImuTruth(rates=s.rates,
                        specific_force=(0.0, 0.0, -mpu.G / (math.cos(s.roll) * math.cos(s.pitch))))


def _slant(truth: SensorTruth) -> float:
    """Distance along the sensor's axis to flat ground (inf when it looks at the sky)."""
    c = math.cos(truth.roll) * math.cos(truth.pitch)
    return truth.height_m / c if c > 1e-3 else math.inf


def expected_squal(texture: float, height_m: float, distance_m: float, light: float) -> float:
    """The model's SQUAL before its noise. Assumptions (the datasheet gives no curve):
    it scales with texture, falls out of focus below 80 mm, with feature size beyond
    ~3 m along the view axis, and once the shutter is at its limit in the dark."""
    if not math.isfinite(distance_m):
        return 0.0
    focus = min(1.0, height_m / pmw.MIN_RANGE_M) ** 4
    far = 1.0 / (1.0 + (distance_m / 3.0) ** 4)
    return 0x90 * max(0.0, min(texture, 1.0)) * focus * far * min(1.0, max(light, 0.0) / 0.2)


def frame_noise_counts(squal: float, noise: float = 1.0) -> float:
    """Assumption: each frame's motion is off by this many counts rms (about a 45th
    of a pixel on a good floor, SQUAL 144), and it stays in the counts; ``noise``
    scales it ([sim] flow_noise)."""
    return noise * 0.5 * 0x40 / squal


class Pmw3901Model:
    """The PMW3901 seen through its registers.

    Image motion, in counts, along the sensor's X (the body's forward axis)
    and Y (right): ``COUNTS_PER_RAD * dt * (v / d + w)`` with ``d`` the
    distance along the view axis; forward motion and a nose-up pitch rate both
    move the image backwards, rightward motion and a left roll move it left.
    Beyond 7.4 rad/s the chip loses track: no motion, SQUAL near zero.
    Counts accumulate in signed 16-bit registers (saturating) until a burst
    reads and clears them. Until the performance-optimisation sequence has
    been written (its last write enables the LED pulsing) the chip reports
    a dark image.
    """

    def __init__(self, truth: TruthProvider, clock: Clock, *,
                 rng: np.random.Generator | None = None, product_id: int = pmw.PRODUCT_ID,
                 scale: float = 1.0, noise: float = 1.0) -> None:
        self.truth = truth
        self.clock = clock
        self.rng = rng or np.random.default_rng(0)
        self.product_id = product_id
        self.scale = scale
        self.noise = noise
        """The count noise, times the model's own (see `_integrate`)."""
        self._reset()

    def _reset(self) -> None:
        self.bank = 0
        self.regs: dict[tuple[int, int], int] = {
            (0, pmw.REG_PRODUCT_ID): self.product_id,
            (0, pmw.REG_INVERSE_PRODUCT_ID): ~self.product_id & 0xFF,
            (0x0E, 0x67): 0x80, (0x0E, 0x73): 0x00, (0x0E, 0x70): 0x14, (0x0E, 0x71): 0x64,
        }
        self.led_on = False
        self._acc = np.zeros(2)        # counts not yet read (float)
        self._last = self.clock.now()
        self.squal = 0
        self.shutter = 0x1FFF
        self.lost = False

    def _integrate(self) -> None:
        now = self.clock.now()
        dt, self._last = max(0.0, now - self._last), now
        t = self.truth()
        self.lost = False
        if not self.led_on:
            self.squal, self.shutter = 0, 0x1FFF
            return
        d = _slant(t)
        p, q, _ = t.rates
        vx, vy = t.velocity_body
        rate = (vx / d + q, vy / d - p) if math.isfinite(d) else (p, q)
        self.shutter = min(0x1FFF, int(0x0100 / max(t.light, 1e-3)))
        squal = expected_squal(t.texture, t.height_m, d, t.light)
        if float(np.hypot(*rate)) > pmw.MAX_RATE_RAD_S:
            self.lost, squal = True, min(squal, 4)
        self.squal = int(min(255, max(0, squal + self.rng.normal(0, 2))))
        if self.lost or self.squal < pmw.SQUAL_MIN:
            return
        per_frame = frame_noise_counts(self.squal, self.noise)
        noise = self.rng.normal(0, per_frame * math.sqrt(dt * pmw.FRAME_RATE_HZ), 2)
        # on Python floats, the operations numpy's would do (np.clip is min(max(...)))
        k = self.scale * COUNTS_PER_RAD
        self._acc[:] = [min(max(acc + (k * r * dt + n), -32768), 32767) for acc, r, n in
                        zip(self._acc.tolist(), rate, noise.tolist(), strict=True)]

    def _burst(self) -> list[int]:
        self._integrate()
        counts = np.trunc(self._acc)
        self._acc -= counts
        dx, dy = int(counts[0]), int(counts[1])
        motion = 0x80 if (dx or dy) else 0x00
        b = [motion, 0x00, dx & 0xFF, (dx >> 8) & 0xFF, dy & 0xFF, (dy >> 8) & 0xFF,
             self.squal, min(255, self.squal * 2), 0xC0 if self.led_on else 0, 0x10,
             (self.shutter >> 8) & 0x1F, self.shutter & 0xFF]
        return b

    def xfer2(self, values: list[int]) -> list[int]:
        """One chip-select-low transfer: a register write, read or motion burst."""
        if not values:
            return []
        addr = values[0]
        if addr & 0x80:
            reg = addr & 0x7F
            value = values[1] if len(values) > 1 else 0
            self._write(reg, value)
            return [0] * len(values)
        if addr == pmw.REG_MOTION_BURST and self.bank == 0:
            data = self._burst()
            return [0, *data[: len(values) - 1]] + [0] * max(0, len(values) - 1 - len(data))
        return [0] + [self.regs.get((self.bank, addr), 0)] * (len(values) - 1)

    def _write(self, reg: int, value: int) -> None:
        if reg == pmw.REG_BANK:
            self.bank = value
        elif self.bank == 0 and reg == pmw.REG_POWER_UP_RESET and value == pmw.RESET_VALUE:
            self._reset()
        elif self.bank == 0x14 and reg == 0x6F and value == 0x1C:
            self._integrate()
            self.led_on = True
        else:
            self.regs[(self.bank, reg)] = value


class Vl53l1xModel:
    """The VL53L1X seen through its 16-bit register map.

    Boots ``BOOT_S`` after power-up (0x00E5 non-zero), then ranges once 0x0087
    = 0x40, a result every timing budget or inter-measurement period,
    whichever is longer. The distance mode is read from VCSEL_PERIOD_A (0x0060)
    and the budget from TIMEOUT_MACROP_A (0x005E) through the driver's UM2510
    tables (an unknown pair ranges as the default block: long, 100 ms);
    ``budget_s`` set on the model overrides both (tests). Each result:
    distance along the beam with noise growing with distance and falling with
    the budget (assumed sigma (1 mm + 2.5 mm per m^1.5) x sqrt(100 ms /
    budget): photon counts grow with integration time), a signal rate falling
    with the square of the distance so that it reaches the configured minimum
    (0x0066, 9.7 MCPS) at the maximum range, which in long mode shrinks from
    4 m in the dark to 0.73 m in strong ambient light and in short mode is
    1.3 m in both (DS12385); a range past it is a signal failure, one whose
    sigma exceeds the configured threshold (0x0064, 14.2 mm) a sigma failure.
    """

    def __init__(self, truth: TruthProvider, clock: Clock, *,
                 rng: np.random.Generator | None = None, model_id: int = vl.MODEL_ID,
                 budget_s: float | None = None, scale: float = 1.0) -> None:
        self.truth = truth
        self.clock = clock
        self.rng = rng or np.random.default_rng(1)
        self.budget_s = budget_s
        self.scale = scale
        self.mem = bytearray(0x10000)
        self.mem[vl.REG_MODEL_ID:vl.REG_MODEL_ID + 2] = model_id.to_bytes(2, "big")
        self.mem[vl.REG_OSC_CALIBRATE:vl.REG_OSC_CALIBRATE + 2] = OSC_CALIBRATE.to_bytes(2, "big")
        self.power_on = clock.now()
        self.ranging = False
        self.next_result = math.inf
        self.results = 0

    @property
    def distance_mode(self) -> str:
        vcsel = self.mem[vl.REG_VCSEL_PERIOD_A]
        return next((m for m, v in vl.MODES.items() if v[1] == vcsel), vl.DEFAULT_MODE)

    @property
    def timing_budget_s(self) -> float:
        """The budget the timeout registers hold for the current mode (UM2510's tables)."""
        a = int.from_bytes(self.mem[vl.REG_TIMEOUT_A:vl.REG_TIMEOUT_A + 2], "big")
        table = vl.BUDGETS[self.distance_mode]
        ms = next((b for b, (ta, _) in table.items() if ta == a), vl.DEFAULT_BUDGET_MS)
        return ms / 1000.0

    @property
    def period_s(self) -> float:
        """Time between results: ``budget_s`` if set, else max(budget, inter-measurement)."""
        if self.budget_s is not None:
            return self.budget_s
        ticks = int.from_bytes(self.mem[vl.REG_INTERMEASUREMENT:vl.REG_INTERMEASUREMENT + 4], "big")
        return max(self.timing_budget_s, ticks / (OSC_CALIBRATE * 1.075) / 1000.0)

    def _update(self) -> None:
        now = self.clock.now()
        self.mem[vl.REG_SYSTEM_STATUS] = 0x03 if now >= self.power_on + BOOT_S else 0x00
        if not self.ranging or now < self.next_result:
            return
        period = self.period_s
        while self.next_result + period <= now:   # results nobody read are lost
            self.next_result += period
        self.next_result += period
        self._measure()

    def _measure(self) -> None:
        t = self.truth()
        d = _slant(t) * self.scale
        budget = self.budget_s if self.budget_s is not None else self.timing_budget_s
        sigma_m = (1.0 + 2.5 * (min(d, 10.0) ** 1.5)) / 1000.0 * \
            math.sqrt(BUDGET_S / min(max(budget, 0.001), 10.0))
        ambient = max(0.0, min(t.ambient, 1.0))
        if self.distance_mode == "short":
            max_m = VL_MAX_SHORT_M
        else:
            max_m = VL_MAX_DARK_M + (VL_MAX_BRIGHT_M - VL_MAX_DARK_M) * ambient
        min_rate = int.from_bytes(self.mem[0x66:0x68], "big") / 128.0
        sigma_limit_m = int.from_bytes(self.mem[0x64:0x66], "big") / 4.0 / 1000.0
        rate = min_rate * (max_m / d) ** 2 if d > 0 else 511.0
        if not math.isfinite(d) or d > max_m:
            raw, mm = 4, 0xFFFF if not math.isfinite(d) else int(min(d, 65.535) * 1000)
            rate = min(rate, min_rate * 0.9)
        else:
            measured = d + self.rng.normal(0.0, sigma_m)
            raw = 6 if sigma_limit_m and sigma_m > sigma_limit_m else 9
            mm = int(min(max(measured, 0.0), 65.535) * 1000)
        self.mem[vl.REG_RANGE_STATUS] = raw
        self.mem[vl.REG_RANGE_MM:vl.REG_RANGE_MM + 2] = mm.to_bytes(2, "big")
        self.mem[vl.REG_SIGNAL_RATE:vl.REG_SIGNAL_RATE + 2] = \
            min(0xFFFF, int(rate * 128)).to_bytes(2, "big")
        active_low = bool(self.mem[vl.REG_GPIO_HV_MUX_CTRL] & 0x10)
        level = 0 if active_low else 1
        self.mem[vl.REG_GPIO_TIO_HV_STATUS] = (self.mem[vl.REG_GPIO_TIO_HV_STATUS] & ~1) | level
        self.results += 1

    def _clear(self) -> None:
        active_low = bool(self.mem[vl.REG_GPIO_HV_MUX_CTRL] & 0x10)
        idle = 1 if active_low else 0
        self.mem[vl.REG_GPIO_TIO_HV_STATUS] = (self.mem[vl.REG_GPIO_TIO_HV_STATUS] & ~1) | idle

    def read(self, reg: int, length: int) -> bytes:
        self._update()
        if reg + length > len(self.mem):
            raise OSError(121, "Remote I/O error")
        return bytes(self.mem[reg:reg + length])

    def write(self, reg: int, data: bytes) -> None:
        self._update()
        if reg + len(data) > len(self.mem):
            raise OSError(121, "Remote I/O error")
        if not self.mem[vl.REG_SYSTEM_STATUS]:
            raise OSError(121, "Remote I/O error")   # still booting: no ACK
        for i, b in enumerate(data):
            a = reg + i
            if a == vl.REG_MODE_START:
                self._mode(b)
            elif a == vl.REG_INTERRUPT_CLEAR:
                if b & 1:
                    self._clear()
            elif a != vl.REG_GPIO_TIO_HV_STATUS:
                self.mem[a] = b

    def i2c_write(self, data: bytes) -> None:
        """One I2C write message: a 16-bit big-endian register address, then data."""
        if len(data) < 2:
            raise OSError(22, "Invalid argument")
        self.write(int.from_bytes(data[:2], "big"), bytes(data[2:]))

    def i2c_write_read(self, data: bytes, length: int) -> bytes:
        """A write (register address, maybe data) then a read with a repeated start."""
        if len(data) < 2:
            raise OSError(22, "Invalid argument")
        reg = int.from_bytes(data[:2], "big")
        if len(data) > 2:
            self.write(reg, bytes(data[2:]))
        return self.read(reg, length)

    def _mode(self, value: int) -> None:
        self.mem[vl.REG_MODE_START] = value
        if value == vl.START_RANGING and not self.ranging:
            self.ranging = True
            self.next_result = self.clock.now() + self.period_s
        elif value == vl.STOP_RANGING:
            self.ranging = False
            self.next_result = math.inf


class SimSpiBus:
    """A spidev-like bus to one device; ``fail`` makes the next transfers raise it."""

    def __init__(self, device: Pmw3901Model | None) -> None:
        self.device = device
        self.fail: OSError | None = None
        self.transfers = 0

    def xfer2(self, values: list[int]) -> list[int]:
        if self.fail is not None:
            raise self.fail
        self.transfers += 1
        if self.device is None:        # nothing on the bus: MISO floats high
            return [0xFF] * len(values)
        return self.device.xfer2(list(values))


class SimI2cDevice(Protocol):
    """A device model on `SimI2cBus`: it parses its own register addressing."""

    def i2c_write(self, data: bytes) -> None: ...

    def i2c_write_read(self, data: bytes, length: int) -> bytes: ...


class SimI2cBus:
    """An I2C bus with devices by 7-bit address; an absent address NACKs (EREMOTEIO).

    Several devices share it, as on the Pi's I2C1: the VL53L1X at 0x29 (16-bit
    register addresses) and an MPU-6050 at 0x68 (8-bit ones); each device
    model parses the bytes of its own messages.
    """

    def __init__(self, devices: Mapping[int, SimI2cDevice] | None = None) -> None:
        self.devices: dict[int, SimI2cDevice] = dict(devices or {})
        self.fail: OSError | None = None
        self.transfers = 0

    def _device(self, addr: int) -> SimI2cDevice:
        if self.fail is not None:
            raise self.fail
        self.transfers += 1
        dev = self.devices.get(addr)
        if dev is None:
            raise OSError(121, "Remote I/O error")
        return dev

    def write(self, addr: int, data: bytes) -> None:
        self._device(addr).i2c_write(bytes(data))

    def write_read(self, addr: int, data: bytes, length: int) -> bytes:
        return self._device(addr).i2c_write_read(bytes(data), length)


@dataclass
class SimFlowDeck:
    """A Flow deck v2 on simulated buses, both sensors fed by one truth provider."""

    spi: SimSpiBus
    i2c: SimI2cBus
    flow: Pmw3901Model
    ranger: Vl53l1xModel
    imu: Mpu6050Model | None = None

    @classmethod
    def create(cls, truth: TruthProvider, clock: Clock, *, seed: int = 0,
               imu_truth: ImuTruthProvider | None = None,
               vibration_dps: float = 0.0) -> SimFlowDeck:
        """The deck; with ``imu_truth`` an MPU-6050 model joins the VL53L1X on the I2C bus."""
        rng = np.random.default_rng(seed)
        flow = Pmw3901Model(truth, clock, rng=rng)
        ranger = Vl53l1xModel(truth, clock, rng=rng)
        devices: dict[int, SimI2cDevice] = {vl.ADDRESS: ranger}
        imu = None
        if imu_truth is not None:
            imu = Mpu6050Model(imu_truth, clock, rng=np.random.default_rng(seed + 1),
                               vibration_dps=vibration_dps)
            devices[mpu.ADDRESS] = imu
        return cls(SimSpiBus(flow), SimI2cBus(devices), flow, ranger, imu)
