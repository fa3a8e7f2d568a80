"""Soft-UART error rates per baud rate under Raspberry-Pi-like latency.

Runs the module's own codec (compiled for user space) on simulated lines:
edge-timestamp decoding (the module) against per-bit sampling from a timer
(the classic soft-UART receiver), for an idle and a loaded Pi latency model;
and the transmitter with late timer callbacks. Prints JSON: character error
rates and error counts per baud rate.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "kernel"))

from softuart_sim import PI_IDLE, PI_LOADED, Codec, build_library, simulate, simulate_tx

BAUDS = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 76800, 115200]
N_CHARS = 200_000
N_TX = 50_000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        codec = Codec(build_library(Path(tmp)))
        t0 = time.perf_counter()
        out: dict[str, object] = {"benchmark": "softuart_rx_latency", "chars_per_point": N_CHARS,
                                  "frame": "8N1, random bytes, half back-to-back, half with "
                                           "idle gaps up to two frames", "models": {}}
        for name, model in (("pi_idle", PI_IDLE), ("pi_loaded", PI_LOADED)):
            rows = {}
            for baud in BAUDS:
                r = simulate(codec, baud, model, N_CHARS, seed=baud)
                rows[str(baud)] = {
                    "edge_timestamps": r["edge_timestamps"],
                    "edge_errors": round(r["edge_timestamps"] * N_CHARS),
                    "per_bit_sampling": r["per_bit_sampling"],
                    "per_bit_errors": round(r["per_bit_sampling"] * N_CHARS),
                }
            tx = {str(b): simulate_tx(codec, b, model, N_TX, seed=b) for b in BAUDS}
            out["models"][name] = {"latency": asdict(model), "rx_char_error_rate": rows,  # type: ignore[index]
                                   "tx_per_byte": tx}
        out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
