"""Bench: the page's Hold in real time, as a pilot on the web page uses it.

`pipilot sim`'s whole stack in this process (the real-time simulated CC3D in
wind, the flight core, telemetry, the simulated flow deck read by its drivers
on a reader thread, the hold, the web server on its thread), flown by a
scripted page over the websocket protocol (pipilot/server/protocol.py, as
web/js does: sticks every 40 ms). The pilot takes off to about 1 m by eye
(the bench reads the simulator's truth; the flight path never does), presses
Hold, lets go of the sticks, then the floor's texture drops out for
``--dropout`` seconds (the hold withdraws, the pilot's fallback flies), comes
back (the hold holds again), and Hold goes off (the pilot flies on).

Prints JSON: the true excursion and speed while held, the hand-over times
read on the flight loop every 2 ms (hold withdrawn -> the pilot's fallback on
the mixer, and whether the core's lost-source state showed between), and
the throttle step when Hold goes off.

    python bench/hold_page.py [--seed 3] [--wind 0.5,0.3,0.1] [--hold-s 10] [--dropout 3]
                              [--attitude-ms MS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipilot.cli._flowdeck import sim_drivers, start_hold
from pipilot.core.config import CoreConfig, LinkConfig, RealtimeConfig
from pipilot.core.telemetry import TelemetrySession
from pipilot.core.vehicle import Vehicle
from pipilot.server.app import ServerConfig
from pipilot.server.runner import serve
from pipilot.sim.dynamics import QuadParams
from pipilot.sim.model import SimulatedCC3D
from pipilot.sim.runner import RealtimeSim

TOKEN = "bench-token"


@dataclass
class Sample:
    t: float
    hold: str
    source: str | None
    failsafe: str
    throttle: float


@dataclass
class Recorder:
    """What the flight loop sees every 2 ms: the hold's state and who flies."""

    vehicle: Vehicle
    samples: list[Sample] = field(default_factory=list)

    async def run(self) -> None:
        v = self.vehicle
        while True:
            out = v.core.last_output
            hold = v.hold
            self.samples.append(Sample(
                v.clock.now(), "none" if hold is None else hold.status().state.value,
                None if out is None else out.source, v.core.failsafe.state.value,
                0.0 if out is None else float(out.setpoint.throttle)))
            await asyncio.sleep(0.002)

    def first(self, after: float, cond: Any) -> Sample | None:
        return next((s for s in self.samples if s.t >= after and cond(s)), None)


