"""Mission progress as a stream of events.

Every event is kept (the summary and the plot read them back) and handed to
each subscriber: callbacks, and async iterators that never block the flight
loop (a slow reader loses the oldest events, not the craft).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from pipilot.faultlog import FailureLog

log = logging.getLogger(__name__)


class EventKind(enum.Enum):
    STARTED = "started"
    STEP_STARTED = "step_started"
    STEP_DONE = "step_done"
    PROGRESS = "progress"
    ABORT = "abort"
    FAILSAFE = "failsafe"
    HOLD = "hold"
    """The flow-deck hold withdrew (its sensors) or resumed."""
    FINISHED = "finished"


@dataclass(frozen=True)
class MissionEvent:
    """One thing that happened, at mission time ``t`` (s since the start)."""

    t: float
    kind: EventKind
    message: str
    step: int | None = None
    """Index of the step (0-based) it belongs to, if any."""
    action: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": round(self.t, 3), "kind": self.kind.value,
                               "message": self.message}
        if self.step is not None:
            out["step"] = self.step
            out["action"] = self.action
        if self.data:
            out["data"] = self.data
        return out

    def __str__(self) -> str:
        where = f" step {self.step + 1} ({self.action})" if self.step is not None else ""
        return f"[{self.t:7.2f}s]{where} {self.message}"


_END = object()


class EventStream:
    """Fan-out of mission events to callbacks and async subscribers."""

    def __init__(self, *, queue_size: int = 1000) -> None:
        self.history: list[MissionEvent] = []
        self._callbacks: list[Callable[[MissionEvent], None]] = []
        self._queues: list[asyncio.Queue[object]] = []
        self._queue_size = queue_size
        self.callback_failures = FailureLog(log, "mission event callback failed")
        self._closed = False

    def add_callback(self, callback: Callable[[MissionEvent], None]) -> None:
        self._callbacks.append(callback)

    def emit(self, event: MissionEvent) -> None:
        self.history.append(event)
        log.debug("%s", event)
        for cb in self._callbacks:
            try:
                cb(event)
            except Exception as exc:  # a broken printer must not stop a flight
                self.callback_failures.failed(exc)
        for q in self._queues:
            if q.full():
                q.get_nowait()
            q.put_nowait(event)

    def close(self) -> None:
        self._closed = True
        self.callback_failures.flush()
        for q in self._queues:
            if q.full():
                q.get_nowait()
            q.put_nowait(_END)

    async def subscribe(self) -> AsyncIterator[MissionEvent]:
        """Events from now on, until the mission ends."""
        q: asyncio.Queue[object] = asyncio.Queue(self._queue_size)
        if self._closed:
            return
        self._queues.append(q)
        try:
            while True:
                item = await q.get()
                if item is _END:
                    return
                assert isinstance(item, MissionEvent)
                yield item
        finally:
            self._queues.remove(q)
