"""Fixtures for the soft-UART tests: the codec compiled as a shared library."""

from __future__ import annotations

import pytest
from softuart_sim import Codec, build_library


@pytest.fixture(scope="session")
def codec(tmp_path_factory: pytest.TempPathFactory) -> Codec:
    """The kernel module's codec source built for user space (fails without gcc)."""
    try:
        path = build_library(tmp_path_factory.mktemp("softuart_codec"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    return Codec(path)
