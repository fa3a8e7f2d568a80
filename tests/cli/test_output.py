"""Terminal output must never block the flight loop, even when nobody reads it."""

import subprocess
import sys
import time

from pipilot.cli._output import LineWriter

# Logs and prints far more than a pipe holds (64 KiB) while the parent reads
# neither stream, then reports on a side channel (a file) how long that took.
_CHILD = r"""
import logging, sys, time
from pipilot.cli._output import LineWriter, setup_logging
assert setup_logging(logging.INFO)
out = LineWriter(sys.stdout)
t0 = time.monotonic()
for i in range(20000):
    logging.getLogger("flight").info("record %d %s", i, "x" * 100)
    out.write(f"progress {i} " + "y" * 100)
open(sys.argv[1], "w").write(f"{time.monotonic() - t0:.3f}")
"""


def test_a_terminal_that_stops_reading_does_not_block(tmp_path):
    side = tmp_path / "took"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(side)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not side.exists() or not side.read_text():
        assert proc.poll() is None or side.exists(), "the child died"
        assert time.monotonic() < deadline, "logging blocked on a full pipe"
        time.sleep(0.05)
    took = float(side.read_text())
    out, err = proc.communicate(timeout=60)    # now read: the threads drain and it exits
    assert took < 30
    assert b"record 0 " in err and b"progress 0 " in out


def test_line_writer_drops_and_counts_when_full():
    class Stuck:
        def __init__(self):
            self.lines = []

        def write(self, s):
            time.sleep(10)

        def flush(self):
            pass

    w = LineWriter(Stuck(), maxsize=5)          # type: ignore[arg-type]
    t0 = time.monotonic()
    for i in range(100):
        w.write(str(i))
    assert time.monotonic() - t0 < 5
    assert w.dropped >= 100 - 5 - 1
