"""Both pump implementations, one suite; timing only against generous bounds."""

import contextlib
import errno
import itertools
import math
import os
import time

import pytest

from pipilot.link.pump import FRAME_LEN, HIST_BIN_NS, PumpStats, available, make_pump

KINDS = available()
FRESH = bytes([0x0F] + [0x11] * 23 + [0x00])
OTHER = bytes([0x0F] + [0x22] * 23 + [0x00])
FS = bytes([0x0F] + [0x00] * 22 + [0x08, 0x00])
P = 0.007


def test_the_compiled_pump_is_built():
    assert "c" in KINDS, "pipilot.link._pump not built: python setup.py build_ext --inplace"


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def pipe():
    r, w = os.pipe()
    os.set_blocking(w, False)
    os.set_blocking(r, False)
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):
            os.close(fd)


def drain(fd):
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


def wait_for_frames(pump, n, limit_s=10.0):
    """Until the pump has written `n` frames: a loaded machine may not run its thread
    for a while, so a fixed sleep would prove nothing."""
    deadline = time.monotonic() + limit_s
    while pump.stats().frames_sent < n:
        assert time.monotonic() < deadline, f"the pump wrote {pump.stats().frames_sent} frames"
        time.sleep(0.005)


def frames(data):
    assert len(data) % FRAME_LEN == 0
    return [data[i:i + FRAME_LEN] for i in range(0, len(data), FRAME_LEN)]


def test_streams_the_latest_frame_at_the_period(kind, pipe):
    r, w = pipe
    pump = make_pump(kind)
    # the pump's run lies within [t0, t1] and holds [t_started, t_stopping] (this
    # thread may be descheduled around start() and stop())
    t0 = time.monotonic()
    pump.start(w, FRESH, FS, P, 0.5, 0.8, rt_priority=10)
    t_started = time.monotonic()
    got = b""
    while time.monotonic() - t0 < 0.3:
        pump.set_frame(FRESH)
        got += drain(r)
        time.sleep(0.01)
    pump.set_frame(OTHER)
    time.sleep(0.05)
    t_stopping = time.monotonic()
    pump.stop()
    t1 = time.monotonic()
    got += drain(r)
    fs = frames(got)
    assert set(fs) <= {FRESH, OTHER} and fs[-1] == OTHER
    # absolute deadlines: never more frames than slots, and most slots used
    assert 0.3 * (t_stopping - t_started) / P <= len(fs) <= (t1 - t0) / P + 2
    s = pump.stats()
    assert s.frames_sent == len(fs) and s.implementation == kind
    # the twin's thread needs the GIL, which a descheduled test thread can hold for
    # slots on end (its period is exact in virtual time, below): it is held to the
    # share of slots asked for above; the compiled pump keeps at least every other one
    assert P * 0.9 < s.mean_period_s < P * (2 if kind == "c" else 1 / 0.3)
    assert not pump.running


@pytest.mark.parametrize("kind", ["c"])  # the Python twin: test_*_in_virtual_time
def test_watchdog_sends_failsafe_then_goes_silent(kind, pipe):
    r, w = pipe
    stale, silent = 0.07, 0.15      # a failsafe window a loaded machine cannot sleep through
    pump = make_pump(kind)
    pump.start(w, FRESH, FS, P, stale, silent, rt_priority=10)
    for _ in range(10):
        pump.set_frame(FRESH)
        time.sleep(0.01)
    # before the last refresh: a descheduled test cannot drain failsafe frames. Kept:
    # a test thread descheduled for `stale` in the loop above lets failsafe frames
    # out before it, and the pump's count covers the whole stream.
    head = frames(drain(r))
    t_last = time.monotonic()
    pump.set_frame(FRESH)
    time.sleep(0.4)
    fs = frames(drain(r))
    s = pump.stats()
    pump.stop()
    n_fs = fs.count(FS)
    # order: fresh ... failsafe ... nothing
    assert fs == [FRESH] * (len(fs) - n_fs) + [FS] * n_fs
    assert 1 <= n_fs <= round((silent - stale) / P) + 1
    assert len(fs) - n_fs <= round(stale / P) + 1
    assert s.mode == "silent" and s.silent_slots >= 1
    assert s.failsafe_frames == n_fs + head.count(FS)
    assert s.refresh_age_s >= 0.4 and time.monotonic() - t_last >= 0.4


