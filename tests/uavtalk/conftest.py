"""Locate the LibrePilot 16.09 XML definitions: ``shared/`` beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipilot.uavtalk import Registry, load_definitions

REPO_ROOT = Path(__file__).resolve().parents[2]
XML_SUBDIR = Path("librepilot-16.09") / "uavobjectdefinition"


def find_xml_dir() -> Path:
    """``$PIPILOT_SHARED/...``, else the nearest ``shared/`` beside the repo or above it."""
    env = os.environ.get("PIPILOT_SHARED")
    candidates = [Path(env) / XML_SUBDIR] if env else []
    candidates += [p / "shared" / XML_SUBDIR for p in REPO_ROOT.parents]
    for c in candidates:
        if c.is_dir():
            return c
    pytest.fail(
        "LibrePilot 16.09 UAVObject XML not found: expected shared/"
        f"{XML_SUBDIR} beside the repository ({REPO_ROOT.parent}/shared) or PIPILOT_SHARED set",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def xml_dir() -> Path:
    return find_xml_dir()


@pytest.fixture(scope="session")
def xml_registry(xml_dir: Path) -> Registry:
    return load_definitions(xml_dir)


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_definitions()
