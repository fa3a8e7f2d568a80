"""One suite, two links: a real loopback with `pytest --hil-port /dev/ttyXXX`,
the virtual one otherwise. Bounds are generous: a loaded 2-core machine, or a
Pi, must pass them; tighter figures come from bench/frame_clock.py."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from pipilot.cli.link_test import stream
from pipilot.core.config import CoreConfig, RealtimeConfig
from pipilot.core.flightcore import FlightCore
from pipilot.core.setpoints import Setpoint
from pipilot.errors import LinkError
from pipilot.link.serialport import open_sbus_port
from pipilot.link.virtual import WireReader
from pipilot.sbus import Frame, FrameDecoder
from tests.core.stall import assert_stall_tail

P = 0.007


async def test_frames_come_back_intact(loopback_port):
    res = await stream(loopback_port, 1.5, P, "sweep")
    lb = res["loopback"]
    assert res["write_errors"] == 0
    assert lb["frames_corrupt"] == 0
    assert lb["frames_verified"] >= res["frames_sent"] - 3


async def test_period_and_lateness(loopback_port):
    # Sanity bounds only (a loaded 2-core machine may skip a late frame or
    # two); bench/frame_clock.py measures the real figures.
    res = await stream(loopback_port, 2.0, P, "neutral")
    assert res["mean_period_s"] == pytest.approx(P, rel=0.04)
    assert res["lateness_p99_s"] < 0.01
    assert res["longest_gap_s"] < 6 * P
    rx = res["loopback"]["timing"]
    assert rx["mean_period_s"] == pytest.approx(P, rel=0.05)
    assert rx["longest_gap_s"] < 0.5  # the far-end reader is a thread a loaded machine can starve


async def test_core_stall_failsafe_timing(loopback_port):
    """The core stalls: its last frame, then failsafe frames, then silence,
    counted on the pump's slot grid (stale/P and (silent - stale)/P slots)."""
    core = FlightCore(loopback_port, CoreConfig(realtime=RealtimeConfig(mlockall=False,
                                                                        gc_freeze=False)))
    decoder = FrameDecoder()
    seen: list[Frame] = []
    lock = threading.Lock()

    def on_bytes(data: bytes, _t: list[float]) -> None:
        with lock:
            seen.extend(decoder.feed(data))

    await core.start()
    assert core.port is not None and core.pump is not None
    reader = WireReader(core.port.fd, on_bytes).start()
    try:
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            core.mixer.publish("pilot", Setpoint(throttle=0.3))
            await asyncio.sleep(0.01)
        core._last_mix = -1e9                    # the next publish mixes at once
        core.mixer.publish("pilot", Setpoint(throttle=0.3, accessories=(0.5, 0, 0, 0)))
        time.sleep(0.4)                          # the event loop stalls
        core.mixer.on_publish = None             # ...and the core stays quiet
        if core._timer is not None:
            core._timer.cancel()
        stats = core.pump.stats()
        n, since = -1, time.monotonic()
        while time.monotonic() - since < 0.3 and time.monotonic() < end + 10:
            await asyncio.sleep(0.02)
            with lock:
                if len(seen) != n:
                    n, since = len(seen), time.monotonic()
        with lock:
            frames = list(seen)
    finally:
        reader.stop()
        await core.stop()
    assert_stall_tail(core, frames, stats, P)


def test_port_errors(loopback_port):
    with open_sbus_port(loopback_port) as port:
        assert str(port.settings) == "100000 8E2"
        with pytest.raises(LinkError, match="busy"):
            open_sbus_port(loopback_port)
    with pytest.raises(LinkError, match="no such port"):
        open_sbus_port(loopback_port + "-missing")