@pytest.mark.parametrize("kind", ["c"])  # the Python twin: test_*_in_virtual_time
def test_refresh_after_silence_resumes(kind, pipe):
    r, w = pipe
    pump = make_pump(kind)
    pump.start(w, FRESH, FS, P, 0.02, 0.04)
    time.sleep(0.15)
    drain(r)
    fs: list[bytes] = []
    deadline = time.monotonic() + 3.0   # generous: a loaded machine may not run the thread soon
    while OTHER not in fs and time.monotonic() < deadline:
        pump.set_frame(OTHER)
        time.sleep(0.01)
        fs += frames(drain(r))
    pump.stop()
    assert OTHER in fs


def test_full_output_counts_eagain_and_keeps_time(kind, pipe):
    r, w = pipe
    pump = make_pump(kind)
    pump.start(w, FRESH, FS, 0.002, 0.5, 0.8)
    # nobody reads (a 64 KiB pipe holds ~2600 frames): the stream goes on; 0.6 s
    # was not enough for 100 frames on a loaded machine, so count, not time
    deadline = time.monotonic() + 30.0
    while pump.stats().frames_sent < 100:
        assert time.monotonic() < deadline, pump.stats()
        pump.set_frame(FRESH)
        time.sleep(0.01)
    s = pump.stats()
    assert s.frames_sent >= 100 and s.write_errors == 0
    drain(r)
    pump.stop()


def test_write_errors_are_counted_and_retried(kind, pipe):
    r, w = pipe
    os.close(r)                 # EPIPE from now on (Python ignores SIGPIPE)
    pump = make_pump(kind)
    pump.start(w, FRESH, FS, P, 10.0, 20.0)    # no silence however late the thread runs
    deadline = time.monotonic() + 10.0          # each slot the thread gets fails
    while pump.counters()[0] < 3:
        assert time.monotonic() < deadline, pump.counters()
        time.sleep(0.01)
    errors, sent, last = pump.counters()
    pump.stop()
    assert errors >= 3 and sent == 0 and last == errno.EPIPE


def test_set_fd_moves_the_stream(kind, pipe):
    r, w = pipe
    r2, w2 = os.pipe()
    os.set_blocking(r2, False)
    pump = make_pump(kind)
    try:
        pump.start(w, FRESH, FS, P, 10.0, 20.0)
        wait_for_frames(pump, 1)
        pump.set_fd(w2)
        n = pump.stats().frames_sent
        drain(r)
        pump.set_frame(FRESH)
        wait_for_frames(pump, n + 2)    # the slot under way may still go to the old fd
        assert drain(r2)
    finally:
        pump.stop()
        os.close(r2)
        os.close(w2)


@pytest.mark.parametrize("kind", ["c"])  # the Python twin: test_*_in_virtual_time
def test_set_fd_can_hold_a_silence_after_a_flush(kind, pipe):
    r, w = pipe
    pump = make_pump(kind)
    try:
        pump.start(w, FRESH, FS, P, 0.5, 0.8)
        time.sleep(0.1)
        drain(r)
        n0 = pump.stats().frames_sent
        pump.set_fd(w, quiet_s=0.1)
        time.sleep(0.3)
        pump.set_frame(FRESH)
        wait_for_frames(pump, n0 + 11)                   # streaming resumed
    finally:
        pump.stop()
    st = pump.stats()
    assert st.frames_sent > n0 + 10
    # logged after frame n0 (n0 + 1 if one went out before set_fd)
    run = [c for i, c in st.skips if n0 <= i <= n0 + 1]
    # 0.1 s is 14.3 periods: all but the slot in progress (and one for rounding) silent;
    # a thread that woke late counts the slots it slept through as missed instead, and
    # when that wake ends the quiet, after the frame it writes (so in n0 + 1)
    assert sum(run) >= 12
    assert st.silent_slots + st.missed_slots >= 12 and st.silent_slots >= 1
    with pytest.raises(ValueError):
        pump.set_fd(w, quiet_s=-0.01)
    with pytest.raises(ValueError):
        pump.set_fd(w, quiet_s=5.0)


