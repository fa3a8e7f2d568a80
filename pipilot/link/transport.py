"""Where the flight core's S.Bus frames go: the transport interface it takes.

A transport says how it is driven (`timing`) and does the rest itself:

- `Timing.REAL_TIME`: `open()` gives the serial port the frame pump writes
  to at t0 + k*P; when the device is lost and `owns_port`, the core lets go
  of it and calls `reopen(lost)` until the same device is back
  (`pipilot.link.identity`). `DevicePath` (a UART, a pty such as the
  simulator's or the SITL's, a USB adapter) and `OpenPort` (a port opened by
  the caller, never closed nor reopened by the core).
- `Timing.LOCKSTEP`: no thread and no port; in virtual time the core hands
  each frame to `deliver(t, frame)` at its deadline. `FrameSink`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

from pipilot.errors import LinkError
from pipilot.link.identity import DeviceProbe
from pipilot.link.serialport import SerialPort, open_sbus_port, reopen_sbus_port


class Timing(enum.Enum):
    """How a transport is driven."""

    REAL_TIME = "real time"     # the pump thread writes to open()'s port at t0 + k*P
    LOCKSTEP = "lock-step"      # deliver(t, frame) at each deadline, in virtual time


class SbusTransport(Protocol):
    """What `FlightCore` sends frames through (see the module docstring)."""

    @property
    def name(self) -> str:
        """What logs and errors call it (a device path)."""
        ...

    @property
    def timing(self) -> Timing: ...

    @property
    def owns_port(self) -> bool:
        """Whether the core closes the port it opened, and reopens it when lost."""
        ...

    def open(self, probe: DeviceProbe) -> SerialPort:
        """REAL_TIME: the port to write to (`LinkError` says what is wrong)."""
        ...

    def reopen(self, lost: SerialPort, probe: DeviceProbe) -> SerialPort:
        """REAL_TIME, `owns_port`: the lost port's device again, only if it is back
        (`DeviceChanged` when another device has its name, else `LinkError`)."""
        ...

    def deliver(self, t: float, frame: bytes) -> None:
        """LOCKSTEP: the frame due at virtual time `t`."""
        ...


class _RealTime:
    timing = Timing.REAL_TIME

    @property
    def name(self) -> str:
        raise NotImplementedError

    def deliver(self, t: float, frame: bytes) -> None:
        raise TypeError(f"{self.name} is a real-time transport: frames go through the pump")


class DevicePath(_RealTime):
    """A serial device by name: opened, closed and (same device only) reopened by the core."""

    owns_port = True

    def __init__(self, path: str) -> None:
        if not isinstance(path, str) or not path:
            raise LinkError(str(path), "an S.Bus port must be a device path")
        self.path = path

    @property
    def name(self) -> str:
        return self.path

    def open(self, probe: DeviceProbe) -> SerialPort:
        return open_sbus_port(self.path, probe=probe)

    def reopen(self, lost: SerialPort, probe: DeviceProbe) -> SerialPort:
        if lost.identity is None:
            raise LinkError(self.path, "the lost port's device is not known: not reopened")
        return reopen_sbus_port(self.path, lost.identity, probe=probe)

    def __repr__(self) -> str:
        return f"DevicePath({self.path!r})"


class OpenPort(_RealTime):
    """A port the caller opened and will close: the core writes to it, nothing more."""

    owns_port = False

    def __init__(self, port: SerialPort) -> None:
        self.port = port

    @property
    def name(self) -> str:
        return self.port.path

    def open(self, probe: DeviceProbe) -> SerialPort:
        return self.port

    def reopen(self, lost: SerialPort, probe: DeviceProbe) -> SerialPort:
        raise LinkError(self.port.path, "opened by the caller: not reopened by the core")


class FrameSink:
    """Lock-step: `sink(t, frame)` gets every frame at its virtual deadline."""

    timing = Timing.LOCKSTEP
    owns_port = False

    def __init__(self, sink: Callable[[float, bytes], None], name: str = "lock-step sink") -> None:
        self.sink = sink
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def open(self, probe: DeviceProbe) -> SerialPort:
        raise TypeError("a lock-step sink has no port: advance() hands it the frames")

    def reopen(self, lost: SerialPort, probe: DeviceProbe) -> SerialPort:
        raise TypeError("a lock-step sink has no port")

    def deliver(self, t: float, frame: bytes) -> None:
        self.sink(t, frame)
