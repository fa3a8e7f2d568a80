#!/usr/bin/env python3
"""Frame clock benchmark: how punctually do S.Bus frames leave?

Three writers stream 25-byte frames into their own pty at the same time (so
they meet the same load on a shared machine), each measured the same way
from the far end (a C reader on the pty master, SCHED_FIFO, timestamping
every read with CLOCK_MONOTONIC):

- pipilot: a FlightCore (mixer in asyncio, frame pump thread) fed by a
  pilot task publishing setpoints at 20 Hz (its own CPU cost, measured
  beforehand without a core, is reported and left out of the streaming
  share);
- asyncio_sleep: the plain `write; await asyncio.sleep(P)` loop;
- c_writer: a minimal C program sleeping with clock_nanosleep(TIMER_ABSTIME)
  (SCHED_FIFO, mlockall): the best this machine allows.

Each runs idle and loaded: two CPU-burning processes for the duration,
plus in the Python writers a 50 ms stall of the event loop every second,
a blocking call in "loaded" and a busy loop that holds the GIL and burns a
CPU in "loaded_gil_stall". Prints JSON: mean period (least-squares slope),
lateness p50/p99/p99.9/max, longest gap, CPU share, the pump's own wake-up
lateness, and the figures compared against the C writer.

Note: a pty hands written bytes to its master through a kernel worker
thread (SCHED_OTHER), so far-end figures include that worker's scheduling
delay, which grows with whatever else runs on the machine; a real UART has
no such step.

    python bench/frame_clock.py [--duration 60] [--period-ms 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
import tty
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipilot.link.timing import arrival_stats  # noqa: E402

HELPER_SRC = Path(__file__).with_name("frame_clock_helper.c")
FRAME = bytes([0x0F] + [0] * 24)
WARMUP_S = 0.5


# -- writers (run in child processes) -----------------------------------------------

async def _stalls(kind: str, spent: list[float]) -> None:
    """Every second, block the event loop for 50 ms: "sleep" (a blocking call)
    or "gil" (a busy loop that also holds the GIL and burns a CPU)."""
    while kind != "none":
        await asyncio.sleep(1.0)
        t0 = time.thread_time()
        if kind == "sleep":
            time.sleep(0.05)
        else:
            end = time.monotonic() + 0.05
            while time.monotonic() < end:
                pass
        spent.append(time.thread_time() - t0)


def _usage() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def writer_pipilot(path: str, period: float, duration: float, stalls: str) -> dict:
    from pipilot.cli._realtime import realtime_process
    from pipilot.core.config import CoreConfig, LinkConfig
    from pipilot.core.flightcore import FlightCore
    from pipilot.core.mixer import Mixer
    from pipilot.core.setpoints import Setpoint

    async def pilot(mixer: Mixer) -> None:
        """The application side: a pilot publishing setpoints at 20 Hz."""
        t0 = time.monotonic()
        while True:
            x = math.sin(time.monotonic() - t0)
            mixer.publish("test", Setpoint(throttle=0.0, roll=x * 0.5, pitch=-x * 0.5))
            await asyncio.sleep(0.05)

    # the pilot's own cost (its wake-ups, building setpoints), measured without a core
    task = asyncio.create_task(pilot(Mixer()))
    cpu0, wall0 = _usage(), time.monotonic()
    await asyncio.sleep(min(5.0, duration / 4))
    pilot_share = (_usage() - cpu0) / (time.monotonic() - wall0)
    task.cancel()

    cfg = CoreConfig(link=LinkConfig(port=path, period_ms=period * 1e3))
    core = FlightCore(path, cfg)
    with realtime_process(cfg.realtime) as process:   # as `pipilot sim` sets the process up
        await core.start()
        spent: list[float] = []
        stall_task = asyncio.create_task(_stalls(stalls, spent))
        src = asyncio.create_task(pilot(core.mixer))
        cpu0, wall0 = _usage(), time.monotonic()
        await asyncio.sleep(duration)
        cpu, wall = _usage() - cpu0, time.monotonic() - wall0
        src.cancel()
        stall_task.cancel()
        await core.stop()
    st = core.stats
    return {"cpu_s": cpu, "wall_s": wall, "stall_cpu_s": sum(spent),
            "pilot_cpu_share_pct": pilot_share * 100.0, "pump": st.pump,
            "realtime": st.realtime, "process": process.lines,
            "pump_missed_slots": st.missed_slots, "pump_silent_slots": st.silent_slots,
            "pump_skips": st.skips,
            "pump_write_errors": st.write_errors,
            "pump_watchdog_frames": st.watchdog_frames, "pump_max_gap_s": st.max_gap_s,
            "core_max_mix_gap_s": st.max_mix_gap_s, "loadavg_at_end": os.getloadavg(),
            "pump_wake_lateness_p50_s": st.lateness_p50_s,
            "pump_wake_lateness_p99_s": st.lateness_p99_s,
            "pump_wake_lateness_max_s": st.lateness_max_s}


async def writer_asyncio(path: str, period: float, duration: float, stalls: str) -> dict:
    fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
    spent: list[float] = []
    stall_task = asyncio.create_task(_stalls(stalls, spent))
    cpu0, wall0 = _usage(), time.monotonic()
    while time.monotonic() - wall0 < duration:
        os.write(fd, FRAME)
        await asyncio.sleep(period)
    cpu, wall = _usage() - cpu0, time.monotonic() - wall0
    stall_task.cancel()
    os.close(fd)
    return {"cpu_s": cpu, "wall_s": wall, "stall_cpu_s": sum(spent)}


WRITERS = {"pipilot": writer_pipilot, "asyncio_sleep": writer_asyncio}
#: name, CPU burners?, event-loop stall kind
SCENARIOS = (("idle", False, "none"), ("loaded", True, "sleep"), ("loaded_gil_stall", True, "gil"))


# -- the parent ---------------------------------------------------------------------

def build_helper(tmp: str) -> str:
    exe = os.path.join(tmp, "frame_clock_helper")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", exe, str(HELPER_SRC)], check=True)
    return exe


def frame_times(path: str) -> list[float]:
    """Arrival time of each frame's first byte, from the reader's records."""
    data = Path(path).read_bytes()
    times: list[float] = []
    total = 0
    for t_ns, n in struct.iter_unpack("=qq", data):
        # frames that start within this read
        first = -(-total // 25) * 25
        times.extend(t_ns * 1e-9 for _ in range(first, total + n, 25))
        total += n
    return times


def start_writer(helper: str, writer: str, period: float, duration: float, stalls: str,
                 tmp: str) -> dict:
    """A pty, its far-end reader, and the writer process on the slave end."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    out = os.path.join(tmp, f"{writer}-{stalls}.bin")
    reader = subprocess.Popen([helper, "reader", str(master), out, str(duration + 120)],
                              pass_fds=[master])
    time.sleep(0.2)
    if writer == "c_writer":
        cmd = [helper, "writer", path, str(round(period * 1e9)), str(duration)]
    else:
        cmd = [sys.executable, __file__, "--role", writer, "--port", path,
               "--period-ms", str(period * 1e3), "--duration", str(duration),
               "--stalls", stalls]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    return {"writer": writer, "proc": proc, "reader": reader, "fds": (master, slave),
            "out": out, "t0": time.monotonic()}


