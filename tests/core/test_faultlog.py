"""A loop failing on every tick logs once with a traceback, then a count at a bounded rate."""

from __future__ import annotations

import logging

import pytest

from pipilot.core.clock import VirtualClock
from pipilot.faultlog import MAX_TRACED_KINDS, FailureLog

log = logging.getLogger("tests.faultlog")


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == log.name]


def test_a_failing_loop_logs_one_traceback_then_counts(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock()
    flog = FailureLog(log, "tick failed", every_s=10.0, clock=clock)
    with caplog.at_level(logging.ERROR, logger=log.name):
        for _ in range(64 * 25):  # 25 s of a 64 Hz loop (exact in binary) failing every tick
            flog.failed(RuntimeError("boom"))
            clock.advance(1 / 64)
        flog.flush()
    recs = _records(caplog)
    assert flog.failures == 1600
    assert recs[0].exc_info is not None and "tick failed" in recs[0].getMessage()
    assert all(r.exc_info is None for r in recs[1:])
    # first line, one at 10 s, one at 20 s, and the flush of what followed
    assert len(recs) == 4, [r.getMessage() for r in recs]
    assert "640 more failure(s) in 10.0 s" in recs[1].getMessage()
    assert "RuntimeError: boom" in recs[1].getMessage()
    counted = sum(int(r.getMessage().split(": ")[1].split()[0]) for r in recs[1:])
    assert counted + 1 == flog.failures


def test_a_new_kind_of_failure_gets_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock()
    flog = FailureLog(log, "tick failed", clock=clock)
    with caplog.at_level(logging.ERROR, logger=log.name):
        flog.failed(RuntimeError("one"))
        flog.failed(RuntimeError("two"))
        flog.failed(KeyError("three"))
    traced = [r for r in _records(caplog) if r.exc_info is not None]
    assert [type(r.exc_info[1]).__name__ for r in traced if r.exc_info] == [
        "RuntimeError", "KeyError"]


def test_tracebacks_are_bounded_by_kind(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock()
    flog = FailureLog(log, "message failed", every_s=5.0, clock=clock)
    kinds = [type(f"E{i}", (Exception,), {}) for i in range(MAX_TRACED_KINDS + 10)]
    with caplog.at_level(logging.ERROR, logger=log.name):
        for k in kinds:
            flog.failed(k("x"))
    recs = _records(caplog)
    assert sum(r.exc_info is not None for r in recs) == MAX_TRACED_KINDS
    assert len(recs) == MAX_TRACED_KINDS


def test_flush_without_news_is_silent(caplog: pytest.LogCaptureFixture) -> None:
    flog = FailureLog(log, "tick failed", clock=VirtualClock())
    with caplog.at_level(logging.ERROR, logger=log.name):
        flog.flush()
        flog.failed(ValueError("v"))
        flog.flush()
    assert len(_records(caplog)) == 1


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FailureLog(log, "x", every_s=0)


def test_a_broken_event_printer_logs_once_and_the_count_at_the_end(
        caplog: pytest.LogCaptureFixture) -> None:
    from pipilot.mission.events import EventKind, EventStream, MissionEvent

    stream = EventStream()
    seen: list[MissionEvent] = []

    def broken(event: MissionEvent) -> None:
        raise OSError("stdout closed")

    stream.add_callback(broken)
    stream.add_callback(seen.append)  # the next callback still gets every event
    with caplog.at_level(logging.ERROR, logger="pipilot.mission.events"):
        for i in range(200):
            stream.emit(MissionEvent(float(i), EventKind.PROGRESS, f"tick {i}"))
        stream.close()
    recs = [r for r in caplog.records if r.name == "pipilot.mission.events"]
    assert len(seen) == 200
    assert [r.exc_info is not None for r in recs] == [True, False]
    assert "199 more failure(s)" in recs[1].getMessage()
