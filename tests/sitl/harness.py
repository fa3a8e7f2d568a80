"""The conformance scenarios, run in real time against either backend.

Both backends get the same input: S.Bus frames written by ``FrameWriter`` to
the port the backend offers (a pty), at absolute deadlines, and the same
telemetry client (a TelemetrySession). Every figure is read the same way on
both: times from polling the flight side's objects by request, frame counts
from the backend's own S.Bus receiver counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pipilot.core.telemetry import TelemetrySession
from pipilot.link.serialport import open_sbus_port
from pipilot.sbus import encode

MIN, MID, MAX = 172, 992, 1811
THROTTLE_LOW = 172
FLY_THROTTLE = 1300  # about 0.69 of the throttle range: above hover in both models
MAPPING_US = (1400, 1300, 700, 1600)  # ch1-4, distinct so a swapped channel shows
ATTITUDE_STICK = 1400  # roll, pitch or yaw held here to see the attitude respond
STICK_UNIT = round((ATTITUDE_STICK - MID) / (MAX - MID), 2)  # the same as a normalised stick
RATE_WINDOW_S = 10.0  # telemetry updates counted this long after connecting
POLL_S = 0.02
FAILSAFE_REPEATS = 5
TELEMETRY_BAUD = 115200  # the built-in model's pty link; the SITL's UDP is unpaced


class FrameWriter:
    """Writes S.Bus frames to a port every ``period`` s from its own thread."""

    def __init__(self, path: str, period: float = 0.007) -> None:
        self.port = open_sbus_port(path)
        self.period = period
        self.channels = [MID] * 16
        self.channels[0] = THROTTLE_LOW
        self.failsafe = False
        self.sending = True
        self.sent = 0
        self.gaps: list[float] = []
        self._last_write = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frame-writer", daemon=True)
        self._thread.start()

    def set(self, throttle: int = THROTTLE_LOW, yaw: int = MID, roll: int = MID,
            pitch: int = MID) -> None:
        """The rig's map: ch1 throttle, ch2 yaw, ch3 roll, ch4 pitch."""
        ch = list(self.channels)
        ch[0], ch[1], ch[2], ch[3] = throttle, yaw, roll, pitch
        self.channels = ch

    def _run(self) -> None:
        t = time.monotonic()
        while not self._stop.is_set():
            t += self.period
            delay = t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if time.monotonic() - t > self.period / 2:
                t = time.monotonic()  # late: start over from now, don't burst to catch up
            if self.sending:
                frame = encode(self.channels, failsafe=self.failsafe)
                with contextlib.suppress(BlockingIOError):
                    os.write(self.port.fd, frame)
                    self.sent += 1
                    now = time.monotonic()
                    if self._last_write:
                        self.gaps.append(now - self._last_write)
                    self._last_write = now
            else:
                self._last_write = 0.0

    def gap_percentiles(self) -> dict[str, float]:
        """How evenly the frames actually left (ms): the host's scheduling, not the code's."""
        g = sorted(self.gaps) or [0.0]
        pick = [g[min(len(g) - 1, int(q * len(g)))] * 1000 for q in (0.01, 0.5, 0.99)]
        return {"p1": round(pick[0], 2), "p50": round(pick[1], 2), "p99": round(pick[2], 2)}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.port.close()


@dataclass
class Backend:
    """What a scenario needs from a backend."""

    name: str
    sbus_port: str
    telemetry_port: str
    frames_accepted: Any  # () -> int, the flight side's decoded-frame counter


#: Requests whose answer did not come within REQUEST_TIMEOUT_S, per session.
LOST_ANSWERS: Counter[int] = Counter()
REQUEST_TIMEOUT_S = 0.15


async def poll_until(session: TelemetrySession, name: str, pred: Any, timeout: float) -> float:
    """Seconds until ``pred(values)`` holds for object ``name`` (polled by request), or inf.

    A request not answered within REQUEST_TIMEOUT_S is asked again (and counted in
    LOST_ANSWERS) rather than left to the session's 1 s retry, which would add whole
    seconds to a measured time.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            values = await asyncio.wait_for(session.request(name), REQUEST_TIMEOUT_S)
        except TimeoutError:
            LOST_ANSWERS[id(session)] += 1
            continue
        except Exception:  # a NACK or a closed link: ask again
            values = None
        if values is not None and pred(values):
            return time.monotonic() - t0
        await asyncio.sleep(POLL_S)
    return float("inf")


async def flight_clock(session: TelemetrySession) -> float:
    """The flight side's own clock, SystemStats.FlightTime, in seconds."""
    return float((await session.request("SystemStats"))["FlightTime"]) / 1000


async def timed_on_both_clocks(session: TelemetrySession, start: Any, name: str, pred: Any,
                               timeout: float = 5.0) -> tuple[float, float]:
    """Seconds from ``start()`` until ``pred`` holds for ``name``: (host clock, flight clock).

    The flight clock is read before ``start()`` and after ``pred`` held, so a sequence the
    firmware times on its own clock (ArmingSequenceTime) can never look shorter on it. On
    the host's clock it can: on a loaded host the SITL's tick count falls behind and then
    catches up (the ticks are owed, firmware-patches/0006), so a timed sequence begun while
    behind ends early in real time; one that began on time ends late if the host stalls.
    """
    fw0 = await flight_clock(session)
    start()
    host = await poll_until(session, name, pred, timeout)
    if not math.isfinite(host):
        return host, host
    return host, round(await flight_clock(session) - fw0, 3)


