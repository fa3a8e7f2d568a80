"""Taking a pty number another program just gave up, as Linux hands it out again."""

from __future__ import annotations

import contextlib
import os
import time


def pty_number(path: str) -> int:
    return int(path.rsplit("/", 1)[1])


def grab_pty(path: str, timeout: float = 10.0) -> tuple[int, int] | None:
    """Open pty pairs until one gets `path` (/dev/pts/N): Linux gives out the
    lowest free number, so N comes back once every fd of its old pty is
    closed. Returns (master, slave), or None if another program took N first."""
    target = pty_number(path)
    held: list[tuple[int, int]] = []
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            master, slave = os.openpty()
            name = os.ttyname(slave)
            if name == path:
                os.set_blocking(master, False)
                return master, slave
            if pty_number(name) < target:
                held.append((master, slave))      # fills a lower hole for now
            else:
                os.close(master)
                os.close(slave)
                time.sleep(0.002)
        return None
    finally:
        for master, slave in held:
            os.close(master)
            os.close(slave)


def drain(master: int) -> bytes:
    """Whatever is waiting on a non-blocking pty master."""
    got = b""
    with contextlib.suppress(BlockingIOError, OSError):
        while chunk := os.read(master, 4096):
            got += chunk
    return got
