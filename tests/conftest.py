"""Suite-wide options: --hil-port names a real loopback for the HIL tests;
Hypothesis profiles: ``ci`` (the default) and ``deep``, chosen with
``--hypothesis-profile=deep`` or HYPOTHESIS_PROFILE=deep."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Every run: enough examples to find a broken codec or mixer, no wall-clock
# deadline (a loaded machine is not a slow implementation). Tests that name
# their own max_examples keep it. On demand: ten times deeper.
settings.register_profile("ci", max_examples=50, deadline=None)
settings.register_profile("deep", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--hil-port",
        default=None,
        help="serial device with TX looped back to RX (e.g. /dev/ttyUSB0); "
        "without it the HIL suite runs against the virtual link",
    )


@pytest.fixture
def hil_port(request: pytest.FixtureRequest) -> str | None:
    return request.config.getoption("--hil-port")


PUMP_THREAD = "sbus-pump"


def _pump_threads() -> int:
    """S.Bus pump threads alive in this process (Python's by thread name, the
    compiled pump's pthread by its kernel name)."""
    n = sum(t.name == PUMP_THREAD for t in threading.enumerate())
    for comm in Path("/proc/self/task").glob("*/comm"):
        with contextlib.suppress(OSError):     # the thread ended while we looked
            n += comm.read_text().strip() == PUMP_THREAD
    return n


@pytest.fixture(autouse=True)
def _no_leaked_pump() -> Iterator[None]:
    """A test must stop every pump it starts: a leaked one goes on writing frames
    to its fd number, which the next test's pty or pipe may reuse."""
    before = _pump_threads()
    yield
    deadline = time.monotonic() + 5.0
    while (left := _pump_threads()) > before:
        if time.monotonic() > deadline:
            pytest.fail(f"the test left {left - before} S.Bus pump thread(s) running")
        time.sleep(0.01)
