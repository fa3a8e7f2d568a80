import random

import pytest

from pipilot.core.firmware import check_period, estimate, stock_acceptance
from pipilot.errors import ConfigError


def simulate_stock_decoder(period_s: float, frames: int = 400, seed: int = 1) -> float:
    """An independent model of the stock decoder: 1.6 ms ticks at a random phase,
    bytes reported when their stop bits end, re-arm after 3 silent ticks."""
    rng = random.Random(seed)
    tick = 1.6e-3
    byte = 120e-6
    accepted = 0
    trials = 0
    for _ in range(frames):
        phase = rng.uniform(0, tick)
        last_byte = 25 * byte            # stop bits of byte 25 of frame k end
        next_first = period_s + byte      # first byte of frame k+1
        # ticks strictly between the two byte events
        first_tick = phase + tick * max(0, int((last_byte - phase) // tick) + 1)
        n = 0
        t = first_tick
        while t < next_first:
            n += 1
            t += tick
        trials += 1
        accepted += n >= 3
    return accepted / trials


@pytest.mark.parametrize("p_ms", [6.0, 6.3, 6.6, 7.0, 7.3, 7.7, 8.0, 14.0])
def test_formula_matches_a_decoder_model(p_ms):
    assert stock_acceptance(p_ms * 1e-3) == pytest.approx(
        simulate_stock_decoder(p_ms * 1e-3, frames=3000), abs=0.04)


def test_notes_figures():
    est = estimate(7e-3, "stock")
    assert est.acceptance == pytest.approx(0.575, abs=0.01)
    assert est.accepted_per_s == pytest.approx(82, abs=1.5)
    assert estimate(8e-3, "stock").accepted_per_s == pytest.approx(125)
    assert estimate(7.7e-3, "stock").acceptance == 1.0
    assert estimate(6.0e-3, "stock").acceptance == 0.0
    assert estimate(5e-3, "patched").accepted_per_s == pytest.approx(200)


def test_periods_with_no_accepted_frame_are_refused():
    with pytest.raises(ConfigError, match=r"link.period_ms.*6.08"):
        check_period(6.0e-3, "stock")
    assert check_period(6.0e-3, "patched").acceptance == 1.0
    assert check_period(7e-3, "stock").acceptance < 1.0


@pytest.mark.parametrize("p", [1e-3, 3e-3, 0.2])
def test_periods_outside_the_physical_range_are_refused(p):
    with pytest.raises(ConfigError):
        check_period(p, "patched")


def test_unknown_firmware():
    with pytest.raises(ConfigError, match=r"link\.firmware"):
        check_period(7e-3, "betaflight")


def receiver_timeouts(period_s: float, phase: float, seconds: float = 1.0) -> int:
    """Receiver timeouts of the simulated stock decoder fed one valid frame every period."""
    from pipilot import sbus
    from pipilot.sim.receiver import Firmware, SbusReceiver

    frame = sbus.encode([992] * 16, ch17=False, ch18=False, frame_lost=False, failsafe=False)
    rx = SbusReceiver(Firmware.STOCK, phase=phase)
    for k in range(int(seconds / period_s)):
        rx.feed_paced(frame, k * period_s + 120e-6)
    return rx.stats.failsafe_timeouts


@pytest.mark.parametrize("p_ms", [6.2, 6.4, 6.45])
def test_periods_whose_frames_a_tick_phase_can_lose_for_a_timeout_are_refused(p_ms):
    # the phase moves by P mod 1.6 ms a frame: near a multiple of the tick it
    # barely moves, and a stock receiver at a bad phase falls into failsafe
    phases = [i * 1.6e-3 / 16 for i in range(16)]
    assert max(receiver_timeouts(p_ms * 1e-3, ph) for ph in phases) > 0
    with pytest.raises(ConfigError, match=r"link\.period_ms.*receiver timeout"):
        check_period(p_ms * 1e-3, "stock")
    assert check_period(p_ms * 1e-3, "patched").acceptance == 1.0


@pytest.mark.parametrize("p_ms", [6.3, 6.6, 7.0, 7.2, 8.0])
def test_accepted_stock_periods_never_starve_the_receiver(p_ms):
    check_period(p_ms * 1e-3, "stock")
    phases = [i * 1.6e-3 / 16 for i in range(16)]
    assert all(receiver_timeouts(p_ms * 1e-3, ph) == 0 for ph in phases)
