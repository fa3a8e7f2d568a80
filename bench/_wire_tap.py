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
    # Nothing the tap writes may block its reading: a simulator that reads late
    # (its thread waits for its process's GIL under load), or a bench thread
    # that collects these lines late, would otherwise stop the tap, the core's
    # frames would queue in the pty and be stamped late, as if sent late.
    dst = os.open(sys.argv[2], os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
    out = sys.stdout.fileno()
    os.set_blocking(out, False)
    to_sim = b""
    to_log = b""
    while True:
        waiting = [fd for fd, buf in ((dst, to_sim), (out, to_log)) if buf]
        readable, _, _ = select.select([src], waiting, [])
        if readable:
            try:
                data = os.read(src, 4096)
            except OSError:
                return
            if not data:
                return
            t = time.monotonic()
            to_log += f"{t:.7f} {data.hex()}\n".encode()
            to_sim += data
        with contextlib.suppress(BlockingIOError):
            if to_sim:
                to_sim = to_sim[os.write(dst, to_sim):]
        with contextlib.suppress(BlockingIOError):
            if to_log:
                to_log = to_log[os.write(out, to_log):]


if __name__ == "__main__":
    main()
