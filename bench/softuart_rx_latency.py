"""Soft-UART error rates per baud rate under Raspberry-Pi-like latency.

Runs the module's own codec (compiled for user space) on simulated lines:
edge-timestamp decoding (the module) against per-bit sampling from a timer
(the classic soft-UART receiver), for an idle and a loaded Pi latency model;
and the transmitter with late timer callbacks. Prints JSON: character error
rates and error counts per baud rate; of those errors, the wrong characters
delivered without an error flag ("silent"); and how many edge pairs lost to
a late interrupt the edge decoder put back.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "kernel"))

from softuart_sim import (
    PI_IDLE,
    PI_LOADED,
    Codec,
    LatencyModel,
    build_library,
    simulate,
    simulate_tx,
)

BAUDS = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 76800, 115200]
N_CHARS = 200_000
N_TX = 50_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chars", type=int, default=N_CHARS, help="characters per RX point")
    ap.add_argument("--baud", type=int, action="append", help="baud rate (repeatable)")
    ap.add_argument("--floor-us", type=float, help="custom model: latency floor")
    ap.add_argument("--scale-us", type=float, default=0.5, help="custom model: Gamma scale")
    ap.add_argument("--shape", type=float, default=2.0, help="custom model: Gamma shape")
    ap.add_argument("--spike-prob", type=float, default=0.0, help="custom model: spike rate")
    args = ap.parse_args()
    models = {"pi_idle": PI_IDLE, "pi_loaded": PI_LOADED}
    if args.floor_us is not None:
        models = {"custom": LatencyModel(floor_us=args.floor_us, shape=args.shape,
                                         scale_us=args.scale_us, spike_prob=args.spike_prob)}
    bauds = args.baud or BAUDS
    n, n_tx = args.chars, min(args.chars, N_TX)
    with tempfile.TemporaryDirectory() as tmp:
        codec = Codec(build_library(Path(tmp)))
        t0 = time.perf_counter()
        out: dict[str, object] = {"benchmark": "softuart_rx_latency", "chars_per_point": n,
                                  "tx_bytes_per_point": n_tx,
                                  "frame": "8N1, random bytes, half back-to-back, half with "
                                           "idle gaps up to two frames", "models": {}}
        for name, model in models.items():
            rows = {}
            for baud in bauds:
                r = simulate(codec, baud, model, n, seed=baud)
                rows[str(baud)] = {
                    "edge_timestamps": r["edge_timestamps"],
                    "edge_errors": round(r["edge_timestamps"] * n),
                    "per_bit_sampling": r["per_bit_sampling"],
                    "per_bit_errors": round(r["per_bit_sampling"] * n),
                    "edge_silent_errors": r["edge_silent_errors"],
                    "per_bit_silent_errors": r["per_bit_silent_errors"],
                    "edge_pairs_rebuilt": r["edge_pairs_rebuilt"],
                }
            tx = {str(b): simulate_tx(codec, b, model, n_tx, seed=b) for b in bauds}
            out["models"][name] = {"latency": asdict(model),  # type: ignore[index]
                                   "rx_char_error_rate": rows, "tx_per_byte": tx}
        out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
