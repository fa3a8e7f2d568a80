"""Terminal output that can never stall the flight loop.

The flight core, the telemetry session and the missions share one asyncio
loop. A write to a terminal blocks once the terminal stops reading: Ctrl-S
(XOFF) in an SSH session, a pager left waiting, a stalled pipe. If that
write happened on the loop, the mixing would stop and the pump's watchdog
would cut to failsafe in mid-air. So log records and progress lines are
handed to a writer thread through a bounded queue; when the queue is full
they are dropped and counted, never waited for.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import math
import queue
import sys
import threading
from typing import Any, TextIO

QUEUE_LINES = 10_000


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """A QueueHandler that drops a record when the queue is full (QueueHandler
    would report the failure on stderr, which is what may be blocked)."""

    def __init__(self, q: queue.Queue[logging.LogRecord | None]) -> None:
        super().__init__(q)
        self.dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


class LineWriter:
    """Writes lines to a stream from its own thread; `write` never blocks."""

    def __init__(self, stream: TextIO, maxsize: int = QUEUE_LINES) -> None:
        self.stream = stream
        self.dropped = 0
        self._q: queue.Queue[str | None] = queue.Queue(maxsize)
        self._thread = threading.Thread(target=self._run, name="pipilot-output", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        try:
            self._q.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (waiting at most `timeout` for the stream)."""
        try:
            self._q.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        while (line := self._q.get()) is not None:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                self.dropped += 1


def setup_logging(level: int, stream: TextIO | None = None) -> bool:
    """Route the root logger through a queue to a listener thread writing to
    `stream` (stderr by default). Like logging.basicConfig, does nothing if the
    root logger already has handlers (then returns False)."""
    root = logging.getLogger()
    if root.handlers:
        return False
    q: queue.Queue[logging.LogRecord | None] = queue.Queue(QUEUE_LINES)
    handler = _DroppingQueueHandler(q)
    out = logging.StreamHandler(stream or sys.stderr)
    out.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    listener = logging.handlers.QueueListener(q, out, respect_handler_level=False)
    root.addHandler(handler)
    root.setLevel(level)
    listener.start()
    atexit.register(_stop_listener, listener)
    return True


def _stop_listener(listener: logging.handlers.QueueListener) -> None:
    # QueueListener.stop joins a thread that may be blocked on the stream: bound it
    stopper = threading.Thread(target=listener.stop, daemon=True)
    stopper.start()
    stopper.join(2.0)


def finite_or_null(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None (JSON null), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(v) for v in value]
    return value


def json_text(obj: Any, **kwargs: Any) -> str:
    """Strict JSON (a bare NaN is not JSON): a figure that is not a number is null."""
    return json.dumps(finite_or_null(obj), allow_nan=False, **kwargs)
