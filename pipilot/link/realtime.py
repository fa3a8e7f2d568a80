"""Process-wide real-time settings: memory locking, memory bounds, garbage-collector tuning.

The pump thread asks for SCHED_FIFO itself; these are the process-wide parts.
Each function reports what it achieved instead of failing: a desktop without
the privilege still flies, it just says so at start-up.

Memory on a Pi is small (a Zero 2 has 512 MB). Locking with MCL_CURRENT |
MCL_FUTURE alone faults in and locks every byte of every mapping: each
thread's whole stack (8 MiB by default), glibc's per-thread malloc arenas,
every library's untouched pages. `mlockall(onfault=True)` adds MCL_ONFAULT
(Linux >= 4.4): a page is locked once it is used, so what runs stays
resident and what was never touched costs nothing. `bound_thread_stacks`
and `limit_malloc_arenas` (the command line applies them before its first
thread starts) keep the address space the process reserves small: the
kernel's VmLck counts every locked mapping in full, touched or not, and a
kernel without MCL_ONFAULT faults all of it in.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import gc
import logging
import os
import resource
from typing import NamedTuple

log = logging.getLogger(__name__)

MCL_CURRENT = 1
MCL_FUTURE = 2
MCL_ONFAULT = 4        # Linux >= 4.4: lock pages as they are faulted in, not all at once
M_ARENA_MAX = -8       # glibc mallopt parameter (malloc.h)


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


def mlockall(onfault: bool = True) -> str:
    """Lock current and future pages in RAM (no page-fault stalls on the write path).

    With `onfault` (MCL_ONFAULT) pages are locked once touched rather than all
    faulted in now; a kernel that refuses it (EINVAL, before Linux 4.4) gets
    the plain lock, and the report says so. Only without a memory-lock limit
    (CAP_IPC_LOCK or LimitMEMLOCK=infinity): under a finite limit MCL_FUTURE
    makes every allocation past it fail, which would crash the flight process
    later instead of refusing now. The report starts with "memory locked"
    when the memory is locked."""
    soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    if soft != resource.RLIM_INFINITY and not _has_cap_ipc_lock():
        return (f"mlockall refused (LimitMEMLOCK is {soft // 1024} KiB: allocations past "
                "it would fail; needs CAP_IPC_LOCK or LimitMEMLOCK=infinity)")
    libc = _libc()
    note = ""
    if onfault:
        if libc.mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0:
            return "memory locked (on fault)"
        err = ctypes.get_errno()
        if err != errno.EINVAL:
            return f"mlockall refused ({os.strerror(err)}; needs CAP_IPC_LOCK or LimitMEMLOCK)"
        note = (" (MCL_ONFAULT refused by this kernel, needs Linux >= 4.4: every mapping "
                "is faulted in and locked)")
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE) != 0:
        err = ctypes.get_errno()
        return f"mlockall refused ({os.strerror(err)}; needs CAP_IPC_LOCK or LimitMEMLOCK)"
    return "memory locked" + note


def munlockall() -> None:
    _libc().munlockall()


THREAD_STACK_KIB = 512
"""Stack of the Python threads pipilot starts (the default is RLIMIT_STACK, 8 MiB)."""
MALLOC_ARENA_MAX = 1
"""glibc malloc arenas: one. Python threads allocate holding the GIL, so more
arenas buy no parallelism; each extra one reserves 64 MiB of address space
(64-bit), which a memory lock counts in full."""


def bound_thread_stacks(kib: int = THREAD_STACK_KIB) -> tuple[str, int]:
    """Give the Python threads started from now on a stack of `kib` KiB (0: the
    system default). Returns a report and the previous setting."""
    import threading

    old = threading.stack_size(kib * 1024)
    return (f"thread stacks {kib} KiB" if kib else "thread stacks: system default"), old


def limit_malloc_arenas(n: int = MALLOC_ARENA_MAX) -> str:
    """glibc: at most `n` malloc arenas (default 8 per core, each reserving 64 MiB
    of address space). Only before a second thread allocates: glibc fixes the
    limit when it first needs an arena for a thread."""
    try:
        mallopt = _libc().mallopt
    except AttributeError:
        return "malloc arenas: default (not glibc)"
    if mallopt(M_ARENA_MAX, n) != 1:
        return "malloc arenas: default (mallopt refused M_ARENA_MAX)"
    return f"malloc arenas <= {n}"


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


class ThreadScheduling(NamedTuple):
    """A thread's policy and priority, to put back after a temporary change."""

    policy: int
    priority: int


def this_thread_scheduling() -> ThreadScheduling:
    return ThreadScheduling(os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)


def restore_this_thread(saved: ThreadScheduling) -> None:
    """Put the calling thread back to `saved` (lowering needs no privilege)."""
    try:
        os.sched_setscheduler(0, saved.policy, os.sched_param(saved.priority))
    except OSError as exc:
        log.warning("could not restore the thread's scheduling: %s", exc.strerror)


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
