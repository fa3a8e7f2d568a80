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
#: the Debian meta packages whose headers each supported kernel series builds against
HEADERS = {"6.1": "linux-headers-amd64", "6.12": "linux-headers-6.12-amd64"}


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


def build_module(kdir: Path, work: Path, extra: list[str] | None = None) -> Built:
    """Compile the module out of tree in @work with -Werror and W=1."""
    require("make", "make")
    if not extra:
        require("gcc", "gcc")
    work.mkdir(parents=True, exist_ok=True)
    for f in MODULE_SRC.iterdir():
        if f.suffix in (".c", ".h") or f.name in SOURCES:
            shutil.copy2(f, work / f.name)
    proc = subprocess.run(
        ["make", "-C", str(kdir), f"M={work}", "W=1", "KCFLAGS=-Werror", *(extra or []),
         "modules"],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
    )
    log = proc.stdout + proc.stderr
    if proc.returncode:
        raise AssertionError(f"module build against {kdir.name} failed:\n{log}")
    ko = work / "softuart.ko"
    m = re.search(rb"vermagic=([^\0]+)", ko.read_bytes())
    return Built(ko=ko, log=log, vermagic=m.group(1).decode() if m else "")


# ---- arm64 cross build (the Pi 3/4/5 and Zero 2 run arm64 kernels) ----

CROSS = ROOT / "kernel" / "build" / "apt-cross"
DEBIAN_SOURCES = (
    "deb [arch=arm64] http://deb.debian.org/debian bookworm main\n"
    "deb [arch=arm64] http://deb.debian.org/debian-security bookworm-security main\n"
)


def _apt_arm64(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """apt-get with private package lists for arm64: the host's apt state is untouched."""
    lists, cache = CROSS / "lists", CROSS / "cache"
    for d in (lists / "partial", cache / "archives" / "partial"):
        d.mkdir(parents=True, exist_ok=True)
    sources = CROSS / "sources.list"
    sources.write_text(DEBIAN_SOURCES)
    opts = [f"-o=Dir::Etc::sourcelist={sources}", "-o=Dir::Etc::sourceparts=-",
            f"-o=Dir::State::Lists={lists}", f"-o=Dir::Cache={cache}",
            "-o=APT::Architectures::=arm64", "-q"]
    return subprocess.run(["apt-get", *opts, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def arm64_headers(amd64_kdir: Path) -> Path:
    """Debian's arm64 headers of the same kernel as @amd64_kdir, unpacked (not
    installed) and wired to the host's kbuild tools, which run on the build machine."""
    release = kernel_release(amd64_kdir).removesuffix("-amd64") + "-arm64"
    pkg = f"linux-headers-{release}"
    out = CROSS / "headers" / release / "usr" / "src" / pkg
    if (out / "Makefile").exists():
        return out
    require("apt-get", "apt")
    require("dpkg-deb", "dpkg")
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}",
                           f"linux-headers-{kernel_release(amd64_kdir)}"],
                          capture_output=True, text=True)
    version = proc.stdout.strip()
    debs = CROSS / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{pkg}_{version}_arm64.deb"))
    if not found:
        upd = _apt_arm64("update")
        got = _apt_arm64("download", f"{pkg}:arm64={version}", cwd=debs)
        found = sorted(debs.glob(f"{pkg}_{version}_arm64.deb"))
        if not found:
            raise MissingTool(f"apt-get download {pkg}:arm64={version} failed:\n"
                              f"{upd.stderr}\n{got.stderr}")
    root = CROSS / "headers" / release
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-x", str(found[0]), str(root)], check=True)
    kbuild = (amd64_kdir / "scripts").resolve().parent
    for link in ("scripts", "tools"):
        (out / link).unlink()
        (out / link).symlink_to(kbuild / link)
    return out


def build_module_arm64(kdir: Path, work: Path) -> Built:
    """Cross-compile the module for arm64 with -Werror and W=1."""
    require("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")
    return build_module(kdir, work, ["ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-"])
