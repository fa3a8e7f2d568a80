"""The flight core: owns the S.Bus port, the mixer, the frame pump, the failsafe.

In real time (the default) the pump thread writes the latest frame at every
absolute deadline t0 + k*P (a slot) whatever the event loop is doing, and the
mixer runs when a source publishes, and otherwise every
`link.mix_interval_ms` to refresh the pump's watchdog. A publish is mixed at
once, in the publisher's turn of the event loop (no extra wake-up), while the
pump's next slot has had fewer than `PUBLISH_MIXES_PER_SLOT` mixes for
publishes, so it goes out in that slot: the delay from a setpoint to the
wire stays under one period plus the frame's 3 ms on the wire. Past that
budget one mix runs just after the slot, with every publish since, for the
next one: however fast the sources publish the core mixes at most twice a
slot (the pump only ever sends the last), and the refresh never delays a
publish. Not mixing for every frame keeps the interpreter's share of
a core small. If the mixing stops (event loop stalled, process wedged) the
pump's watchdog sends failsafe frames and then falls silent (see
`pipilot.link.pump`).

In lock-step (a `VirtualClock` and a `FrameSink` transport) there is no
thread: `advance(t)` runs the mixer at every frame deadline up to `t` and
gives each frame to the sink with its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import logging
import os
import termios
from dataclasses import dataclass
from typing import Any

from pipilot import sbus
from pipilot.core.clock import Clock, MonotonicClock, VirtualClock
from pipilot.core.config import CoreConfig
from pipilot.core.failsafe import Failsafe
from pipilot.core.firmware import RateEstimate, check_period
from pipilot.core.mixer import Mixer, MixOutput
from pipilot.core.setpoints import NEUTRAL
from pipilot.errors import LinkError
from pipilot.faultlog import FailureLog
from pipilot.link.identity import DeviceChanged, DeviceProbe, RefusalLog
from pipilot.link.pump import Pump, PumpStats, make_pump
from pipilot.link.serialport import SerialPort
from pipilot.link.transport import DevicePath, SbusTransport, Timing

log = logging.getLogger(__name__)

#: errnos after which the device is gone and must be reopened
DEAD_DEVICE = frozenset({errno.EIO, errno.ENXIO, errno.ENODEV, errno.EBADF})


class CoreFault(enum.StrEnum):
    """Why the core itself holds the failsafe (`FlightCore.faults`); the value is
    the text the failsafe's reason shows (logs, the page, the JSON outputs)."""

    LINK = "link error"                 # S.Bus writes fail, or the device is gone
    SHUTDOWN = "shutdown"               # stop(): failsafe frames, then the port closes
    PUMP_STOPPED = "frame pump stopped"  # the pump thread died: nothing reaches the wire


PUBLISH_MIXES_PER_SLOT = 2
"""Mixes for publishes a slot may have at once. One would hold the second
publish of a slot (a page's keepalive just before a move, two sources) back
a whole period, since a timer cannot be trusted to run just before the slot:
asyncio rounds its wake-ups up to the next millisecond."""
AFTER_SLOT_S = 2e-4
"""The mix past the budget runs this long after the slot the pump is writing."""
FLUSH_QUIET_S = 0.010
"""Silence after flushing the S.Bus output: a UART's transmit FIFO (up to 32
bytes, 3.84 ms at 12 bits a byte) still shifts out, then the stock decoder
needs up to 4.8 ms of silence (three 1.6 ms ticks) before it drops a partial
frame."""


def encode(out: MixOutput) -> bytes:
    """Encode one mixer output as an S.Bus frame (range-checked twice: calibration
    clamps, and the codec refuses anything outside 0..2047)."""
    return sbus.encode(out.channels, ch17=out.ch17, ch18=out.ch18, frame_lost=False,
                       failsafe=out.failsafe)


