"""UAVTalk benchmark: prints JSON.

Framing throughput (PacketParser.feed: sync search, header checks, CRC-8,
Packet objects) and full decode (framing plus ``packet.values`` for every
packet) on a realistic mixed stream, for each framing twin, and in the same
run the byte-at-a-time state-machine parser (tests.uavtalk.reference, shaped
like the firmware's and the old Python bindings' receivers) as the baseline.

The stream mimics CC3D telemetry: the objects the firmware sends periodically
with plausible relative rates, some timestamped packets, ACKs and requests,
and a little line noise. It is fed in 4 KiB chunks as a serial read returns
them. Each sample is one pass over the stream, timed in CPU seconds of this
process (the machine is shared, so wall time mostly measures the neighbours)
with the garbage collector paused as timeit does; figures are medians and
percentiles over samples. ``session_objects_s`` is the whole ground side on
the same stream: the session engine (pipilot.uavtalk.session) framing,
decoding, keeping the latest values and reporting one event per object. Run:

    python bench/uavtalk.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _percentile import pct

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the baseline parser is test code

from pipilot.core.clock import VirtualClock
from pipilot.uavtalk import PacketParser, PacketType, encode_packet, load_definitions
from pipilot.uavtalk import packets as packets_mod
from pipilot.uavtalk._crc import crc8
from pipilot.uavtalk.session import GroundSession, ObjectUpdated
from tests.uavtalk.reference import ByteParser

TARGETS = {"framing_mb_s": 10.0, "decode_objects_s": 100_000.0, "speedup_vs_bytewise": 50.0}

# object name -> relative rate (packets per second on a busy link)
MIX = {
    "AttitudeState": 10, "GyroState": 10, "AccelState": 10, "ActuatorCommand": 5,
    "ManualControlCommand": 5, "StabilizationDesired": 5, "ActuatorDesired": 5,
    "ReceiverActivity": 1, "FlightStatus": 2, "SystemAlarms": 1, "SystemStats": 1,
    "FlightTelemetryStats": 0.2, "GCSTelemetryStats": 0.2,
}
CHUNK = 4096


def random_values(obj: Any, rng: random.Random) -> dict[str, Any]:
    """Defaults with every float field randomised (so decode does real work)."""
    raw = bytearray(obj.encode(obj.defaults()))
    off = 0
    for f in obj.fields:
        if f.type == "float":
            for k in range(f.count):
                struct.pack_into("<f", raw, off + 4 * k, rng.uniform(-180, 180))
        off += f.size
    return obj.decode(bytes(raw))


def make_stream(target_bytes: int, seed: int = 1) -> tuple[bytes, int]:
    reg = load_definitions()
    rng = random.Random(seed)
    names, weights = zip(*MIX.items(), strict=True)
    out = bytearray()
    count = 0
    while len(out) < target_bytes:
        obj = reg[rng.choices(names, weights)[0]]
        r = rng.random()
        if r < 0.02:
            out += encode_packet(PacketType.ACK, obj.object_id, 0)
        elif r < 0.03:
            out += encode_packet(PacketType.OBJ_REQ, obj.object_id, 0)
        elif r < 0.10:
            out += encode_packet(PacketType.OBJ_TS, obj.object_id, 0,
                                 obj.encode(random_values(obj, rng)), rng.randrange(65536))
        else:
            out += encode_packet(PacketType.OBJ, obj.object_id, 0,
                                 obj.encode(random_values(obj, rng)))
        count += 1
        if rng.random() < 0.005:  # line noise, sync bytes included
            out += bytes(rng.choice((0x3C, rng.randrange(256))) for _ in range(rng.randrange(1, 8)))
    return bytes(out), count


def stats(samples: list[float], digits: int = 1) -> dict[str, float]:
    s = sorted(samples)
    return {"median": round(statistics.median(s), digits), "p10": round(pct(s, 0.10), digits),
            "p90": round(pct(s, 0.90), digits), "min": round(s[0], digits),
            "max": round(s[-1], digits)}


def timed(fn: Callable[[], int], reps: int) -> list[tuple[float, int]]:
    """(CPU seconds, result) per repetition, with the garbage collector paused."""
    out = []
    for _ in range(reps):
        gc.collect()
        gc.disable()
        try:
            t0 = time.process_time()
            n = fn()
            out.append((time.process_time() - t0, n))
        finally:
            gc.enable()
    return out


def feed_all(parser: Any, stream: bytes, decode: bool) -> int:
    n = 0
    mv = memoryview(stream)
    for i in range(0, len(stream), CHUNK):
        pkts = parser.feed(mv[i:i + CHUNK])
        if decode:
            for p in pkts:
                p.values  # noqa: B018 - the decode is the work being measured
        n += len(pkts)
    return n


def feed_session(reg: Any, stream: bytes) -> int:
    """Objects the session engine reports for ``stream``, fed as serial reads."""
    engine = GroundSession(VirtualClock(), reg)
    engine.start()
    n = 0
    mv = memoryview(stream)
    for i in range(0, len(stream), CHUNK):
        engine.receive_data(mv[i:i + CHUNK])
        n += sum(1 for e in engine.events() if isinstance(e, ObjectUpdated))
        engine.data_to_send()
    return n


def bench_twin(impl: str, stream: bytes, expected: int, reps: int) -> dict[str, Any]:
    reg = load_definitions()
    mb = len(stream) / 1e6

    def framing() -> int:
        return feed_all(PacketParser(reg, implementation=impl), stream, decode=False)

    def full() -> int:
        return feed_all(PacketParser(reg, implementation=impl), stream, decode=True)

    fr = timed(framing, reps)
    fu = timed(full, reps)
    assert all(n == expected for _, n in fr + fu), "parser lost packets"
    return {
        "framing_mb_s": stats([mb / t for t, _ in fr]),
        "framing_packets_s": stats([n / t for t, n in fr], 0),
        "decode_objects_s": stats([n / t for t, n in fu], 0),
        "decode_mb_s": stats([mb / t for t, _ in fu]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller stream, fewer samples")
    args = ap.parse_args(argv)
    size, reps, base_size, base_reps = ((300_000, 5, 60_000, 3) if args.quick
                                        else (2_000_000, 15, 200_000, 7))
    stream, count = make_stream(size)
    base_stream = stream[:base_size]
    reg = load_definitions()
    expected = len(PacketParser(reg, implementation="python").feed(stream))
    assert expected == count, f"stream has {count} packets, parser found {expected}"
    base_expected = len(PacketParser(reg, implementation="python").feed(base_stream))

    twins = ["python"] + (["cython"] if packets_mod.IMPLEMENTATION == "cython" else [])
    results = {impl: bench_twin(impl, stream, expected, reps) for impl in twins}

    base = timed(lambda: feed_all(ByteParser(reg), base_stream, decode=False), base_reps)
    base_mb_s = [len(base_stream) / 1e6 / t for t, _ in base]
    base_found = base[0][1]

    # Decode alone (data already framed): the struct fast path plus dict shaping.
    framed = [(p.definition, p.data) for p in PacketParser(reg).feed(stream) if p.data]
    dec = timed(lambda: sum(1 for d, b in framed if d.decode_unchecked(b)), reps)
    objects = sum(1 for p in PacketParser(reg).feed(stream) if p.data)
    ses = timed(lambda: feed_session(reg, stream), reps)
    assert all(n == objects for _, n in ses), "the session engine lost objects"
    crc_buf = stream[:1_000_000]
    crc_t = timed(lambda: crc8(crc_buf), max(3, reps // 3))

    best = results[twins[-1]]
    base_med = statistics.median(base_mb_s)
    report = {
        "benchmark": "uavtalk",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "default_implementation": packets_mod.IMPLEMENTATION,
        "stream": {"bytes": len(stream), "packets": count,
                   "mean_packet_bytes": round(len(stream) / count, 1), "chunk_bytes": CHUNK},
        "twins": results,
        "decode_only_objects_s": stats([len(framed) / t for t, _ in dec], 0),
        "session_objects_s": stats([n / t for t, n in ses], 0),
        "crc8_python_mb_s": stats([len(crc_buf) / 1e6 / t for t, _ in crc_t]),
        "baseline_bytewise": {
            "bytes": len(base_stream),
            "packets_found": base_found,
            "packets_in_stream": base_expected,
            "framing_mb_s": stats(base_mb_s, 3),
        },
        "targets": TARGETS,
    }
    speed = {impl: round(results[impl]["framing_mb_s"]["median"] / base_med, 1) for impl in twins}
    report["speedup_vs_bytewise"] = speed
    report["meets_targets"] = {
        "framing_mb_s": best["framing_mb_s"]["median"] >= TARGETS["framing_mb_s"],
        "decode_objects_s": best["decode_objects_s"]["median"] >= TARGETS["decode_objects_s"],
        "speedup_vs_bytewise": speed[twins[-1]] >= TARGETS["speedup_vs_bytewise"],
    }
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
