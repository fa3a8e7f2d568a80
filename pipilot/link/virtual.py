"""The virtual link: a pty pair standing in for the S.Bus wire.

pipilot opens the slave end (`VirtualLink.path`, e.g. /dev/pts/7) exactly as
it opens a UART. A `WireReader` thread reads the master end and gives every
byte the time its stop bits would end on a real 100000-baud 8E2 line: bytes
leave back to back at 12 bits each, starting when they were written (as seen
by the reader) or when the previous byte finished, whichever is later. The
simulator feeds these times to its model of the flight controller's decoder.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import tty
from collections.abc import Callable

from pipilot.sbus import BYTE_TIME  # 12 bits (8E2) at 100000 baud

log = logging.getLogger(__name__)

#: callback(data, end_times): end_times[i] is when byte i finished on the wire
BytesCallback = Callable[[bytes, list[float]], None]


class WireReader:
    """Reads a fd in a thread and timestamps bytes at the wire rate.

    `clock` gives seconds (default time.monotonic). Also keeps `chunks`, the
    list of (read_time, data) when `keep=True` (tests and the benchmark).
    """

    def __init__(self, fd: int, callback: BytesCallback | None = None,
                 clock: Callable[[], float] = time.monotonic, byte_time: float = BYTE_TIME,
                 keep: bool = False) -> None:
        self.fd = fd
        self.callback = callback
        self.clock = clock
        self.byte_time = byte_time
        self.keep = keep
        self.chunks: list[tuple[float, bytes]] = []
        self.bytes_read = 0
        self.error: OSError | None = None
        self._wire_free = 0.0
        self._paused = threading.Event()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="wire-reader", daemon=True)

    def start(self) -> WireReader:
        self._thread.start()
        return self

    def pause(self, paused: bool = True) -> None:
        """Stop reading (the pty buffer fills up, as with a stalled receiver)."""
        if paused:
            self._paused.set()
        else:
            self._paused.clear()

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join()
        os.close(self._stop_r)
        os.close(self._stop_w)

    def stamp(self, t_read: float, n: int) -> list[float]:
        """End-of-byte times for `n` bytes seen at `t_read`, continuing the wire."""
        start = max(t_read, self._wire_free)
        times = [start + (i + 1) * self.byte_time for i in range(n)]
        self._wire_free = times[-1] if times else self._wire_free
        return times

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            if self._paused.is_set():
                if select.select([self._stop_r], [], [], 0.01)[0]:
                    return
                continue
            events = dict(poller.poll())
            if self._stop_r in events:
                return
            t = self.clock()
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                continue
            except OSError as exc:  # EIO: every slave fd closed
                self.error = exc
                if select.select([self._stop_r], [], [], 0.01)[0]:
                    return
                continue
            if not data:
                continue
            self.bytes_read += len(data)
            if self.keep:
                self.chunks.append((t, data))
            if self.callback is not None:
                self.callback(data, self.stamp(t, len(data)))


class VirtualLink:
    """A pty pair: open `path` like a serial port; the reader sees what was sent.

    `write_to_port(data)` injects bytes towards the port (a loopback or a
    simulated receiver talking back). Use as a context manager or `close()`.
    """

    def __init__(self, callback: BytesCallback | None = None, keep: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        os.set_blocking(self.master, False)
        self.reader = WireReader(self.master, callback, clock=clock, keep=keep).start()

    def write_to_port(self, data: bytes) -> int:
        return os.write(self.master, data)

    def close(self) -> None:
        """Stop the reader and close both ends (writes to the port then fail with EIO)."""
        if self.master < 0:
            return
        self.reader.stop()
        os.close(self.master)
        os.close(self._slave)
        self.master = self._slave = -1

    def __enter__(self) -> VirtualLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
