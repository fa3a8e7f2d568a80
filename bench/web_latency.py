"""Browser controller latency, in sim: slider in the page -> S.Bus frame on the wire.

Runs the whole stack in this process (simulated CC3D on pty pairs, FlightCore,
telemetry, the web server), the flight side on a thread set up as `pipilot fly`
sets up its own (see FlightSide), and drives Debian's chromium with playwright
from the main thread. The
S.Bus bytes pass through a tap in a process of its own (bench/_wire_tap.py),
so their timestamps do not wait for this process's GIL; a frame is "on the
wire" when its last byte's stop bits end at 100000 baud 8E2 (3 ms after the
write, later if the line is still busy with the previous frame).

1. 200 moves of a slider (Accessory 0, so the flight is not disturbed), spaced
   irregularly so they fall at every phase of the frame clock: the page's clock
   at the input event -> the end of the first frame carrying the new value.
   Also split: page -> the server's publish to the mixer, publish -> wire; and
   finer (`path_ms`): page -> the server hands the message to the hub (the
   browser, the kernel, aiohttp), -> the pilot's publish (parse, cockpit),
   -> the mixer's publish on the flight loop (the hop between threads),
   -> the frame's end on the wire (the wait for the next slot, 3 ms on the wire).
   Targets: slider -> wire p99 <= P + 5 ms, publish -> wire p99 <= P + 4 ms.
2. The frame clock's lateness (the pump's own wake-up histogram, per window)
   with the pilot's page alone, then with 20 observer pages connected as well;
   the p99 must not move by more than 50 us.

Prints one JSON object. Usage: python bench/web_latency.py [--moves N] [--window S]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import io
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path
from typing import Any

from _percentile import pct
from playwright.async_api import async_playwright

from pipilot import sbus
from pipilot.cli._realtime import realtime_process
from pipilot.core.config import CoreConfig, LinkConfig, RealtimeConfig
from pipilot.core.mixer import Mixer
from pipilot.core.setpoints import Setpoint
from pipilot.core.telemetry import TelemetrySession
from pipilot.core.vehicle import Vehicle
from pipilot.link import realtime
from pipilot.link.pump import HIST_BIN_NS, PumpStats
from pipilot.link.timing import slots
from pipilot.server.adapter import VehicleAdapter
from pipilot.server.app import Hub, ServerConfig
from pipilot.server.runner import serve
from pipilot.sim.model import SimulatedCC3D
from pipilot.sim.runner import RealtimeSim

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TOKEN = "bench-token"
ACC0 = 4  # S.Bus channel index (0-based) of Accessory 0 on the rig's map
FRAME_WIRE_S = sbus.FRAME_LEN * sbus.BYTE_TIME


class Tap:
    """The tap process and a thread collecting its frames: (end on the wire, channels)."""

    def __init__(self, sim_port: str) -> None:
        master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("_wire_tap.py")), str(master),
             sim_port], pass_fds=(master,), stdout=subprocess.PIPE, text=True)
        os.close(master)
        self.frames: list[tuple[float, list[int]]] = []
        self.starts: list[float] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        dec = sbus.FrameDecoder()
        wire_free = 0.0
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            t_s, hexdata = line.split()
            data = bytes.fromhex(hexdata)
            start = max(float(t_s), wire_free)
            wire_free = start + len(data) * sbus.BYTE_TIME
            for fr in dec.feed(data):
                self.starts.append(float(t_s))
                self.frames.append((wire_free, list(fr.channels)))

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        os.close(self._slave)


class PathStamps:
    """Times (time.monotonic) along the slider's path, each with the Accessory 0 value
    it carried: a page's control message handed to the hub (the web thread), and
    the pilot's setpoint published to the mixer (the flight loop)."""

    def __init__(self) -> None:
        self.handled: list[tuple[float, float]] = []
        self.mixed: list[tuple[float, float]] = []

    def install(self) -> contextlib.AbstractContextManager[None]:
        """Wrap Hub.handle and Mixer.publish while the context lasts."""
        stamps = self
        handle, publish = Hub.handle, Mixer.publish

        def handled(hub: Hub, client: Any, text: str) -> None:
            t = time.monotonic()
            with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
                msg = json.loads(text)
                if msg["type"] == "control":
                    stamps.handled.append((t, float(msg["accessories"][0])))
            handle(hub, client, text)

        def published(mixer: Mixer, source: str, setpoint: Setpoint,
                      t: float | None = None) -> None:
            if source == "pilot":
                stamps.mixed.append((time.monotonic(), setpoint.accessories[0]))
            publish(mixer, source, setpoint, t)

        @contextlib.contextmanager
        def installed() -> Any:
            Hub.handle = handled  # type: ignore[method-assign]
            Mixer.publish = published  # type: ignore[method-assign]
            try:
                yield
            finally:
                Hub.handle, Mixer.publish = handle, publish  # type: ignore[method-assign]

        return installed()

    @staticmethod
    def first(stamps: list[tuple[float, float]], value: float, after: float) -> float | None:
        return next((t for t, a in stamps if a == value and t >= after), None)


