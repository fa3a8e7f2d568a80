"""The module builds warning-free (W=1, -Werror) against Debian's 6.1 and 6.12 headers.

The amd64 builds are the run's ``module_build`` (tests/kernel/conftest.py): the
QEMU test boots the very module checked here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from softuart_kbuild import (
    HEADERS,
    MissingTool,
    arm64_headers,
    build_module_arm64,
    headers_for,
    kernel_release,
)

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("series", sorted(HEADERS))
def test_module_builds_without_warnings(series: str, module_build) -> None:  # type: ignore[no-untyped-def]
    kdir, built = module_build(series)
    assert kernel_release(kdir).startswith(series + ".")
    assert not re.search(r"\bwarning\b", built.log, re.IGNORECASE), built.log
    assert built.ko.stat().st_size > 0
    assert built.vermagic.split()[0] == kernel_release(kdir)


@pytest.mark.parametrize("series", sorted(HEADERS))
def test_module_cross_builds_for_arm64(series: str, tmp_path: Path) -> None:
    """Debian's arm64 headers of the same kernel, fetched with apt-get download."""
    try:
        kdir = arm64_headers(headers_for(HEADERS[series]))
        built = build_module_arm64(kdir, tmp_path / "softuart")
    except MissingTool as exc:
        pytest.fail(str(exc))
    assert not re.search(r"\bwarning\b", built.log, re.IGNORECASE), built.log
    assert built.ko.read_bytes()[18:20] == (183).to_bytes(2, "little")  # e_machine: EM_AARCH64
    assert built.vermagic.split()[0] == kdir.name.removeprefix("linux-headers-")