def test_bad_arguments(kind, pipe):
    _r, w = pipe
    pump = make_pump(kind)
    with pytest.raises(ValueError):
        pump.start(w, b"short", FS, P, 0.07, 0.1)
    with pytest.raises(ValueError):
        pump.start(w, FRESH, FS, P, 0.1, 0.07)
    pump.start(w, FRESH, FS, P, 0.07, 0.1)
    with pytest.raises(ValueError):
        pump.set_frame(b"\x0f" * 26)
    with pytest.raises(RuntimeError):
        pump.start(w, FRESH, FS, P, 0.07, 0.1)
    pump.stop()
    pump.stop()


def hold_the_gil(seconds):
    """Run C-level loops that never release the GIL (no bytecode, no eval breaker),
    doubling until one of them held it for `seconds`; returns that hold."""
    n = 1_000_000
    while True:
        t0 = time.monotonic()
        sum(range(n))
        held = time.monotonic() - t0
        if held >= seconds or n > 10**10:
            return held
        n *= 2


def test_compiled_pump_keeps_time_while_the_gil_is_held(pipe):
    if "c" not in KINDS:
        pytest.fail("compiled pump not built")
    _r, w = pipe
    pump = make_pump("c")
    pump.start(w, FRESH, FS, P, 0.5, 0.8, rt_priority=10)
    time.sleep(0.05)
    held = hold_the_gil(0.2)
    pump.stop()
    assert held >= 0.2
    # the thread wrote throughout every stall
    assert pump.stats().max_gap_s < 0.1, pump.stats().realtime


def test_python_pump_is_blocked_by_the_gil(pipe):
    """Why the compiled pump exists: the twin cannot write while the GIL is held."""
    _r, w = pipe
    pump = make_pump("python")
    # no failsafe or silence in the test's time: each slot the thread gets writes a
    # frame (a thread first run after a loaded machine's 0.8 s wrote none at all)
    pump.start(w, FRESH, FS, P, 10.0, 20.0)
    wait_for_frames(pump, 3)
    held = hold_the_gil(0.2)
    wait_for_frames(pump, pump.stats().frames_sent + 2)   # the gap across the hold closed
    pump.stop()
    assert held >= 0.2
    # a loaded machine stretches `held` by preemption, so ask only for a gap
    # far beyond any frame period
    assert pump.stats().max_gap_s >= 0.1


def test_realtime_is_reported(kind, pipe):
    _r, w = pipe
    pump = make_pump(kind)
    pump.start(w, FRESH, FS, P, 0.07, 0.1, rt_priority=10)
    time.sleep(0.03)
    pump.stop()
    rt = pump.stats().realtime
    assert rt == "SCHED_FIFO 10" or rt.startswith("SCHED_FIFO refused")


def test_pure_python_env_forces_the_twin(monkeypatch):
    monkeypatch.setenv("PIPILOT_PURE_PYTHON", "1")
    assert make_pump().implementation == "python"
    with pytest.raises(ValueError):
        make_pump("rust")