class FlightSide:
    """The flight side as `pipilot fly` runs it: a thread of its own whose event
    loop is the flight loop, set up by the same `realtime_process` (SCHED_FIFO
    below the pump), and the web server on a thread it starts (which inherits
    that). Playwright is driven from the caller's thread; its driver process
    and the browser keep normal priority, as a browser on another machine
    would."""

    def __init__(self, config: CoreConfig, sim: RealtimeSim) -> None:
        self.config = config
        self.sim = sim
        self.vehicle = Vehicle.create(config.link.port, config, sim=sim)
        self.process: list[str] = []
        self.stats: dict[str, Any] = {}
        self._url: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="flight-loop")

    def start(self) -> str:
        """Start the thread; the page's URL once the core flies and the page is served."""
        self._thread.start()
        return self._url.result(timeout=60)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):   # its loop has already ended
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            if not self._url.done():
                self._url.set_exception(exc)
            raise

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        vehicle = self.vehicle
        with realtime_process(self.config.realtime, loop_fifo=True) as report:
            self.process = report.lines
            session = await TelemetrySession.open(self.sim.telemetry_port, 9600)
            vehicle.attach_telemetry(session)
            await session.start()
            await vehicle.start()
            try:
                cfg = ServerConfig(port=0, token=TOKEN)
                async with serve(vehicle, cfg, out=io.StringIO()) as url:
                    self._url.set_result(url)
                    await self._stop.wait()
            finally:
                await vehicle.stop()
                await session.stop()
                self.stats = vehicle.core.stats.as_dict()


def summary(xs: list[float], nd: int = 3) -> dict[str, float]:
    return {"p50": round(statistics.median(xs), nd), "p99": round(pct(xs, 0.99), nd),
            "min": round(min(xs), nd), "max": round(max(xs), nd)}


async def main(moves: int, window: float, observers: int) -> dict[str, Any]:
    publishes: list[tuple[float, float]] = []  # (monotonic, accessory 0) at the mixer
    original = VehicleAdapter.publish_pilot

    def spy(self: VehicleAdapter, setpoint: Setpoint) -> None:
        publishes.append((time.monotonic(), setpoint.accessories[0]))
        original(self, setpoint)

    VehicleAdapter.publish_pilot = spy  # type: ignore[method-assign]
    stamps = PathStamps()
    silences: list[float] = []

    class Seat(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "-> silent" in record.getMessage():
                silences.append(time.monotonic())

    logging.getLogger("pipilot.server.cockpit").addHandler(Seat())
    logging.getLogger("pipilot.server.cockpit").setLevel(logging.INFO)

    base = CoreConfig()
    period = base.link.period_ms / 1e3
    out: dict[str, Any] = {"period_ms": period * 1e3, "target_p99_ms": period * 1e3 + 5.0,
                           "target_publish_p99_ms": period * 1e3 + 4.0}
    async with async_playwright() as pw:
        # Playwright's driver (and the browser it launches) keeps normal priority, as a
        # browser on another machine would; every thread of this process started from
        # here on (the simulator's, the tap reader's) runs at the flight loop's
        # SCHED_FIFO, as all of `pipilot fly`'s do: one descheduled at normal priority
        # while holding the GIL would stall the flight loop, which only measures this
        # bench's crowding of one process.
        saved = realtime.this_thread_scheduling()
        out["bench_threads"] = realtime.fifo_this_thread(base.realtime.loop_priority)
        try:
            with stamps.install():
                await measure(pw, base, out, publishes, silences, moves, window, observers,
                              stamps)
        finally:
            VehicleAdapter.publish_pilot = original  # type: ignore[method-assign]
            realtime.restore_this_thread(saved)
    lat = out["slider_to_wire_ms"]
    out["pass_latency"] = lat["total"]["p99"] <= out["target_p99_ms"]
    out["pass_publish_latency"] = lat["mixer_to_wire"]["p99"] <= out["target_publish_p99_ms"]
    slot = out["slider_to_slot_ms"]
    if "total" in slot:
        out["pass_latency_by_slot"] = slot["total"]["p99"] <= out["target_p99_ms"]
        out["pass_publish_latency_by_slot"] = \
            slot["mixer_to_wire"]["p99"] <= out["target_publish_p99_ms"]
    out["pass_observers"] = out["frame_clock_lateness"]["delta_p99_us"] <= 50.0
    return out


async def measure(pw: Any, base: CoreConfig, out: dict[str, Any],
                  publishes: list[tuple[float, float]], silences: list[float], moves: int,
                  window: float, observers: int, stamps: PathStamps) -> None:
    model = SimulatedCC3D(seed=1)
    sim = RealtimeSim(model).start()
    tap = Tap(sim.sbus_port)
    config = base.replace(link=LinkConfig(port=tap.port, period_ms=base.link.period_ms),
                          realtime=RealtimeConfig(mlockall=False))
    flight = FlightSide(config, sim)
    try:
        url = await asyncio.to_thread(flight.start)
        vehicle = flight.vehicle
        out["pump"] = vehicle.core.stats.pump
        out["process"] = flight.process
        base_url = url.split("?")[0].rstrip("/")
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium",
                                           args=CHROMIUM_ARGS)
        page = await browser.new_page()
        await page.goto(f"{base_url}/?token={TOKEN}")
        await page.get_by_role("button", name="Take control").click()
        await page.locator("#seat").filter(has_text="PILOT").wait_for()
        await asyncio.sleep(1.0)
        offset = await clock_offset(page)
        out["page_clock_offset_uncertainty_ms"] = round(offset[1] * 1e3, 3)
        t_moves = time.monotonic()
        acc0 = vehicle.mixer.calibration.calibration_for("accessory0")
        hits: list[tuple[float, float, int]] = []
        out["slider_to_wire_ms"] = await slider_moves(page, tap, publishes, moves,
                                                      offset[0], acc0.bipolar, hits, stamps)
        pump = vehicle.core.pump
        assert pump is not None
        out["slider_to_slot_ms"] = by_slot(tap, pump.stats(), hits, base.period_s)
        t_obs = time.monotonic()
        out["frame_clock_lateness"] = await observer_effect(
            browser, base_url, vehicle, window, observers)
        # Times the pilot page's heartbeat went silent for 300 ms (the failsafe
        # applied): a loaded machine starves the browser.
        out["pilot_heartbeat_losses"] = {
            "during_moves": sum(t_moves <= t < t_obs for t in silences),
            "during_lateness_windows": sum(t >= t_obs for t in silences)}
        out["load_average"] = os.getloadavg()
        await browser.close()
    finally:
        await asyncio.to_thread(flight.stop)
        sim.stop()
        tap.close()
    st = flight.stats
    out["core"] = {k: st[k] for k in ("frames_sent", "watchdog_frames", "missed_slots",
                                      "silent_slots", "max_mix_gap_s", "link_errors")}


