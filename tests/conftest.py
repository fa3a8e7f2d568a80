"""Suite-wide options: --hil-port names a real loopback for the HIL tests."""

from __future__ import annotations

import pytest


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
