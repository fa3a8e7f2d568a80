"""The PMW3901 driver against the register model: IDs, bus errors, motion, SQUAL, saturation."""

from __future__ import annotations

import pytest

from pipilot.core.clock import VirtualClock
from pipilot.sensors.bus import SensorError
from pipilot.sensors.pmw3901 import MAX_RATE_RAD_S, SQUAL_MIN, FlowSample, Pmw3901
from pipilot.sim.flowdeck import COUNTS_PER_RAD, Pmw3901Model, SensorTruth, SimSpiBus
from tests.sensors.conftest import Rig, make_rig


def flow_over(rig: Rig, seconds: float, step: float = 0.01) -> tuple[int, int, list[int]]:
    """Sum of the deltas of bursts every ``step`` s, and the SQUALs seen."""
    dx = dy = 0
    squals = []
    for _ in range(round(seconds / step)):
        rig.clock.advance(step)
        s = rig.flow.read_motion()
        dx, dy = dx + s.dx, dy + s.dy
        squals.append(s.squal)
    return dx, dy, squals


def test_init_resets_checks_ids_and_writes_the_optimisation_sequence(rig: Rig) -> None:
    model = rig.deck.flow
    assert model.led_on                               # the sequence's last write arrived
    # calibration branch taken (0x73 == 0); 20 <= 28 -> +14 = 34, then 34 > 28 -> +11
    assert model.regs[(0x0E, 0x70)] == 0x14 + 14 + 11
    assert model.regs[(0x0E, 0x71)] == 0x64 * 45 // 100
    assert model.regs[(0x0E, 0x48)] == 0x04            # 0x67 bit 7 set -> 0x04
    assert model.bank == 0                            # left in bank 0


def test_init_takes_the_datasheet_waits(rig: Rig) -> None:
    fresh = make_rig(init=False)
    t0 = fresh.clock.now()
    fresh.flow.init()
    assert fresh.clock.now() - t0 == pytest.approx(0.005 + 0.010 + 0.240)


def test_a_wrong_product_id_names_what_was_read() -> None:
    clock = VirtualClock()
    bus = SimSpiBus(Pmw3901Model(SensorTruth, clock, product_id=0x12))
    with pytest.raises(SensorError, match=r"/dev/spidev0.0: no PMW3901: product id 0x12 / "
                                          r"inverse 0xED, expected 0x49 / 0xB6"):
        Pmw3901(bus, device="/dev/spidev0.0", sleep=clock.advance).init()


def test_nothing_on_the_bus_says_check_the_wiring() -> None:
    with pytest.raises(SensorError, match=r"0xFF / inverse 0xFF.*check the wiring"):
        Pmw3901(SimSpiBus(None), sleep=lambda s: None).init()


def test_a_bus_error_is_one_sensor_error(rig: Rig) -> None:
    rig.deck.spi.fail = OSError(5, "Input/output error")
    with pytest.raises(SensorError, match="sim:spi: PMW3901 SPI transfer failed: "
                                          "Input/output error"):
        rig.flow.read_motion()


def test_a_short_transfer_is_refused(rig: Rig) -> None:
    rig.flow.spi = type("Short", (), {"xfer2": lambda self, v: v[:1]})()
    with pytest.raises(SensorError, match="returned 1 bytes for 13"):
        rig.flow.read_motion()


@pytest.mark.parametrize(("vx", "vy", "h"), [(0.5, 0.0, 1.0), (-0.3, 0.2, 0.5),
                                            (0.0, -0.4, 2.0)])
def test_flow_sign_and_scale_follow_velocity_over_height(rig: Rig, vx: float, vy: float,
                                                         h: float) -> None:
    rig.truth.set(velocity_body=(vx, vy), height_m=h)
    rig.flow.read_motion()                  # clear what accumulated during init
    dx, dy, _ = flow_over(rig, 2.0)
    assert dx == pytest.approx(COUNTS_PER_RAD * vx / h * 2.0, abs=6)
    assert dy == pytest.approx(COUNTS_PER_RAD * vy / h * 2.0, abs=6)


def test_rotation_alone_makes_flow_that_looks_like_translation(rig: Rig) -> None:
    """A nose-up pitch rate moves the image as forward motion does; a right roll as left
    motion (the term the estimator must subtract)."""
    rig.truth.set(rates=(0.0, 0.4, 0.0))
    rig.flow.read_motion()
    pitch_dx, pitch_dy, _ = flow_over(rig, 1.0)
    rig.truth.set(rates=(0.4, 0.0, 0.0))
    rig.flow.read_motion()
    roll_dx, roll_dy, _ = flow_over(rig, 1.0)
    assert pitch_dx == pytest.approx(COUNTS_PER_RAD * 0.4, abs=4) and abs(pitch_dy) <= 4
    assert roll_dy == pytest.approx(-COUNTS_PER_RAD * 0.4, abs=4) and abs(roll_dx) <= 4
    # and rotation cancels translation that looks the other way: height-independent
    rig.truth.set(rates=(0.0, -0.5, 0.0), velocity_body=(0.5, 0.0), height_m=1.0)
    rig.flow.read_motion()
    dx, _, _ = flow_over(rig, 1.0)
    assert abs(dx) <= 4


