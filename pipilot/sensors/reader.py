"""Reads the flow deck on a thread of its own and hands timestamped samples to asyncio.

SPI and I2C transfers block (the kernel's ioctl), so they never run on the
event loop. The thread polls the PMW3901 every ``period_s`` and the VL53L1X
whenever it has a result, and an optional MPU-6050 at its own sample rate
(``imu_period_s``, typically 2 ms); it stamps each sample on the injected
`Clock` right after the transfer that read it, and passes the batch to the loop with
``call_soon_threadsafe``. The loop side is a bounded queue: when nobody
reads, the oldest samples are dropped and counted, the thread never waits.

A bus error does not end the thread: it is passed on as a `SensorFault`
(the consumer sees its data go stale and can withdraw), logged at a bounded
rate, and reading resumes after ``retry_s``. A failing IMU is retried after
``retry_s`` on its own while the flow deck is still read at its rate
(``SensorFault.imu``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections import deque
from dataclasses import dataclass

from pipilot.core.clock import Clock
from pipilot.errors import PipilotError
from pipilot.faultlog import FailureLog
from pipilot.sensors.mpu6050 import ImuSample, Mpu6050
from pipilot.sensors.pmw3901 import FlowSample, Pmw3901
from pipilot.sensors.vl53l1x import RangeSample, Vl53l1x

log = logging.getLogger(__name__)

QUEUE_MAX = 512


@dataclass(frozen=True)
class TimedFlow:
    t: float
    """Clock time just after the burst was read, s."""
    sample: FlowSample


@dataclass(frozen=True)
class TimedRange:
    t: float
    sample: RangeSample


@dataclass(frozen=True)
class TimedRates:
    """Body rates from some source, stamped on the Pi's clock: what flow compensation takes."""

    t: float
    """Clock time the rates are valid at, s (the read time minus the source's known delay)."""
    rates: tuple[float, float, float]
    """Body rates p, q, r, rad/s."""
    source: str


@dataclass(frozen=True)
class TimedImu:
    t: float
    """Clock time just after the 14-byte burst was read, s."""
    sample: ImuSample
    delay_s: float = 0.0
    """The chip's filter delay (DLPF, register map 4.3): the sample describes ``t - delay_s``."""

    def timed_rates(self) -> TimedRates:
        return TimedRates(self.t - self.delay_s, self.sample.rates, "mpu6050")


@dataclass(frozen=True)
class SensorFault:
    t: float
    message: str
    imu: bool = False
    """The IMU failed (the flow deck's sensors may still be read)."""
    sensor: str | None = None
    """Which sensor failed ("flow", "range", "imu"); None: not known (all are retried)."""


Item = TimedFlow | TimedRange | TimedImu | SensorFault


class FlowDeckPoller:
    """One polling pass over the sensors, stamped on ``clock`` (no threads: lock-step uses it).

    ``poll()`` reads every sensor once; ``poll_imu()`` only the IMU, for the
    reads between two flow polls (the IMU runs faster than the flow).
    """

    def __init__(self, flow: Pmw3901 | None, ranger: Vl53l1x | None, clock: Clock, *,
                 imu: Mpu6050 | None = None) -> None:
        if flow is None and ranger is None and imu is None:
            raise ValueError("nothing to read: give a flow sensor, a ranger, an IMU or some")
        self.flow = flow
        self.ranger = ranger
        self.imu = imu
        self.clock = clock

    @property
    def imu_period_s(self) -> float | None:
        """The IMU's sample period, None without one."""
        return None if self.imu is None else 1.0 / self.imu.config.actual_rate_hz

    def poll(self, *, imu: bool = True, flow: bool = True, ranger: bool = True) -> list[Item]:
        """Read what is available now (each sensor unless its flag is false).
        A SensorError from a bus becomes a SensorFault."""
        # the IMU first: its sample is overwritten by the next one if read late
        items: list[Item] = self.poll_imu() if imu else []
        # each sensor on its own: a dead SPI bus must not blind the ranger, nor I2C the flow
        if self.flow is not None and flow:
            try:
                items.append(TimedFlow(self.clock.now(), self.flow.read_motion()))
            except PipilotError as exc:
                items.append(SensorFault(self.clock.now(), str(exc), sensor="flow"))
        if self.ranger is not None and ranger:
            try:
                r = self.ranger.poll()
                if r is not None:
                    items.append(TimedRange(self.clock.now(), r))
            except PipilotError as exc:
                items.append(SensorFault(self.clock.now(), str(exc), sensor="range"))
        return items

    def poll_imu(self) -> list[Item]:
        """The IMU's new sample, if there is one (nothing without an IMU)."""
        if self.imu is None:
            return []
        try:
            s = self.imu.poll()
        except PipilotError as exc:
            return [SensorFault(self.clock.now(), str(exc), imu=True, sensor="imu")]
        if s is None:
            return []
        return [TimedImu(self.clock.now(), s, self.imu.delay_s)]


