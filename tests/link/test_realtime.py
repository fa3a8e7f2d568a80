import ctypes
import errno
import gc

from pipilot.link import realtime


def test_mlockall_reports_and_can_be_undone():
    res = realtime.mlockall()
    try:
        assert res.startswith(("memory locked", "mlockall refused"))
    finally:
        realtime.munlockall()


def test_gc_tuning_is_reversible():
    before = gc.get_threshold()
    report, old = realtime.tune_gc()
    try:
        assert "gc frozen" in report and gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] >= 5000
    finally:
        realtime.restore_gc(old)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_sched_fifo_probe_answers():
    assert realtime.can_sched_fifo(1) in (True, False)


def test_renice_reports_and_restores():
    import os

    before = os.getpriority(os.PRIO_PROCESS, 0)
    report, old = realtime.renice(before + 1)     # lowering priority is always allowed
    assert report == f"nice {before + 1}" and old == before
    assert os.getpriority(os.PRIO_PROCESS, 0) == before + 1
    realtime.restore_nice(old)
    if os.geteuid() == 0:                          # raising it back needs the privilege
        assert os.getpriority(os.PRIO_PROCESS, 0) == before


def test_mlockall_is_not_tried_under_a_finite_limit(monkeypatch):
    # MCL_FUTURE under a finite RLIMIT_MEMLOCK makes later allocations past it
    # fail: the flight process would crash mid-flight instead of refusing now
    import resource

    calls = []

    class Libc:
        def mlockall(self, flags):
            calls.append(flags)
            return 0

        def munlockall(self):
            return 0

    monkeypatch.setattr(realtime, "_libc", Libc)
    monkeypatch.setattr(realtime, "_has_cap_ipc_lock", lambda: False)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (64 << 20, 64 << 20))
    res = realtime.mlockall()
    assert res.startswith("mlockall refused") and "LimitMEMLOCK" in res and calls == []
    monkeypatch.setattr(realtime, "_has_cap_ipc_lock", lambda: True)
    assert realtime.mlockall().startswith("memory locked") and calls


class FakeLibc:
    """mlockall as a kernel before 4.4 answers it: MCL_ONFAULT is EINVAL."""

    def __init__(self, onfault_ok):
        self.onfault_ok = onfault_ok
        self.calls = []

    def mlockall(self, flags):
        self.calls.append(flags)
        if flags & realtime.MCL_ONFAULT and not self.onfault_ok:
            ctypes.set_errno(errno.EINVAL)
            return -1
        return 0


def _unlimited(monkeypatch, libc):
    import resource

    monkeypatch.setattr(realtime, "_libc", lambda: libc)
    monkeypatch.setattr(resource, "getrlimit",
                        lambda which: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def test_mlockall_locks_on_fault(monkeypatch):
    # MCL_CURRENT | MCL_FUTURE alone faults in and locks every mapping (each
    # thread's whole stack, every malloc arena): on a Pi that is most of its RAM
    libc = FakeLibc(onfault_ok=True)
    _unlimited(monkeypatch, libc)
    assert realtime.mlockall() == "memory locked (on fault)"
    assert libc.calls == [realtime.MCL_CURRENT | realtime.MCL_FUTURE | realtime.MCL_ONFAULT]


def test_mlockall_falls_back_and_says_so_when_the_kernel_refuses_onfault(monkeypatch):
    libc = FakeLibc(onfault_ok=False)
    _unlimited(monkeypatch, libc)
    res = realtime.mlockall()
    assert res.startswith("memory locked") and "MCL_ONFAULT refused" in res
    assert libc.calls == [realtime.MCL_CURRENT | realtime.MCL_FUTURE | realtime.MCL_ONFAULT,
                          realtime.MCL_CURRENT | realtime.MCL_FUTURE]


def test_mlockall_without_onfault_asks_for_the_plain_lock(monkeypatch):
    libc = FakeLibc(onfault_ok=True)
    _unlimited(monkeypatch, libc)
    assert realtime.mlockall(onfault=False) == "memory locked"
    assert libc.calls == [realtime.MCL_CURRENT | realtime.MCL_FUTURE]


def test_other_errors_are_a_refusal_not_a_fallback(monkeypatch):
    class Refusing(FakeLibc):
        def mlockall(self, flags):
            self.calls.append(flags)
            ctypes.set_errno(errno.EPERM)
            return -1

    libc = Refusing(onfault_ok=True)
    _unlimited(monkeypatch, libc)
    assert realtime.mlockall().startswith("mlockall refused")
    assert len(libc.calls) == 1


def test_the_real_lock_on_fault_is_taken_and_undone():
    import os

    res = realtime.mlockall()
    try:
        if os.geteuid() == 0:                    # root: CAP_IPC_LOCK, Linux >= 4.4 here
            assert res == "memory locked (on fault)"
    finally:
        realtime.munlockall()


def test_thread_stacks_are_bounded_and_restorable():
    import threading

    before = threading.stack_size()
    report, old = realtime.bound_thread_stacks(256)
    try:
        assert report == "thread stacks 256 KiB" and old == before
        assert threading.stack_size() == 256 * 1024
    finally:
        threading.stack_size(old)


def test_malloc_arenas_are_limited():
    assert realtime.limit_malloc_arenas(1) in ("malloc arenas <= 1",
                                               "malloc arenas: default (not glibc)")
