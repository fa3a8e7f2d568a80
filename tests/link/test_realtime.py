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
