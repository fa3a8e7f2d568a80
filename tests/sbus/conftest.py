"""Every sbus test runs against both codec twins through the `impl` fixture."""

from __future__ import annotations

from types import ModuleType

import pytest
from sbus_twins import TWINS, load_twin


@pytest.fixture(scope="session", params=sorted(TWINS))
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return load_twin(request.param)


@pytest.fixture(scope="session")
def twins() -> tuple[ModuleType, ModuleType]:
    return load_twin("cython"), load_twin("python")