def finish_writer(w: dict, period: float) -> dict:
    proc = w["proc"]
    stdout = proc.stdout.read() if proc.stdout else ""
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - w["t0"]
    time.sleep(0.3)                  # the last frames through the pty
    w["reader"].terminate()
    w["reader"].wait()
    for fd in w["fds"]:
        os.close(fd)
    if status != 0:
        raise RuntimeError(f"{w['writer']} failed: {status}")
    info = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
    times = frame_times(w["out"])
    # slots the writer says it left out on purpose or for lateness (the pump counts them)
    skipped = info.get("pump_missed_slots", 0) + info.get("pump_silent_slots", 0)
    stats = arrival_stats(times, period, skipped=skipped, warmup_s=WARMUP_S,
                          skips_at=[tuple(x) for x in info.pop("pump_skips", [])])
    if "cpu_s" in info:
        cpu = info.pop("cpu_s") - info.get("stall_cpu_s", 0.0)
        cpu_wall = info.pop("wall_s")
    else:
        cpu, cpu_wall = usage.ru_utime + usage.ru_stime, wall
    stats["cpu_share_pct"] = cpu / cpu_wall * 100.0
    stats.update(info)
    if "pilot_cpu_share_pct" in stats:
        stats["streaming_cpu_share_pct"] = stats["cpu_share_pct"] - stats["pilot_cpu_share_pct"]
    return stats


