import gc

from pipilot.link import realtime


def test_mlockall_reports_and_can_be_undone():
    res = realtime.mlockall()
    try:
        assert res == "memory locked" or res.startswith("mlockall refused")
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
    assert realtime.mlockall() == "memory locked" and calls
