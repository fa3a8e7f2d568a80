"""Receive error rates under a Raspberry-Pi-like interrupt latency model.

Edge timestamps (the module's receiver) against per-bit sampling from a timer
(the classic soft-UART receiver), on the same simulated line. Fixed seeds make
the figures deterministic; the bounds leave room for the model's tails.
"""

from __future__ import annotations

import pytest
from softuart_sim import PI_IDLE, PI_LOADED, Codec, LatencyModel, simulate, simulate_tx

N = 40_000


@pytest.mark.parametrize("baud", [1200, 9600, 19200, 38400])
def test_edge_timestamps_error_free_up_to_38400(codec: Codec, baud: int) -> None:
    assert simulate(codec, baud, PI_IDLE, N, seed=baud)["edge_timestamps"] == 0.0


def test_edge_timestamps_at_57600_on_an_idle_pi(codec: Codec) -> None:
    rates = simulate(codec, 57600, PI_IDLE, N, seed=57600)
    assert rates["edge_timestamps"] == 0.0
    assert rates["per_bit_sampling"] > 0.9


@pytest.mark.parametrize("shape", [(8, "N", 1), (7, "E", 1), (8, "O", 2), (5, "N", 2)])
def test_lost_edge_pairs_are_put_back_not_guessed(codec: Codec, shape: tuple) -> None:
    """With twice the idle Pi's jitter, an interrupt runs more than a bit
    (17.4 us) late at 57600 baud about once in 500 edges and takes the next
    edge with it. The same streams decoded with the pairs put back, and with
    them only flagged (latency bound of two bits: nothing can be placed)."""
    model = LatencyModel(scale_us=1.0)
    bit = codec.fmt(57600).bit_ns
    on = simulate(codec, 57600, model, 20_000, seed=11, fmt_shape=shape)
    off = simulate(codec, 57600, model, 20_000, seed=11, fmt_shape=shape,
                   latency_ns=(8000, 12000, 2 * bit))
    assert off["edge_pairs_rebuilt"] == 0
    assert on["edge_pairs_rebuilt"] > 50
    assert on["edge_timestamps"] * 5 < off["edge_timestamps"]
    assert on["edge_silent_errors"] <= off["edge_silent_errors"]


def test_per_bit_sampling_works_at_9600_and_fails_above(codec: Codec) -> None:
    assert simulate(codec, 9600, PI_IDLE, N, seed=1)["per_bit_sampling"] == 0.0
    assert simulate(codec, 19200, PI_IDLE, N, seed=2)["per_bit_sampling"] > 1e-4
    assert simulate(codec, 19200, PI_LOADED, N, seed=3)["per_bit_sampling"] > 0.05
    assert simulate(codec, 38400, PI_IDLE, N, seed=4)["per_bit_sampling"] > 0.9


def test_edge_timestamps_beat_per_bit_sampling_on_a_loaded_pi(codec: Codec) -> None:
    for baud in (19200, 38400, 57600):
        rates = simulate(codec, baud, PI_LOADED, N, seed=baud)
        assert rates["edge_timestamps"] < 0.02
        assert rates["edge_timestamps"] * 5 < rates["per_bit_sampling"]


def test_transmitter_on_an_idle_pi_is_clean_to_57600(codec: Codec) -> None:
    for baud in (9600, 38400, 57600):
        r = simulate_tx(codec, baud, PI_IDLE, 20_000, seed=baud)
        assert r["dropped_bytes"] == 0.0 and r["wrong_bytes"] == 0.0, (baud, r)
        assert r["aborted_frames"] < 1e-3


def test_transmitter_stalls_mostly_become_framing_errors(codec: Codec) -> None:
    """Under the loaded model's 20-150 us stalls at 38400 baud, frames get cut
    and resent. Only a stall that outlasts the rest of its frame (the receiver
    has already taken the stretched bits) can still deliver a wrong byte."""
    r = simulate_tx(codec, 38400, PI_LOADED, 20_000, seed=7)
    assert r["aborted_frames"] > 5e-4
    assert r["dropped_bytes"] == 0.0
    assert r["wrong_bytes"] is not None
    assert r["wrong_bytes"] < r["aborted_frames"] / 4
