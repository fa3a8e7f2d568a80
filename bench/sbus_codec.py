"""S.Bus codec benchmark: prints JSON.

ns per encode/decode call for each twin, batch frames/s at several batch
sizes (the target is checked against the slowest), and two baselines
timed in the same process: a bit-at-a-time packer (how a first program
usually writes it) and a Python big-integer packer.

Every figure is the time of a block of calls divided by its length; the
statistics are over blocks. Times include the Python loop that makes the
calls (`loop_overhead_ns`); `builtin_call_ns` (len(x)) is the floor any
call from Python pays. Run:

    PYTHONPATH=. python bench/sbus_codec.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np
from _percentile import pct

from pipilot.sbus import _pack_py

TARGETS = {"cython_encode_ns": 150.0, "python_encode_ns": 3000.0, "batch_frames_per_s": 10e6}
#: Batch sizes (frames per call): cache-resident to many megabytes of output.
BATCH_SIZES = (1_000, 10_000, 200_000)


def bitloop_encode(channels: Sequence[int]) -> bytes:
    """Baseline: one bit at a time into a list of bytes."""
    frame = [0] * 25
    frame[0] = 0x0F
    bit = 0
    for value in channels:
        for b in range(11):
            if value & (1 << b):
                frame[1 + bit // 8] |= 1 << (bit % 8)
            bit += 1
    return bytes(frame)


def bigint_encode(channels: Sequence[int]) -> bytes:
    """Baseline: one shift and one OR per channel into a Python int."""
    x = 0
    for i, value in enumerate(channels):
        x |= value << (11 * i)
    return b"\x0f" + x.to_bytes(22, "little") + b"\x00\x00"


def bigint_decode(frame: bytes) -> tuple[int, ...]:
    """Baseline decode: the reverse of `bigint_encode`, channels only."""
    x = int.from_bytes(frame[1:23], "little")
    return tuple((x >> (11 * i)) & 0x7FF for i in range(16))


def stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"median": round(statistics.median(s), 1), "p10": round(pct(s, 0.10), 1),
            "p90": round(pct(s, 0.90), 1), "p99": round(pct(s, 0.99), 1), "min": round(s[0], 1)}


def time_calls(call: str, namespace: dict[str, Any], inputs: list[Any],
               blocks: int) -> list[float]:
    """ns per evaluation of the expression `call` (with `x` bound to each input).

    The loop is compiled like timeit's, so nothing but the loop itself is
    added to the call: one sample per pass over `inputs`.
    """
    src = (f"def run(inputs, clock):\n    t0 = clock()\n    for x in inputs:\n"
           f"        {call}\n    return clock() - t0\n")
    scope = dict(namespace)
    exec(compile(src, f"<bench {call}>", "exec"), scope)
    run = scope["run"]
    return [run(inputs, time.perf_counter_ns) / len(inputs) for _ in range(blocks)]


def time_batch(fn: Callable[[np.ndarray], object], arr: np.ndarray, blocks: int) -> list[float]:
    """frames per second of fn(arr)."""
    samples = []
    for _ in range(blocks):
        t0 = time.perf_counter_ns()
        fn(arr)
        samples.append(arr.shape[0] / ((time.perf_counter_ns() - t0) * 1e-9))
    return samples


def bench_twin(mod: ModuleType, vectors: list[list[int]], frames: list[bytes],
               arrays: list[np.ndarray], blocks: int, batch_total: int) -> dict[str, Any]:
    tuples = [tuple(v) for v in vectors]
    ns = {"encode": mod.encode, "decode": mod.decode}
    return {
        "encode_ns": stats(time_calls("encode(x)", ns, vectors, blocks)),
        "encode_tuple_ns": stats(time_calls("encode(x)", ns, tuples, blocks)),
        "encode_failsafe_kw_ns": stats(time_calls("encode(x, failsafe=True)", ns, vectors,
                                                  blocks)),
        "decode_ns": stats(time_calls("decode(x)", ns, frames, blocks)),
        "batch_frames_per_s": {
            str(len(arr)): stats(time_batch(mod.encode_batch, arr, max(5, batch_total // len(arr))))
            for arr in arrays
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer blocks (a smoke run)")
    args = parser.parse_args(argv)
    blocks, batch_total = (20, 400_000) if args.quick else (300, 8_000_000)

    rng = random.Random(2)
    vectors = [[rng.randrange(2048) for _ in range(16)] for _ in range(256)]
    frames = [_pack_py.encode(v) for v in vectors]
    arrays = [np.random.default_rng(n).integers(0, 2048, (n, 16)).astype(np.uint16)
              for n in BATCH_SIZES]

    for v, f in zip(vectors, frames, strict=True):  # the baselines must be right too
        assert bitloop_encode(v) == f == bigint_encode(v)
        assert bigint_decode(f) == tuple(v)

    twins: dict[str, ModuleType] = {"python": _pack_py}
    result: dict[str, Any] = {
        "python_version": platform.python_version(), "machine": platform.machine(),
        "numpy": np.__version__,
        "config": {"blocks": blocks, "calls_per_block": len(vectors),
                   "batch_frames_per_size": batch_total},
    }
    try:
        twins["cython"] = importlib.import_module("pipilot.sbus._pack")
    except ImportError as exc:
        result["cython_missing"] = str(exc)

    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        base_ns = {"bitloop_encode": bitloop_encode, "bigint_encode": bigint_encode,
                   "bigint_decode": bigint_decode}
        result["loop_overhead_ns"] = stats(time_calls("pass", {}, vectors, blocks))
        result["builtin_call_ns"] = stats(time_calls("len(x)", {}, vectors, blocks))
        result["baselines"] = {
            "bitloop_encode_ns": stats(time_calls("bitloop_encode(x)", base_ns, vectors,
                                                  max(5, blocks // 10))),
            "bigint_encode_ns": stats(time_calls("bigint_encode(x)", base_ns, vectors, blocks)),
            "bigint_decode_ns": stats(time_calls("bigint_decode(x)", base_ns, frames, blocks)),
        }
        for name, mod in twins.items():
            result[name] = bench_twin(mod, vectors, frames, arrays, blocks, batch_total)
    finally:
        if gc_was_enabled:
            gc.enable()

    base = result["baselines"]
    ratios: dict[str, float] = {}
    met: dict[str, bool] = {}
    for name in twins:
        enc = result[name]["encode_ns"]["median"]
        ratios[f"bitloop_over_{name}_encode"] = round(base["bitloop_encode_ns"]["median"] / enc, 1)
        ratios[f"bigint_over_{name}_encode"] = round(base["bigint_encode_ns"]["median"] / enc, 2)
        ratios[f"bigint_over_{name}_decode"] = round(
            base["bigint_decode_ns"]["median"] / result[name]["decode_ns"]["median"], 2)
    if "cython" in twins:
        cy = result["cython"]
        ratios["python_over_cython_encode"] = round(
            result["python"]["encode_ns"]["median"] / cy["encode_ns"]["median"], 1)
        slowest_batch = min(b["median"] for b in cy["batch_frames_per_s"].values())
        ratios["slowest_batch_over_cython_encode_loop"] = round(
            slowest_batch * cy["encode_ns"]["median"] * 1e-9, 1)
        met["cython_encode_ns"] = cy["encode_ns"]["median"] <= TARGETS["cython_encode_ns"]
        met["batch_frames_per_s"] = slowest_batch >= TARGETS["batch_frames_per_s"]
    met["python_encode_ns"] = (result["python"]["encode_ns"]["median"]
                               <= TARGETS["python_encode_ns"])
    result["ratios"] = ratios
    result["targets"] = TARGETS
    result["targets_met"] = met
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
