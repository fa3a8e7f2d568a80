"""Logging for loops that may fail on every tick without flooding the log.

A loop that catches its own exceptions to keep running (the drift loop, the web
server's broadcaster and watchdog, a page's messages) would otherwise write a
traceback per tick: at 50 Hz that buries everything else and fills a Pi's SD
card. `FailureLog` writes the first failure of each kind with its traceback,
then at most one line every `every_s` seconds carrying the count.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipilot.core.clock import Clock

#: Distinct exception types whose traceback is logged once each; beyond this,
#: new kinds are only counted (a hostile client cannot force tracebacks).
MAX_TRACED_KINDS = 16


class FailureLog:
    """Counts a loop's failures and logs them at a bounded rate.

    Call `failed()` from the `except` block. `failures` is the total so far.
    `flush()` writes the count not yet reported (call it when the loop ends).
    """

    def __init__(self, log: logging.Logger, what: str, *, every_s: float = 10.0,
                 clock: Clock | None = None) -> None:
        if not every_s > 0:
            raise ValueError("every_s must be > 0")
        self.log = log
        self.what = what
        self.every_s = every_s
        self._now = clock.now if clock is not None else time.monotonic
        self.failures = 0
        self._pending = 0
        self._last_line: float | None = None
        self._last_exc = ""
        self._traced: set[type[BaseException]] = set()

    def failed(self, exc: BaseException) -> None:
        """Record one failure; log it if it is a new kind or the interval is up."""
        self.failures += 1
        self._pending += 1
        self._last_exc = f"{type(exc).__name__}: {exc}"
        now = self._now()
        kind = type(exc)
        if kind not in self._traced and len(self._traced) < MAX_TRACED_KINDS:
            self._traced.add(kind)
            self.log.error("%s (failure %d; repeats are counted, logged every %g s)",
                           self.what, self.failures, self.every_s, exc_info=exc)
            self._pending = 0
            self._last_line = now
        elif self._last_line is None or now - self._last_line >= self.every_s:
            self._report(now)

    def flush(self) -> None:
        """Log the failures counted since the last line, if any."""
        if self._pending:
            self._report(self._now())

    def _report(self, now: float) -> None:
        since = "" if self._last_line is None else f" in {now - self._last_line:.1f} s"
        self.log.error("%s: %d more failure(s)%s, %d in all; latest %s",
                       self.what, self._pending, since, self.failures, self._last_exc)
        self._pending = 0
        self._last_line = now
