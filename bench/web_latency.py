"""Browser controller latency, in sim: slider in the page -> S.Bus frame on the wire.

Runs the whole stack (simulated CC3D on pty pairs, FlightCore, telemetry, the
web server) and drives Debian's chromium with playwright.

1. 200 moves of a slider (Accessory 0, so the sim's flight is not disturbed),
   spaced irregularly so they fall at every phase of the frame clock. For each
   move: the page's clock when the input event fired, and the wire time at which
   the last byte of the first frame carrying the new value arrived at the
   simulated FC (timestamps of pipilot.link's wire reader). p50/p99 against the
   target P + 5 ms.
2. Frame-clock lateness on the wire with only the pilot's page, then with 20
   observer pages connected as well (same run, same process); the p99 must
   not move by more than 50 us.

Prints one JSON object. Usage: python bench/web_latency.py [--moves N] [--window S]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import statistics
import time
from typing import Any

from pipilot.core.config import CoreConfig, LinkConfig
from pipilot.core.telemetry import TelemetrySession
from pipilot.core.vehicle import Vehicle
from pipilot.sim.model import SimulatedCC3D
from pipilot.sim.runner import RealtimeSim
from playwright.async_api import async_playwright

from pipilot import sbus
from pipilot.server.app import ServerConfig
from pipilot.server.runner import serve

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TOKEN = "bench-token"
ACC0 = 4  # S.Bus channel index (0-based) of Accessory 0 on the rig's map


class TappedSim(RealtimeSim):
    """The real-time sim, also recording every frame's wire times as it arrives."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.decoder = sbus.FrameDecoder()
        self.frames: list[tuple[float, float, list[int]]] = []  # (first byte end, last, ch)
        self._times: list[float] = []

    def _on_sbus(self, data: bytes, end_times: list[float]) -> None:
        super()._on_sbus(data, end_times)
        for b, t in zip(data, end_times, strict=True):
            self._times.append(t)
            for fr in self.decoder.feed(bytes((b,))):
                self.frames.append((self._times[-25], t, list(fr.channels)))
                self._times.clear()
        del self._times[:-25]


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def lateness_us(starts: list[float], period: float) -> list[float]:
    """Each frame's start against the ideal grid t0 + k*P (t0 from the earliest)."""
    ref = starts[0]
    offs = [t - ref - round((t - ref) / period) * period for t in starts]
    base = min(offs)
    return [(o - base) * 1e6 for o in offs]


async def main(moves: int, window: float, observers: int) -> dict[str, Any]:
    model = SimulatedCC3D(seed=1)
    sim = TappedSim(model).start()
    base = CoreConfig()
    period = base.link.period_ms / 1e3
    config = base.replace(link=LinkConfig(port=sim.sbus_port, period_ms=base.link.period_ms))
    vehicle = Vehicle.create(sim.sbus_port, config, sim=sim)
    session = await TelemetrySession.open(sim.telemetry_port, 9600)
    vehicle.attach_telemetry(session)
    await session.start()
    await vehicle.start()
    wall_minus_mono = time.time() - time.monotonic()
    out: dict[str, Any] = {"period_ms": period * 1e3, "target_p99_ms": period * 1e3 + 5.0}
    try:
        cfg = ServerConfig(port=0, token=TOKEN)
        async with serve(vehicle, cfg, out=io.StringIO()) as url, async_playwright() as pw:
            base_url = url.split("?")[0].rstrip("/")
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium",
                                               args=CHROMIUM_ARGS)
            page = await browser.new_page()
            await page.goto(f"{base_url}/?token={TOKEN}")
            await page.get_by_role("button", name="Take control").click()
            await page.locator("#seat").filter(has_text="PILOT").wait_for()
            await asyncio.sleep(1.0)
            out["slider_to_wire_ms"] = await slider_moves(page, sim, moves, wall_minus_mono)
            out["observers"] = await observer_effect(browser, base_url, sim, period, window,
                                                     observers)
            await browser.close()
    finally:
        await vehicle.stop()
        await session.stop()
        sim.stop()
    lat = out["slider_to_wire_ms"]
    out["pass_latency"] = lat["p99"] <= out["target_p99_ms"]
    out["pass_observers"] = out["observers"]["delta_p99_us"] <= 50.0
    return out


async def slider_moves(page: Any, sim: TappedSim, n: int, wall_minus_mono: float
                       ) -> dict[str, Any]:
    rng = random.Random(7)
    lat: list[float] = []
    missed = 0
    value = -0.5
    for _ in range(n):
        value = -value
        await asyncio.sleep(rng.uniform(0.04, 0.09))
        mark = len(sim.frames)
        before = sim.frames[-1][2][ACC0] if sim.frames else None
        t_page_ms = await page.evaluate(
            """(v) => { const el = document.getElementById('acc0');
                        const t = performance.timeOrigin + performance.now();
                        el.value = String(v);
                        el.dispatchEvent(new Event('input', {bubbles: true}));
                        return t; }""", value)
        t_move = t_page_ms / 1e3 - wall_minus_mono  # onto the monotonic clock
        deadline = time.monotonic() + 0.5
        hit = None
        while hit is None and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
            for _s, end, ch in sim.frames[mark:]:
                if before is not None and ch[ACC0] != before and end >= t_move:
                    moved_up = ch[ACC0] > before
                    if moved_up == (value > 0):
                        hit = end
                        break
        if hit is None:
            missed += 1
        else:
            lat.append((hit - t_move) * 1e3)
    return {"moves": n, "measured": len(lat), "missed": missed,
            "p50": round(statistics.median(lat), 3), "p99": round(pct(lat, 0.99), 3),
            "max": round(max(lat), 3), "min": round(min(lat), 3)}


async def lateness_window(sim: TappedSim, period: float, seconds: float) -> dict[str, float]:
    mark = len(sim.frames)
    await asyncio.sleep(seconds)
    starts = [s for s, _e, _c in sim.frames[mark:]]
    late = lateness_us(starts, period)
    return {"frames": len(starts), "p50_us": round(pct(late, 0.5), 1),
            "p99_us": round(pct(late, 0.99), 1), "max_us": round(max(late), 1)}


async def observer_effect(browser: Any, base_url: str, sim: TappedSim, period: float,
                          window: float, n: int) -> dict[str, Any]:
    alone = await lateness_window(sim, period, window)
    ctx = await browser.new_context()
    pages = []
    for _ in range(n):
        p = await ctx.new_page()
        await p.goto(f"{base_url}/?token={TOKEN}")
        pages.append(p)
    for p in pages:
        await p.locator("#conn").filter(has_text="online").wait_for()
    await asyncio.sleep(1.0)
    crowded = await lateness_window(sim, period, window)
    await ctx.close()
    return {"pages": n, "pilot_only": alone, "with_observers": crowded,
            "delta_p99_us": round(crowded["p99_us"] - alone["p99_us"], 1)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=200)
    ap.add_argument("--window", type=float, default=20.0, help="seconds per lateness window")
    ap.add_argument("--observers", type=int, default=20)
    a = ap.parse_args()
    print(json.dumps(asyncio.run(main(a.moves, a.window, a.observers)), indent=2))
