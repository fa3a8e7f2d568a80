"""Loading the two codec twins for the tests."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest
from hypothesis import settings

TWINS = {"cython": "pipilot.sbus._pack", "python": "pipilot.sbus._pack_py"}


def load_twin(name: str) -> ModuleType:
    """The twin module; a missing extension skips, or fails under PIPILOT_REQUIRE_CYTHON=1."""
    try:
        return importlib.import_module(TWINS[name])
    except ImportError as exc:
        message = (f"compiled S.Bus codec not importable ({exc}); "
                   "build it with `python setup.py build_ext --inplace`")
        if os.environ.get("PIPILOT_REQUIRE_CYTHON") == "1":
            pytest.fail(message)
        pytest.skip(message)


#: Hypothesis settings for this suite: no per-example deadline, which a
#: loaded machine could miss for reasons that have nothing to do with the codec.
no_deadline = settings(deadline=None)
