"""The transport interface the flight core takes: each transport says how it is
driven, the core asks nothing else about it."""

from __future__ import annotations

import asyncio

import pytest

from pipilot.core.clock import VirtualClock
from pipilot.core.config import CoreConfig, RealtimeConfig
from pipilot.core.flightcore import FlightCore
from pipilot.errors import LinkError
from pipilot.link.identity import DeviceProbe
from pipilot.link.serialport import open_sbus_port
from pipilot.link.transport import DevicePath, FrameSink, OpenPort, SbusTransport, Timing
from pipilot.link.virtual import VirtualLink

CONFIG = CoreConfig(realtime=RealtimeConfig(mlockall=False, gc_freeze=False))


def test_each_transport_says_how_it_is_driven() -> None:
    transports: list[SbusTransport] = [DevicePath("/dev/serial0"), FrameSink(print)]
    assert [t.timing for t in transports] == [Timing.REAL_TIME, Timing.LOCKSTEP]
    assert DevicePath("/dev/serial0").owns_port and not FrameSink(print).owns_port


@pytest.mark.parametrize("bad", ["", None, 3])
def test_a_device_path_must_be_one(bad: object) -> None:
    with pytest.raises(LinkError, match="device path"):
        DevicePath(bad)  # type: ignore[arg-type]


def test_what_is_not_a_transport_is_refused_clearly() -> None:
    with pytest.raises(TypeError, match=r"not an S\.Bus transport"):
        FlightCore(lambda t, f: None, CONFIG, VirtualClock())  # type: ignore[arg-type]


def test_a_path_stands_for_a_device_path() -> None:
    core = FlightCore("/dev/serial0", CONFIG)
    assert isinstance(core.transport, DevicePath) and core.transport.path == "/dev/serial0"


def test_wrong_use_of_a_transport_is_an_error() -> None:
    with pytest.raises(TypeError):
        FrameSink(print).open(DeviceProbe())
    with pytest.raises(TypeError):
        DevicePath("/dev/serial0").deliver(0.0, b"")


def test_a_lockstep_sink_gets_every_frame_with_its_deadline() -> None:
    got: list[tuple[float, bytes]] = []
    core = FlightCore(FrameSink(lambda t, f: got.append((t, f))), CONFIG, VirtualClock(1.0))
    asyncio.run(core.start())
    out = core.advance(1.0 + 3 * CONFIG.period_s)
    assert got == out and len(got) == 3


async def test_an_open_port_is_written_to_and_left_open() -> None:
    seen: list[int] = []
    with VirtualLink(callback=lambda data, times: seen.append(len(data))) as link:
        port = open_sbus_port(link.path)
        try:
            core = FlightCore(OpenPort(port), CONFIG)
            await core.start()
            assert core.port is port
            await asyncio.sleep(0.1)
            await core.stop()
            assert not port.closed                      # the caller's to close
            with pytest.raises(LinkError, match="not reopened"):
                OpenPort(port).reopen(port, DeviceProbe())
        finally:
            port.close()
    assert sum(seen) >= 25 * CONFIG.shutdown.failsafe_frames
