"""What bench/soak.py and bench/memory.py share: the production process against
the simulated CC3D, a scripted pilot on its page, and /proc sampling.

The simulated CC3D (`pipilot.sim.runner.RealtimeSim`) runs in the bench's own
process on two pty pairs; `pipilot fly --sbus-port <pty> --telemetry-port <pty>`
runs in a process of its own, exactly as on the rig, so its memory and its
frame timing are the production process's. `pipilot sim` (the whole stack in
one process) can be measured the same way.

The scripted pilot speaks the page's websocket protocol
(pipilot/server/protocol.py) as web/js/controls.js does: it takes the seat,
holds the throttle down and asks to arm (hold-to-confirm), then moves the
sticks smoothly (a change every `SEND_S`, well within the 300 ms heartbeat),
pings once a second, and reads every live-view update.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
HOVER = 0.5            # a throttle for a process whose simulator is out of reach
SEND_S = 0.04          # a dragged slider sends at most every 20 ms, a held one every 50
STATUS_KEYS = ("VmRSS", "VmHWM", "VmLck", "VmSize", "Threads")


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, VmLck, VmSize (kB) and Threads of process `pid` (empty when gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in STATUS_KEYS:
                    out[key] = int(rest.split()[0])
    except (OSError, ValueError):
        return {}
    return out


def rollup(pid: int) -> dict[str, int]:
    """/proc/PID/smaps_rollup (kB): where the resident memory is (anonymous, file)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError), \
            open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                out[key] = int(rest.split()[0])
    return out


def python_env(tree: Path | None = None) -> dict[str, str]:
    """The environment for a pipilot subprocess importing the package from `tree`."""
    tree = tree or ROOT
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONUNBUFFERED": "1"}
    env["XDG_CONFIG_HOME"] = tempfile.gettempdir()   # never touch the user's token file
    return env


class SimHost:
    """The simulated CC3D on pty pairs, in this process (`with SimHost() as sim:`)."""

    def __init__(self, seed: int = 0) -> None:
        from pipilot.sim.model import SimulatedCC3D
        from pipilot.sim.runner import RealtimeSim

        self.model = SimulatedCC3D(seed=seed)
        self.sim = RealtimeSim(self.model)

    def __enter__(self) -> SimHost:
        self.sim.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sim.stop()

    @property
    def sbus_port(self) -> str:
        return self.sim.sbus_port

    @property
    def telemetry_port(self) -> str:
        return self.sim.telemetry_port

    def hover_throttle(self) -> float:
        with self.sim.lock:
            return float(self.model.hover_throttle())

    def frames_seen(self) -> int:
        with self.sim.lock:
            return int(self.model.receiver.stats.frames_seen)


@dataclass
class Proc:
    """A pipilot subprocess: its stdout lines (collected), its stderr in a file."""

    proc: asyncio.subprocess.Process
    stderr_path: Path
    lines: list[str] = field(default_factory=list)
    url: str | None = None
    _reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while True:
            raw = await stream.readline()
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if self.url is None and "pipilot: fly from " in line:
                self.url = line.split("pipilot: fly from ", 1)[1].split()[0]

    async def wait_url(self, timeout: float = 60.0) -> str:
        """The page's URL, once the process printed it (stderr too: `sim --json`)."""
        deadline = time.monotonic() + timeout
        while self.url is None:
            if self.proc.returncode is not None:
                raise RuntimeError(f"process exited: {self.stderr_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no page URL within {timeout:g} s: {self.stderr_tail()}")
            for line in self.stderr_path.read_text(errors="replace").splitlines():
                if "pipilot: fly from " in line:
                    self.url = line.split("pipilot: fly from ", 1)[1].split()[0]
            await asyncio.sleep(0.1)
        return self.url

    async def wait_started(self, sim: SimHost | None, timeout: float = 120.0) -> None:
        """Until the process streams S.Bus to `sim` (or, for `pipilot sim`, says
        where its simulator is): a loaded machine may take many seconds to start
        it, and SIGTERM before its handler is installed would just kill it."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.returncode is not None:
                raise RuntimeError(f"process exited: {self.stderr_tail()}")
            if sim is not None and sim.frames_seen() > 0:
                return
            if sim is None and "simulated CC3D" in self.stderr_path.read_text(errors="replace"):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"not started within {timeout:g} s: {self.stderr_tail()}")
            await asyncio.sleep(0.1)

    async def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        """SIGTERM (failsafe frames, then exit); the last JSON line it printed."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise RuntimeError(f"no exit within {timeout:g} s of SIGTERM") from None
        if self._reader is not None:
            await self._reader
        if self.proc.returncode != 0:
            raise RuntimeError(f"exit status {self.proc.returncode}: {self.stderr_tail()}")
        for line in reversed(self.lines):
            if line.startswith("{"):
                result: dict[str, Any] = json.loads(line)
                return result
        raise RuntimeError(f"no JSON summary on stdout: {self.stderr_tail()}")

    def stderr_tail(self, n: int = 5) -> str:
        try:
            return " | ".join(self.stderr_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


async def spawn(args: list[str], *, tree: Path | None = None, workdir: Path) -> Proc:
    """Start `python -m pipilot ARGS` (the package from `tree`)."""
    err = workdir / f"stderr-{len(list(workdir.iterdir()))}.log"
    with open(err, "wb") as ef:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pipilot", *args, env=python_env(tree),
            cwd=str(tree or ROOT),          # `-m` puts the working directory first on the path
            stdout=asyncio.subprocess.PIPE, stderr=ef, stdin=asyncio.subprocess.DEVNULL)
    p = Proc(proc, err)
    assert proc.stdout is not None
    p._reader = asyncio.create_task(p._read(proc.stdout))
    return p


