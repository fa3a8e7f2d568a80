# cython: language_level=3, boundscheck=False, wraparound=False
"""The GIL-free frame pump (see pipilot.link.pump for the contract).

The pump thread is a plain pthread: it never touches a Python object and
never takes the GIL. Shared state lives in one C struct guarded by a mutex
that each side holds only to copy a 25-byte frame or a few counters.
"""

from libc.stdint cimport int64_t, uint64_t, uint8_t
from libc.string cimport memcpy, memmove, memset
from libc.errno cimport errno, EAGAIN, EINTR

from pipilot.link.pump import FRAME_LEN, HIST_BINS, HIST_BIN_NS, MODE_NAMES, SKIP_LOG, PumpStats
from pipilot.link.pump import check_frame, check_quiet, check_timing

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    int clock_nanosleep(int clk, int flags, const timespec *req, timespec *rem)
    enum: CLOCK_MONOTONIC
    enum: TIMER_ABSTIME

cdef extern from "<unistd.h>" nogil:
    ssize_t write(int fd, const void *buf, size_t n)

cdef extern from "<signal.h>" nogil:
    ctypedef struct sigset_t:
        pass
    int sigfillset(sigset_t *s)
    int pthread_sigmask(int how, const sigset_t *s, sigset_t *old)
    enum: SIG_BLOCK

cdef extern from "<sched.h>" nogil:
    cdef struct sched_param:
        int sched_priority
    enum: SCHED_FIFO

cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_attr_t:
        pass
    ctypedef struct pthread_mutexattr_t:
        pass
    int pthread_create(pthread_t *t, const pthread_attr_t *attr,
                       void *(*fn)(void *) noexcept nogil, void *arg)
    int pthread_join(pthread_t t, void **ret)
    pthread_t pthread_self()
    int pthread_setschedparam(pthread_t t, int policy, const sched_param *p)
    int pthread_setname_np(pthread_t t, const char *name)
    int pthread_attr_init(pthread_attr_t *a)
    int pthread_attr_setstacksize(pthread_attr_t *a, size_t size)
    int pthread_attr_destroy(pthread_attr_t *a)
    int pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *a)
    int pthread_mutexattr_init(pthread_mutexattr_t *a)
    int pthread_mutexattr_setprotocol(pthread_mutexattr_t *a, int protocol)
    int pthread_mutexattr_destroy(pthread_mutexattr_t *a)
    enum: PTHREAD_PRIO_INHERIT
    int pthread_mutex_destroy(pthread_mutex_t *m)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)

# The frame's length in bytes: pipilot.sbus.frame.FRAME_LEN, handed to the compiler by
# setup.py (C arrays need it at compile time); checked against the module at import.
DEF NFRAME = SBUS_FRAME_LEN
# The thread's stack (its frames are a few hundred bytes): not RLIMIT_STACK's 8 MiB,
# which a lock without MCL_ONFAULT would fault in and keep resident.
DEF STACK_BYTES = 256 * 1024
DEF NBINS = 2000
DEF BIN_NS = 10000
DEF NSKIP = 64
assert NSKIP == SKIP_LOG
assert NFRAME == FRAME_LEN, "rebuild the pump: pipilot.sbus.frame.FRAME_LEN changed"

cdef struct pump_t:
    pthread_mutex_t lock
    # set by Python
    int fd
    int fd_gen                      # bumped by set_fd: a tail for before it is junk
    int stop
    int rt_priority
    int64_t period, stale, silent, refresh, quiet_until
    int64_t deadline                # of the next slot the thread writes (set by the thread)
    uint8_t frame[NFRAME]
    uint8_t fs_frame[NFRAME]
    # set by the thread
    uint64_t frames_sent, failsafe_frames, silent_slots, missed_slots
    uint64_t write_errors, eagain, partial
    int last_errno, mode, rt_result
    int64_t lat_max, lat_sum, lat_n, max_gap, first_write, last_write
    uint64_t hist[NBINS]
    uint64_t skip_next[NSKIP]       # a ring of (next frame index, slots) runs
    uint64_t skip_count[NSKIP]
    uint64_t skip_runs

cdef inline void log_skip(pump_t *p, uint64_t count) noexcept nogil:
    cdef uint64_t last = (p.skip_runs - 1) % NSKIP
    if p.skip_runs > 0 and p.skip_next[last] == p.frames_sent:
        p.skip_count[last] += count
        return
    p.skip_next[p.skip_runs % NSKIP] = p.frames_sent
    p.skip_count[p.skip_runs % NSKIP] = count
    p.skip_runs += 1

cdef inline int64_t mono_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec

