"""The flight core against the virtual link: frames, failsafe paths, link errors.

Reaction times are checked against generous bounds (a loaded 2-core machine)
and by frame order and counts, which do not depend on scheduling.
"""

import asyncio
import collections
import contextlib
import errno
import os
import threading
import time

import pytest

from pipilot.core.clock import VirtualClock
from pipilot.core.config import (
    CoreConfig,
    LinkConfig,
    RealtimeConfig,
    ShutdownConfig,
    SourceConfig,
    WatchdogConfig,
)
from pipilot.core.failsafe import FailsafePolicy, FailsafeState
from pipilot.core.flightcore import AFTER_SLOT_S, CoreFault, FlightCore
from pipilot.core.mixer import Limits
from pipilot.core.setpoints import Setpoint
from pipilot.core.vehicle import Vehicle
from pipilot.link.pump import available
from pipilot.link.transport import FrameSink
from pipilot.link.virtual import VirtualLink
from pipilot.sbus import FrameDecoder, decode
from tests.core.stall import assert_stall_tail
from tests.link.fakesys import FakeSysfs

P = 0.007


class Capture:
    """Decodes what arrives at the far end, with arrival times."""

    def __init__(self):
        self.decoder = FrameDecoder()
        self.frames = []
        self.lock = threading.Lock()

    def __call__(self, data, times):
        t = time.monotonic()
        with self.lock:
            for f in self.decoder.feed(data):
                self.frames.append((t, f))

    def snapshot(self):
        with self.lock:
            return list(self.frames)


def config(pump="auto", **kw):
    sources = {"pilot": SourceConfig(30, "override", 0.2),
               "drift": SourceConfig(0, "additive", 0.5)}
    base = dict(realtime=RealtimeConfig(pump=pump, mlockall=False, gc_freeze=False),
                sources=sources)
    base.update(kw)
    return CoreConfig(**base)


@pytest.fixture(params=available())
def pump(request):
    return request.param


@pytest.fixture
def capture():
    cap = Capture()
    with VirtualLink(callback=cap) as link:
        yield link, cap


async def settled(cap, quiet=0.2, limit=10.0):
    """The capture once nothing new has arrived for `quiet` seconds."""
    end = time.monotonic() + limit
    n, since = -1, time.monotonic()
    while time.monotonic() < end:
        frames = cap.snapshot()
        if len(frames) != n:
            n, since = len(frames), time.monotonic()
        elif time.monotonic() - since >= quiet:
            return frames
        await asyncio.sleep(0.02)
    return cap.snapshot()


async def arrived(cap, n, limit=10.0):
    """The capture once `n` frames have arrived (or `limit` seconds have passed)."""
    end = time.monotonic() + limit
    while len(cap.snapshot()) < n and time.monotonic() < end:
        await asyncio.sleep(0.02)
    return cap.snapshot()


def kill(core):
    """The core's mixing stops for good (as if its event loop had died)."""
    core.mixer.on_publish = None
    core._timer.cancel()


FLYING = Setpoint(throttle=0.5, roll=0.25)


async def fly_for(core, seconds, sp=FLYING):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        core.mixer.publish("pilot", sp)
        await asyncio.sleep(0.01)


async def test_streams_mixed_frames_and_stops_with_failsafe(capture, pump):
    link, cap = capture
    core = FlightCore(link.path, config(pump))
    await core.start()
    assert core.running and core.port.settings.parity == "E"
    await fly_for(core, 0.3)
    await core.stop()
    # the pump has written them; the reader may still be behind on a loaded machine
    await arrived(cap, core.stats.frames_sent)
    frames = [f for _, f in await settled(cap)]   # and then nothing more
    flying = [f for f in frames if not f.failsafe]
    assert flying[-1].channels[0] == core.mixer.calibration.calibration_for("throttle") \
        .unipolar(0.5)
    # the last frames are failsafe frames: at least the configured number, then nothing
    last_flying = max(i for i, f in enumerate(frames) if not f.failsafe)
    n_fs = len(frames) - 1 - last_flying
    assert n_fs >= core.config.shutdown.failsafe_frames
    # any before them are the pump watchdog's: a loaded machine stalled the loop
    # past the watchdog's stale time in flight (once in four loaded runs)
    earlier = [f for f in frames[:last_flying] if f.failsafe]
    assert len(earlier) <= core.stats.watchdog_frames
    assert all(f == decode(core.failsafe_frame()) for f in earlier)
    assert core.port.closed and not core.running
    assert core.faults == {CoreFault.SHUTDOWN} and core.failsafe.reason == "shutdown"
    st = core.stats
    assert st.frames_sent == len(frames) and st.pump == pump
    assert st.expected_accepted_per_s == pytest.approx(82, abs=2)


