"""The HIL suite's port: a real TX->RX loopback (--hil-port) or a virtual one."""

from __future__ import annotations

import os
import select
import threading
import tty
from collections.abc import Iterator

import pytest


class VirtualLoopback:
    """A pty whose far end echoes every byte, as a jumper from TX to RX would."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if select.select([self.master], [], [], 0.05)[0]:
                try:
                    os.write(self.master, os.read(self.master, 4096))
                except OSError:
                    return

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self.master)
        os.close(self._slave)


@pytest.fixture
def loopback_port(hil_port: str | None) -> Iterator[str]:
    """Path of a port whose TX comes back on its RX."""
    if hil_port:
        yield hil_port
        return
    lb = VirtualLoopback()
    try:
        yield lb.path
    finally:
        lb.close()


@pytest.fixture
def is_real(hil_port: str | None) -> bool:
    return bool(hil_port)
