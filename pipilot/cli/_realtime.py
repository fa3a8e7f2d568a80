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
import enum
import logging
import os
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


class Setting(enum.Enum):
    """The process-wide settings `realtime_process` applies."""

    MEMORY_LOCK = "memory lock"
    GC_FREEZE = "gc freeze"
    NICE = "nice"
    PUMP_SCHED_FIFO = "pump SCHED_FIFO"     # probed here; the pump thread asks for it
    SWITCH_INTERVAL = "switch interval"
    LOOP_SCHED_FIFO = "flight loop SCHED_FIFO"


@dataclass(frozen=True)
class Outcome:
    """One setting: whether it was granted as asked, and the line the command logs."""

    setting: Setting
    granted: bool
    text: str


@dataclass
class RealtimeReport:
    """What the setup achieved, one `Outcome` a setting (the command's start-up log)."""

    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, setting: Setting, granted: bool, text: str) -> None:
        self.outcomes.append(Outcome(setting, granted, text))
        (log.info if granted else log.warning)("%s", text)

    @property
    def lines(self) -> list[str]:
        return [o.text for o in self.outcomes]

    @property
    def refused(self) -> list[Setting]:
        return [o.setting for o in self.outcomes if not o.granted]

    def __str__(self) -> str:
        return "; ".join(self.lines)


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
            text = realtime.mlockall(onfault=r.mlock_onfault)
            locked = text.startswith("memory locked")       # mlockall's documented report
            if locked:
                undo.callback(realtime.munlockall)
            # locked without MCL_ONFAULT (an old kernel) faults every mapping in: a warning
            report.add(Setting.MEMORY_LOCK, locked and "refused" not in text, text)
        if r.gc_freeze:
            text, threshold = realtime.tune_gc()
            undo.callback(realtime.restore_gc, threshold)
            report.add(Setting.GC_FREEZE, True, text)
        if r.nice != 0:
            text, old_nice = realtime.renice(r.nice)
            if old_nice is not None:
                undo.callback(realtime.restore_nice, old_nice)
            report.add(Setting.NICE, old_nice is not None, text)
        if r.sched_fifo and not realtime.can_sched_fifo(r.priority):
            report.add(Setting.PUMP_SCHED_FIFO, False,
                       "SCHED_FIFO not permitted (needs CAP_SYS_NICE or a realtime rlimit): "
                       "frames may be late under load")
        if resolve_pump(r.pump) == "python":
            undo.callback(sys.setswitchinterval, sys.getswitchinterval())
            sys.setswitchinterval(PYTHON_PUMP_SWITCH_S)
            report.add(Setting.SWITCH_INTERVAL, True, f"switch interval "
                       f"{PYTHON_PUMP_SWITCH_S * 1e3:g} ms (the Python pump needs the GIL)")
        if loop_fifo and r.sched_fifo and r.loop_priority > 0:
            saved = realtime.this_thread_scheduling()
            undo.callback(realtime.restore_this_thread, saved)
            text = realtime.fifo_this_thread(r.loop_priority)
            granted = realtime.this_thread_scheduling() == (os.SCHED_FIFO, r.loop_priority)
            report.add(Setting.LOOP_SCHED_FIFO, granted, text)
        yield report
