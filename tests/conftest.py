"""Suite-wide options: --hil-port names a real loopback for the HIL tests;
Hypothesis profiles: ``ci`` (the default) and ``deep``, chosen with
``--hypothesis-profile=deep`` or HYPOTHESIS_PROFILE=deep."""

from __future__ import annotations

import os

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