async def test_source_loss_failsafe_reacts_within_the_timeout(capture):
    """The exact bound (timeout + one mix) is checked in virtual time in
    test_mixer; here the real core must get there, and the wire must show it."""
    link, cap = capture
    core = FlightCore(link.path, config(failsafe=FailsafePolicy("failsafe")))
    await core.start()
    await fly_for(core, 0.1)
    t_last = core.mixer.sources["pilot"].stamp
    deadline = time.monotonic() + 10.0
    while core.failsafe.state is not FailsafeState.FAILSAFE and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert core.failsafe.state is FailsafeState.FAILSAFE
    assert 0.2 <= core.failsafe.since - t_last < 0.2 + 1.0
    await core.stop()
    assert any(f.failsafe for _, f in cap.snapshot())


async def test_source_loss_descends_with_level_attitude():
    """Lock-step on a virtual clock: the descent's timing is the subject, and a
    loaded machine must not be able to skip the descent between two looks."""
    clock = VirtualClock(10.0)
    core = FlightCore(FrameSink(lambda t, f: None),
                      config(failsafe=FailsafePolicy("descend", 0.3, 0.2)), clock=clock)
    await core.start()
    seen = []  # (deadline, state, setpoint sent, throttle channel, failsafe flag)
    t = 10.0
    while t < 11.5:
        t += P
        clock.set(t)
        if t < 10.6:
            core.mixer.publish("pilot", Setpoint(throttle=0.6, roll=0.5))
        for d, _frame in core.advance(t):
            out = core.last_output
            seen.append((d, core.failsafe.state, out.setpoint, out.channels[0], out.failsafe))
    t_last = core.mixer.sources["pilot"].stamp
    descent = [x for x in seen if x[1] is FailsafeState.DESCENT]
    cut = [x for x in seen if x[1] is FailsafeState.THROTTLE_CUT]
    assert descent and cut and descent[-1][0] < cut[0][0]
    # the pilot's 0.2 s timeout starts the descent (to throttle 0.3), which lasts
    # descent_time_s (0.2 s), each within one mix
    assert t_last + 0.2 <= descent[0][0] <= t_last + 0.2 + 0.02 + P
    assert descent[0][0] + 0.2 <= cut[0][0] <= descent[0][0] + 0.2 + 0.02 + P
    # level attitude and throttle down to 0.3, slewed (axes 8/s, throttle 2/s), never back up
    rolls = [sp.roll for _d, _s, sp, _c, _f in descent]
    throttles = [sp.throttle for _d, _s, sp, _c, _f in descent]
    assert rolls == sorted(rolls, reverse=True) and rolls[0] < 0.5
    assert throttles == sorted(throttles, reverse=True) and throttles[0] < 0.6
    level_at = next(d for d, _s, sp, _c, _f in descent if sp.roll == 0.0)
    low_at = next(d for d, _s, sp, _c, _f in descent if sp.throttle <= 0.3 + 1e-9)
    assert level_at <= descent[0][0] + 0.5 / 8 + P
    assert low_at <= descent[0][0] + 0.3 / 2 + P
    assert all(sp.pitch == 0.0 for _d, _s, sp, _c, _f in descent)
    assert min(throttles) == pytest.approx(0.3)
    assert all(c == 172 and not fs for _d, _s, _sp, c, fs in cut)
    assert cut[-1][0] > 11.4      # and it stays cut
    await core.stop()


