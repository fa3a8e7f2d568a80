"""Process-wide real-time settings: applied by the commands that fly, undone on
every way out, and never touched by the flight core itself."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
from typing import Any

import pytest

from pipilot.cli._realtime import PYTHON_PUMP_SWITCH_S, Setting, realtime_process
from pipilot.core.config import CoreConfig, RealtimeConfig
from pipilot.core.flightcore import FlightCore
from pipilot.link import realtime
from pipilot.link.virtual import VirtualLink


def snapshot() -> dict[str, Any]:
    return {"switch": sys.getswitchinterval(), "gc": gc.get_threshold(),
            "frozen": gc.get_freeze_count(), "nice": os.getpriority(os.PRIO_PROCESS, 0),
            "sched": realtime.this_thread_scheduling()}


def in_thread(fn: Any) -> Any:
    """Run `fn` in a throw-away thread: nice and SCHED_FIFO are per thread."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


@pytest.fixture
def no_lock(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """mlockall and munlockall recorded, not done (the suite's memory stays unlocked)."""
    calls: list[object] = []

    def fake_mlockall(onfault: bool = True) -> str:
        calls.append(onfault)
        return "memory locked (MCL_ONFAULT refused by this kernel, needs Linux >= 4.4: ...)"

    monkeypatch.setattr(realtime, "mlockall", fake_mlockall)
    monkeypatch.setattr(realtime, "munlockall", lambda: calls.append("unlocked"))
    return calls


def test_everything_is_applied_and_undone(no_lock: list[object]) -> None:
    rt = RealtimeConfig(pump="python", nice=1, loop_priority=5)  # nice 1: no privilege needed

    def body() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[str]]:
        before = snapshot()
        with realtime_process(rt, loop_fifo=True) as report:
            during = snapshot()
        return before, during, snapshot(), report.lines

    before, during, after, lines = in_thread(body)
    assert during["switch"] == PYTHON_PUMP_SWITCH_S
    assert during["frozen"] > 0 and during["gc"][0] >= 5000
    assert during["nice"] == before["nice"] + 1
    if realtime.can_sched_fifo(5):
        assert during["sched"] == (os.SCHED_FIFO, 5)
    assert no_lock == [True, "unlocked"]
    assert any("MCL_ONFAULT refused" in line for line in lines)
    assert after == before


def test_a_failure_inside_still_undoes_everything(no_lock: list[object]) -> None:
    rt = RealtimeConfig(pump="python", nice=1, loop_priority=5)

    def body() -> tuple[dict[str, Any], dict[str, Any]]:
        before = snapshot()
        with pytest.raises(RuntimeError), realtime_process(rt, loop_fifo=True):
            raise RuntimeError("the flight failed")
        return before, snapshot()

    before, after = in_thread(body)
    assert after == before and no_lock[-1] == "unlocked"


def test_the_lock_mode_is_passed_on(no_lock: list[object]) -> None:
    with realtime_process(RealtimeConfig(mlock_onfault=False, gc_freeze=False, nice=0)):
        pass
    assert no_lock == [False, "unlocked"]


def test_a_refused_lock_is_not_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(realtime, "mlockall", lambda onfault=True: "mlockall refused (test)")
    monkeypatch.setattr(realtime, "munlockall", lambda: calls.append("unlocked"))
    with realtime_process(RealtimeConfig(gc_freeze=False, nice=0)) as report:
        assert report.lines[0] == "mlockall refused (test)"
    assert calls == []


def test_the_c_pump_keeps_the_switch_interval() -> None:
    before = sys.getswitchinterval()
    with realtime_process(RealtimeConfig(pump="c", mlockall=False, gc_freeze=False, nice=0)):
        assert sys.getswitchinterval() == before


def test_the_flight_core_leaves_the_process_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # a config asking for every setting: the core applies none of them (the command does)
    touched: list[str] = []
    for name in ("mlockall", "tune_gc", "renice", "fifo_this_thread"):
        monkeypatch.setattr(realtime, name, lambda *a, _n=name, **k: touched.append(_n))

    async def fly() -> None:
        with VirtualLink(callback=lambda data, times: None) as link:
            core = FlightCore(link.path, CoreConfig(realtime=RealtimeConfig(pump="python")))
            await core.start()
            await asyncio.sleep(0.05)
            await core.stop()

    def body() -> tuple[dict[str, Any], dict[str, Any]]:
        before = snapshot()
        asyncio.run(fly())
        return before, snapshot()

    before, after = in_thread(body)
    assert touched == [] and after == before


def test_each_outcome_says_whether_it_was_granted(monkeypatch: pytest.MonkeyPatch,
                                                  no_lock: list[object]) -> None:
    monkeypatch.setattr(realtime, "renice", lambda n: ("nice -10 refused (test)", None))
    monkeypatch.setattr(realtime, "fifo_this_thread", lambda p: "flight loop SCHED_FIFO 5 "
                        "not permitted (test)")
    rt = RealtimeConfig(pump="python", nice=-10, loop_priority=5)
    with realtime_process(rt, loop_fifo=True) as report:
        pass
    probe = [] if realtime.can_sched_fifo(rt.priority) else [Setting.PUMP_SCHED_FIFO]
    assert [o.setting for o in report.outcomes] == [
        Setting.MEMORY_LOCK, Setting.GC_FREEZE, Setting.NICE, *probe, Setting.SWITCH_INTERVAL,
        Setting.LOOP_SCHED_FIFO]
    # the fake lock fell back from MCL_ONFAULT: locked, but not as asked
    assert set(report.refused) >= {Setting.MEMORY_LOCK, Setting.NICE, Setting.LOOP_SCHED_FIFO}
    assert Setting.GC_FREEZE not in report.refused
    assert Setting.SWITCH_INTERVAL not in report.refused