def test_motion_bit_and_zero_deltas_when_still(rig: Rig) -> None:
    rig.flow.read_motion()
    rig.clock.advance(0.01)
    s = rig.flow.read_motion()
    assert (s.dx, s.dy) == (0, 0) or s.motion   # noise can move a count, then MOT says so
    rig.truth.set(velocity_body=(1.0, 0.0), height_m=0.5)
    rig.clock.advance(0.05)
    s = rig.flow.read_motion()
    assert s.motion and s.dx > 0 and s.valid and s.status == "ok"


def test_squal_falls_with_texture_light_and_height(rig: Rig) -> None:
    def squal(**kw: object) -> float:
        rig.truth.set(**{"texture": 1.0, "light": 1.0, "height_m": 1.0, **kw})
        _, _, q = flow_over(rig, 0.2)
        return sum(q) / len(q)

    good = squal()
    assert good >= 100
    assert squal(texture=0.1) < SQUAL_MIN
    assert squal(height_m=0.04) < SQUAL_MIN             # below the 80 mm working range
    assert squal(height_m=8.0) < SQUAL_MIN
    assert squal(texture=0.5) < good


def test_dark_floor_gives_no_flow_and_says_so(rig: Rig) -> None:
    rig.truth.set(light=0.01, velocity_body=(0.5, 0.0))
    rig.clock.advance(0.1)
    s = rig.flow.read_motion()
    assert s.shutter >> 8 == 0x1F and not s.valid and s.status == "too dark"
    assert (s.dx, s.dy) == (0, 0)


def test_poor_texture_is_invalid_in_good_light(rig: Rig) -> None:
    rig.truth.set(texture=0.0, velocity_body=(0.5, 0.0))
    rig.clock.advance(0.1)
    s = rig.flow.read_motion()
    assert not s.valid and s.status == "poor surface" and (s.dx, s.dy) == (0, 0)


def test_beyond_the_maximum_rate_tracking_is_lost(rig: Rig) -> None:
    rig.truth.set(velocity_body=(MAX_RATE_RAD_S * 0.5 * 1.2, 0.0), height_m=0.5)
    rig.flow.read_motion()
    dx, _, squals = flow_over(rig, 0.2)
    assert dx == 0 and max(squals) < SQUAL_MIN
    assert rig.deck.flow.lost


def test_deltas_saturate_at_16_bits(rig: Rig) -> None:
    rig.truth.set(velocity_body=(2.5, -2.5), height_m=0.5)     # 7.1 rad/s: below 7.4
    rig.flow.read_motion()
    for _ in range(2000):     # 200 s unread (~48000 counts), the model integrating each 0.1 s
        rig.clock.advance(0.1)
        rig.deck.flow._integrate()
    s = rig.flow.read_motion()
    assert (s.dx, s.dy) == (32767, -32768)
    assert s.saturated and not s.valid


def test_power_up_reset_clears_accumulated_motion(rig: Rig) -> None:
    rig.truth.set(velocity_body=(1.0, 0.0), height_m=0.5)
    rig.clock.advance(0.5)
    rig.deck.flow._integrate()
    rig.truth.set(velocity_body=(0.0, 0.0))
    rig.flow.init()
    rig.clock.advance(0.01)
    assert abs(rig.flow.read_motion().dx) <= 2


def test_without_the_optimisation_sequence_the_image_is_dark() -> None:
    fresh = make_rig(init=False)
    fresh.flow.check_id()
    fresh.truth.set(velocity_body=(0.5, 0.0))
    fresh.clock.advance(0.1)
    s = fresh.flow.read_motion()
    assert not s.valid and s.squal == 0


def test_a_saturated_delta_is_not_valid() -> None:
    s = FlowSample(dx=32767, dy=3, motion=True, squal=120, shutter=0x100, raw_sum=0,
                   raw_max=0, raw_min=0)
    assert s.saturated and not s.valid and s.status == "saturated"
    assert FlowSample(dx=-300, dy=3, motion=True, squal=120, shutter=0x100, raw_sum=0,
                      raw_max=0, raw_min=0).valid