@pytest.mark.parametrize("how", ["stall", "dead"])
async def test_core_stall_or_death_ends_in_failsafe_then_silence(capture, pump, how):
    """Counted on the pump's slot grid, not timed: after the core's last frame
    at most stale/P slots carry it, at most (silent - stale)/P slots carry
    failsafe frames, then nothing. A slow machine can only lower the counts."""
    link, cap = capture
    core = FlightCore(link.path, config(pump))
    await core.start()
    await fly_for(core, 0.2)
    marker = Setpoint(throttle=0.5, roll=0.25, accessories=(0.5, 0, 0, 0))
    core._mixed_for = -1.0                       # as if the next slot had no mix yet:
    core.mixer.publish("pilot", marker)          # mixed at once, the core's last frame
    if how == "stall":
        time.sleep(0.5)                          # the event loop stalls; the GIL is free
        kill(core)                               # (and stays dead, for the count)
    else:
        kill(core)                               # the core's mixing dies
        await asyncio.sleep(0.5)
    stats = core.pump.stats()
    frames = [f for _, f in await settled(cap)]
    tail = assert_stall_tail(core, frames, stats, P)
    assert tail.count("F") <= stats.failsafe_frames   # (earlier stalls under load add more)
    await core.stop()


async def test_sigterm_path_failsafe_frames_even_if_the_task_died(capture):
    link, cap = capture
    core = FlightCore(link.path, config())
    await core.start()
    await fly_for(core, 0.1)
    kill(core)
    await asyncio.sleep(0.02)
    await core.stop()
    await asyncio.sleep(0.05)
    frames = [f for _, f in cap.snapshot()]
    assert sum(f.failsafe for f in frames) >= core.config.shutdown.failsafe_frames
    assert frames[-1].failsafe


async def test_full_output_is_a_link_error_with_failsafe_and_recovers(pump):
    cap = Capture()
    with VirtualLink(callback=cap) as link:
        cfg = config(pump, shutdown=ShutdownConfig(link_recovery_s=0.2),
                     link=LinkConfig(period_ms=4.0, firmware="patched"),
                     watchdog=WatchdogConfig(stale_ms=70, silent_ms=100))
        core = FlightCore(link.path, cfg)
        await core.start()
        await fly_for(core, 0.1)
        link.reader.pause()
        deadline = time.monotonic() + 20
        while core.stats.write_errors == 0 and time.monotonic() < deadline:
            await fly_for(core, 0.05)
        assert core.stats.write_errors > 0
        await fly_for(core, 0.05)
        assert core.failsafe.state is FailsafeState.FAILSAFE
        assert "link error" in core.failsafe.reason and core.faults == {CoreFault.LINK}
        link.reader.pause(False)
        deadline = time.monotonic() + 20   # recovery needs link_recovery_s of clean writes
        while core.failsafe.state is not FailsafeState.NORMAL and time.monotonic() < deadline:
            await fly_for(core, 0.05)
        assert core.failsafe.state is FailsafeState.NORMAL and core.faults == frozenset()
        assert core.stats.link_errors > 0
        # each flush of the stale output was followed by a silence (no spliced frame)
        assert core.stats.silent_slots >= 2
        assert any(n >= 2 for _, n in core.stats.skips)
        await core.stop()


async def test_unplugged_device_is_reported_and_retried(caplog):
    cap = Capture()
    link = VirtualLink(callback=cap)
    cfg = config(shutdown=ShutdownConfig(reopen_interval_s=0.1))
    core = FlightCore(link.path, cfg)
    await core.start()
    try:
        await fly_for(core, 0.1)
        link.close()                      # the device goes away: writes fail with EIO
        await fly_for(core, 0.5)
        assert core.failsafe.state is FailsafeState.FAILSAFE
        # the retries fail, or are refused once another program (a test beside this
        # one) has opened a pty under the freed number: both keep the failsafe
        reason = core.failsafe.reason
        assert "Input/output error" in reason or "device changed" in reason, reason
        assert "reopen failed" in caplog.text or "reopen refused" in caplog.text
    finally:
        await core.stop()