def fly_args(sim: SimHost, *, page: bool, config: Path | None = None) -> list[str]:
    """`pipilot fly` against the simulated CC3D, as on the rig (page on an ephemeral port)."""
    args = ["fly", "--sbus-port", sim.sbus_port, "--telemetry-port", sim.telemetry_port]
    if config is not None:
        args += ["--config", str(config)]
    return args + (["--http-port", "0", "--token", TOKEN] if page else ["--headless"])


def sim_args(*, page: bool) -> list[str]:
    """`pipilot sim` (the whole stack in one process); SIGTERM prints the summary."""
    return ["sim", "--json"] + (["--http-port", "0", "--token", TOKEN] if page
                                else ["--headless"])


@dataclass
class PilotReport:
    seat_taken: bool = False
    armed: bool = False
    arm_requests: int = 0
    controls_sent: int = 0
    states_received: int = 0
    pongs: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"seat_taken": self.seat_taken, "armed": self.armed,
                "arm_requests": self.arm_requests, "controls_sent": self.controls_sent,
                "states_received": self.states_received, "pongs": self.pongs,
                "errors": self.errors[:5]}


def sticks_at(t: float, hover: float) -> dict[str, float]:
    """Smooth stick movement as a person flies: slow throttle swell about the
    hover, roll, pitch and yaw sweeps at unrelated periods."""
    def wave(period: float, amp: float) -> float:
        return amp * math.sin(2 * math.pi * t / period)
    return {"throttle": min(1.0, max(0.0, hover + wave(23.0, 0.06))),
            "roll": wave(7.0, 0.35), "pitch": wave(11.0, 0.3), "yaw": wave(13.0, 0.25)}


async def pilot(url: str, stop: asyncio.Event, hover: float,
                report: PilotReport | None = None) -> PilotReport:
    """Fly the page at `url` until `stop` is set: take the seat, arm, move the sticks."""
    import aiohttp

    rep = report or PilotReport()
    base = url.split("?", 1)[0].rstrip("/")
    headers = {"Authorization": f"token {TOKEN}"}
    seat: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(f"{base}/ws", headers=headers, heartbeat=None) as ws:
        async def read() -> None:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                m = json.loads(msg.data)
                kind = m.get("type")
                if kind == "state":
                    rep.states_received += 1
                    if (m.get("flight") or {}).get("Armed") == "Armed":
                        rep.armed = True
                elif kind == "seat":
                    seat.update(m)
                    if m.get("you"):
                        rep.seat_taken = True
                elif kind == "pong":
                    rep.pongs += 1
                elif kind == "error":
                    rep.errors.append(str(m.get("message")))

        reader = asyncio.create_task(read())
        seq = 0

        async def control(sticks: dict[str, float]) -> None:
            nonlocal seq
            seq += 1
            await ws.send_str(json.dumps({"type": "control", "seq": seq, **sticks,
                                          "accessories": [0.0, 0.0, 0.0, 0.0]}))
            rep.controls_sent += 1

        try:
            await ws.send_str('{"type": "take"}')
            t0 = time.monotonic()
            last_ping = arm_at = 0.0
            zero = {"throttle": 0.0, "roll": 0.0, "pitch": 0.0, "yaw": 0.0}
            flying_since: float | None = None
            while not stop.is_set():
                now = time.monotonic() - t0
                if now - last_ping >= 1.0:
                    await ws.send_str(json.dumps({"type": "ping", "t": now}))
                    last_ping = now
                if not rep.seat_taken:
                    await asyncio.sleep(SEND_S)
                    if now > 10.0:
                        raise RuntimeError("the seat was never given")
                    continue
                if not rep.armed:
                    # hold-to-confirm done: ask to arm (again after a timed-out request)
                    if seat.get("arm") != "arm" and now - arm_at > 1.0 and now > 0.5:
                        await ws.send_str('{"type": "arm"}')
                        rep.arm_requests += 1
                        arm_at = now
                    await control(zero)
                else:
                    if flying_since is None:
                        flying_since = now
                    await control(sticks_at(now - flying_since, hover))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), SEND_S)
            await control(zero)                  # throttle down, then give the seat back
            await ws.send_str('{"type": "release"}')
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    return rep


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if not n:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t seconds, value) samples, per hour."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return sum((t - mt) * (v - mv) for t, v in samples) / var * 3600.0


def timing(stats: dict[str, Any]) -> dict[str, Any]:
    """The frame-timing figures of a core's stats dict (ms)."""
    return {
        "frames_sent": stats.get("frames_sent"),
        "missed_slots": stats.get("missed_slots"),
        "watchdog_frames": stats.get("watchdog_frames"),
        "lateness_p50_ms": round(stats.get("lateness_p50_s", float("nan")) * 1e3, 4),
        "lateness_p99_ms": round(stats.get("lateness_p99_s", float("nan")) * 1e3, 4),
        "lateness_max_ms": round(stats.get("lateness_max_s", float("nan")) * 1e3, 4),
        "pump": stats.get("pump"),
        "realtime": stats.get("realtime"),
    }