class Pilot:
    """The page: its sticks go out every 40 ms (the heartbeat), in the mode the server set."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.sticks = {"throttle": 0.0, "yaw": 0.0, "roll": 0.0, "pitch": 0.0,
                       "accessories": [0.0, 0.0, 0.0, 0.0]}
        self.hold = False
        self.seq = 0
        self.messages: list[dict[str, Any]] = []
        self.state: dict[str, Any] = {}

    async def send(self, msg: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(msg))

    async def feed(self) -> None:
        while True:
            self.seq += 1
            await self.send({"type": "control", "seq": self.seq, **self.sticks,
                             "hold": self.hold})
            await asyncio.sleep(0.04)

    async def read(self) -> None:
        async for msg in self.ws:
            m = json.loads(msg.data)
            if m["type"] == "state":
                self.state = m
            else:
                self.messages.append(m)
            if m["type"] == "hold":
                self.hold = m["on"]
                self.sticks.update({k: m["sticks"][k] for k in ("throttle", "roll", "pitch",
                                                                 "yaw")})

    async def wait(self, cond: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: {self.state.get('hold')} {self.messages[-3:]}")
            await asyncio.sleep(0.02)


def p(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    wn, we, gust = args.wind
    model = SimulatedCC3D(seed=args.seed, params=QuadParams(gust_sigma=gust), wind=(wn, we))
    sim = RealtimeSim(model).start()
    config = CoreConfig().replace(
        link=LinkConfig(port=sim.sbus_port),
        realtime=RealtimeConfig(mlockall=False, gc_freeze=False, nice=0))
    vehicle = Vehicle.create(sim.sbus_port, config, sim=sim)
    session = await TelemetrySession.open(sim.telemetry_port, 9600)
    vehicle.attach_telemetry(session)
    texture = [1.0]
    rec = Recorder(vehicle)
    tasks: list[asyncio.Task[None]] = []
    try:
        await session.start()
        await vehicle.start()
        async with contextlib.AsyncExitStack() as stack:
            drivers = await asyncio.to_thread(sim_drivers, sim, vehicle.clock,
                                              texture=lambda: texture[0], seed=args.seed)
            await start_hold(stack, vehicle, drivers, vehicle.clock)
            url = await stack.enter_async_context(
                serve(vehicle, ServerConfig(port=0, token=TOKEN), out=io.StringIO()))
            base = url.split("?")[0].rstrip("/")
            http = await stack.enter_async_context(aiohttp.ClientSession())
            ws = await stack.enter_async_context(http.ws_connect(
                f"{base}/ws", headers={"Authorization": f"token {TOKEN}", "Origin": base}))
            pilot = Pilot(ws)
            tasks += [asyncio.create_task(pilot.read()), asyncio.create_task(rec.run())]
            await pilot.wait(lambda: pilot.state.get("telemetry_connected"), 60, "telemetry")
            if args.attitude_ms:
                await session.set_update_period("AttitudeState", args.attitude_ms)
            await pilot.send({"type": "take"})
            tasks.append(asyncio.create_task(pilot.feed()))
            return await flight(args, pilot, sim, rec, texture)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await vehicle.stop()
        await session.stop()
        sim.stop()


async def flight(args: argparse.Namespace, pilot: Pilot, sim: RealtimeSim, rec: Recorder,
                 texture: list[float]) -> dict[str, Any]:
    def armed() -> bool:
        return bool((pilot.state.get("flight") or {}).get("Armed") == "Armed")

    for _ in range(3):   # a loaded machine can cost the simulated FC a gesture
        await asyncio.sleep(0.6)
        await pilot.send({"type": "arm"})
        with contextlib.suppress(TimeoutError):
            await pilot.wait(armed, 10, "arming")
            break
    await pilot.wait(armed, 1, "arming")
    # up to about 1 m by eye, then steady there
    steady, deadline = 0, time.monotonic() + 60
    while steady < 10:
        if time.monotonic() > deadline:
            raise TimeoutError("no steady hover")
        tr = sim.truth_snapshot()
        h, climb = -tr.position[2], -tr.velocity[2]
        steady = steady + 1 if abs(h - 1.0) < 0.25 and abs(climb) < 0.2 else 0
        pilot.sticks["throttle"] = min(0.6, max(0.35, 0.47 + 0.1 * (1.0 - h) - 0.1 * climb))
        await asyncio.sleep(0.1)

    t_on = rec.vehicle.clock.now()
    await pilot.send({"type": "hold", "on": True, "seq": pilot.seq + 1})
    await pilot.wait(lambda: rec.samples[-1].source == "hold", 10, "hold flies")
    flies = rec.first(t_on, lambda s: s.source == "hold")
    await asyncio.sleep(args.settle)
    held = []
    t_end = time.monotonic() + args.hold_s
    while time.monotonic() < t_end:
        held.append(sim.truth_snapshot())
        await asyncio.sleep(0.05)
    n0, e0 = held[0].position[0], held[0].position[1]
    h0 = -held[0].position[2]
    excursion = [math.hypot(s.position[0] - n0, s.position[1] - e0) for s in held]
    speed = [math.hypot(s.velocity[0], s.velocity[1]) for s in held]
    height_err = [abs(-s.position[2] - h0) for s in held]

    # texture dropout: the hold withdraws, the pilot's fallback flies
    t_drop = rec.vehicle.clock.now()
    texture[0] = 0.0
    drop_truth = []
    t_end = time.monotonic() + args.dropout
    while time.monotonic() < t_end:
        drop_truth.append(sim.truth_snapshot())
        await asyncio.sleep(0.05)
    t_back = rec.vehicle.clock.now()
    texture[0] = 1.0
    await pilot.wait(lambda: rec.samples[-1].t > t_back and rec.samples[-1].source == "hold",
                     15, "holding again")
    withdrawn = rec.first(t_drop, lambda s: s.hold == "withdrawn")
    fallback = None if withdrawn is None else rec.first(withdrawn.t,
                                                         lambda s: s.source == "pilot")
    gap_states = sorted({s.failsafe for s in rec.samples
                         if withdrawn and fallback and withdrawn.t <= s.t < fallback.t})
    again = rec.first(t_back, lambda s: s.source == "hold")
    # with no texture the flow should stay invalid: time the hold flew anyway
    flew = sum(1 for s in rec.samples if t_drop <= s.t < t_back and s.source == "hold"
               and withdrawn is not None and s.t > withdrawn.t) * 0.002
    d0 = drop_truth[0].position
    drop_exc = max(math.hypot(s.position[0] - d0[0], s.position[1] - d0[1])
                   for s in drop_truth)

    # Hold off: the pilot flies on from the hover throttle
    before = rec.samples[-1].throttle
    t_off = rec.vehicle.clock.now()
    await pilot.send({"type": "hold", "on": False, "seq": pilot.seq + 1})
    await pilot.wait(lambda: rec.samples[-1].source == "pilot" and not pilot.hold, 10,
                     "pilot back")
    after = rec.first(t_off, lambda s: s.source == "pilot")
    await asyncio.sleep(0.5)
    off_window = [before] + [s.throttle for s in rec.samples if s.t >= t_off]
    return {
        "seed": args.seed, "wind": list(args.wind), "attitude_ms": args.attitude_ms or 130,
        "engage_to_hold_flies_ms": None if flies is None else round((flies.t - t_on) * 1e3, 1),
        "held": {
            "seconds": args.hold_s, "after_settle_s": args.settle,
            "max_excursion_m": round(max(excursion), 3),
            "speed_p50_mps": round(p(speed, 0.5), 3), "speed_p90_mps": round(p(speed, 0.9), 3),
            "height_change_p90_m": round(p(height_err, 0.9), 3),
        },
        "dropout": {
            "seconds": args.dropout,
            "texture_off_to_withdrawn_ms": None if withdrawn is None
            else round((withdrawn.t - t_drop) * 1e3, 1),
            "withdrawn_to_pilot_fallback_ms": None if withdrawn is None or fallback is None
            else round((fallback.t - withdrawn.t) * 1e3, 1),
            "core_states_in_between": gap_states,
            "max_excursion_m": round(drop_exc, 3),
            "hold_flew_during_dropout_s": round(flew, 2),
            "texture_back_to_hold_flies_ms": None if again is None
            else round((again.t - t_back) * 1e3, 1),
        },
        "hold_off": {
            "throttle_before": round(before, 4),
            "throttle_first_pilot": None if after is None else round(after.throttle, 4),
            "max_step_in_0_5_s": round(max((abs(b - a) for a, b in
                                            itertools.pairwise(off_window)), default=0.0), 4),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--wind", default="0.5,0.3,0.1", help="N,E,GUST m/s")
    ap.add_argument("--hold-s", type=float, default=10.0)
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--dropout", type=float, default=3.0)
    ap.add_argument("--attitude-ms", type=int, default=0,
                    help="ask the FC for AttitudeState this often (default: its own 130 ms)")
    args = ap.parse_args()
    args.wind = tuple(float(x) for x in args.wind.split(","))
    print(json.dumps(asyncio.run(bench(args)), indent=1))


if __name__ == "__main__":
    main()
