"""Process-wide real-time settings for the commands that fly: one place, undone on exit.

Memory locking, the garbage collector's freeze, the flight loop's nice value
and SCHED_FIFO priority and the interpreter's switch interval belong to the
process, not to a library object: `pipilot fly`, `pipilot sim` and `pipilot
mission run` (against the craft) apply them here, on the thread that runs
the flight loop, before the threads that must inherit them start (the frame
pump's, the web server's), and put every one of them back on the way out,
even when the command fails (a test's interpreter, or the command that runs
next in the same process, must not inherit them).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from pipilot.core.config import RealtimeConfig
from pipilot.link import realtime
from pipilot.link.pump import resolve_pump

log = logging.getLogger(__name__)

PYTHON_PUMP_SWITCH_S = 0.0005
"""The interpreter's switch interval with the Python twin of the pump, which
needs the GIL for every frame: a busy thread hands it over this often."""


@dataclass
class RealtimeReport:
    """What the setup achieved, one line each (the command's start-up log)."""

    lines: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(self.lines)


def _log(line: str) -> None:
    if "refused" in line or "not permitted" in line:   # MCL_ONFAULT's fallback too
        log.warning("%s", line)
    else:
        log.info("%s", line)


@contextlib.contextmanager
def realtime_process(r: RealtimeConfig, *, loop_fifo: bool = False) -> Iterator[RealtimeReport]:
    """Apply `r` to this process and to the calling thread (the flight loop's),
    yield the report, restore everything on exit.

    `loop_fifo`: run the calling thread SCHED_FIFO at `r.loop_priority` (below
    the pump's `r.priority`) so that threads it starts later (the web server's)
    inherit it; `pipilot fly` asks for it."""
    report = RealtimeReport()
    with contextlib.ExitStack() as undo:
        if r.mlockall:
            line = realtime.mlockall(onfault=r.mlock_onfault)
            if line.startswith("memory locked"):
                undo.callback(realtime.munlockall)
            report.lines.append(line)
        if r.gc_freeze:
            line, threshold = realtime.tune_gc()
            undo.callback(realtime.restore_gc, threshold)
            report.lines.append(line)
        if r.nice != 0:
            line, old_nice = realtime.renice(r.nice)
            if old_nice is not None:
                undo.callback(realtime.restore_nice, old_nice)
            report.lines.append(line)
        if r.sched_fifo and not realtime.can_sched_fifo(r.priority):
            report.lines.append("SCHED_FIFO not permitted (needs CAP_SYS_NICE or a realtime "
                                "rlimit): frames may be late under load")
        if resolve_pump(r.pump) == "python":
            undo.callback(sys.setswitchinterval, sys.getswitchinterval())
            sys.setswitchinterval(PYTHON_PUMP_SWITCH_S)
        if loop_fifo and r.sched_fifo and r.loop_priority > 0:
            undo.callback(realtime.restore_this_thread, realtime.this_thread_scheduling())
            report.lines.append(realtime.fifo_this_thread(r.loop_priority))
        for line in report.lines:
            _log(line)
        yield report