#: After a new IMU sample, the next data-ready poll comes this share of its period
#: after the poll began: early enough that the chip's next sample is not
#: overwritten unread (its clock is only good to a few per cent), so the poll
#: sometimes finds none ...
IMU_EARLY = 0.8
#: ... and polls again this share of a period after that poll began, and at
#: least `IMU_REST` of a period after it ended (a slow bus must not spin the thread).
IMU_RETRY = 0.25
IMU_REST = 0.1
#: With no sample for this many periods the IMU has stopped (its data-ready never
#: comes): poll it at its own period, not four times as often.
IMU_QUIET_PERIODS = 4


def next_imu_poll(started: float, ended: float, got: bool, period_s: float,
                  last_sample: float) -> float:
    """When to poll the IMU's data-ready again after a poll that ran from
    ``started`` to ``ended`` and found a new sample (``got``) or not (the newest
    at ``last_sample``). Each poll that finds one comes a little earlier in the
    chip's cycle, until one finds none and waits a quarter period, so the polls
    lock onto the chip's own sample clock whatever its error: each sample is
    read soon after it is made and none is lost while the thread is woken on
    time. A miss always sleeps after the poll's own time, so a slow bus or a
    silent chip cannot make the thread spin."""
    if got:
        return max(started + period_s * IMU_EARLY, ended)
    if ended - last_sample > IMU_QUIET_PERIODS * period_s:
        return ended + period_s
    return max(started + period_s * IMU_RETRY, ended + period_s * IMU_REST)


class SensorReader:
    """Runs a `FlowDeckPoller` on a thread; ``await get()`` on the loop returns the samples."""

    def __init__(self, poller: FlowDeckPoller, *, period_s: float = 1 / 100,
                 retry_s: float = 0.5) -> None:
        if not 0 < period_s <= 1 or not 0 < retry_s <= 10:
            raise ValueError("period_s must be in (0, 1] and retry_s in (0, 10]")
        self.poller = poller
        self.period_s = period_s
        self.retry_s = retry_s
        self.dropped = 0
        self.faults = 0
        self._items: deque[Item] = deque()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = FailureLog(log, "flow deck read")

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._thread is not None:
            raise RuntimeError("the reader is already running")
        self._loop = loop
        self._wake = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="pipilot-flowdeck", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._failures.flush()

    def _run(self) -> None:
        clock = self.poller.clock
        imu_period = self.poller.imu_period_s
        next_full = next_imu = last_imu = clock.now()
        # a failed sensor is left alone until then; the others keep their rate
        retry_at = {"flow": -math.inf, "range": -math.inf, "imu": -math.inf}
        while not self._stop.is_set():
            error: Exception | None = None
            now = started = clock.now()
            full = imu_period is None or now >= next_full
            imu_retry_at = retry_at["imu"]
            with_imu = now >= imu_retry_at
            skip = {flag: False for flag, name in (("imu", "imu"), ("flow", "flow"),
                                                    ("ranger", "range"))
                    if now < retry_at[name]}
            try:
                if full:
                    items = self.poller.poll(**skip)
                else:
                    items = self.poller.poll_imu() if with_imu else []
            except Exception as exc:   # a bug must not end the thread silently
                error = exc
                items = [SensorFault(clock.now(), f"{type(exc).__name__}: {exc}")]
            faults = [i for i in items if isinstance(i, SensorFault)]
            if items and self._loop is not None:
                try:
                    self._loop.call_soon_threadsafe(self._deliver, items)
                except RuntimeError:   # the loop closed under us
                    return
            if faults:
                self.faults += 1
                self._failures.failed(error or PipilotError(faults[0].message))
            failed = {f.sensor or ("imu" if f.imu else None) for f in faults}
            if None in failed:         # not known which: all wait
                self._stop.wait(self.retry_s)
                next_full = clock.now()
                continue
            for name in failed:
                assert name is not None
                retry_at[name] = clock.now() + self.retry_s
            imu_retry_at = retry_at["imu"]
            # deadlines, not sleeps after the work: the reads' own time must not
            # stretch the period (an IMU at 2 ms read in 0.5 ms is not 400 Hz)
            now = clock.now()
            if full:
                next_full = max(next_full + self.period_s, now)
            if imu_period is None:
                wait = next_full - now
            else:
                if with_imu:
                    got = any(isinstance(i, TimedImu) for i in items)
                    if got:
                        last_imu = started
                    next_imu = next_imu_poll(started, now, got, imu_period, last_imu)
                wait = next_full - now if now < imu_retry_at else min(next_full, next_imu) - now
            self._stop.wait(max(0.0, wait))

    def _deliver(self, items: list[Item]) -> None:
        for item in items:
            if len(self._items) >= QUEUE_MAX:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
        if self._wake is not None:
            self._wake.set()

    async def get(self) -> list[Item]:
        """Every sample delivered since the last call (waits for at least one)."""
        if self._wake is None:
            raise RuntimeError("start() the reader first")
        while not self._items:
            self._wake.clear()
            await self._wake.wait()
        items = list(self._items)
        self._items.clear()
        return items
