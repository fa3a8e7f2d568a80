"""The flight loop's SCHED_FIFO (`realtime.loop_priority`): set on the calling
thread only, inherited by threads it starts, refused with a report."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

from pipilot.cli._realtime import realtime_process
from pipilot.core.config import CoreConfig, RealtimeConfig, validate
from pipilot.errors import ConfigError
from pipilot.link import realtime

#: no process-wide setting but the one under test
QUIET: dict[str, Any] = {"mlockall": False, "gc_freeze": False, "nice": 0}


def in_thread(fn: Callable[[], Any]) -> Any:
    """Run `fn` in a throw-away thread (a scheduling change must not stay on pytest's)."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_the_calling_thread_and_its_children_run_fifo_and_no_other() -> None:
    if not realtime.can_sched_fifo(10):
        pytest.skip("SCHED_FIFO not permitted here (needs CAP_SYS_NICE or an RTPRIO limit)")

    def body() -> tuple[str, int, int, int]:
        report = realtime.fifo_this_thread(10)
        child: list[int] = []
        t = threading.Thread(target=lambda: child.append(os.sched_getscheduler(0)))
        t.start()
        t.join()
        return report, os.sched_getscheduler(0), os.sched_getparam(0).sched_priority, child[0]

    report, policy, priority, child_policy = in_thread(body)
    assert report == "flight loop SCHED_FIFO 10"
    assert (policy, priority) == (os.SCHED_FIFO, 10)
    assert child_policy == os.SCHED_FIFO          # the web server's thread inherits it
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # pytest's own thread untouched


def test_a_refusal_is_a_report_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    report = realtime.fifo_this_thread(10)
    assert "not permitted" in report and "CAP_SYS_NICE" in report


@pytest.mark.parametrize("sched_fifo,loop_priority,loop_fifo",
                         [(False, 10, True), (True, 0, True), (True, 10, False)])
def test_the_loop_is_left_alone_when_told(sched_fifo: bool, loop_priority: int, loop_fifo: bool,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(realtime, "fifo_this_thread", lambda p: calls.append(p) or "")
    rt = RealtimeConfig(sched_fifo=sched_fifo, loop_priority=loop_priority, **QUIET)
    with realtime_process(rt, loop_fifo=loop_fifo):
        pass
    assert calls == []


def test_fly_asks_for_the_configured_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(realtime, "fifo_this_thread",
                        lambda p: calls.append(p) or f"flight loop SCHED_FIFO {p}")
    monkeypatch.setattr(realtime, "restore_this_thread", lambda saved: calls.append(-1))
    with realtime_process(RealtimeConfig(loop_priority=7, **QUIET), loop_fifo=True) as report:
        assert calls == [7] and "flight loop SCHED_FIFO 7" in report.lines
    assert calls == [7, -1]                       # given back on the way out


@pytest.mark.parametrize("bad", [-1, 50, 99, True, 2.5])
def test_loop_priority_must_stay_below_the_pump(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"realtime\.loop_priority"):
        validate(CoreConfig(realtime=RealtimeConfig(priority=50, loop_priority=bad)))  # type: ignore[arg-type]


def test_a_fly_that_fails_gives_the_thread_its_scheduling_back() -> None:
    # Found in CI: `fly` on a missing port failed after making the calling thread
    # SCHED_FIFO, and it stayed so; the rest of the suite (and every process it
    # started, a 20,000-connection flood client among them) then ran realtime.
    if not realtime.can_sched_fifo(10):
        pytest.skip("SCHED_FIFO not permitted here (needs CAP_SYS_NICE or an RTPRIO limit)")
    from pipilot.cli import main

    saved = realtime.this_thread_scheduling()   # fly's signal handlers need the main thread
    try:
        assert main(["fly", "--sbus-port", "/dev/ttyNOPE", "--headless"]) == 1
        assert realtime.this_thread_scheduling() == saved
    finally:
        realtime.restore_this_thread(saved)