@dataclass(frozen=True)
class CoreStats:
    """What the core has sent: the pump's counters plus the link's health."""

    frames_sent: int
    watchdog_frames: int          # failsafe frames the pump sent on its own (core stalled)
    missed_slots: int             # slots the pump woke too late for (dropped)
    silent_slots: int             # slots the watchdog kept silent (core stalled)
    write_errors: int
    period_s: float
    lateness_mean_s: float
    lateness_p50_s: float
    lateness_p99_s: float
    lateness_max_s: float
    max_gap_s: float
    pump: str
    realtime: str
    max_mix_gap_s: float          # longest the core went without refreshing the pump
    link_errors: int
    reopens: int
    expected_accepted_per_s: float
    skips: tuple[tuple[int, int], ...] = ()
    """Where the pump left slots empty: (index of the next frame, slots); see PumpStats."""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "skips"}


class FlightCore:
    """`FlightCore(transport, config, clock)`: `transport` is an
    `SbusTransport` (`pipilot.link.transport`: `DevicePath`, `OpenPort`, or in
    lock-step `FrameSink`); a device path stands for `DevicePath(path)`.
    `await start()`, `await stop()`; `mixer`, `failsafe` (state, reason),
    `faults` (the `CoreFault`s it holds the failsafe for), `stats`, `rate`
    (the firmware's expected accepted-frame rate), `last_output` (the latest
    MixOutput). `probe` reads
    device identities (a lost port is reopened only if the same device is
    back); tests pass one over a simulated sysfs."""

    def __init__(self, transport: SbusTransport | str, config: CoreConfig | None = None,
                 clock: Clock | None = None, *, probe: DeviceProbe | None = None) -> None:
        self.config = config or CoreConfig()
        self.clock: Clock = clock or MonotonicClock()
        c = self.config
        self.mixer = Mixer(c.calibration, c.limits, c.failsafe, self.clock, gesture=c.gesture,
                           standard_sources=False)
        for name, src in c.sources.items():
            self.mixer.add_source(name, src.priority, src.mode, src.timeout_s)
        self.rate: RateEstimate = check_period(c.period_s, c.link.firmware)
        self.transport: SbusTransport = \
            DevicePath(transport) if isinstance(transport, str) else transport
        timing = getattr(self.transport, "timing", None)
        if not isinstance(timing, Timing):
            raise TypeError(f"{transport!r} is not an S.Bus transport (a device path, "
                            "DevicePath, OpenPort or FrameSink)")
        self.lockstep = timing is Timing.LOCKSTEP
        if self.lockstep and not isinstance(self.clock, VirtualClock):
            raise TypeError("a frame sink (lock-step) needs a VirtualClock")
        self.port: SerialPort | None = None
        self._owns_port = False
        self.pump: Pump | None = None
        self.last_output: MixOutput | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_mix = -1e9
        self._mixed_for = 0.0       # the pump slot (deadline) the latest publish's mix was for
        self._mixes_for_slot = 0    # mixes for publishes that slot has had
        self._max_mix_gap = 0.0
        self._running = False
        self._tick_failures = FailureLog(
            log, "flight core tick failed; the pump watchdog covers the gap", clock=self.clock)
        self._started = False
        self._counters = (0, 0)
        self._link_errors = 0
        self._last_link_error = -1e9
        self._sent_at_link_error = 0    # frames the pump had sent at the latest error
        self._last_error_log = -1e9
        self._reopens = 0
        self._next_reopen = 0.0
        self._dead: SerialPort | None = None     # a vanished device, let go of
        self._dead_detail = ""
        self._probe = probe or DeviceProbe()
        self._refusals = RefusalLog()
        self._next_deadline = 0.0
        self._lockstep_sent = 0

    # -- public ------------------------------------------------------------------
    @property
    def failsafe(self) -> Failsafe:
        return self.mixer.failsafe

    @property
    def running(self) -> bool:
        return self._running

    @property
    def faults(self) -> frozenset[CoreFault]:
        """What the core holds the failsafe for right now (empty: nothing of its own)."""
        held = self.failsafe.forced_reasons
        return frozenset(f for f in CoreFault if f in held)

    def tick(self, now: float | None = None) -> bytes:
        """Run the mixer once and encode its output (used by both modes)."""
        out = self.mixer.tick(self.clock.now() if now is None else now)
        self.last_output = out
        return encode(out)

    def failsafe_frame(self) -> bytes:
        """The frame the watchdog sends: failsafe flag, throttle off, sticks centred."""
        chans = self.mixer.calibration.to_channels(NEUTRAL)
        return sbus.encode(chans, ch17=False, ch18=False, frame_lost=False, failsafe=True)

    async def start(self) -> None:
        """Open the port, start the pump and the mixer task. Logs the firmware's
        expected accepted-frame rate (a warning when frames will be lost)."""
        if self._running:
            raise RuntimeError("core already started")
        msg = self.rate.describe()
        if self.rate.acceptance < 1.0:
            log.warning("%s; see docs/failsafe.md (stock decoder)", msg)
        else:
            log.info("%s", msg)
        if self.lockstep:
            self._next_deadline = self.clock.now() + self.config.period_s
            self._running = self._started = True
            return
        self._open()
        assert self.port is not None
        c = self.config
        try:
            self.pump = make_pump(c.realtime.pump)
            self.pump.start(self.port.fd, self.tick(), self.failsafe_frame(), c.period_s,
                            c.watchdog.stale_ms * 1e-3, c.watchdog.silent_ms * 1e-3,
                            rt_priority=c.realtime.priority if c.realtime.sched_fifo else 0)
        except BaseException:
            if self._owns_port:
                self.port.close()
                self.port = None
            raise
        self._running = self._started = True
        self.mixer.on_publish = self._on_publish
        self._mix()
        log.info("flight core started on %s: %s pump", self.port.path,
                 self.pump.implementation)

    async def stop(self) -> None:
        """Send failsafe frames (config.shutdown.failsafe_frames of them), then close."""
        if not self._running:
            return
        self.failsafe.force(CoreFault.SHUTDOWN)
        if self.lockstep:
            self._running = False
            return
        assert self.pump is not None
        pump = self.pump
        try:
            frame = self.tick()
        except Exception:  # a broken mixer must not keep the port open and streaming
            log.exception("flight core tick failed on stop; sending the failsafe frame")
            frame = self.failsafe_frame()
        pump.set_frame(frame)
        start = pump.stats().frames_sent
        want = self.config.shutdown.failsafe_frames
        deadline = self.clock.now() + want * self.config.period_s * 3 + 0.5
        try:
            while pump.stats().frames_sent - start < want and self.clock.now() < deadline:
                pump.set_frame(frame)
                await asyncio.sleep(self.config.period_s)
        finally:  # cancelled too (a second Ctrl-C, a timeout): stop the thread, close
            self._tick_failures.flush()
            self.mixer.on_publish = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            pump.stop()
            self._running = False
            if self._owns_port and self.port is not None:
                self.port.close()
        log.info("flight core stopped: %s", self.stats.as_dict())

    @property
    def stats(self) -> CoreStats:
        s = self.pump.stats() if self.pump is not None else PumpStats()
        return CoreStats(
            frames_sent=s.frames_sent + self._lockstep_sent,
            watchdog_frames=s.failsafe_frames, missed_slots=s.missed_slots,
            silent_slots=s.silent_slots,
            write_errors=s.write_errors + s.eagain, period_s=self.config.period_s,
            lateness_mean_s=s.lateness_mean_s, lateness_p50_s=s.lateness_percentile(0.5),
            lateness_p99_s=s.lateness_percentile(0.99), lateness_max_s=s.lateness_max_s,
            max_gap_s=s.max_gap_s, pump=s.implementation or "lockstep", realtime=s.realtime,
            max_mix_gap_s=self._max_mix_gap,
            link_errors=self._link_errors, reopens=self._reopens,
            expected_accepted_per_s=self.rate.accepted_per_s,
            skips=tuple(s.skips))

    # -- lock-step -----------------------------------------------------------------
    def advance(self, t: float) -> list[tuple[float, bytes]]:
        """Lock-step: emit the frames due at deadlines <= t (each one freshly
        mixed at its deadline) and give them to the sink."""
        if not self.lockstep or not self._started:
            raise RuntimeError("advance() is for a started lock-step core")
        out: list[tuple[float, bytes]] = []
        period = self.config.period_s
        while self._next_deadline <= t + 1e-12:
            d = self._next_deadline
            frame = self.tick(d)
            out.append((d, frame))
            self._lockstep_sent += 1
            self.transport.deliver(d, frame)
            self._next_deadline += period
        return out

    # -- real time -----------------------------------------------------------------
    def _open(self) -> None:
        if self.port is not None:
            return
        self.port = self.transport.open(self._probe)
        self._owns_port = self.transport.owns_port

    def _mix(self, for_publish: bool = False) -> None:
        """Mix, hand the frame to the pump, check the link; then schedule the next mix.
        A mix `for_publish` takes the pump's next slot (see `_on_publish`); the
        refresh without publishes does not, so it never delays one."""
        assert self.pump is not None
        now = self.clock.now()
        if self._last_mix > 0:
            self._max_mix_gap = max(self._max_mix_gap, now - self._last_mix)
        self._last_mix = now
        try:
            if not self.pump.running and CoreFault.PUMP_STOPPED not in self.failsafe.forced_reasons:
                log.error("the S.Bus frame pump thread has stopped: nothing reaches the "
                          "wire; the flight controller's receiver timeout takes over")
                self.failsafe.force(CoreFault.PUMP_STOPPED)
            frame = self.tick(now)
            if for_publish:
                slot = self.pump.next_deadline_s()
                self._mixes_for_slot = self._mixes_for_slot + 1 if slot == self._mixed_for else 1
                self._mixed_for = slot
            self.pump.set_frame(frame)
            self._check_link(now)
        except Exception as exc:  # one bad tick must not end the mixing
            self._tick_failures.failed(exc)
        finally:
            if self._running:
                self._schedule(self.config.link.mix_interval_ms * 1e-3)

    def _schedule(self, delay: float) -> None:
        self._schedule_at(asyncio.get_running_loop().time() + delay)

    def _schedule_at(self, when: float, for_publish: bool = False) -> None:
        """The next mix at `when` (the event loop's clock: CLOCK_MONOTONIC, the pump's)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(when, self._mix, for_publish)

    def _on_publish(self) -> None:
        """A source published: mix now (in the publisher's turn of the event loop,
        no extra wake-up) unless the pump's next slot has had its budget of mixes
        for publishes; then make sure one runs just after that slot."""
        if self._timer is None or not self._running:
            return
        assert self.pump is not None
        slot = self.pump.next_deadline_s()
        if slot != self._mixed_for or self._mixes_for_slot < PUBLISH_MIXES_PER_SLOT:
            self._mix(for_publish=True)
            return
        when = max(slot, asyncio.get_running_loop().time()) + AFTER_SLOT_S
        if self._timer.when() > when + 1e-4:
            self._schedule_at(when, for_publish=True)

    def _check_link(self, now: float) -> None:
        assert self.pump is not None and self.port is not None
        errors, sent, last_errno = self._pump_counters()
        prev_errors, _ = self._counters
        self._counters = (errors, sent)
        if errors > prev_errors:
            self._link_errors += errors - prev_errors
            self._last_link_error = now
            self._sent_at_link_error = sent
            detail = os.strerror(last_errno) if last_errno not in (0, errno.EAGAIN) \
                else "output buffer full"
            if self._dead is not None:      # the pump writes to no fd: say why
                detail, last_errno = self._dead_detail, errno.EBADF
            reason = f"{CoreFault.LINK}: {detail}"
            if CoreFault.LINK not in self.failsafe.forced_reasons:
                log.error("S.Bus write failing on %s (%s): failsafe until it recovers",
                          self.port.path, reason)
            elif now - self._last_error_log > 5.0:
                log.error("S.Bus link still failing: %s (%d errors)", reason, self._link_errors)
                self._last_error_log = now
            self.failsafe.force(CoreFault.LINK, detail)
            if self.port.fd >= 0 and self._dead is None:
                with contextlib.suppress(OSError, termios.error):
                    termios.tcflush(self.port.fd, termios.TCOFLUSH)  # drop stale queued frames
                # and the rest of a frame the flush cut, after a silence that makes
                # the decoder drop its first part (no spliced frame)
                self.pump.set_fd(self.port.fd, quiet_s=FLUSH_QUIET_S)
            if last_errno in DEAD_DEVICE and self._owns_port:
                self._let_go(detail)
                if now >= self._next_reopen:
                    self._reopen(now)
        elif CoreFault.LINK in self.failsafe.forced_reasons and self._dead is None \
                and sent > self._sent_at_link_error \
                and now - self._last_link_error >= self.config.shutdown.link_recovery_s:
            # recovered by frames written since, not by a pump that wrote nothing
            # (a thread not scheduled, a silent watchdog: no attempt, no error)
            log.warning("S.Bus link recovered on %s", self.port.path)
            self.failsafe.release(CoreFault.LINK)

    def _pump_counters(self) -> tuple[int, int, int]:
        assert self.pump is not None
        return self.pump.counters()

    def _let_go(self, detail: str) -> None:
        """Close a dead device's fd: while it is open the device cannot come back
        under its name (a USB adapter returns as the next ttyUSB), and its lock
        would refuse the reopen. The pump writes to no fd (EBADF) meanwhile."""
        assert self.port is not None and self.pump is not None
        if self._dead is not None:
            return
        self._dead, self._dead_detail = self.port, detail
        self.pump.set_fd(-1)
        # the pump may be mid-write on the old fd: close it a little later
        asyncio.get_running_loop().call_later(3 * self.config.period_s, self._dead.close)

    def _reopen(self, now: float) -> None:
        assert self.port is not None and self.pump is not None
        if self._dead is not None and not self._dead.closed:
            return                                  # not let go yet
        self._next_reopen = now + self.config.shutdown.reopen_interval_s
        try:
            new = self.transport.reopen(self.port, self._probe)
        except DeviceChanged as exc:
            self._refuse(now, exc)
            return
        except LinkError as exc:
            log.warning("reopen failed: %s (retrying every %g s)", exc,
                        self.config.shutdown.reopen_interval_s)
            return
        self.pump.set_fd(new.fd)
        # errors the pump counted on the dead fd since the last check are not the
        # new port's (the pump itself drops those of a write in flight across set_fd)
        errors, sent, _ = self._pump_counters()
        self._counters = (errors, sent)
        self.port = new
        self._dead = None
        self._reopens += 1
        self._refusals = RefusalLog()
        log.warning("reopened %s (%s)", new.path, new.identity.describe() if new.identity else "")

    def _refuse(self, now: float, exc: DeviceChanged) -> None:
        """The name now refers to another device: it is left alone (nothing set
        on it, nothing written), and the failsafe says why until ours is back."""
        self._dead_detail = str(exc)
        self.failsafe.force(CoreFault.LINK, self._dead_detail)
        if self._refusals.should_log(exc.what, now):
            log.error("S.Bus reopen refused: %s; failsafe until that device is back "
                      "(checked every %g s; %d refusals)", exc,
                      self.config.shutdown.reopen_interval_s, self._refusals.count)