async def run_scenarios(backend: Backend, session: TelemetrySession) -> dict[str, Any]:
    """Every scenario in turn on one backend; returns the figures."""
    out: dict[str, Any] = {}
    w = FrameWriter(backend.sbus_port, 0.007)
    try:
        # telemetry objects and rates right after connection
        counts: Counter[str] = Counter()
        updates = session.updates(maxsize=100000)

        async def count() -> None:
            async for name, _inst, _values in updates:
                counts[name] += 1

        task = asyncio.create_task(count())
        await asyncio.sleep(RATE_WINDOW_S)
        updates.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        out["telemetry_rates_hz"] = {k: round(v / RATE_WINDOW_S, 2)
                                     for k, v in sorted(counts.items())}

        # how long a request takes to answer: every time below includes up to one of these
        rtts = []
        for _ in range(10):
            t0 = time.monotonic()
            await session.request("FlightStatus")
            rtts.append(time.monotonic() - t0)
        out["request_rtt_ms"] = round(statistics.median(rtts) * 1000, 1)

        # receiver connected with neutral sticks
        out["connect_s"] = await poll_until(
            session, "ManualControlCommand", lambda v: v["Connected"] == "True", 5.0)

        # channel mapping: distinct values on ch1-4
        thr, yaw, roll, pitch = MAPPING_US
        w.set(throttle=thr, yaw=yaw, roll=roll, pitch=pitch)
        await asyncio.sleep(0.5)
        mcc = await session.request("ManualControlCommand")
        out["mapping"] = {k: round(float(mcc[k]), 3) for k in ("Throttle", "Yaw", "Roll", "Pitch")}
        fs = await session.request("FlightStatus")
        out["flight_mode"] = fs["FlightMode"]
        w.set()
        await asyncio.sleep(0.5)

        # arming: Yaw Left with throttle low, then disarm with Yaw Right
        out["arm_s"], out["arm_flight_clock_s"] = await timed_on_both_clocks(
            session, lambda: w.set(yaw=MIN), "FlightStatus", lambda v: v["Armed"] == "Armed")
        if out["arm_s"] == float("inf"):
            # what kept it from arming: the alarms the arm handler checks
            alarms = (await session.request("SystemAlarms"))["Alarm"]
            out["arm_blockers"] = {k: v for k, v in alarms.items()
                                   if v not in ("OK", "Uninitialised")}
        w.set()
        await asyncio.sleep(0.3)

        # attitude response sign, armed and airborne (throttle above hover on both)
        for axis, kw in (("Roll", {"roll": ATTITUDE_STICK}), ("Pitch", {"pitch": ATTITUDE_STICK}),
                         ("Yaw", {"yaw": ATTITUDE_STICK})):
            w.set(throttle=FLY_THROTTLE)
            await asyncio.sleep(1.0)
            before = await session.request("AttitudeState")
            w.set(throttle=FLY_THROTTLE, **kw)
            await asyncio.sleep(1.0)
            after = await session.request("AttitudeState")
            delta = float(after[axis]) - float(before[axis])
            out[f"attitude_{axis.lower()}_deg"] = round((delta + 180) % 360 - 180, 2)
        w.set(throttle=FLY_THROTTLE)
        await asyncio.sleep(1.0)
        w.set()
        await asyncio.sleep(0.3)
        out["disarm_s"], out["disarm_flight_clock_s"] = await timed_on_both_clocks(
            session, lambda: w.set(yaw=MAX), "FlightStatus",
            lambda v: v["Armed"] == "Disarmed")
        w.set()

        # frames accepted per second at 7 and 8 ms (5 s each)
        for period in (0.007, 0.008):
            w.period = period
            await asyncio.sleep(0.5)
            a0, s0, t0 = backend.frames_accepted(), w.sent, time.monotonic()
            w.gaps.clear()
            await asyncio.sleep(5.0)
            a1, s1, t1 = backend.frames_accepted(), w.sent, time.monotonic()
            key = f"{round(period * 1000)}ms"
            out[f"writer_gap_ms_{key}"] = w.gap_percentiles()
            out[f"accepted_per_s_{key}"] = round((a1 - a0) / (t1 - t0), 1)
            out[f"sent_per_s_{key}"] = round((s1 - s0) / (t1 - t0), 1)
        # 8 ms: the stock decoder finds every frame, so failsafe times are not diluted
        await asyncio.sleep(1.0)

        # receiver failsafe, five times each: frames stop / frames carry the failsafe flag
        stops: list[float] = []
        flags: list[float] = []
        for _ in range(FAILSAFE_REPEATS):
            await poll_until(session, "ManualControlCommand", lambda v: v["Connected"] == "True",
                             3.0)
            w.sending = False
            stops.append(await poll_until(
                session, "ManualControlCommand", lambda v: v["Connected"] == "False", 5.0))
            w.sending = True
            await poll_until(session, "ManualControlCommand", lambda v: v["Connected"] == "True",
                             5.0)
            w.failsafe = True
            flags.append(await poll_until(
                session, "ManualControlCommand", lambda v: v["Connected"] == "False", 5.0))
            w.failsafe = False
        out["failsafe_stop_s"] = round(statistics.median(stops), 3)
        out["failsafe_stop_range_s"] = [round(min(stops), 3), round(max(stops), 3)]
        out["failsafe_flag_s"] = round(statistics.median(flags), 3)
        out["failsafe_flag_range_s"] = [round(min(flags), 3), round(max(flags), 3)]
    finally:
        w.close()
    out["lost_answers"] = LOST_ANSWERS[id(session)]
    return out
