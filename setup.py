"""Build the Cython hot paths; fall back to the pure-Python twins without a compiler."""

from __future__ import annotations

import ast
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


def sbus_constants(path: str = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            "pipilot", "sbus", "frame.py")) -> dict[str, int]:
    """The S.Bus frame layout's integer constants, read from the module that defines
    them (it cannot be imported before the build): the compiled pump sizes its C
    arrays with them at compile time."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    out: dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            if isinstance(value, int) and node.targets[0].id.isupper():
                out["SBUS_" + node.targets[0].id] = value
    return out


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
                                                                   "wraparound": False},
                     compile_time_env=sbus_constants())


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt, "build_py": BuildPyWithWeb})