async def clock_offset(page: Any) -> tuple[float, float]:
    """Page clock (performance.timeOrigin + now, ms) minus time.monotonic(), in seconds,
    from the tightest of 30 round trips; and its uncertainty (half that round trip)."""
    best = (0.0, float("inf"))
    for _ in range(30):
        t0 = time.monotonic()
        tp = await page.evaluate("performance.timeOrigin + performance.now()") / 1e3
        t1 = time.monotonic()
        if (t1 - t0) / 2 < best[1]:
            best = (tp - (t0 + t1) / 2, (t1 - t0) / 2)
    return best


async def slider_moves(page: Any, tap: Tap, publishes: list[tuple[float, float]], n: int,
                       offset: float, raw: Any, hits: list[tuple[float, float, int]],
                       stamps: PathStamps) -> dict[str, Any]:
    """Each move is matched to the publish carrying its value and the first frame whose
    Accessory 0 channel holds its raw value, neither earlier than the move itself.
    `hits` gets (move, publish, index of that frame among the tap's) for each."""
    rng = random.Random(7)
    total: list[float] = []
    to_server: list[float] = []
    to_wire: list[float] = []
    path: dict[str, list[float]] = {"page_to_server": [], "server_to_publish": [],
                                    "to_flight_loop": [], "flight_loop_to_wire": []}
    missed = 0
    value = -0.5
    for _ in range(n):
        value = -value
        await asyncio.sleep(rng.uniform(0.04, 0.09))
        mark, pmark = len(tap.frames), len(publishes)
        want = raw(value)
        t_page = await page.evaluate(
            """(v) => { const el = document.getElementById('acc0');
                        const t = performance.timeOrigin + performance.now();
                        el.value = String(v);
                        el.dispatchEvent(new Event('input', {bubbles: true}));
                        return t; }""", value)
        t_move = t_page / 1e3 - offset  # onto time.monotonic()
        deadline = time.monotonic() + 0.5
        hit = pub = None
        index = -1
        while (hit is None or pub is None) and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
            pub = next((t for t, a in publishes[pmark:] if a == value and t >= t_move), None)
            index, hit = next(((mark + i, end) for i, (end, ch) in enumerate(tap.frames[mark:])
                               if ch[ACC0] == want and end >= t_move), (-1, None))
        if hit is None or pub is None:
            missed += 1
            continue
        hits.append((t_move, pub, index))
        total.append((hit - t_move) * 1e3)
        to_server.append((pub - t_move) * 1e3)
        to_wire.append((hit - pub) * 1e3)
        handled = PathStamps.first(stamps.handled, value, t_move)
        mixed = PathStamps.first(stamps.mixed, value, pub)
        if handled is not None and mixed is not None and handled <= pub <= mixed <= hit:
            for key, (a, b) in {"page_to_server": (t_move, handled),
                                "server_to_publish": (handled, pub),
                                "to_flight_loop": (pub, mixed),
                                "flight_loop_to_wire": (mixed, hit)}.items():
                path[key].append((b - a) * 1e3)
    out: dict[str, Any] = {"moves": n, "measured": len(total), "missed": missed,
                           "total": summary(total), "page_to_mixer": summary(to_server),
                           "mixer_to_wire": summary(to_wire)}
    if path["page_to_server"]:
        out["path_ms"] = {"measured": len(path["page_to_server"]),
                          **{k: summary(v) for k, v in path.items()}}
    return out


