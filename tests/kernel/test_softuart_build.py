"""The module builds warning-free (W=1, -Werror) against Debian's 6.1 and 6.12 headers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from softuart_kbuild import MissingTool, build_module, headers_for, kernel_release

pytestmark = pytest.mark.kernel

HEADERS = {"6.1": "linux-headers-amd64", "6.12": "linux-headers-6.12-amd64"}


@pytest.mark.parametrize("series", sorted(HEADERS))
def test_module_builds_without_warnings(series: str, tmp_path: Path) -> None:
    try:
        kdir = headers_for(HEADERS[series])
        built = build_module(kdir, tmp_path / "softuart")
    except MissingTool as exc:
        pytest.fail(str(exc))
    assert kernel_release(kdir).startswith(series + ".")
    assert not re.search(r"\bwarning\b", built.log, re.IGNORECASE), built.log
    assert built.ko.stat().st_size > 0
    assert built.vermagic.split()[0] == kernel_release(kdir)
