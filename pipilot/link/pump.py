"""The frame pump: a thread that writes the current frame at t0 + k*P.

Python (the FlightCore, in asyncio) hands the pump each new frame with
`set_frame`; the pump thread owns the write. Two implementations share one
interface and one behaviour:

- `CPump` (`pipilot.link._pump`, Cython): a pthread that never takes the GIL,
  so garbage collection, a busy event loop or a stalled interpreter cannot
  delay a frame. It sleeps with clock_nanosleep(CLOCK_MONOTONIC,
  TIMER_ABSTIME) to each deadline and copies the frame out of a slot that
  Python fills under a mutex held for a 25-byte copy (with priority
  inheritance, so a preempted Python thread holding it cannot hold up the
  real-time pump for long).
- `PyPump`: a Python thread, for machines without a compiler. It needs the
  GIL for every frame, so it is only as punctual as the interpreter lets it be.

Both own the staleness watchdog: when `set_frame` has not been called for
`stale_s` the pump sends the failsafe frame instead (the core is stalled or
dead and its last frame is stale); after `silent_s` it sends nothing, so the
flight controller's own receiver timeout takes over. A fresh `set_frame`
resumes normal frames. Frames go out on the grid t0 + k*P and never drift.
A wake-up that comes late still sends at once (the flight controller gets the
freshest frame as early as it can), and the next frame waits for the first
deadline at least half a period later: a slot that would follow closer is
dropped (counted as missed, and logged in `skips`), so frames never go out
back to back (which the flight controller's decoder would merge into one lost
frame) and no gap between frames is longer than one period plus the
wake-up's own lateness. When a tty takes only part of a frame (its
buffer is nearly full), the rest is written before any other frame, so the
wire never carries a torn frame that the decoder could splice with the next.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from pipilot.sbus.frame import END_MASK, FLAG_FAILSAFE, FRAME_LEN, START_BYTE

log = logging.getLogger(__name__)

HIST_BIN_NS = 10_000      # lateness histogram: 10 us bins
HIST_BINS = 2000          # up to 20 ms; the last bin holds everything later
SKIP_LOG = 64             # runs of skipped slots kept in PumpStats.skips
MAX_QUIET_S = 0.1         # longest silence set_fd may ask for (the FC's timeout is 102.4 ms)
MODE_FRESH, MODE_FAILSAFE, MODE_SILENT = 0, 1, 2
MODE_NAMES = ("fresh", "failsafe", "silent")


@dataclass
class PumpStats:
    """Counters and the wake-up lateness histogram of one pump run."""

    implementation: str = ""
    frames_sent: int = 0          # writes that completed (incl. failsafe frames)
    failsafe_frames: int = 0      # watchdog failsafe frames among them
    silent_slots: int = 0         # slots kept silent on purpose: watchdog, or after a flush
    missed_slots: int = 0         # slots skipped because the thread woke too late
    write_errors: int = 0
    eagain: int = 0               # output buffer full: frame dropped
    partial_writes: int = 0
    last_errno: int = 0           # of the latest failed write (EAGAIN included)
    lateness_max_s: float = 0.0   # wake-up lateness, dropped slots included
    lateness_mean_s: float = 0.0
    max_gap_s: float = 0.0        # longest time between two completed writes
    first_write_s: float = 0.0    # CLOCK_MONOTONIC of the first and last completed write
    last_write_s: float = 0.0
    mode: str = "fresh"
    refresh_age_s: float = 0.0
    realtime: str = ""
    histogram: list[int] = field(default_factory=list, repr=False)
    skips: list[tuple[int, int]] = field(default_factory=list, repr=False)
    """The latest SKIP_LOG runs of slots without a frame (missed or silent), as
    (index of the next frame written, 0-based, number of slots): lets a far
    end that counts frames put each one on its own slot."""

    def lateness_percentile(self, q: float) -> float:
        """Upper edge of the histogram bin holding quantile `q` (0..1), in seconds,
        but never above the largest lateness seen (a report must not show p99 > max)."""
        total = sum(self.histogram)
        if total == 0:
            return 0.0
        want = q * total
        acc = 0
        edge = len(self.histogram) * HIST_BIN_NS * 1e-9
        for i, c in enumerate(self.histogram):
            acc += c
            if acc >= want:
                edge = (i + 1) * HIST_BIN_NS * 1e-9
                break
        return min(edge, self.lateness_max_s)

    @property
    def mean_period_s(self) -> float:
        """Mean time between completed writes (0 before two writes)."""
        if self.frames_sent < 2:
            return 0.0
        return (self.last_write_s - self.first_write_s) / (self.frames_sent - 1)

    def summary(self) -> dict[str, object]:
        d = {k: v for k, v in self.__dict__.items() if k != "histogram"}
        d["lateness_p50_s"] = self.lateness_percentile(0.5)
        d["lateness_p99_s"] = self.lateness_percentile(0.99)
        return d


class Pump(Protocol):
    implementation: str

    def start(self, fd: int, frame: bytes, failsafe_frame: bytes, period_s: float,
              stale_s: float, silent_s: float, rt_priority: int = 0) -> None: ...
    def set_frame(self, frame: bytes) -> None: ...
    def set_failsafe_frame(self, frame: bytes) -> None: ...
    def set_fd(self, fd: int, quiet_s: float = 0.0) -> None: ...
    def stop(self) -> None: ...
    def stats(self) -> PumpStats: ...
    def counters(self) -> tuple[int, int, int]: ...
    def next_deadline_s(self) -> float: ...
    @property
    def running(self) -> bool: ...


def check_frame(frame: bytes, failsafe: bool = False) -> bytes:
    """The frame as bytes once it is a whole S.Bus frame (start byte, an end byte
    the decoder accepts); with `failsafe`, it must also carry the failsafe flag.
    The pump thread sends only what passed this."""
    b = bytes(frame)
    if len(b) != FRAME_LEN:
        raise ValueError(f"a frame is {FRAME_LEN} bytes, got {len(b)}")
    if b[0] != START_BYTE or b[-1] & END_MASK:
        raise ValueError(f"not an S.Bus frame: {b.hex()}")
    if failsafe and not b[-2] & FLAG_FAILSAFE:
        raise ValueError("the failsafe frame must carry the failsafe flag")
    return b


def check_timing(period_s: float, stale_s: float, silent_s: float) -> None:
    if not 1e-3 <= period_s <= 1.0:
        raise ValueError("period must be 1 ms .. 1 s")
    if not period_s < stale_s < silent_s:
        raise ValueError("need period < stale < silent")


class PyPump:
    """The pure-Python twin of `CPump` (see the module docstring)."""

    implementation = "python"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = False
        self._fd_gen = 0
        self._quiet_until = 0
        self._deadline = 0
        self._stats = PumpStats(implementation=self.implementation,
                                histogram=[0] * HIST_BINS)

    def start(self, fd: int, frame: bytes, failsafe_frame: bytes, period_s: float,
              stale_s: float, silent_s: float, rt_priority: int = 0) -> None:
        if self._thread is not None:
            raise RuntimeError("pump already started")
        check_timing(period_s, stale_s, silent_s)
        self._fd = fd
        self._frame = check_frame(frame)
        self._fs_frame = check_frame(failsafe_frame, failsafe=True)
        self._period = round(period_s * 1e9)
        self._stale = round(stale_s * 1e9)
        self._silent = round(silent_s * 1e9)
        self._rt_priority = rt_priority
        self._refresh = time.monotonic_ns()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="sbus-pump", daemon=True)
        self._thread.start()

    def set_frame(self, frame: bytes) -> None:
        b = check_frame(frame)
        with self._lock:
            self._frame = b
            self._refresh = time.monotonic_ns()

    def set_failsafe_frame(self, frame: bytes) -> None:
        b = check_frame(frame, failsafe=True)
        with self._lock:
            self._fs_frame = b

    def set_fd(self, fd: int, quiet_s: float = 0.0) -> None:
        """Write to `fd` from the next slot on (also after a flush of the same fd:
        the rest of a frame the tty took part of is then dropped). With
        `quiet_s`, slots in the next `quiet_s` stay silent: after a flush cut a
        frame, the decoder must see a silence long enough to drop its first part
        before a new frame starts, or it splices the two."""
        check_quiet(quiet_s)
        with self._lock:
            self._fd = fd
            self._fd_gen += 1
            self._quiet_until = time.monotonic_ns() + round(quiet_s * 1e9)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def next_deadline_s(self) -> float:
        """CLOCK_MONOTONIC seconds of the next slot the thread writes (0.0 before it
        runs): a frame set before then goes out in that slot."""
        with self._lock:
            return self._deadline * 1e-9

    def counters(self) -> tuple[int, int, int]:
        """Cheap (write_errors + eagain, frames_sent, last_errno) for per-tick checks."""
        with self._lock:
            st = self._stats
            return st.write_errors + st.eagain, st.frames_sent, st.last_errno

    def stats(self) -> PumpStats:
        with self._lock:
            fields = dict(self._stats.__dict__)
            hist = self._stats.histogram[:]
            skips = self._stats.skips[:]
            refresh = self._refresh
        s = PumpStats(**{**fields, "histogram": hist, "skips": skips})
        if self._thread is not None:
            s.refresh_age_s = (time.monotonic_ns() - refresh) * 1e-9
        return s

    def _set_realtime(self) -> str:
        if self._rt_priority <= 0:
            return "not requested"
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self._rt_priority))
        except OSError as exc:
            return f"SCHED_FIFO refused ({errno.errorcode.get(exc.errno or 0, exc.errno)})"
        return f"SCHED_FIFO {self._rt_priority}"

    def _run(self) -> None:
        st = self._stats
        st.realtime = self._set_realtime()
        period = self._period
        deadline = time.monotonic_ns() + period
        with self._lock:
            self._deadline = deadline
        last_write = 0
        lat_sum = 0
        lat_n = 0
        tail, tail_gen = b"", -1    # the unwritten rest of a frame the tty took part of
        while not self._stop:
            delay = deadline - time.monotonic_ns()
            if delay > 0:
                time.sleep(delay * 1e-9)
            now = time.monotonic_ns()
            late = now - deadline
            with self._lock:
                if self._stop:
                    break
                age = now - self._refresh
                fd, fd_gen = self._fd, self._fd_gen
                if age >= self._silent or now < self._quiet_until:
                    mode, buf = MODE_SILENT, b""
                elif age >= self._stale:
                    mode, buf = MODE_FAILSAFE, self._fs_frame
                else:
                    mode, buf = MODE_FRESH, self._frame
            err = 0
            n = -1
            if mode == MODE_SILENT or fd_gen != tail_gen:
                tail = b""              # after silence (or set_fd, a flush) a tail is junk
            if mode != MODE_SILENT:
                if tail:
                    # finish the torn frame instead of this slot's frame (the
                    # output was full: the slot counts as EAGAIN)
                    err = errno.EAGAIN
                    try:
                        tail = tail[os.write(fd, tail):]
                    except OSError as exc:
                        err = exc.errno or errno.EIO
                        if err != errno.EAGAIN:
                            tail = b""
                if not err:
                    try:
                        n = os.write(fd, buf)
                    except OSError as exc:
                        err = exc.errno or errno.EIO
                    else:
                        if n < FRAME_LEN:
                            tail, tail_gen = buf[n:], fd_gen
            done = time.monotonic_ns()
            with self._lock:
                st.mode = MODE_NAMES[mode]
                if mode == MODE_SILENT:
                    st.silent_slots += 1
                elif err and fd_gen != self._fd_gen:
                    pass    # the fd was replaced meanwhile: not an error of the new one
                elif err == errno.EAGAIN:
                    st.eagain += 1
                    st.last_errno = err
                elif err:
                    st.write_errors += 1
                    st.last_errno = err
                else:
                    if n != FRAME_LEN:
                        st.partial_writes += 1
                    st.frames_sent += 1
                    if mode == MODE_FAILSAFE:
                        st.failsafe_frames += 1
                    if last_write:
                        st.max_gap_s = max(st.max_gap_s, (done - last_write) * 1e-9)
                    else:
                        st.first_write_s = done * 1e-9
                    last_write = done
                    st.last_write_s = done * 1e-9
                st.histogram[min(max(late, 0) // HIST_BIN_NS, HIST_BINS - 1)] += 1
                lat_sum += max(late, 0)
                lat_n += 1
                st.lateness_max_s = max(st.lateness_max_s, late * 1e-9)
                st.lateness_mean_s = lat_sum / lat_n * 1e-9
                # the next deadline at least half a period away; slots before it are missed
                steps = next_slot_steps(late, period)
                skipped = steps - 1 + (mode == MODE_SILENT)
                if steps > 1:
                    st.missed_slots += steps - 1
                if skipped:
                    _log_skip(st, skipped)
                deadline += steps * period
                self._deadline = deadline


def check_quiet(quiet_s: float) -> None:
    if not 0.0 <= quiet_s <= MAX_QUIET_S:
        raise ValueError(f"quiet_s must be within 0..{MAX_QUIET_S} s, got {quiet_s!r}")


def next_slot_steps(late_ns: int, period_ns: int) -> int:
    """Periods from a slot woken `late_ns` after its deadline to the next slot
    to write: the first one at least half a period after the wake-up."""
    return max(1, -(-(max(late_ns, 0) + period_ns // 2) // period_ns))


def _log_skip(st: PumpStats, count: int) -> None:
    if st.skips and st.skips[-1][0] == st.frames_sent:
        st.skips[-1] = (st.frames_sent, st.skips[-1][1] + count)
        return
    st.skips.append((st.frames_sent, count))
    if len(st.skips) > SKIP_LOG:
        del st.skips[0]


def available() -> tuple[str, ...]:
    """Implementations importable here, best first."""
    try:
        from pipilot.link import _pump  # noqa: F401
    except ImportError:
        return ("python",)
    return ("c", "python")


def resolve_pump(kind: str = "auto") -> str:
    """The implementation `make_pump(kind)` gives: "auto" is "c" when built,
    "python" otherwise or with PIPILOT_PURE_PYTHON=1."""
    if kind == "auto":
        return "python" if os.environ.get("PIPILOT_PURE_PYTHON") == "1" else available()[0]
    return kind


def make_pump(kind: str = "auto") -> Pump:
    """A pump: "c" (compiled, GIL-free), "python", or "auto" (see `resolve_pump`)."""
    kind = resolve_pump(kind)
    if kind == "python":
        return PyPump()
    if kind == "c":
        try:
            from pipilot.link._pump import CPump
        except ImportError as exc:
            raise RuntimeError("the compiled pump is not built "
                               "(python setup.py build_ext --inplace)") from exc
        return CPump()
    raise ValueError(f"unknown pump {kind!r}: c, python or auto")