async def test_an_exception_in_a_tick_does_not_end_the_loop(capture, monkeypatch):
    link, _cap = capture
    core = FlightCore(link.path, config())
    await core.start()
    real = core.mixer.tick
    calls = {"n": 0}

    def flaky(now=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return real(now)

    monkeypatch.setattr(core.mixer, "tick", flaky)
    await fly_for(core, 0.2)
    assert calls["n"] > 5 and core._timer is not None
    await core.stop()


async def test_lockstep_emits_frames_at_exact_deadlines():
    clock = VirtualClock(10.0)
    sink = []
    core = FlightCore(FrameSink(lambda t, f: sink.append((t, f))), config(), clock=clock)
    await core.start()
    core.mixer.publish("pilot", Setpoint(throttle=0.4))
    out = core.advance(10.1)
    assert len(out) == 14 and sink == out
    assert [t for t, _ in out] == pytest.approx([10.0 + P * (k + 1) for k in range(14)])
    clock.set(10.5)
    out = core.advance(10.5)
    assert out[-1][0] <= 10.5 and len(sink) == int(0.5 / P + 1e-9)
    await core.stop()
    _t, f = core.advance(10.6)[-1]
    assert f[23] & 0x08           # failsafe flag after stop


def test_lockstep_needs_a_virtual_clock():
    with pytest.raises(TypeError):
        FlightCore(FrameSink(lambda t, f: None), config())


async def test_missing_port_raises_link_error():
    from pipilot.errors import LinkError

    core = FlightCore("/dev/ttyNOPE", config())
    with pytest.raises(LinkError, match="no such port"):
        await core.start()
    assert not core.running


async def test_vehicle_facade(capture):
    link, _cap = capture
    v = Vehicle.create(link.path, config())
    assert v.mixer is v.core.mixer and v.clock is v.core.clock
    assert v.telemetry is None and v.sim is None
    async with v:
        v.mixer.publish("pilot", Setpoint(throttle=0.2))
        await asyncio.sleep(0.05)
        assert v.core.failsafe.state is FailsafeState.NORMAL
    assert not v.core.running
    marker = object()
    v.attach_telemetry(marker)
    assert v.telemetry is marker


def test_gesture_reaches_the_wire_in_lockstep():
    clock = VirtualClock()
    core = FlightCore(FrameSink(lambda t, f: None), config(), clock=clock)
    asyncio.run(core.start())
    from pipilot.core.setpoints import ArmRequest
    from pipilot.sbus import decode

    core.mixer.publish("pilot", Setpoint(throttle=0.0, arm=ArmRequest.ARM))
    f = decode(core.advance(P)[-1][1])
    assert f.channels[0] == 172 and f.channels[1] == 172
    core.mixer.publish("pilot", Setpoint(throttle=0.5, arm=ArmRequest.DISARM))
    f = decode(core.advance(2 * P)[-1][1])
    assert f.channels[0] == 172 and f.channels[1] == 1811


def slow_core(link):
    """A core that mixes every 45 ms without publishers, no throttle slew."""
    return FlightCore(link.path, config(link=LinkConfig(mix_interval_ms=45.0),
                                        watchdog=WatchdogConfig(stale_ms=95, silent_ms=100),
                                        limits=Limits(throttle_slew=0)))


async def test_a_publish_is_mixed_at_once_for_the_next_free_slot(capture):
    link, _cap = capture
    core = slow_core(link)
    await core.start()
    thr = core.mixer.calibration.calibration_for("throttle").unipolar
    await asyncio.sleep(0.05)
    # the pump has written the slot the last mix was for: its next slot is free
    while core.pump.next_deadline_s() == core._mixed_for:
        await asyncio.sleep(0.001)
    slot = core.pump.next_deadline_s()
    core.mixer.publish("pilot", Setpoint(throttle=0.3))
    assert core.last_output.channels[0] == thr(0.3)        # mixed inside publish()
    assert core._mixed_for >= slot              # for that slot (a later one if it just went)
    await core.stop()


async def test_past_two_publishes_a_slot_one_mix_follows_just_after_it(capture):
    link, _cap = capture
    core = slow_core(link)
    await core.start()
    thr = core.mixer.calibration.calibration_for("throttle").unipolar
    await asyncio.sleep(0.05)
    core._mixed_for = -1.0
    core.mixer.publish("pilot", Setpoint(throttle=0.3))    # the next slot's first mix
    slot = core._mixed_for
    core.mixer.publish("pilot", Setpoint(throttle=0.5))    # and its second
    core.mixer.publish("pilot", Setpoint(throttle=0.6))    # over the budget...
    core.mixer.publish("pilot", Setpoint(throttle=0.7))
    if core.pump.next_deadline_s() == slot:                # (a loaded machine may be past it)
        assert core.last_output.channels[0] == thr(0.5)    # ...not mixed at once,
        assert core._timer.when() == pytest.approx(slot + AFTER_SLOT_S, abs=1e-3)
    await asyncio.sleep(2 * P + 0.005)
    assert core.last_output.channels[0] == thr(0.7)        # but right after, the latest
    await core.stop()


async def test_a_source_publishing_flat_out_mixes_at_most_twice_a_slot(capture):
    link, _cap = capture
    core = slow_core(link)
    ticks = []
    real = core.mixer.tick
    core.mixer.tick = lambda now=None: ticks.append(core.pump.next_deadline_s()) or real(now)
    await core.start()
    await asyncio.sleep(0.05)
    sent0, n0 = core.pump.stats().frames_sent, len(ticks)
    end = time.monotonic() + 0.5
    publishes = 0
    while time.monotonic() < end:
        core.mixer.publish("pilot", Setpoint(throttle=0.3 + 0.1 * (publishes % 2)))
        publishes += 1
        await asyncio.sleep(0)
    slots = core.pump.stats().frames_sent - sent0
    per_slot = sorted(collections.Counter(ticks[n0:]).values())
    mixes = len(ticks) - n0
    await core.stop()
    assert publishes > 4 * mixes                           # most publishes shared a mix
    # two mixes a slot; a pump thread woken late leaves its slot the next one for a
    # while, and the mix after the slot lands on it again: more, but bounded
    assert per_slot[len(per_slot) // 2] <= 2
    assert mixes <= 3 * (slots + 2)


async def test_mixing_rate_without_publishers_is_the_interval(capture):
    link, _cap = capture
    core = FlightCore(link.path, config())
    calls = []
    real = core.mixer.tick
    core.mixer.tick = lambda now=None: calls.append(now) or real(now)
    await core.start()
    await asyncio.sleep(1.0)
    await core.stop()
    n = len([c for c in calls if c is not None])
    assert 5 <= n <= 1.0 / 0.02 + 15       # ~50 mixes/s, not one per frame (143)


async def test_a_failed_start_closes_the_port(capture, monkeypatch):
    link, _cap = capture
    core = FlightCore(link.path, config())
    import pipilot.core.flightcore as fc

    def broken(kind):
        raise RuntimeError("no pump today")

    monkeypatch.setattr(fc, "make_pump", broken)
    with pytest.raises(RuntimeError, match="no pump"):
        await core.start()
    assert core.port is None and not core.running
    from pipilot.link.serialport import open_sbus_port

    open_sbus_port(link.path).close()      # not left busy


async def test_a_cancelled_stop_still_stops_the_pump_and_closes_the_port(capture):
    link, cap = capture
    core = FlightCore(link.path, config())
    await core.start()
    await fly_for(core, 0.1)
    sent = core.pump.stats().frames_sent
    stopping = asyncio.create_task(core.stop())
    while core.pump.stats().frames_sent < sent + 2:  # a flagged frame or two went out
        await asyncio.sleep(0.005)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert not core.pump.running and core.port.closed and not core.running
    frames = await settled(cap)
    await asyncio.sleep(0.15)
    assert len(cap.snapshot()) == len(frames)       # silence
    assert frames[-1][1].failsafe                   # and the last frame was flagged
    await core.stop()                               # a second stop is a no-op


async def _core_on_a_symlinked_link(tmp_path, sysfs=None):
    """A flying core on a device reached through a name that can be repointed,
    as a USB adapter's is when it comes back; quick reopen and recovery. The
    pty shows as USB adapter A50285BI in a simulated sysfs (`sysfs`)."""
    sysfs = sysfs or FakeSysfs(tmp_path)
    link = VirtualLink(callback=Capture())
    sysfs.usb(link.path, serial="A50285BI")
    path = tmp_path / "sbus"
    path.symlink_to(link.path)
    core = FlightCore(str(path), config(shutdown=ShutdownConfig(reopen_interval_s=0.1,
                                                                link_recovery_s=0.1)),
                      probe=sysfs.probe)
    await core.start()
    await fly_for(core, 0.1)
    return core, link, path, sysfs


def pull(link, path, sysfs) -> None:
    """The adapter behind `path` is pulled: its node goes, its device number no
    longer names it, writes to the open fd fail with EIO. Without the first two
    the freed pty number, which any process may open next (another test run in
    parallel did), would look like our adapter and the core would fly into it."""
    sysfs.unplug(link.path)
    path.unlink()
    path.symlink_to(path.parent / "pulled")
    link.close()


async def test_a_vanished_device_is_let_go_and_reopened_when_it_returns(tmp_path):
    # a USB adapter unplugged while its fd stays open returns as the next ttyUSB:
    # the core must close the dead fd instead of holding it until a reopen works
    cap2 = Capture()
    core, link, path, sysfs = await _core_on_a_symlinked_link(tmp_path)
    fd = core.port.fd
    ident = os.fstat(fd)
    pull(link, path, sysfs)
    await fly_for(core, 0.3)
    assert core.failsafe.state is FailsafeState.FAILSAFE
    with contextlib.suppress(OSError):              # closed, or the number reused
        st = os.fstat(fd)
        assert (st.st_dev, st.st_ino) != (ident.st_dev, ident.st_ino)
    with VirtualLink(callback=cap2) as link2:       # the device returns
        sysfs.usb(link2.path, serial="A50285BI")
        path.unlink()
        path.symlink_to(link2.path)
        deadline = time.monotonic() + 10
        while core.failsafe.state is not FailsafeState.NORMAL and time.monotonic() < deadline:
            await fly_for(core, 0.1)
        assert core.failsafe.state is FailsafeState.NORMAL and core.stats.reopens == 1
        await fly_for(core, 0.2)
        assert any(not f.failsafe for _t, f in cap2.snapshot())
        await core.stop()


async def test_a_pump_that_writes_nothing_does_not_clear_a_link_error(tmp_path, monkeypatch):
    """The link-error failsafe cleared after link_recovery_s without an error, and
    no attempt is no error: a pump thread a loaded machine did not run for 0.1 s
    (seen in test_another_adapter_under_the_name_is_refused) turned a dead
    device's failsafe back to normal. Only frames written since clear it."""
    core, link, path, sysfs = await _core_on_a_symlinked_link(tmp_path)
    pull(link, path, sysfs)
    await fly_for(core, 0.3)
    assert core.failsafe.state is FailsafeState.FAILSAFE
    frozen = core.pump.counters()                   # the thread is not scheduled
    monkeypatch.setattr(core, "_pump_counters", lambda: frozen)
    await fly_for(core, 0.5)                        # five link_recovery_s
    assert core.failsafe.state is FailsafeState.FAILSAFE
    monkeypatch.undo()
    await core.stop()


async def test_a_full_buffer_error_clears_on_frames_written_not_on_silence(tmp_path,
                                                                           monkeypatch):
    """The same rule where the device is not dead (EAGAIN: output buffer full, the
    fd kept): a pump that wrote nothing since the error does not clear it, frames
    written since without a new error do, after link_recovery_s."""
    core, _link, _path, _sysfs = await _core_on_a_symlinked_link(tmp_path)
    errors, sent, _ = core.pump.counters()
    counters = [errors + 1, sent, errno.EAGAIN]          # one write found the buffer full
    monkeypatch.setattr(core, "_pump_counters", lambda: tuple(counters))
    await fly_for(core, 0.05)
    assert core.failsafe.state is FailsafeState.FAILSAFE
    assert core.port is not None and core.port.fd >= 0   # not let go: not a dead device
    await fly_for(core, 0.5)                             # five link_recovery_s, no write
    assert core.failsafe.state is FailsafeState.FAILSAFE
    counters[1] += 10                                    # frames written, no new error
    await fly_for(core, 0.3)
    assert core.failsafe.state is FailsafeState.NORMAL
    monkeypatch.undo()
    await core.stop()


async def test_errors_on_the_dead_fd_during_a_slow_reopen_do_not_kill_the_new_port(
        tmp_path, monkeypatch):
    """Opening the returned device takes a few periods, during which the pump's
    writes to no fd fail: those failures belong to the dead device."""
    import pipilot.link.transport as transport

    def slow_open(*args, **kw):
        time.sleep(0.05)                # the pump keeps failing on fd -1 meanwhile
        return real_open(*args, **kw)

    real_open = transport.reopen_sbus_port
    core, link, path, sysfs = await _core_on_a_symlinked_link(tmp_path)
    monkeypatch.setattr(transport, "reopen_sbus_port", slow_open)
    pull(link, path, sysfs)
    await fly_for(core, 0.3)
    with VirtualLink(callback=Capture()) as link2:
        sysfs.usb(link2.path, serial="A50285BI")
        path.unlink()
        path.symlink_to(link2.path)
        await fly_for(core, 1.0)
        assert core.stats.reopens == 1 and core.failsafe.state is FailsafeState.NORMAL
        await core.stop()


async def test_stop_with_a_broken_mixer_still_sends_failsafe_frames_and_closes(capture,
                                                                               monkeypatch):
    link, cap = capture
    core = FlightCore(link.path, config())
    await core.start()
    await fly_for(core, 0.1)

    def broken(now=None):
        raise RuntimeError("mixer bug")

    monkeypatch.setattr(core.mixer, "tick", broken)
    await core.stop()
    await asyncio.sleep(0.05)
    frames = [f for _, f in cap.snapshot()]
    assert sum(f.failsafe for f in frames) >= core.config.shutdown.failsafe_frames
    assert frames[-1].failsafe and frames[-1].channels[0] == 172
    assert core.port.closed and not core.pump.running and not core.running


class BrokenOs:
    """`os` for the Python pump, whose write raises what it never should."""

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd, data):
        raise RuntimeError("pump bug")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_a_dead_pump_thread_is_reported(capture, monkeypatch, caplog):
    link, _cap = capture
    core = FlightCore(link.path, config("python"))
    await core.start()
    await fly_for(core, 0.1)
    import pipilot.link.pump as pump_module
    monkeypatch.setattr(pump_module, "os", BrokenOs())   # the thread dies on its next frame
    await fly_for(core, 0.2)
    monkeypatch.undo()
    assert not core.pump.running
    assert core.failsafe.state is FailsafeState.FAILSAFE
    assert core.failsafe.reason == "frame pump stopped"
    assert core.faults == {CoreFault.PUMP_STOPPED}
    assert "frame pump thread has stopped" in caplog.text
    await core.stop()


async def test_a_pty_number_handed_to_another_program_is_never_opened(caplog):
    """The S.Bus pty goes away and Linux gives its number to the next pty anyone
    opens: that pty is somebody else's terminal and must get no byte, no
    settings, no lock; the core stays in failsafe and says the device changed."""
    from tests.link.ptys import drain, grab_pty

    for _attempt in range(3):
        link = VirtualLink(callback=Capture())
        path = link.path
        core = FlightCore(path, config(shutdown=ShutdownConfig(reopen_interval_s=0.1,
                                                               link_recovery_s=0.1)))
        await core.start()
        await fly_for(core, 0.1)
        link.close()                                # EIO: the core lets go of the pty
        loop = asyncio.get_running_loop()
        pair = None
        grabbing = loop.run_in_executor(None, grab_pty, path)
        while not grabbing.done():
            await fly_for(core, 0.02)
        pair = grabbing.result()
        if pair is None:                            # another program took the number
            await core.stop()
            continue
        master, slave = pair
        try:
            before = termios_state(slave)
            await fly_for(core, 1.0)                # ten reopen intervals
            assert drain(master) == b""
            assert termios_state(slave) == before   # not set to 100000 8E2 raw either
            assert core.failsafe.state is FailsafeState.FAILSAFE
            assert "device changed" in core.failsafe.reason
            assert core.stats.reopens == 0
            refused = [r for r in caplog.records if "reopen refused" in r.getMessage()]
            assert len(refused) == 1 and "device changed" in refused[0].getMessage()
            assert core._refusals.count >= 3        # refused again and again, logged once
        finally:
            await core.stop()
            os.close(master)
            os.close(slave)
        return
    pytest.skip("other programs took the freed pty number three times running")


def termios_state(fd):
    import termios

    return termios.tcgetattr(fd)


async def test_another_adapter_under_the_name_is_refused(tmp_path, caplog):
    """Another USB adapter (another serial number) takes the lost one's name:
    it gets nothing and the failsafe reason names the difference."""
    cap2 = Capture()
    core, link, path, sysfs = await _core_on_a_symlinked_link(tmp_path)
    pull(link, path, sysfs)
    await fly_for(core, 0.3)
    with VirtualLink(callback=cap2) as link2:
        sysfs.usb(link2.path, serial="FT9XQ2LK")
        path.unlink()
        path.symlink_to(link2.path)
        await fly_for(core, 1.0)
        assert link2.reader.bytes_read == 0
        assert core.failsafe.state is FailsafeState.FAILSAFE and core.stats.reopens == 0
        assert "device changed" in core.failsafe.reason
        assert "serial number A50285BI -> FT9XQ2LK" in core.failsafe.reason
        assert sum("reopen refused" in r.getMessage() for r in caplog.records) == 1
        await core.stop()
    assert cap2.snapshot() == []


async def test_an_adapter_back_under_another_number_is_found_by_its_by_id_link(tmp_path):
    """/dev/ttyUSB0 was configured; the adapter comes back as ttyUSB1 while
    another one takes ttyUSB0: the core follows the adapter's by-id link and
    leaves the other adapter alone."""
    sysfs = FakeSysfs(tmp_path)
    link = VirtualLink(callback=Capture())
    sysfs.usb(link.path, serial="A50285BI")
    by_id = sysfs.by_id_link(link.path)
    path = tmp_path / "ttyUSB0"
    path.symlink_to(link.path)
    core = FlightCore(str(path), config(shutdown=ShutdownConfig(reopen_interval_s=0.1,
                                                                link_recovery_s=0.1)),
                      probe=sysfs.probe)
    await core.start()
    assert core.port.identity.by_id == by_id
    await fly_for(core, 0.1)
    sysfs.unplug(link.path)                  # pulled: whoever gets its number is a stranger
    link.close()
    await fly_for(core, 0.3)
    other, ours = Capture(), Capture()
    with VirtualLink(callback=other) as link2, VirtualLink(callback=ours) as link3:
        sysfs.usb(link2.path, serial="FT9XQ2LK", usb_port="1-1.3")
        path.unlink()
        path.symlink_to(link2.path)              # another adapter is ttyUSB0 now
        sysfs.usb(link3.path, serial="A50285BI", usb_port="1-1.4")
        sysfs.by_id_link(link3.path)             # ours is back, moved to another socket
        deadline = time.monotonic() + 10
        while core.failsafe.state is not FailsafeState.NORMAL and time.monotonic() < deadline:
            await fly_for(core, 0.1)
        assert core.failsafe.state is FailsafeState.NORMAL and core.stats.reopens == 1
        assert core.port.path == by_id
        await fly_for(core, 0.2)
        await core.stop()
        assert link2.reader.bytes_read == 0
    assert any(not f.failsafe for _t, f in ours.snapshot())


async def test_a_tick_failing_every_time_logs_one_traceback_then_a_count(capture, caplog):
    link, _cap = capture
    core = FlightCore(link.path, config("python"))
    await core.start()
    await fly_for(core, 0.1)
    real = core.tick
    failures = 0

    def broken(now=None):
        nonlocal failures
        failures += 1
        raise RuntimeError("mixer broke")

    core.tick = broken
    with caplog.at_level("ERROR", logger="pipilot.core.flightcore"):
        await fly_for(core, 0.5)               # every refresh mix fails
        core.tick = real
        await core.stop()                      # the count not yet reported is flushed
    recs = [r for r in caplog.records
            if r.name == "pipilot.core.flightcore" and r.levelname == "ERROR"]
    assert failures > 20
    assert [r.exc_info is not None for r in recs] == [True, False]
    assert f"{failures} in all" in recs[1].getMessage()