def by_slot(tap: Tap, st: PumpStats, hits: list[tuple[float, float, int]],
            period: float) -> dict[str, Any]:
    """The moves again, each frame's wire time taken from its slot instead of from
    when the pty delivered it: the k-th frame the tap read is the k-th the pump
    wrote (skipped slots placed by the pump's log), written at its deadline
    (the pump's wake-up lateness: `frame_clock_lateness`), and a UART would have
    it on the wire 3 ms later. A pty hands bytes over in a kernel worker that
    runs at normal priority and, under load, delivers them milliseconds late,
    sometimes tens of ms in a burst: the tap's timing includes that; this one
    isolates the core and its pump (what a real UART sees)."""
    starts = list(tap.starts)
    k = slots(starts, period, "index", st.missed_slots + st.silent_slots, st.skips)
    d0 = min(t - ki * period for t, ki in zip(starts, k, strict=True))
    total: list[float] = []
    to_wire: list[float] = []
    early = 0
    for t_move, pub, index in hits:
        if index >= len(k):
            continue
        end = d0 + k[index] * period + FRAME_WIRE_S
        if end - FRAME_WIRE_S < pub:
            early += 1          # placed in a slot before its publish: the slotting failed
            continue
        total.append((end - t_move) * 1e3)
        to_wire.append((end - pub) * 1e3)
    out: dict[str, Any] = {"measured": len(total), "placed_before_publish": early,
                           "pty_delivery_ms": summary([(t - d0 - ki * period) * 1e3
                                                       for t, ki in zip(starts, k, strict=True)])}
    if total:
        out["total"] = summary(total)
        out["mixer_to_wire"] = summary(to_wire)
    return out


def window_p(hist: list[int], q: float) -> float:
    total = sum(hist)
    acc = 0
    for i, c in enumerate(hist):
        acc += c
        if acc >= q * total:
            return (i + 1) * HIST_BIN_NS / 1e3
    return len(hist) * HIST_BIN_NS / 1e3


async def lateness_window(vehicle: Any, seconds: float) -> dict[str, float]:
    """The pump's lateness histogram over `seconds` only (difference of two snapshots)."""
    pump = vehicle.core.pump
    a = list(pump.stats().histogram)
    await asyncio.sleep(seconds)
    b = list(pump.stats().histogram)
    diff = [y - (a[i] if i < len(a) else 0) for i, y in enumerate(b)]
    return {"frames": sum(diff), "p50_us": window_p(diff, 0.5), "p99_us": window_p(diff, 0.99),
            "p999_us": window_p(diff, 0.999)}


async def observer_effect(browser: Any, base_url: str, vehicle: Any, window: float,
                          n: int) -> dict[str, Any]:
    alone = await lateness_window(vehicle, window)
    ctx = await browser.new_context()
    pages = []
    for _ in range(n):
        p = await ctx.new_page()
        await p.goto(f"{base_url}/?token={TOKEN}")
        pages.append(p)
    for p in pages:
        await p.locator("#conn").filter(has_text="online").wait_for()
    await asyncio.sleep(1.0)
    crowded = await lateness_window(vehicle, window)
    await ctx.close()
    return {"observer_pages": n, "histogram_bin_us": HIST_BIN_NS / 1e3,
            "pilot_only": alone, "with_observers": crowded,
            "delta_p99_us": round(crowded["p99_us"] - alone["p99_us"], 1)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--moves", type=int, default=200)
    ap.add_argument("--window", type=float, default=20.0, help="seconds per lateness window")
    ap.add_argument("--observers", type=int, default=20)
    a = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(asyncio.run(main(a.moves, a.window, a.observers)), indent=2))
