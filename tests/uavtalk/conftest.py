"""Registries for the UAVTalk tests.

Every test runs from the package's own definitions (``pipilot/uavtalk/builtin.json``)
except the cross-check of those definitions against LibrePilot 16.09's XML, which
needs the XML: ``$PIPILOT_SHARED/librepilot-16.09/uavobjectdefinition``, or a
``shared/`` folder beside the repository or above it. Without it that check is
skipped and says so; a fresh clone passes everything else.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipilot.uavtalk import Registry, load_definitions

REPO_ROOT = Path(__file__).resolve().parents[2]
XML_SUBDIR = Path("librepilot-16.09") / "uavobjectdefinition"


def find_xml_dir() -> Path | None:
    """``$PIPILOT_SHARED/...``, else the nearest ``shared/`` beside the repo or above it."""
    env = os.environ.get("PIPILOT_SHARED")
    candidates = [Path(env) / XML_SUBDIR] if env else []
    candidates += [p / "shared" / XML_SUBDIR for p in REPO_ROOT.parents]
    for c in candidates:
        if c.is_dir():
            return c
    return None


NO_XML = (f"LibrePilot 16.09 UAVObject XML not found (set PIPILOT_SHARED to the folder "
          f"holding {XML_SUBDIR}, or put shared/ beside the repository): the packaged "
          "definitions are not cross-checked against it")


@pytest.fixture(scope="session")
def xml_dir() -> Path:
    """The XML folder; only the cross-check against LibrePilot's XML uses it."""
    found = find_xml_dir()
    if found is None:
        pytest.skip(NO_XML)
    return found


@pytest.fixture(scope="session")
def xml_registry(xml_dir: Path) -> Registry:
    return load_definitions(xml_dir)


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_definitions()
