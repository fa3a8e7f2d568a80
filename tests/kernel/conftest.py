"""Fixtures for the soft-UART tests: the codec compiled as a shared library, and
the module built once per kernel series for the whole run."""

from __future__ import annotations

import fcntl
import json
import os
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


def _shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory every xdist worker of this run sees (the run's own without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def module_build(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, Built]]:
    """``module_build(series)`` -> (headers dir, the module built against them).

    One build per series for the run, across xdist workers too (the first
    worker to ask builds under a lock, the others read its result): the build
    test checks its log and vermagic, the QEMU test boots the same .ko. A
    build failure is raised to every test that asks for it."""
    shared = _shared_dir(tmp_path_factory)
    done: dict[str, tuple[Path, Built] | BaseException] = {}

    def build(series: str) -> tuple[Path, Built] | BaseException:
        work = shared / f"softuart-ko{series}"
        record = shared / f"softuart-ko{series}.json"
        with open(shared / f"softuart-ko{series}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not record.exists():
                try:
                    kdir = headers_for(HEADERS[series])
                    b = build_module(kdir, work)
                    out = {"kdir": str(kdir), "ko": str(b.ko), "log": b.log,
                           "vermagic": b.vermagic}
                except Exception as exc:  # recorded, so no other worker builds again
                    out = {"error": type(exc).__name__, "message": str(exc)}
                partial = record.with_name(record.name + ".part")
                partial.write_text(json.dumps(out))
                partial.replace(record)
        got = json.loads(record.read_text())
        if "error" in got:
            if got["error"] == "MissingTool":
                return MissingTool(got["message"])
            if got["error"] == "AssertionError":
                return AssertionError(got["message"])
            return AssertionError(f"module build failed: {got['error']}: {got['message']}")
        return Path(got["kdir"]), Built(ko=Path(got["ko"]), log=got["log"],
                                        vermagic=got["vermagic"])

    def get(series: str) -> tuple[Path, Built]:
        if series not in done:
            done[series] = build(series)
        got = done[series]
        if isinstance(got, MissingTool):
            pytest.fail(str(got))
        if isinstance(got, BaseException):
            raise got
        return got

    return get
