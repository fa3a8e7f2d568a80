"""Idle, half-sent HTTP requests against a server, from processes of their own.

`python -m tests.server.flood HOST PORT N` opens N connections, each sending
the start of a request and never finishing it (no token needed to do that),
prints ``open OPENED FAILED``, waits for a line on stdin, closes them all at
once, prints ``closed`` and exits. `Flood` spreads a count over as many such
processes as the descriptor limit needs, so the process under test holds only
what the server itself accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

HALF_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: flood\r\n"
ROOT = Path(__file__).parents[2]
SPARE_FDS = 64
OPEN_WITHIN_S = 45.0
"""A server that stops accepting leaves connects hanging: give up opening after this."""


def raise_fd_limit() -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to the hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def per_process() -> int:
    """Connections one flood process can hold (its hard limit, less spare descriptors)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return 1 << 20
    return int(hard) - SPARE_FDS


def open_idle(host: str, port: int, n: int, within_s: float = OPEN_WITHIN_S
              ) -> tuple[list[socket.socket], int, int]:
    """Up to `n` half-sent requests, as many as connect within `within_s`; returns the
    sockets, how many connected and how many of those the server reset at once."""
    socks: list[socket.socket] = []
    connected = reset = 0
    deadline = time.monotonic() + within_s
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2.0)
        socks.append(s)
        try:
            s.connect((host, port))
        except ConnectionResetError:
            connected += 1  # the server took it and reset it before connect() returned
            reset += 1
            continue
        except OSError:
            continue  # no handshake in time (nobody accepts), or refused
        connected += 1
        try:
            s.sendall(HALF_REQUEST)
        except OSError:
            reset += 1  # accepted and reset: still an open descriptor here
    return socks, connected, reset


def main(argv: list[str]) -> int:
    host, port, n = argv[0], int(argv[1]), int(argv[2])
    # an attacker's process is an ordinary one, whatever the test runner's policy
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    raise_fd_limit()
    socks, connected, reset = open_idle(host, port, n)
    print(f"open {connected} {reset}", flush=True)
    sys.stdin.readline()
    for s in socks:
        s.close()
    print("closed", flush=True)
    return 0


class Flood:
    """N idle connections held by child processes: `open()`, then `drop()` them all at once."""

    def __init__(self, host: str, port: int, n: int) -> None:
        self.host, self.port, self.n = host, port, n
        self.procs: list[subprocess.Popen[str]] = []
        self.opened = 0
        self.failed = 0
        self.open_s = 0.0

    def open(self, timeout: float = OPEN_WITHIN_S + 30) -> None:
        share = per_process()
        counts = [min(share, self.n - i) for i in range(0, self.n, share)]
        t0 = time.monotonic()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for c in counts:
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "tests.server.flood", self.host, str(self.port), str(c)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env))
        for p in self.procs:
            line = self._line(p, timeout)
            _, opened, failed = line.split()
            self.opened += int(opened)
            self.failed += int(failed)
        self.open_s = time.monotonic() - t0

    def drop(self, timeout: float = 60.0) -> None:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write("\n")
            p.stdin.flush()
        for p in self.procs:
            assert self._line(p, timeout) == "closed"
            p.wait(timeout)

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    @staticmethod
    def _line(p: subprocess.Popen[str], timeout: float) -> str:
        assert p.stdout is not None
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(p.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise TimeoutError("flood process did not answer")
        line = p.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"flood process ended (exit {p.wait()})")
        return line


class StallMeter:
    """The worst lateness of a short sleep on the running loop: how long it was stalled."""

    def __init__(self, tick_s: float = 0.002) -> None:
        self.tick_s = tick_s
        self.worst = 0.0
        self.samples: list[float] = []
        self.events: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> StallMeter:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def reset(self) -> None:
        self.worst = 0.0
        self.samples = []
        self.events = []

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def percentile(self, q: float) -> float:
        s = sorted(self.samples)
        return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0

    async def _run(self) -> None:
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(self.tick_s)
            late = time.monotonic() - t0 - self.tick_s
            self.samples.append(late)
            if late > 0.02:
                self.events.append((round(time.monotonic(), 3), round(late * 1e3, 1)))
            self.worst = max(self.worst, late)