cdef inline void sleep_until(int64_t t) noexcept nogil:
    cdef timespec ts
    ts.tv_sec = <time_t>(t // 1000000000)
    ts.tv_nsec = <long>(t % 1000000000)
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR:
        pass

cdef void *pump_main(void *arg) noexcept nogil:
    cdef pump_t *p = <pump_t *>arg
    cdef sigset_t all_signals
    cdef sched_param sp
    cdef uint8_t buf[NFRAME]
    cdef uint8_t tail[NFRAME]       # the unwritten rest of a frame the tty took part of
    cdef int ntail = 0, tail_gen = -1
    cdef int64_t deadline, now, late, age, done, skip, last_write = 0
    cdef int64_t period = p.period
    cdef int mode, fd, fd_gen, err
    cdef ssize_t n, m
    sigfillset(&all_signals)
    pthread_sigmask(SIG_BLOCK, &all_signals, NULL)
    pthread_setname_np(pthread_self(), "sbus-pump")
    if p.rt_priority > 0:
        sp.sched_priority = p.rt_priority
        p.rt_result = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp)
    deadline = mono_ns() + period
    pthread_mutex_lock(&p.lock)
    p.deadline = deadline
    pthread_mutex_unlock(&p.lock)
    while True:
        sleep_until(deadline)
        now = mono_ns()
        late = now - deadline
        pthread_mutex_lock(&p.lock)
        if p.stop:
            pthread_mutex_unlock(&p.lock)
            break
        fd = p.fd
        fd_gen = p.fd_gen
        age = now - p.refresh
        if age >= p.silent or now < p.quiet_until:
            mode = 2
        elif age >= p.stale:
            mode = 1
            memcpy(buf, p.fs_frame, NFRAME)
        else:
            mode = 0
            memcpy(buf, p.frame, NFRAME)
        pthread_mutex_unlock(&p.lock)
        err = 0
        n = -1
        if mode == 2 or fd_gen != tail_gen:
            ntail = 0               # after silence (or set_fd, a flush) a tail is junk
        if mode != 2:
            if ntail > 0:
                # finish the torn frame instead of this slot's frame (the output
                # was full: the slot counts as EAGAIN), so the wire only carries
                # whole frames
                m = write(fd, tail, ntail)
                err = EAGAIN
                if m < 0:
                    err = errno
                    if err != EAGAIN:
                        ntail = 0
                else:
                    ntail -= <int>m
                    memmove(tail, tail + m, ntail)
            if err == 0:
                n = write(fd, buf, NFRAME)
                if n < 0:
                    err = errno
                elif n < NFRAME:
                    ntail = NFRAME - <int>n
                    memcpy(tail, buf + n, ntail)
                    tail_gen = fd_gen
        done = mono_ns()
        pthread_mutex_lock(&p.lock)
        p.mode = mode
        if mode == 2:
            p.silent_slots += 1
        elif err != 0 and fd_gen != p.fd_gen:
            pass                    # the fd was replaced meanwhile: not an error of the new one
        elif err == EAGAIN:
            p.eagain += 1
            p.last_errno = err
        elif err != 0:
            p.write_errors += 1
            p.last_errno = err
        else:
            if n != NFRAME:
                p.partial += 1
            p.frames_sent += 1
            if mode == 1:
                p.failsafe_frames += 1
            if last_write != 0 and done - last_write > p.max_gap:
                p.max_gap = done - last_write
            if last_write == 0:
                p.first_write = done
            last_write = done
            p.last_write = done
        if late < 0:
            late = 0
        p.hist[late // BIN_NS if late // BIN_NS < NBINS else NBINS - 1] += 1
        p.lat_sum += late
        p.lat_n += 1
        if late > p.lat_max:
            p.lat_max = late
        # a late slot was still written now; the next one is the first deadline at
        # least half a period away, so frames never go out back to back
        skip = (late + period // 2 + period - 1) // period
        if skip < 1:
            skip = 1
        if skip > 1:
            p.missed_slots += <uint64_t>(skip - 1)
        if skip > 1 or mode == 2:
            log_skip(p, <uint64_t>(skip - 1 + (mode == 2)))
        deadline += skip * period
        p.deadline = deadline
        pthread_mutex_unlock(&p.lock)
    return NULL


cdef class CPump:
    """The compiled pump: same interface and behaviour as `PyPump`."""

    cdef pump_t p
    cdef pthread_t thread
    cdef bint started
    cdef bint joined

    implementation = "c"

    def __cinit__(self):
        cdef pthread_mutexattr_t attr
        memset(&self.p, 0, sizeof(pump_t))
        # priority inheritance: if Python is preempted while holding the lock, the
        # SCHED_FIFO pump waiting for it lends the holder its priority
        pthread_mutexattr_init(&attr)
        pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT)
        pthread_mutex_init(&self.p.lock, &attr)
        pthread_mutexattr_destroy(&attr)
        self.p.rt_result = -1

    def __dealloc__(self):
        if self.started and not self.joined:
            self._join()
        pthread_mutex_destroy(&self.p.lock)

    def start(self, int fd, frame, failsafe_frame, double period_s, double stale_s,
              double silent_s, int rt_priority=0):
        """Start writing `frame` to `fd` every `period_s` (see PyPump.start)."""
        if self.started:
            raise RuntimeError("pump already started")
        check_timing(period_s, stale_s, silent_s)
        cdef bytes f = check_frame(frame)
        cdef bytes fs = check_frame(failsafe_frame, True)
        memcpy(self.p.frame, <const char *>f, NFRAME)
        memcpy(self.p.fs_frame, <const char *>fs, NFRAME)
        self.p.fd = fd
        self.p.period = <int64_t>(period_s * 1e9 + 0.5)
        self.p.stale = <int64_t>(stale_s * 1e9 + 0.5)
        self.p.silent = <int64_t>(silent_s * 1e9 + 0.5)
        self.p.rt_priority = rt_priority
        self.p.refresh = mono_ns()
        cdef pthread_attr_t attr
        pthread_attr_init(&attr)
        pthread_attr_setstacksize(&attr, STACK_BYTES)
        cdef int rc = pthread_create(&self.thread, &attr, pump_main, &self.p)
        pthread_attr_destroy(&attr)
        if rc != 0:
            raise OSError(rc, "cannot start the pump thread")
        self.started = True

    def set_frame(self, frame):
        """Replace the frame sent from the next slot on; refreshes the watchdog."""
        cdef bytes f = check_frame(frame)
        pthread_mutex_lock(&self.p.lock)
        memcpy(self.p.frame, <const char *>f, NFRAME)
        self.p.refresh = mono_ns()
        pthread_mutex_unlock(&self.p.lock)

    def set_failsafe_frame(self, frame):
        cdef bytes f = check_frame(frame, True)
        pthread_mutex_lock(&self.p.lock)
        memcpy(self.p.fs_frame, <const char *>f, NFRAME)
        pthread_mutex_unlock(&self.p.lock)

    def set_fd(self, int fd, double quiet_s=0.0):
        """Write to `fd` from the next slot on, silent for `quiet_s` (see PyPump.set_fd)."""
        check_quiet(quiet_s)
        cdef int64_t quiet = <int64_t>(quiet_s * 1e9 + 0.5)
        pthread_mutex_lock(&self.p.lock)
        self.p.fd = fd
        self.p.fd_gen += 1
        self.p.quiet_until = mono_ns() + quiet
        pthread_mutex_unlock(&self.p.lock)

    @property
    def running(self):
        return self.started and not self.joined

    def stop(self):
        """Stop the thread after its current slot and wait for it."""
        if self.started and not self.joined:
            self._join()

    cdef _join(self):
        pthread_mutex_lock(&self.p.lock)
        self.p.stop = 1
        pthread_mutex_unlock(&self.p.lock)
        with nogil:
            pthread_join(self.thread, NULL)
        self.joined = True

    def next_deadline_s(self):
        """CLOCK_MONOTONIC seconds of the next slot the thread writes (0.0 before it runs)."""
        pthread_mutex_lock(&self.p.lock)
        cdef int64_t d = self.p.deadline
        pthread_mutex_unlock(&self.p.lock)
        return d * 1e-9

    def counters(self):
        """Cheap (write_errors + eagain, frames_sent, last_errno) for per-tick checks."""
        pthread_mutex_lock(&self.p.lock)
        r = (self.p.write_errors + self.p.eagain, self.p.frames_sent, self.p.last_errno)
        pthread_mutex_unlock(&self.p.lock)
        return r

    def stats(self):
        """A snapshot of the counters (copied under the lock, converted after it)."""
        cdef pump_t snap
        pthread_mutex_lock(&self.p.lock)
        memcpy(&snap, &self.p, sizeof(pump_t))
        pthread_mutex_unlock(&self.p.lock)
        cdef int i
        cdef uint64_t j
        skips = []
        j = snap.skip_runs - NSKIP if snap.skip_runs > NSKIP else 0
        while j < snap.skip_runs:
            skips.append((snap.skip_next[j % NSKIP], snap.skip_count[j % NSKIP]))
            j += 1
        s = PumpStats(
            implementation="c",
            frames_sent=snap.frames_sent, failsafe_frames=snap.failsafe_frames,
            silent_slots=snap.silent_slots, missed_slots=snap.missed_slots,
            write_errors=snap.write_errors, eagain=snap.eagain,
            partial_writes=snap.partial, last_errno=snap.last_errno,
            lateness_max_s=snap.lat_max * 1e-9,
            lateness_mean_s=(snap.lat_sum / snap.lat_n * 1e-9) if snap.lat_n else 0.0,
            max_gap_s=snap.max_gap * 1e-9, first_write_s=snap.first_write * 1e-9,
            last_write_s=snap.last_write * 1e-9, mode=MODE_NAMES[snap.mode],
            refresh_age_s=((mono_ns() - snap.refresh) * 1e-9) if self.running else 0.0,
            histogram=[snap.hist[i] for i in range(NBINS)],
            skips=skips)
        if snap.rt_priority <= 0:
            s.realtime = "not requested"
        elif snap.rt_result == 0:
            s.realtime = f"SCHED_FIFO {snap.rt_priority}"
        elif snap.rt_result > 0:
            import errno as _errno
            name = _errno.errorcode.get(snap.rt_result, snap.rt_result)
            s.realtime = f"SCHED_FIFO refused ({name})"
        return s
