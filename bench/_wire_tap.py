"""Wire tap for bench/web_latency.py, run as its own process (its own GIL).

Reads the S.Bus bytes pipilot writes (fd argv[1], a pty master), forwards them
to the simulator's port (argv[2]) and reports each chunk on stdout as one line:
"<CLOCK_MONOTONIC seconds> <hex bytes>".
"""

import contextlib
import os
import select
import sys
import time


def main() -> None:
    # A UART stamps bytes as they pass; a tap that waits for a busy CPU would not.
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(40))
    except (OSError, AttributeError):
        print("wire tap: no SCHED_FIFO; timestamps include wake-up delays", file=sys.stderr)
    src = int(sys.argv[1])
    # Non-blocking towards the simulator: a simulator that reads late (its
    # thread waits for its process's GIL) must not stop the tap reading, or
    # the timestamps would carry the simulator's delay and the core's port
    # would fill up.
    dst = os.open(sys.argv[2], os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
    out = sys.stdout
    pending = b""
    while True:
        readable, _, _ = select.select([src], [dst] if pending else [], [])
        if readable:
            try:
                data = os.read(src, 4096)
            except OSError:
                return
            if not data:
                return
            t = time.monotonic()
            out.write(f"{t:.7f} {data.hex()}\n")
            out.flush()
            pending += data
        if pending:
            with contextlib.suppress(BlockingIOError):
                pending = pending[os.write(dst, pending):]


if __name__ == "__main__":
    main()
