"""Build the Cython hot paths; fall back to the pure-Python twins without a compiler."""

from __future__ import annotations

import os
import shutil
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

CYTHON_MODULES = ["pipilot.sbus._pack", "pipilot.uavtalk._framing", "pipilot.link._pump"]


class OptionalBuildExt(build_ext):
    """A failed compile is a warning: the pure-Python twin still works."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler failure
            print(f"warning: Cython extensions not built ({exc}); using pure Python", file=sys.stderr)

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            print(f"warning: {ext.name} not built ({exc}); using pure Python", file=sys.stderr)


class BuildPyWithWeb(build_py):
    """Ship the browser page (web/ in the checkout) inside the package as pipilot/server/web."""

    def run(self) -> None:
        super().run()
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(self.build_lib, "pipilot", "server", "web"),
                            dirs_exist_ok=True)


def extensions() -> list:
    if os.environ.get("PIPILOT_PURE_PYTHON") == "1":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        return []
    from setuptools import Extension

    sources = {name: name.replace(".", "/") + ".pyx" for name in CYTHON_MODULES}
    exts = [
        Extension(name, [src], extra_compile_args=["-O2"])
        for name, src in sources.items()
        if os.path.exists(src)
    ]
    if not exts:
        return []
    return cythonize(exts, language_level=3, compiler_directives={"boundscheck": False,
                                                                   "wraparound": False})


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt, "build_py": BuildPyWithWeb})
