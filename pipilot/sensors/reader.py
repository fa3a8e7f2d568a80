"""Reads the flow deck on a thread of its own and hands timestamped samples to asyncio.

SPI and I2C transfers block (the kernel's ioctl), so they never run on the
event loop. The thread polls the PMW3901 every ``period_s`` and the VL53L1X
whenever it has a result, stamps each sample on the injected `Clock` right
after the transfer that read it, and passes the batch to the loop with
``call_soon_threadsafe``. The loop side is a bounded queue: when nobody
reads, the oldest samples are dropped and counted, the thread never waits.

A bus error does not end the thread: it is passed on as a `SensorFault`
(the consumer sees its data go stale and can withdraw), logged at a bounded
rate, and reading resumes after ``retry_s``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from dataclasses import dataclass

from pipilot.core.clock import Clock
from pipilot.errors import PipilotError
from pipilot.faultlog import FailureLog
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
class SensorFault:
    t: float
    message: str


Item = TimedFlow | TimedRange | SensorFault


class FlowDeckPoller:
    """One polling pass over the sensors, stamped on ``clock`` (no threads: lock-step uses it)."""

    def __init__(self, flow: Pmw3901 | None, ranger: Vl53l1x | None, clock: Clock) -> None:
        if flow is None and ranger is None:
            raise ValueError("nothing to read: give a flow sensor, a ranger or both")
        self.flow = flow
        self.ranger = ranger
        self.clock = clock

    def poll(self) -> list[Item]:
        """Read what is available now. A SensorError from a bus becomes a SensorFault."""
        items: list[Item] = []
        # each sensor on its own: a dead SPI bus must not blind the ranger, nor I2C the flow
        if self.flow is not None:
            try:
                items.append(TimedFlow(self.clock.now(), self.flow.read_motion()))
            except PipilotError as exc:
                items.append(SensorFault(self.clock.now(), str(exc)))
        if self.ranger is not None:
            try:
                r = self.ranger.poll()
                if r is not None:
                    items.append(TimedRange(self.clock.now(), r))
            except PipilotError as exc:
                items.append(SensorFault(self.clock.now(), str(exc)))
        return items


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
        while not self._stop.is_set():
            error: Exception | None = None
            try:
                items = self.poller.poll()
            except Exception as exc:   # a bug must not end the thread silently
                error = exc
                items = [SensorFault(self.poller.clock.now(), f"{type(exc).__name__}: {exc}")]
            faults = [i.message for i in items if isinstance(i, SensorFault)]
            if items and self._loop is not None:
                try:
                    self._loop.call_soon_threadsafe(self._deliver, items)
                except RuntimeError:   # the loop closed under us
                    return
            if faults:
                self.faults += 1
                self._failures.failed(error or PipilotError(faults[0]))
            self._stop.wait(self.retry_s if faults else self.period_s)

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
