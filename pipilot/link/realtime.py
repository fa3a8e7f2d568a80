"""Process-wide real-time settings: memory locking and garbage-collector tuning.

The pump thread asks for SCHED_FIFO itself; these are the process-wide parts.
Each function reports what it achieved instead of failing: a desktop without
the privilege still flies, it just says so at start-up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import resource

log = logging.getLogger(__name__)

MCL_CURRENT = 1
MCL_FUTURE = 2


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


CAP_IPC_LOCK = 14


def _has_cap_ipc_lock() -> bool:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_IPC_LOCK & 1)
    except (OSError, ValueError):
        pass
    return False


def mlockall() -> str:
    """Lock current and future pages in RAM (no page-fault stalls on the write path).

    Only without a memory-lock limit (CAP_IPC_LOCK or LimitMEMLOCK=infinity):
    under a finite limit MCL_FUTURE makes every allocation past it fail, which
    would crash the flight process later instead of refusing now."""
    soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    if soft != resource.RLIM_INFINITY and not _has_cap_ipc_lock():
        return (f"mlockall refused (LimitMEMLOCK is {soft // 1024} KiB: allocations past "
                "it would fail; needs CAP_IPC_LOCK or LimitMEMLOCK=infinity)")
    if _libc().mlockall(MCL_CURRENT | MCL_FUTURE) != 0:
        err = ctypes.get_errno()
        return f"mlockall refused ({os.strerror(err)}; needs CAP_IPC_LOCK or LimitMEMLOCK)"
    return "memory locked"


def munlockall() -> None:
    _libc().munlockall()


def tune_gc() -> tuple[str, tuple[int, int, int]]:
    """Move start-up objects out of the collector's way and collect less often.
    Returns a report and the previous thresholds (for `restore_gc`)."""
    old = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(max(old[0], 5000), old[1], old[2])
    return f"gc frozen {gc.get_freeze_count()} objects, threshold {gc.get_threshold()}", old


def restore_gc(threshold: tuple[int, int, int]) -> None:
    gc.unfreeze()
    gc.set_threshold(*threshold)


def renice(nice: int) -> tuple[str, int | None]:
    """Set the calling thread's nice value (Linux: per thread; threads started
    afterwards inherit it). Returns a report and the old value (None if refused)."""
    old = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:
        return f"nice {nice} refused ({exc.strerror}; needs CAP_SYS_NICE or LimitNICE)", None
    return f"nice {nice}", old


def restore_nice(old: int) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, old)
    except OSError:
        log.warning("could not restore nice %d", old)


def fifo_this_thread(priority: int) -> str:
    """Run the calling thread SCHED_FIFO at `priority` (threads it starts later
    inherit it). Returns a report; refused, the thread keeps its policy."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        return (f"flight loop SCHED_FIFO {priority} not permitted ({exc.strerror}; needs "
                "CAP_SYS_NICE or a realtime rlimit): it keeps its nice value")
    return f"flight loop SCHED_FIFO {priority}"


def can_sched_fifo(priority: int = 1) -> bool:
    """Whether this process may use SCHED_FIFO (probed in a throw-away thread)."""
    import threading

    ok: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            ok.append(True)
        except OSError:
            ok.append(False)

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return ok[0]
