"""Fixtures for the soft-UART tests: the codec compiled as a shared library, and
the module built once per kernel series for the whole run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from softuart_kbuild import HEADERS, Built, MissingTool, build_module, headers_for
from softuart_sim import Codec, build_library


@pytest.fixture(scope="session")
def codec(tmp_path_factory: pytest.TempPathFactory) -> Codec:
    """The kernel module's codec source built for user space (fails without gcc)."""
    try:
        path = build_library(tmp_path_factory.mktemp("softuart_codec"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    return Codec(path)


@pytest.fixture(scope="session")
def module_build(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, Built]]:
    """``module_build(series)`` -> (headers dir, the module built against them).

    One build per series for the run: the build test checks its log and
    vermagic, the QEMU test boots the same .ko (it used to build it again). A
    build failure is raised to every test that asks for it."""
    done: dict[str, tuple[Path, Built] | BaseException] = {}

    def get(series: str) -> tuple[Path, Built]:
        if series not in done:
            try:
                kdir = headers_for(HEADERS[series])
                done[series] = kdir, build_module(kdir, tmp_path_factory.mktemp(f"ko{series}"))
            except MissingTool as exc:
                done[series] = exc
            except AssertionError as exc:
                done[series] = exc
        got = done[series]
        if isinstance(got, MissingTool):
            pytest.fail(str(got))
        if isinstance(got, BaseException):
            raise got
        return got

    return get