def _run_with_stall(monkeypatch, stall_ns, period=7_000_000, stall_slot=50):
    """The Python twin at `period` ns whose thread is not scheduled for `stall_ns`
    once, just after slot `stall_slot`; returns (stats, write times, gaps, first slot)."""
    def stall(vt):
        vt.t += stall_ns

    st, vt = run_python_pump(monkeypatch, 1000.0, 2000.0, 100 * period / 1e9,
                             [((stall_slot * period + 1000) / 1e9, lambda pump: stall)],
                             period_ns=period)
    writes = vt.writes
    gaps = [b - a for a, b in itertools.pairwise(writes)]
    return st, writes, gaps, ScriptedTime.T0 + period


@pytest.mark.parametrize("stall", [0.3, 0.7, 0.95, 2.4])
def test_a_late_wake_sends_at_once_and_never_back_to_back(monkeypatch, stall):
    period = 7_000_000
    st, writes, gaps, t0 = _run_with_stall(monkeypatch, round(stall * period), period)
    late_write = next(w for w in writes if (w - t0) % period > 1000)
    i = writes.index(late_write)
    # the late frame went out on waking: the gap before it is one period plus the stall
    assert gaps[i - 1] == pytest.approx((1 + stall) * period, abs=2000)
    assert min(gaps) >= period // 2                          # never back to back
    # and the stream is back on its grid at the first slot at least P/2 away
    assert all((w - t0) % period == 0 for w in writes[i + 1:])
    expected_missed = max(1, math.ceil(stall + 0.5)) - 1
    assert st.missed_slots == expected_missed
    assert st.skips == ([(i + 1, expected_missed)] if expected_missed else [])
    assert len(writes) + st.missed_slots == (writes[-1] - t0) // period + 1
    assert st.lateness_max_s == pytest.approx(stall * period * 1e-9, abs=2e-6)
    if stall < 1:
        assert max(gaps) < 2 * period                        # a wake within P: no 2P gap


def test_lateness_percentiles_never_exceed_the_max():
    st = PumpStats(histogram=[0] * 5 + [10] + [0] * 4, lateness_max_s=52e-6)
    assert st.lateness_percentile(0.5) == st.lateness_percentile(0.99) == 52e-6
    st = PumpStats(histogram=[10, 0, 0, 1], lateness_max_s=39e-6)
    assert st.lateness_percentile(0.5) == HIST_BIN_NS * 1e-9   # the bin's upper edge
    assert st.lateness_percentile(0.99) == 39e-6
    assert PumpStats().lateness_percentile(0.99) == 0.0


class ScriptedTime:
    """Stands in for the `time` and `os` modules of the Python pump: time moves
    only when the pump sleeps (it wakes exactly at its deadlines), and scripted
    calls (each given this object) run at the first wake-up at or after their
    time; a call that moves `t` on is the pump's thread not scheduled that long.
    Records when each write happened (`writes`, ns) and what it wrote (`slots`)."""

    T0 = 10**9

    def __init__(self, pump, end_s, script=()):
        self.t = self.T0
        self.pump = pump
        self.end = self.T0 + round(end_s * 1e9)
        self.script = sorted(((self.T0 + round(at * 1e9), fn) for at, fn in script),
                             key=lambda entry: entry[0])
        self.writes = []
        self.slots = []        # (ms since start, what was written: a frame, or None)
        self.environ = os.environ
        self.sched_param = os.sched_param
        self.SCHED_FIFO = os.SCHED_FIFO

    def monotonic_ns(self):
        return self.t

    def sleep(self, s):
        self.t += max(0, round(s * 1e9))
        while self.script and self.script[0][0] <= self.t:
            self.script.pop(0)[1](self)
        if self.t >= self.end:
            self.pump._stop = True

    def write(self, fd, buf):
        self.writes.append(self.t)
        self.slots.append((round((self.t - self.T0) / 1e6), bytes(buf)))
        return len(buf)

    def sched_setscheduler(self, *a):
        pass