TOKEN = "flood-token"
AUTH = {"Authorization": f"token {TOKEN}"}
CONTROL_PERIOD_S = 0.05  # the page sends its sticks at 20 Hz
CRUISE_THROTTLE = 0.2    # armed, on the ground, above the firmware's low-throttle disarm


class Pilot:
    """A page flying the craft: holds the seat, sends its sticks every CONTROL_PERIOD_S,
    and records every seat state the server reports and every control's round trip."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.throttle = 0.0
        self.seat_states: list[str] = []
        self.seat_you: list[bool] = []
        self.rtts: list[float] = []
        self.send_gap_worst = 0.0
        self.closed_code: int | None = None
        self._seq = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def take(self) -> None:
        await self.ws.send_str(json.dumps({"type": "take"}))
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._send())]

    async def arm(self) -> None:
        await self.ws.send_str(json.dumps({"type": "arm"}))

    def reset(self) -> None:
        self.seat_states, self.seat_you, self.rtts = [], [], []
        self.send_gap_worst = 0.0

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ws.close()

    async def _send(self) -> None:
        last = time.monotonic()
        while not self.ws.closed:
            now = time.monotonic()
            self.send_gap_worst = max(self.send_gap_worst, now - last)
            last = now
            self._seq += 1
            await self.ws.send_str(json.dumps({
                "type": "control", "seq": self._seq, "t": time.monotonic(),
                "throttle": self.throttle, "yaw": 0.0, "roll": 0.0, "pitch": 0.0,
                "accessories": [0, 0, 0, 0]}))
            await asyncio.sleep(CONTROL_PERIOD_S)

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            m = json.loads(msg.data)
            if m["type"] == "seat":
                self.seat_states.append(m["state"])
                self.seat_you.append(m["you"])
            elif m["type"] == "ack":
                self.rtts.append(time.monotonic() - m["t"])
        self.closed_code = self.ws.close_code


async def _status(http: aiohttp.ClientSession, base: str) -> dict[str, Any] | str:
    try:
        async with http.get(f"{base}/api/status", headers=AUTH,
                            timeout=aiohttp.ClientTimeout(total=5)) as r:
            return dict(await r.json()) if r.status == 200 else f"HTTP {r.status}"
    except (TimeoutError, aiohttp.ClientError) as exc:
        return type(exc).__name__


FIFO_PRIORITY = 10
"""`realtime.loop_priority`'s default: `pipilot fly` runs its flight loop (and the
threads it starts) SCHED_FIFO at this priority, below the frame pump's 50."""
SERVICE_NOFILE = 1024
"""systemd's default soft RLIMIT_NOFILE, which docs/pipilot.service leaves as it is."""
SERVICE_LAUNCHER = (
    "import resource, sys; "
    "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; "
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({SERVICE_NOFILE}, hard)); "
    "from pipilot.cli import main; sys.exit(main(sys.argv[1:]))")
"""`pipilot fly` as it starts, with the descriptor limit of a systemd service."""
FIFO_LAUNCHER = SERVICE_LAUNCHER.replace(
    "import resource, sys; ",
    f"import os, resource, sys; os.sched_setscheduler(0, os.SCHED_FIFO, "
    f"os.sched_param({FIFO_PRIORITY})); ")
"""The whole process SCHED_FIFO from its start (bench/web_flood.py compares)."""


def fly_command(sbus_port: str, telemetry_port: str, config: Path,
                launcher: str | None = None) -> list[str]:
    """`pipilot fly` against the simulator's ptys, its page on a free port."""
    head = [sys.executable, "-m", "pipilot"] if launcher is None else \
        [sys.executable, "-c", launcher]
    return [*head, "fly", "--sbus-port", sbus_port, "--telemetry-port", telemetry_port,
            "--config", str(config), "--http-port", "0", "--token", TOKEN]


