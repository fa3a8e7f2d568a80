"""The VL53L1X driver against the register model: boot, IDs, data-ready, status, range."""

from __future__ import annotations

import math
import statistics

import pytest

from pipilot.core.clock import VirtualClock
from pipilot.sensors.bus import SensorError
from pipilot.sensors.vl53l1x import (
    CONFIG_START,
    DEFAULT_CONFIG,
    REG_MODE_START,
    RangeSample,
    Vl53l1x,
    range_status,
)
from pipilot.sim.flowdeck import BUDGET_S, SensorTruth, SimI2cBus, Vl53l1xModel
from tests.sensors.conftest import Rig, make_rig


def next_range(rig: Rig, limit_s: float = 1.0) -> RangeSample:
    """Poll every 5 ms until a result is ready."""
    for _ in range(round(limit_s / 0.005)):
        rig.clock.advance(0.005)
        r = rig.ranger.poll()
        if r is not None:
            return r
    raise AssertionError("no range within the limit")


def ranges(rig: Rig, n: int) -> list[RangeSample]:
    return [next_range(rig) for _ in range(n)]


def test_default_block_covers_0x2d_to_0x87() -> None:
    assert CONFIG_START + len(DEFAULT_CONFIG) - 1 == REG_MODE_START


def test_init_waits_for_boot_loads_the_block_and_starts_ranging() -> None:
    rig = make_rig(init=False)
    rig.deck.ranger.power_on = rig.clock.now()     # powered just now: 1.2 ms to boot
    t0 = rig.clock.now()
    rig.ranger.init()
    assert rig.clock.now() - t0 >= 0.0012
    m = rig.deck.ranger
    # 0x31 is the status the device drives, 0x86/0x87 are commands: the rest is stored
    assert m.ranging and m.mem[CONFIG_START:0x31] == DEFAULT_CONFIG[:4]
    # the mode and budget registers are written after the block (long, 100 ms: UM2510's)
    configured = {0x4B, 0x5E, 0x5F, 0x60, 0x61, 0x62, 0x63, 0x69, 0x6C, 0x6D, 0x6E, 0x6F,
                  0x78, 0x79, 0x7A, 0x7B}
    assert all(m.mem[a] == DEFAULT_CONFIG[a - CONFIG_START] for a in range(0x32, 0x86)
               if a not in configured)
    assert m.mem[0x5E:0x60] == b"\x01\xcc" and m.mem[0x61:0x63] == b"\x01\xea"
    assert m.distance_mode == "long" and m.timing_budget_s == BUDGET_S
    assert m.results == 1 and rig.clock.now() - t0 >= BUDGET_S     # the throw-away range
    assert (m.mem[0x0008], m.mem[0x000B]) == (0x09, 0x00)
    assert rig.ranger.poll() is None                # the next range is a fresh one


def test_a_ranger_that_never_ranges_is_an_error() -> None:
    rig = make_rig(init=False)
    rig.deck.ranger.budget_s = math.inf
    with pytest.raises(SensorError, match="no first range within 1 s"):
        rig.ranger.init()


def test_boot_that_never_ends_is_an_error() -> None:
    rig = make_rig(init=False)
    rig.deck.ranger.power_on = math.inf
    with pytest.raises(SensorError, match="did not finish booting within 100 ms"):
        rig.ranger.init()


def test_a_wrong_model_id_names_what_was_read() -> None:
    clock = VirtualClock()
    bus = SimI2cBus({0x29: Vl53l1xModel(SensorTruth, clock, model_id=0xEEAA)})
    with pytest.raises(SensorError, match=r"/dev/i2c-1: no VL53L1X at 0x29: model id 0xEEAA, "
                                          r"expected 0xEACC"):
        Vl53l1x(bus, device="/dev/i2c-1", now=clock.now, sleep=clock.advance).init()


def test_no_device_at_the_address_is_one_line() -> None:
    with pytest.raises(SensorError, match=r"VL53L1X at 0x29: read of 0x010F failed: "
                                          r"Remote I/O error .no device answers"):
        Vl53l1x(SimI2cBus({}), sleep=lambda s: None).init()