def run_python_pump(monkeypatch, stale_s, silent_s, end_s, script=(), period_ns=None,
                    fd=1, prepare=None):
    """Run the Python twin in virtual time; returns (stats, the ScriptedTime).
    `script` is [(at_s, fn)]: fn(pump) gives the call run (with the ScriptedTime)
    at that time; `prepare(pump, vt)` runs before the pump does."""
    import pipilot.link.pump as pm

    pump = pm.PyPump()
    vt = ScriptedTime(pump, end_s, [(at, fn(pump)) for at, fn in script])
    monkeypatch.setattr(pm, "time", vt)
    monkeypatch.setattr(pm, "os", vt)
    pump._rt_priority = 0
    pump._fd, pump._frame, pump._fs_frame = fd, FRESH, FS
    pump._period = round(P * 1e9) if period_ns is None else period_ns
    pump._stale, pump._silent = round(stale_s * 1e9), round(silent_s * 1e9)
    pump._refresh = vt.t
    if prepare is not None:
        prepare(pump, vt)
    pump._run()
    return pump.stats(), vt


def test_watchdog_in_virtual_time_fresh_then_failsafe_then_silent(monkeypatch):
    """The Python twin's exact slot counts (the real-time test above bounds both twins)."""
    st, vt = run_python_pump(monkeypatch, 0.07, 0.15, 0.4)
    # slot k is at 7k ms: fresh while the frame is younger than 70 ms (k = 1..9),
    # failsafe while younger than 150 ms (k = 10..21), then silent to the end (k = 22..57)
    assert vt.slots == [(7 * k, FRESH) for k in range(1, 10)] + [(7 * k, FS) for k in range(10, 22)]
    assert st.failsafe_frames == 12 and st.frames_sent == 21
    assert st.mode == "silent" and st.silent_slots == 57 - 21
    assert st.missed_slots == 0 and st.lateness_max_s == 0.0


def test_refresh_after_silence_resumes_in_virtual_time(monkeypatch):
    st, vt = run_python_pump(monkeypatch, 0.02, 0.04, 0.2,
                             [(0.150, lambda pump: lambda vt: pump.set_frame(OTHER))])
    # fresh (7, 14 ms), failsafe (21..35), silent (42..147); the refresh lands at the
    # 154 ms wake-up: that very slot carries it, then it goes stale again
    assert vt.slots == [(7, FRESH), (14, FRESH), (21, FS), (28, FS), (35, FS),
                     (154, OTHER), (161, OTHER), (168, OTHER), (175, FS), (182, FS), (189, FS)]
    # 16 silent slots before the 6th frame, and the last slot (196 ms) silent again
    assert st.silent_slots == 16 + 1 and st.skips == [(5, 16), (11, 1)]


def test_set_fd_holds_a_silence_in_virtual_time(monkeypatch):
    st, vt = run_python_pump(monkeypatch, 0.5, 0.8, 0.25,
                             [(0.100, lambda pump: lambda vt: pump.set_fd(1, quiet_s=0.1))])
    # set_fd at the 105 ms wake-up: silent while now < 205 ms (slots 105..203), then on
    assert [ms for ms, _f in vt.slots] == [7 * k for k in range(1, 15)] + [
        7 * k for k in range(30, 36)]
    assert {f for _ms, f in vt.slots} == {FRESH}
    assert st.silent_slots == 15 and st.skips == [(14, 15)] and st.missed_slots == 0


def test_next_slot_steps():
    from pipilot.link.pump import next_slot_steps
    P_NS = 7_000_000
    assert [next_slot_steps(round(x * P_NS), P_NS) for x in (-0.1, 0, 0.5, 0.51, 0.99, 1.5, 1.6)] \
        == [1, 1, 1, 2, 2, 2, 3]


