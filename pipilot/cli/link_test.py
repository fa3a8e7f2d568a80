"""`pipilot link-test`: stream frames to check the wiring; verify them on a loopback."""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from typing import Any

from pipilot.cli import _checks
from pipilot.cli._output import json_text
from pipilot.core.firmware import check_period, estimate
from pipilot.link.pump import make_pump
from pipilot.link.serialport import open_sbus_port
from pipilot.link.timing import arrival_stats
from pipilot.link.virtual import WireReader
from pipilot.sbus import scale

NAME = "link-test"
HELP = "stream S.Bus test frames; with TX looped to RX, read them back and verify"

NEUTRAL = scale.CENTER
THROTTLE_OFF = scale.UNIT_MIN
SWEEP_PERIOD_S = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True, help="serial device, e.g. /dev/serial0")
    parser.add_argument("--duration", type=float, default=10.0, metavar="S",
                        help="seconds to stream (default 10)")
    parser.add_argument("--period-ms", type=float, default=7.0, metavar="P",
                        help="frame period in ms (default 7)")
    parser.add_argument("--pattern", choices=("neutral", "sweep"), default="neutral",
                        help="neutral: sticks centred, throttle off; sweep: channels 3-16 "
                             "sweep end to end (throttle stays off and yaw centred, so the "
                             "craft can never arm)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def pattern_channels(pattern: str, t: float) -> list[int]:
    """The 16 channel values of `pattern` at time `t` (seconds)."""
    ch = [NEUTRAL] * 16
    ch[0] = THROTTLE_OFF
    if pattern == "sweep":
        for i in range(2, 16):
            phase = 2 * math.pi * (t / SWEEP_PERIOD_S + i / 16)
            ch[i] = round(NEUTRAL + 819 * math.sin(phase))
    return ch


async def stream(port_path: str, duration: float, period_s: float, pattern: str,
                 pump_kind: str = "auto") -> dict[str, Any]:
    """Stream for `duration`; returns timing statistics and loopback verification."""
    from pipilot import sbus

    def frame_at(t: float) -> bytes:
        return sbus.encode(pattern_channels(pattern, t), ch17=False, ch18=False,
                           frame_lost=False, failsafe=False)

    port = open_sbus_port(port_path)
    decoder = sbus.FrameDecoder()
    sent: set[bytes] = set()
    arrivals: list[float] = []
    counts = {"bytes": 0, "verified": 0, "corrupt": 0}

    def on_bytes(data: bytes, _times: list[float]) -> None:
        # runs in the reader thread: the read time stamps every frame it completes
        t = time.monotonic()
        counts["bytes"] += len(data)
        for f in decoder.feed(data):
            raw = sbus.encode(f.channels, ch17=f.ch17, ch18=f.ch18,
                              frame_lost=f.frame_lost, failsafe=f.failsafe)
            if raw in sent:
                counts["verified"] += 1
                arrivals.append(t)
            else:
                counts["corrupt"] += 1

    pump = make_pump(pump_kind)
    t0 = time.monotonic()
    first = frame_at(0.0)
    # what the watchdog sends if this loop stalls: flagged, throttle off, centred
    stalled = sbus.encode(pattern_channels("neutral", 0.0), ch17=False, ch18=False,
                          frame_lost=False, failsafe=True)
    sent.update((first, stalled))
    reader = WireReader(port.fd, on_bytes).start()
    try:
        pump.start(port.fd, first, stalled, period_s, 0.5, 0.8, rt_priority=50)
        while (now := time.monotonic()) - t0 < duration:
            f = frame_at(now - t0)
            sent.add(f)
            pump.set_frame(f)
            await asyncio.sleep(period_s)
        pump.stop()
        await _drain(counts, pump.stats().frames_sent)
    finally:
        pump.stop()
        reader.stop()
        port.close()
    verified, corrupt, rx_bytes = counts["verified"], counts["corrupt"], counts["bytes"]
    st = pump.stats()
    result: dict[str, Any] = {
        "port": port_path, "period_s": period_s, "duration_s": duration, "pattern": pattern,
        "pump": st.implementation, "realtime": st.realtime,
        "frames_sent": st.frames_sent, "write_errors": st.write_errors + st.eagain,
        "missed_slots": st.missed_slots,
        "mean_period_s": st.mean_period_s,
        "lateness_p50_s": st.lateness_percentile(0.5),
        "lateness_p99_s": st.lateness_percentile(0.99),
        "lateness_max_s": st.lateness_max_s,
        "longest_gap_s": st.max_gap_s,
        "loopback": {"bytes": rx_bytes, "frames_verified": verified, "frames_corrupt": corrupt},
    }
    if len(arrivals) >= 2:
        result["loopback"]["timing"] = arrival_stats(
            arrivals, period_s, skipped=st.missed_slots + st.silent_slots, skips_at=st.skips)
    return result


async def _drain(counts: dict[str, int], sent: int, quiet_s: float = 0.2,
                 limit_s: float = 3.0) -> None:
    """Wait for the frames still on their way back: until all are in, or the
    line has been quiet for `quiet_s` (no loopback), at most `limit_s`."""
    end = time.monotonic() + limit_s
    last, quiet_since = counts["bytes"], time.monotonic()
    while time.monotonic() < end and counts["verified"] + counts["corrupt"] < sent:
        await asyncio.sleep(0.02)
        if counts["bytes"] != last:
            last, quiet_since = counts["bytes"], time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return


def report(r: dict[str, Any]) -> str:
    us = 1e6
    lines = [
        f"{r['port']}: {r['frames_sent']} frames in {r['duration_s']:g} s "
        f"({r['pump']} pump, {r['realtime']})",
        f"  mean period {r['mean_period_s'] * 1e3:.4f} ms (nominal {r['period_s'] * 1e3:g})",
        f"  lateness p50 {r['lateness_p50_s'] * us:.0f} us, p99 {r['lateness_p99_s'] * us:.0f} us,"
        f" max {r['lateness_max_s'] * us:.0f} us; longest gap {r['longest_gap_s'] * 1e3:.2f} ms",
        f"  write errors {r['write_errors']}, missed slots {r['missed_slots']}",
    ]
    lb = r["loopback"]
    if lb["bytes"] == 0:
        lines.append("  loopback: nothing received (no jumper from TX to RX?)")
    else:
        lines.append(f"  loopback: {lb['frames_verified']} frames verified, "
                     f"{lb['frames_corrupt']} corrupt")
        if "timing" in lb:
            t = lb["timing"]
            lines.append(f"  at RX: lateness p99 {t['lateness_p99_s'] * us:.0f} us, "
                         f"longest gap {t['longest_gap_s'] * 1e3:.2f} ms")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    _checks.device("--port", args.port)
    _checks.duration("--duration", args.duration)
    _checks.number("--period-ms", args.period_ms, 0.0, 1000.0, lo_open=True)
    period_s = args.period_ms * 1e-3
    check_period(period_s, "patched", key="--period-ms")
    result = asyncio.run(stream(args.port, args.duration, period_s, args.pattern))
    result["stock_firmware_accepted_per_s"] = estimate(period_s, "stock").accepted_per_s
    print(json_text(result, indent=2) if args.json else report(result))
    lb = result["loopback"]
    return 1 if lb["frames_corrupt"] or result["write_errors"] else 0