def test_a_bus_error_mid_flight_is_one_sensor_error(rig: Rig) -> None:
    rig.deck.i2c.fail = OSError(110, "Connection timed out")
    with pytest.raises(SensorError, match=r"sim:i2c: VL53L1X at 0x29: read of 0x0031 failed: "
                                          r"Connection timed out$"):
        rig.ranger.poll()


def test_data_ready_comes_once_per_budget_and_clears_on_read(rig: Rig) -> None:
    assert rig.ranger.poll() is None                       # just started: nothing yet
    rig.clock.advance(BUDGET_S * 0.9)
    assert not rig.ranger.data_ready()
    rig.clock.advance(BUDGET_S * 0.2)
    assert rig.ranger.data_ready()
    assert rig.ranger.read_range().valid
    assert not rig.ranger.data_ready()                     # interrupt cleared
    t0 = rig.clock.now()
    next_range(rig)
    assert rig.clock.now() - t0 == pytest.approx(BUDGET_S, abs=0.011)


def test_stop_stops_the_results(rig: Rig) -> None:
    next_range(rig)
    rig.ranger.stop()
    rig.clock.advance(1.0)
    assert rig.ranger.poll() is None


def test_range_is_the_slant_distance(rig: Rig) -> None:
    rig.truth.set(height_m=1.5, roll=math.radians(20), pitch=math.radians(-10))
    got = statistics.mean(r.range_m for r in ranges(rig, 20))
    assert got == pytest.approx(1.5 / (math.cos(math.radians(20)) * math.cos(math.radians(10))),
                                abs=0.005)


def test_noise_grows_with_distance() -> None:
    def spread(h: float) -> float:
        rig = make_rig(seed=3)
        rig.truth.set(height_m=h)
        return statistics.stdev(r.range_m for r in ranges(rig, 60))

    near, far = spread(0.3), spread(3.0)
    assert near < 0.004 and 0.008 < far < 0.03 and far > 3 * near


def test_beyond_the_maximum_range_is_a_signal_failure(rig: Rig) -> None:
    rig.truth.set(height_m=3.8)
    assert next_range(rig).valid
    rig.truth.set(height_m=4.3)
    r = next_range(rig)
    assert not r.valid and r.status == 2 and "out of range" in r.status_text
    assert r.signal_mcps < 1.0                  # below the block's minimum rate, 0x0080 in 9.7


def test_sunlight_shortens_the_range(rig: Rig) -> None:
    rig.truth.set(height_m=1.0, ambient=1.0)
    assert next_range(rig).status == 2
    rig.truth.set(height_m=0.5)
    assert next_range(rig).valid


def test_looking_at_the_sky_is_out_of_range(rig: Rig) -> None:
    rig.truth.set(roll=math.radians(95))
    r = next_range(rig)
    assert r.status == 2 and not r.valid


def test_a_lower_sigma_threshold_gives_sigma_failures(rig: Rig) -> None:
    rig.ranger.write(0x0064, (4 * 5).to_bytes(2, "big"))       # 5 mm in 14.2 format
    rig.truth.set(height_m=3.0)                                  # sigma ~14 mm there
    assert next_range(rig).status == 1
    rig.truth.set(height_m=0.3)
    assert next_range(rig).valid


def test_status_mapping_follows_the_uld_table() -> None:
    assert [range_status(raw) for raw in (9, 6, 4, 8, 5, 3, 7, 0xE9)] == [0, 1, 2, 3, 4, 5, 7, 0]
    assert range_status(0) == 255 and range_status(31) == 255


def test_active_low_interrupt_polarity_is_honoured() -> None:
    rig = make_rig(init=False)
    rig.ranger.init()
    rig.ranger.stop()
    rig.ranger.write(0x0030, b"\x11")          # bit 4: active low
    rig.ranger._ready_level = 0 if rig.ranger.read8(0x0030) & 0x10 else 1
    rig.ranger.start()
    assert rig.ranger.poll() is None
    assert next_range(rig).valid