def steal_s() -> float:
    """CPU time the hypervisor took from this VM, summed over CPUs (seconds)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    hz = os.sysconf("SC_CLK_TCK")
    return int(fields[8]) / hz if len(fields) > 8 else 0.0


def run_scenario(helper: str, period: float, duration: float, loaded: bool, stalls: str,
                 tmp: str) -> dict:
    """All three writers at once, so they meet the same machine load."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(2 if loaded else 0)]
    try:
        started = [start_writer(helper, w, period, duration, stalls, tmp)
                   for w in ("c_writer", "asyncio_sleep", "pipilot")]
        return {w["writer"]: finish_writer(w, period) for w in started}
    finally:
        for b in burners:
            b.kill()
            b.wait()


def figures(res: dict, period: float) -> dict:
    p, c = res["pipilot"], res["c_writer"]
    return {
        "mean_period_error_pct": p["period_error_pct"],
        "p99_above_c_writer_us": (p["lateness_p99_s"] - c["lateness_p99_s"]) * 1e6,
        "longest_gap_periods": p["longest_gap_s"] / period,
        "c_writer_longest_gap_periods": c["longest_gap_s"] / period,
        "pump_longest_gap_periods": p["pump_max_gap_s"] / period,
        "cpu_share_pct": p["streaming_cpu_share_pct"],
        "cpu_share_incl_pilot_pct": p["cpu_share_pct"],
        "asyncio_sleep_period_error_pct": res["asyncio_sleep"]["period_error_pct"],
        "p99_ratio_pipilot_to_c": p["lateness_p99_s"] / max(c["lateness_p99_s"], 1e-9),
    }


def verdict(fig: dict, loaded: bool) -> dict:
    return {
        "mean_period_within_0.01pct": abs(fig["mean_period_error_pct"]) <= 0.01,
        "p99_within_100us_of_c": fig["p99_above_c_writer_us"] <= 100.0,
        "no_gap_above_2P": fig["longest_gap_periods"] <= 2.0 or not loaded,
        "cpu_at_most_2pct": fig["cpu_share_pct"] <= 2.0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--period-ms", type=float, default=7.0)
    ap.add_argument("--role", choices=sorted(WRITERS), help=argparse.SUPPRESS)
    ap.add_argument("--port", help=argparse.SUPPRESS)
    ap.add_argument("--stalls", default="none", help=argparse.SUPPRESS)
    args = ap.parse_args()
    period = args.period_ms * 1e-3
    if args.role:
        result = asyncio.run(WRITERS[args.role](args.port, period, args.duration, args.stalls))
        print(json.dumps(result))
        return 0
    out: dict = {"benchmark": "frame_clock", "period_ms": args.period_ms,
                 "duration_s": args.duration, "cpus": os.cpu_count(),
                 "loadavg_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        helper = build_helper(tmp)
        for scenario, loaded, stalls in SCENARIOS:
            steal0, load0 = steal_s(), os.getloadavg()[0]
            res = run_scenario(helper, period, args.duration, loaded, stalls, tmp)
            machine = {"vm_steal_s": round(steal_s() - steal0, 2),
                       "loadavg_1min_before_after": [load0, os.getloadavg()[0]]}
            fig = figures(res, period)
            out[scenario] = {"machine": machine, "writers": res, "figures": fig,
                             "pass": verdict(fig, loaded)}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
