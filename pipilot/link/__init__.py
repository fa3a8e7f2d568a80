"""pipilot.link: byte transports for the S.Bus wire.

`open_sbus_port` / `SerialPort` (the UART, termios2), `VirtualLink` (a pty
pair with wire-rate timestamps), `make_pump` (the frame pump thread).
"""

from pipilot.link.pump import PumpStats, make_pump
from pipilot.link.serialport import SBUS_SETTINGS, PortSettings, SerialPort, open_sbus_port
from pipilot.link.virtual import VirtualLink, WireReader

__all__ = [
    "SBUS_SETTINGS",
    "PortSettings",
    "PumpStats",
    "SerialPort",
    "VirtualLink",
    "WireReader",
    "make_pump",
    "open_sbus_port",
]