@pytest.mark.parametrize("kind", ["c"])  # the Python twin: test_*_in_virtual_time
def test_silent_slots_are_logged_where_they_fall(kind, pipe):
    r, w = pipe
    pump = make_pump(kind)
    pump.start(w, FRESH, FS, P, 0.03, 0.06)
    time.sleep(0.25)                      # fresh, failsafe, then silent slots
    n_before = len(drain(r)) // FRAME_LEN
    pump.set_frame(FRESH)
    time.sleep(0.1)
    pump.stop()
    st = pump.stats()
    assert st.silent_slots > 0
    silent_runs = [(i, c) for i, c in st.skips if i <= st.frames_sent]
    assert sum(c for _, c in silent_runs) == st.silent_slots + st.missed_slots
    # the silence (from 0.06 s to the refresh after 0.25 s) is one run, logged after
    # the last frame before it; a loaded machine's late wakes log short runs of
    # missed slots earlier, so it is found by where it falls, not as the first run
    assert dict(silent_runs).get(n_before, 0) >= int((0.25 - 0.06) / P) - 2


@pytest.mark.parametrize("bad", [
    bytes([0x0E]) + FRESH[1:],                 # no start byte
    FRESH[:-1] + b"\x01",                      # an end byte the decoder refuses
])
def test_only_whole_sbus_frames_reach_the_thread(kind, pipe, bad):
    r, w = pipe
    pump = make_pump(kind)
    with pytest.raises(ValueError):
        pump.start(w, bad, FS, P, 0.5, 0.8)
    with pytest.raises(ValueError, match="failsafe flag"):
        pump.start(w, FRESH, FRESH, P, 0.07, 0.1)
    pump.start(w, FRESH, FS, P, 0.5, 0.8)
    try:
        with pytest.raises(ValueError):
            pump.set_frame(bad)
        with pytest.raises(ValueError):
            pump.set_failsafe_frame(bad)
        with pytest.raises(ValueError, match="failsafe flag"):
            pump.set_failsafe_frame(FRESH)
        wait_for_frames(pump, 3)
    finally:
        pump.stop()
    assert set(frames(drain(r))) == {FRESH}


def test_last_errno_is_the_latest_errors_eagain_included(kind, pipe):
    # the core reopens the device on EIO/EBADF: a full buffer after an earlier
    # dead-device error must not read as that error again
    _r, w = pipe
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(w, bytes(65536))
    pump = make_pump(kind)
    pump.start(-1, FRESH, FS, P, 10.0, 20.0)   # no silence however late the thread runs
    try:
        deadline = time.monotonic() + 10.0      # until the thread has had a slot
        while pump.counters()[0] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert pump.counters()[2] == errno.EBADF
        pump.set_fd(w)                          # healthy, but its buffer is full
        errors = pump.counters()[0]
        while pump.counters()[0] < errors + 2:  # a slot under way may still see fd -1
            assert time.monotonic() < deadline + 10.0
            time.sleep(0.005)
        _errors, sent, last = pump.counters()
        assert last == errno.EAGAIN and sent == 0
        assert pump.stats().eagain > 0
    finally:
        pump.stop()


def test_a_full_tty_buffer_never_tears_a_frame(kind):
    # a tty takes part of a frame when its buffer is nearly full: the rest must
    # follow before any other frame, or the decoder could assemble a frame from
    # the head of one and the body of the next
    import tty
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(slave, False)
    os.set_blocking(master, False)
    pump = make_pump(kind)
    data = b""
    try:
        # no failsafe frames however long a loaded machine deschedules this thread
        pump.start(slave, FRESH, FS, 0.001, 10.0, 20.0)
        # nobody reads: the buffer fills, in 1.5 s when the thread gets its slots; a
        # loaded machine ran it for 632 of 1500, which did not fill it
        deadline = time.monotonic() + 30.0
        k = 0
        while pump.stats().partial_writes + pump.stats().eagain == 0:
            assert time.monotonic() < deadline, pump.stats()
            k += 1
            pump.set_frame(FRESH if k % 2 else OTHER)
            time.sleep(0.01)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.5:
            k += 1
            pump.set_frame(FRESH if k % 2 else OTHER)
            data += drain(master)
            time.sleep(0.005)
        pump.stop()
        data += drain(master)
    finally:
        pump.stop()
        os.close(master)
        os.close(slave)
    assert len(data) > 1000
    # a stop while the buffer was full again (this thread descheduled) leaves the
    # rest of a torn frame unsent: the stream may end in the head of one frame
    cut = len(data) % FRAME_LEN
    if cut:
        assert data[-cut:] in (FRESH[:cut], OTHER[:cut]), data[-cut:]
        data = data[:-cut]
    assert set(frames(data)) <= {FRESH, OTHER}