async def start_fly(cmd: list[str], tmp: Path) -> tuple[asyncio.subprocess.Process, str]:
    """Start `pipilot fly`; return it and its page's base URL."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp)}
    env.pop("PIPILOT_TOKEN", None)
    proc = await asyncio.create_subprocess_exec(
        *cmd, env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=open(tmp / "fly.log", "w"))  # noqa: SIM115 - the child keeps it
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    if "http://" not in line:
        raise RuntimeError(f"pipilot fly did not serve: {line!r}; "
                           f"{(tmp / 'fly.log').read_text()[-2000:]}")
    return proc, line.split("http://", 1)[1].split("/?", 1)[0]


def write_config(tmp: Path, loop_priority: int | None = None) -> Path:
    """`pipilot fly`'s config: defaults, but no memory lock (the test machine's
    memory is not the subject); `loop_priority` 0 leaves the flight loop at nice."""
    cfg = tmp / "fly.toml"
    extra = "" if loop_priority is None else f"loop_priority = {loop_priority}\n"
    cfg.write_text(f"[realtime]\nmlockall = false\n{extra}")
    return cfg


async def fly_through_flood(n: int, tmp: Path, *, hold_s: float = 1.0, after_s: float = 1.5,
                            launcher: str | None = None,
                            loop_priority: int | None = None) -> dict[str, Any]:
    """A real `pipilot fly` streams to a simulated CC3D (on ptys, in this process) and
    serves its page; a page arms and flies; `n` idle connections are opened from other
    processes, held for `hold_s`, dropped at once, and `after_s` later the figures are
    taken from the page's view (/api/status, the seat messages) and the simulator."""
    from pipilot.sim.model import SimulatedCC3D
    from pipilot.sim.runner import RealtimeSim

    raise_fd_limit()
    model = SimulatedCC3D(seed=0)
    with RealtimeSim(model) as sim:
        proc, host = await start_fly(
            fly_command(sim.sbus_port, sim.telemetry_port, write_config(tmp, loop_priority),
                        launcher), tmp)
        base_url = f"http://{host}"
        try:
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(f"{base_url}/ws", headers=AUTH)
                pilot = Pilot(ws)
                await pilot.take()
                await asyncio.sleep(0.2)
                await pilot.arm()
                deadline = time.monotonic() + 15
                while not model.armed and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                armed_before = model.armed
                pilot.throttle = CRUISE_THROTTLE
                await asyncio.sleep(0.5)
                before = await _status(http, base_url)
                assert isinstance(before, dict), before
                pilot.reset()
                flood = Flood("127.0.0.1", int(host.rsplit(":", 1)[1]), n)
                try:
                    await asyncio.to_thread(flood.open)
                    await asyncio.sleep(hold_s)  # the newest half-sent requests can be evicted
                    status_flooded = await _status(http, base_url)
                    t_drop = time.monotonic()
                    await asyncio.to_thread(flood.drop)
                    drop_s = time.monotonic() - t_drop
                finally:
                    flood.kill()
                await asyncio.sleep(after_s)
                after = await _status(http, base_url)
                assert isinstance(after, dict), after
                rtts = sorted(pilot.rtts)
                sb0, sb1 = before["sbus"], after["sbus"]
                result = {
                    "connections": n,
                    "opened": flood.opened,
                    "reset_before_send": flood.failed,
                    "open_s": round(flood.open_s, 3),
                    "drop_s": round(drop_s, 3),
                    "watchdog_frames": sb1["watchdog_frames"] - sb0["watchdog_frames"],
                    "mix_gap_worst_ms_before": round(sb0.get("max_mix_gap_ms", -1), 1),
                    "mix_gap_worst_ms_after": round(sb1.get("max_mix_gap_ms", -1), 1),
                    "pilot_seat_states": sorted(set(pilot.seat_states)),
                    "pilot_lost_seat": any(not y for y in pilot.seat_you),
                    "pilot_page_open": not ws.closed,
                    "pilot_send_gap_worst_ms": round(pilot.send_gap_worst * 1e3, 1),
                    "pilot_acks": len(rtts),
                    "pilot_ack_rtt_worst_ms": round(rtts[-1] * 1e3, 1) if rtts else None,
                    "pilot_ack_rtt_p50_ms": round(rtts[len(rtts) // 2] * 1e3, 1) if rtts
                    else None,
                    "status_while_flooded": status_flooded if isinstance(status_flooded, str)
                    else "ok",
                    "armed_before": armed_before,
                    "armed": model.armed,
                    "failsafe_state": sb1["failsafe_state"],
                    "source": sb1["source"],
                }
                await pilot.stop()
                return result
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
