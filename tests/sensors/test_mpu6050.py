"""The MPU-6050 driver against its register model on the simulated I2C bus."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from pipilot.core.clock import VirtualClock
from pipilot.sensors import mpu6050 as mpu
from pipilot.sensors.bus import SensorError
from pipilot.sensors.mpu6050 import ImuConfig, Mpu6050, parse_mount
from pipilot.sim.flowdeck import SimI2cBus
from pipilot.sim.mpu6050 import ImuTruth, Mpu6050Model

G = mpu.G


class Truth:
    def __init__(self) -> None:
        self.value = ImuTruth()

    def __call__(self) -> ImuTruth:
        return self.value


@dataclass
class ImuRig:
    clock: VirtualClock
    truth: Truth
    chip: Mpu6050Model
    bus: SimI2cBus
    imu: Mpu6050

    def sample(self) -> mpu.ImuSample:
        """The next fresh sample (advances time until data ready)."""
        for _ in range(1000):
            s = self.imu.poll()
            if s is not None:
                return s
            self.clock.advance(0.0005)
        raise AssertionError("no sample")


def make(*, config: ImuConfig | None = None, chip_mount: str = "x,-y,-z",
         bias_dps: tuple[float, float, float] = (3.0, -7.0, 12.0), vibration_dps: float = 0.0,
         who_am_i: int = 0x68, init: bool = True, seed: int = 0) -> ImuRig:
    clock = VirtualClock(50.0)
    truth = Truth()
    chip = Mpu6050Model(truth, clock, rng=np.random.default_rng(seed), who_am_i=who_am_i,
                        mount=chip_mount, gyro_bias_dps=bias_dps, vibration_dps=vibration_dps)
    bus = SimI2cBus({0x68: chip})
    imu = Mpu6050(bus, device="sim:i2c", config=config, sleep=clock.advance, now=clock.now)
    if init:
        imu.init()
    return ImuRig(clock, truth, chip, bus, imu)


def test_init_checks_the_id_wakes_and_configures() -> None:
    rig = make(config=ImuConfig(rate_hz=200, dlpf=3, gyro_range_dps=1000, accel_range_g=4))
    regs = rig.chip.regs
    assert regs[mpu.REG_PWR_MGMT_1] == 0x01                   # awake, PLL on the X gyro
    assert regs[mpu.REG_SMPLRT_DIV] == 4                      # 1 kHz / (1 + 4) = 200 Hz
    assert regs[mpu.REG_CONFIG] == 3
    assert regs[mpu.REG_GYRO_CONFIG] == 2 << 3 and regs[mpu.REG_ACCEL_CONFIG] == 1 << 3
    assert rig.imu.config.actual_rate_hz == 200


def test_the_chip_powers_up_asleep_and_gives_nothing_until_woken() -> None:
    rig = make(init=False)
    assert rig.chip.regs[mpu.REG_PWR_MGMT_1] & mpu.PWR_SLEEP
    rig.clock.advance(1.0)
    assert not rig.imu.data_ready() and rig.chip.samples == 0
    rig.imu.init()
    rig.sample()
    assert rig.chip.samples >= 1


def test_samples_come_at_the_configured_rate() -> None:
    rig = make(config=ImuConfig(rate_hz=500, dlpf=2))
    rig.sample()
    got = 0
    for _ in range(1000):                       # 1 s in 1 ms steps
        rig.clock.advance(0.001)
        if rig.imu.poll() is not None:
            got += 1
    assert got == pytest.approx(500, abs=2)


def test_a_still_level_chip_reads_minus_one_g_down_and_its_bias() -> None:
    rig = make(bias_dps=(3.0, -7.0, 12.0))
    s = rig.sample()
    # face up, X forward: chip (x, y, z) -> body (x, -y, -z)
    assert np.degrees(s.rates) == pytest.approx((3.0, 7.0, -12.0), abs=0.3)
    assert s.accel[2] == pytest.approx(-G, abs=0.9)          # zero-g offset up to 80 mg
    assert abs(s.accel[0]) < 0.6 and abs(s.accel[1]) < 0.6
    assert s.temperature_c == pytest.approx(30.0, abs=0.01)


@pytest.mark.parametrize("rng_dps", [250, 500, 1000, 2000])
def test_rates_scale_to_rad_per_s_at_every_range(rng_dps: int) -> None:
    rig = make(config=ImuConfig(gyro_range_dps=rng_dps), bias_dps=(0.0, 0.0, 0.0))
    rig.truth.value = ImuTruth(rates=(0.5, -1.0, 2.0))
    rig.clock.advance(0.05)                      # past the DLPF's settling
    s = rig.sample()
    lsb = math.radians(1.0) / mpu.GYRO_LSB_PER_DPS[mpu.GYRO_RANGES_DPS.index(rng_dps)]
    assert s.rates == pytest.approx((0.5, -1.0, 2.0), abs=3 * lsb + 0.005)


def test_rates_beyond_the_range_saturate() -> None:
    rig = make(config=ImuConfig(gyro_range_dps=250), bias_dps=(0.0, 0.0, 0.0))
    rig.truth.value = ImuTruth(rates=(math.radians(400), 0.0, 0.0))
    rig.clock.advance(0.05)
    assert math.degrees(rig.sample().rates[0]) == pytest.approx(250, abs=0.5)


@pytest.mark.parametrize("range_g", [2, 4, 8, 16])
def test_accel_scales_to_m_per_s2(range_g: int) -> None:
    rig = make(config=ImuConfig(accel_range_g=range_g))
    rig.chip.accel_bias[:] = 0.0
    rig.truth.value = ImuTruth(specific_force=(1.5, -2.5, -G))
    rig.clock.advance(0.05)
    mean = np.mean([rig.sample().accel for _ in range(50)], axis=0)   # noise 0.05 m/s^2 rms
    lsb = G / mpu.ACCEL_LSB_PER_G[mpu.ACCEL_RANGES_G.index(range_g)]
    assert mean == pytest.approx((1.5, -2.5, -G), abs=0.03 + lsb)


@pytest.mark.parametrize("mount", ["x,-y,-z", "y,x,-z", "-x,y,-z", "z,y,-x", "-y,-x,-z"])
def test_axis_mapping_undoes_the_mounting(mount: str) -> None:
    rig = make(config=ImuConfig(mount=mount), chip_mount=mount, bias_dps=(0.0, 0.0, 0.0))
    rig.chip.accel_bias[:] = 0.0
    rig.truth.value = ImuTruth(rates=(0.3, -0.6, 0.9), specific_force=(1.0, 2.0, -G))
    rig.clock.advance(0.05)
    s = rig.sample()
    assert s.rates == pytest.approx((0.3, -0.6, 0.9), abs=0.01)
    assert s.accel == pytest.approx((1.0, 2.0, -G), abs=0.25)    # 5 sigma of the noise


def test_a_wrong_mounting_in_the_driver_shows_in_the_axes() -> None:
    rig = make(config=ImuConfig(mount="x,-y,-z"), chip_mount="y,x,-z", bias_dps=(0.0, 0.0, 0.0))
    rig.truth.value = ImuTruth(rates=(0.5, 0.0, 0.0))
    rig.clock.advance(0.05)
    s = rig.sample()
    assert abs(s.rates[0]) < 0.01 and s.rates[1] == pytest.approx(-0.5, abs=0.01)


@pytest.mark.parametrize("bad", ["x,y", "x,y,y", "a,b,c", "x,y,-z"])
def test_bad_mountings_are_one_clear_error(bad: str) -> None:
    with pytest.raises(SensorError, match=r"MPU-6050: (bad mounting|mounting .* mirror)"):
        parse_mount(bad)


def test_bias_calibration_at_rest_removes_the_zero_rate_output() -> None:
    rig = make(bias_dps=(15.0, -18.0, 9.0), vibration_dps=0.25)
    before = rig.sample()
    assert math.degrees(abs(before.rates[0])) > 10
    bias = rig.imu.calibrate()
    assert np.degrees(bias) == pytest.approx((15.0, 18.0, -9.0), abs=0.1)
    rig.truth.value = ImuTruth(rates=(0.2, 0.1, -0.3))
    rig.clock.advance(0.05)
    means = np.mean([rig.sample().rates for _ in range(500)], axis=0)
    # what is left: the calibration's and this mean's share of 0.26 deg/s noise
    assert means == pytest.approx((0.2, 0.1, -0.3), abs=math.radians(0.15))


def test_calibration_refuses_a_moving_craft_and_keeps_the_old_bias() -> None:
    rig = make()
    t0 = rig.clock.now()

    class Swaying(Truth):
        def __call__(self) -> ImuTruth:
            return ImuTruth(rates=(0.2 * math.sin(20 * (rig.clock.now() - t0)), 0.0, 0.0))

    rig.chip.truth = Swaying()
    with pytest.raises(SensorError, match="calibration refused: the craft moved"):
        rig.imu.calibrate()
    assert rig.imu.bias == (0.0, 0.0, 0.0)


def test_calibration_without_data_ready_times_out() -> None:
    rig = make()
    rig.chip.regs[mpu.REG_PWR_MGMT_1] |= mpu.PWR_SLEEP     # asleep behind the driver's back
    rig.chip._next_sample = math.inf
    with pytest.raises(SensorError, match="gave 0 of 500 calibration samples in time"):
        rig.imu.calibrate()


def test_a_wrong_id_names_what_answered() -> None:
    with pytest.raises(SensorError, match=r"^sim:i2c: no MPU-6050 at 0x68: WHO_AM_I 0x98, "
                                          r"expected 0x68$"):
        make(who_am_i=0x98)


def test_no_device_at_the_address_is_one_line() -> None:
    clock = VirtualClock()
    imu = Mpu6050(SimI2cBus({}), device="/dev/i2c-1", sleep=clock.advance, now=clock.now)
    with pytest.raises(SensorError, match=r"^/dev/i2c-1: MPU-6050 at 0x68: read of 0x75 failed: "
                                          r"Remote I/O error \(no device answers .*AD0\)$"):
        imu.init()


def test_a_bus_error_mid_flight_is_one_sensor_error() -> None:
    rig = make()
    rig.bus.fail = OSError(110, "Connection timed out")
    with pytest.raises(SensorError, match=r"^sim:i2c: MPU-6050 at 0x68: read of 0x3A failed: "
                                          r"Connection timed out$"):
        rig.imu.poll()


def test_a_short_read_is_an_error() -> None:
    rig = make()

    class Short:
        def write(self, addr: int, data: bytes) -> None: ...

        def write_read(self, addr: int, data: bytes, length: int) -> bytes:
            return b"\x00" * (length - 1)

    rig.imu.i2c = Short()
    with pytest.raises(SensorError, match="read of 0x3B returned 13 bytes for 14"):
        rig.imu.read_sample()


@pytest.mark.parametrize(("kw", "msg"), [
    ({"rate_hz": 2000}, r"sample rate 2000 Hz: give 3.90625..1000 Hz with DLPF 2"),
    ({"rate_hz": float("nan")}, r"sample rate nan Hz"),
    ({"dlpf": 7}, r"DLPF setting 7: give 0..6"),
    ({"gyro_range_dps": 300}, r"gyro range 300 deg/s: give one of 250, 500, 1000, 2000"),
    ({"accel_range_g": 3}, r"accel range 3 g: give one of 2, 4, 8, 16"),
    ({"mount": "x,y,-z"}, r"mirror image"),
])
def test_bad_settings_are_clear_errors(kw: dict[str, object], msg: str) -> None:
    with pytest.raises(SensorError, match=msg):
        ImuConfig(**kw)  # type: ignore[arg-type]


def test_the_dlpf_delays_a_step_by_about_its_datasheet_delay() -> None:
    rig = make(config=ImuConfig(rate_hz=1000, dlpf=4), bias_dps=(0.0, 0.0, 0.0))
    rig.sample()
    rig.truth.value = ImuTruth(rates=(1.0, 0.0, 0.0))
    t0 = rig.clock.now()
    while rig.sample().rates[0] < 1.0 - math.exp(-1):
        pass
    assert rig.clock.now() - t0 == pytest.approx(mpu.DLPF[4][1], abs=0.0015)
    assert rig.imu.delay_s == mpu.DLPF[4][1]


def test_noise_matches_the_datasheet_density() -> None:
    rig = make(config=ImuConfig(rate_hz=1000, dlpf=2), bias_dps=(0.0, 0.0, 0.0))
    x = np.degrees([rig.sample().rates[0] for _ in range(2000)])
    expected = 0.005 * math.sqrt(98 * math.pi / 2)           # PS 6.1: 0.005 deg/s/sqrt(Hz)
    lsb = 1 / 65.5
    assert float(np.std(x)) == pytest.approx(math.hypot(expected, lsb / math.sqrt(12)), rel=0.2)


def test_shares_the_bus_with_the_ranger() -> None:
    from tests.sensors.conftest import make_rig

    deck_rig = make_rig()
    chip = Mpu6050Model(ImuTruth, deck_rig.clock)
    deck_rig.deck.i2c.devices[0x68] = chip
    imu = Mpu6050(deck_rig.deck.i2c, sleep=deck_rig.clock.advance, now=deck_rig.clock.now)
    imu.init()
    deck_rig.clock.advance(0.11)
    assert deck_rig.ranger.poll() is not None and imu.poll() is not None


def test_the_simulated_craft_feeds_the_imu_from_its_truth() -> None:
    from pipilot.sim.model import SimulatedCC3D

    sim = SimulatedCC3D(seed=1)
    rest = sim.imu_truth()
    assert rest.rates == (0.0, 0.0, 0.0)
    assert rest.specific_force == pytest.approx((0.0, 0.0, -G))
    sim.quad.truth.rate[:] = (0.1, -0.2, 0.3)
    assert sim.imu_truth().rates == pytest.approx((0.1, -0.2, 0.3))