_STALLED_CHILD = """
import json, os, sys, time
from pipilot.link.pump import make_pump
r, w = os.pipe()
os.set_blocking(w, False)
pump = make_pump(sys.argv[1])
frame = bytes([0x0F] + [0x11] * 23 + [0x00])
fs = bytes([0x0F] + [0x00] * 22 + [0x08, 0x00])
pump.start(w, frame, fs, 0.007, 10.0, 20.0)
while pump.stats().frames_sent < 1:
    time.sleep(0.005)
# a consistent start of the count: the thread updates stats and deadline together
while True:
    d0 = pump.next_deadline_s()
    st0 = pump.stats()
    if pump.next_deadline_s() == d0:
        break
print("go", flush=True)
end = time.monotonic() + 1.0
while time.monotonic() < end:
    time.sleep(0.05)
    os.read(r, 65536)
pump.stop()
st = pump.stats()
print(json.dumps({"frames": st.frames_sent, "missed": st.missed_slots, "skips": st.skips,
                  "frames0": st0.frames_sent, "missed0": st0.missed_slots,
                  "grid_slots": round((pump.next_deadline_s() - d0) / 0.007)}), flush=True)
"""


@pytest.mark.parametrize("kind", ["c"])  # the Python twin: test_a_late_wake_... (virtual)
def test_a_stopped_pump_accounts_for_every_slot_it_missed(kind):
    """The whole process stopped for 3 periods (as a long scheduling delay would):
    the pump resumes, logs the slots it missed, and keeps its grid."""
    import json
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _STALLED_CHILD, kind],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "go"
    time.sleep(0.3)
    proc.send_signal(signal.SIGSTOP)
    time.sleep(0.021)
    proc.send_signal(signal.SIGCONT)
    out, _ = proc.communicate(timeout=30)
    r = json.loads(out.strip().splitlines()[-1])
    frames, missed = r["frames"] - r["frames0"], r["missed"] - r["missed0"]
    assert missed >= 2                                    # at least the stopped slots
    assert sum(c for _, c in r["skips"]) == r["missed"]   # each one logged
    assert all(0 < i <= r["frames"] for i, _ in r["skips"])
    # still on its grid: every slot it moved on by was written or counted missed
    # (counted from a slot it had written: a loaded machine may start it late)
    assert frames + missed == r["grid_slots"]


def test_an_error_on_a_replaced_fd_is_not_charged_to_the_new_one(monkeypatch):
    """The core replaced a dead fd while the pump was writing to it: the failed
    write belongs to the old device, and must not make the new one look dead."""
    period = 7_000_000

    def dead_fd_swapped(pump, vt):
        write = vt.write

        def write_or_fail(fd, buf):
            if fd == -1:                 # the dead fd; the core swaps in a new one meanwhile
                pump.set_fd(7)
                raise OSError(errno.EBADF, "Bad file descriptor")
            return write(fd, buf)

        vt.write = write_or_fail

    st, vt = run_python_pump(monkeypatch, 1000.0, 2000.0, 20 * period / 1e9,
                             period_ns=period, fd=-1, prepare=dead_fd_swapped)
    assert st.write_errors == 0 and st.last_errno == 0
    assert st.frames_sent == len(vt.writes) >= 15