def mode_rig(mode: str, budget_ms: int) -> Rig:
    rig = make_rig(init=False)
    rig.ranger = Vl53l1x(rig.deck.i2c, device="sim:i2c", distance_mode=mode,
                         timing_budget_ms=budget_ms, sleep=rig.clock.advance,
                         now=rig.clock.now)
    rig.ranger.init()
    return rig


def test_short_mode_writes_um2510s_registers_and_ranges_at_its_budget() -> None:
    rig = mode_rig("short", 20)
    m = rig.deck.ranger
    assert (m.mem[0x4B], m.mem[0x60], m.mem[0x63], m.mem[0x69]) == (0x14, 0x07, 0x05, 0x38)
    assert m.mem[0x78:0x7A] == b"\x07\x05" and m.mem[0x7A:0x7C] == b"\x06\x06"
    assert m.mem[0x5E:0x60] == b"\x00\x51" and m.mem[0x61:0x63] == b"\x00\x6e"
    # inter-measurement = 20 ms in oscillator ticks: 37 x 20 x 1.075
    assert int.from_bytes(m.mem[0x6C:0x70], "big") == int(37 * 20 * 1.075)
    assert rig.ranger.read_mode() == "short" and m.timing_budget_s == 0.020
    next_range(rig)
    t0 = rig.clock.now()
    next_range(rig)
    assert rig.clock.now() - t0 == pytest.approx(0.020, abs=0.0051)


@pytest.mark.parametrize(("mode", "budget"), [("long", 20), ("long", 33), ("long", 200),
                                              ("short", 15), ("short", 500)])
def test_each_budget_sets_the_result_period(mode: str, budget: int) -> None:
    rig = mode_rig(mode, budget)
    assert rig.deck.ranger.distance_mode == mode
    assert rig.deck.ranger.period_s == pytest.approx(budget / 1000, rel=0.01)


def test_short_mode_does_not_reach_two_metres_where_long_does() -> None:
    short, long_ = mode_rig("short", 50), mode_rig("long", 50)
    for rig in (short, long_):
        rig.truth.set(height_m=2.0)
    assert all(r.status == 2 for r in ranges(short, 5))           # signal fail: out of range
    assert all(r.valid and r.range_m == pytest.approx(2.0, abs=0.1) for r in ranges(long_, 5))
    short.truth.set(height_m=1.0)
    assert ranges(short, 1)[0].valid


def test_noise_falls_with_the_budget() -> None:
    fast, slow = mode_rig("long", 20), mode_rig("long", 500)
    for rig in (fast, slow):
        rig.truth.set(height_m=1.0)
    sd_fast = statistics.stdev(r.range_m for r in ranges(fast, 60))
    sd_slow = statistics.stdev(r.range_m for r in ranges(slow, 60))
    assert sd_fast > 2.5 * sd_slow          # sqrt(500 / 20) = 5 in the model


@pytest.mark.parametrize(("mode", "budget", "msg"), [
    ("medium", 100, "distance mode 'medium' is not supported"),
    ("near", 100, "distance mode 'near': give short or long"),
    ("long", 15, r"timing budget 15 ms in long mode: give one of 20, 33, 50, 100, 200, 500 ms"),
    ("short", 40, r"timing budget 40 ms in short mode: give one of 15, 20, 33"),
])
def test_bad_mode_or_budget_is_a_clear_error(mode: str, budget: int, msg: str) -> None:
    with pytest.raises(SensorError, match=msg):
        Vl53l1x(SimI2cBus({}), distance_mode=mode, timing_budget_ms=budget)


def test_an_oscillator_calibration_of_zero_is_an_error() -> None:
    rig = make_rig(init=False)
    rig.deck.ranger.mem[0xDE:0xE0] = b"\x00\x00"
    with pytest.raises(SensorError, match=r"oscillator calibration \(0x00DE\) reads 0"):
        rig.ranger.init()
