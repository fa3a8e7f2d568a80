"""Build the soft-UART module against Debian's kernel headers.

A missing package is an error that names it (``make test`` installs the
packages listed in tools/apt/kernel.txt), never a skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE_SRC = ROOT / "kernel" / "softuart"
SOURCES = ("Kbuild", "Makefile")
BUILD_TIMEOUT_S = 300


class MissingTool(RuntimeError):
    """A Debian package the kernel tests need is not installed."""


@dataclass(frozen=True)
class Built:
    ko: Path
    log: str
    vermagic: str


def require(cmd: str, package: str) -> str:
    path = shutil.which(cmd)
    if path is None:
        raise MissingTool(f"'{cmd}' not found: install the Debian package '{package}'")
    return path


def headers_for(meta_package: str) -> Path:
    """The build directory of the headers a Debian meta package points at."""
    require("dpkg-query", "dpkg")
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}|${Depends}", meta_package],
                          capture_output=True, text=True)
    status, _, depends = proc.stdout.partition("|")
    if proc.returncode or "install ok installed" not in status:
        raise MissingTool(f"kernel headers missing: install the Debian package '{meta_package}'")
    m = re.search(r"linux-headers-(\S+?-amd64)\b", depends)
    if not m:
        raise MissingTool(f"{meta_package} does not depend on a linux-headers package: {depends}")
    kdir = Path("/usr/src") / f"linux-headers-{m.group(1)}"
    if not (kdir / "Makefile").exists():
        pkg = f"linux-headers-{m.group(1)}"
        raise MissingTool(f"{kdir} missing: reinstall the Debian package '{pkg}'")
    return kdir


def kernel_release(kdir: Path) -> str:
    return kdir.name.removeprefix("linux-headers-")


def build_module(kdir: Path, work: Path) -> Built:
    """Compile the module out of tree in @work with -Werror and W=1."""
    require("make", "make")
    require("gcc", "gcc")
    work.mkdir(parents=True, exist_ok=True)
    for f in MODULE_SRC.iterdir():
        if f.suffix in (".c", ".h") or f.name in SOURCES:
            shutil.copy2(f, work / f.name)
    proc = subprocess.run(
        ["make", "-C", str(kdir), f"M={work}", "W=1", "KCFLAGS=-Werror", "modules"],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
    )
    log = proc.stdout + proc.stderr
    if proc.returncode:
        raise AssertionError(f"module build against {kdir.name} failed:\n{log}")
    ko = work / "softuart.ko"
    m = re.search(rb"vermagic=([^\0]+)", ko.read_bytes())
    return Built(ko=ko, log=log, vermagic=m.group(1).decode() if m else "")
