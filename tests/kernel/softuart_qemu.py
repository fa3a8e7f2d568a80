"""Boot Debian's kernel under QEMU with the soft-UART module and its loopback test.

Steps, all cached under kernel/build/ (gitignored):
1. ``apt-get download`` the linux-image package whose version matches the
   installed headers exactly (so the module's vermagic matches), and extract
   its vmlinuz with ``dpkg-deb -x``. Nothing is installed on this machine.
2. Build the module against those headers, and the guest test program with
   ``gcc -static``.
3. Pack busybox-static, /init, the module and the test program into a cpio
   initramfs.
4. Boot with ``qemu-system-x86_64 -nographic`` under TCG (SOFTUART_QEMU_ACCEL=kvm to change),
   console on ttyS0, bounded by a timeout; the guest prints
   ``SOFTUART-QEMU: PASS`` or ``SOFTUART-QEMU: FAIL ...`` and powers off.

Run by hand: ``python tests/kernel/softuart_qemu.py [6.1|6.12]``;
``--prepare [series...]`` only fetches the kernel images (``make test`` does
this before pytest).
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from softuart_kbuild import (
    HEADERS,
    MODULE_SRC,
    ROOT,
    MissingTool,
    arm64_headers,
    build_module,
    headers_for,
    kernel_release,
    require,
)

BUILD = ROOT / "kernel" / "build"
GUEST = MODULE_SRC / "qemu"
BOOT_TIMEOUT_S = 170


@dataclass
class QemuRun:
    accel: str
    seconds: float
    console: str

    @property
    def result(self) -> str:
        for line in self.console.splitlines():
            if line.startswith("SOFTUART-QEMU: ") and not line.startswith("SOFTUART-QEMU: booted"):
                return line.removeprefix("SOFTUART-QEMU: ").strip()
        return "NO RESULT"


def _package_version(pkg: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                         capture_output=True, text=True)
    if out.returncode or not out.stdout:
        raise MissingTool(f"install the Debian package '{pkg}'")
    return out.stdout.strip()


def kernel_image(release: str) -> Path:
    """vmlinuz of linux-image-<release>, downloaded and unpacked, never installed."""
    dest = BUILD / "qemu" / release / "vmlinuz"
    if dest.exists():
        return dest
    require("apt-get", "apt")
    require("dpkg-deb", "dpkg")
    pkg = f"linux-image-{release}"
    version = _package_version(f"linux-headers-{release}")
    debs = BUILD / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{pkg}_{version.replace(':', '%3a')}_*.deb"))
    if not found:
        proc = subprocess.run(["apt-get", "download", f"{pkg}={version}"], cwd=debs,
                              capture_output=True, text=True, timeout=600)
        found = sorted(debs.glob(f"{pkg}_*.deb"))
        if proc.returncode or not found:
            raise MissingTool(f"apt-get download {pkg}={version} failed: {proc.stderr.strip()}")
    unpack = BUILD / "qemu" / release / "image"
    shutil.rmtree(unpack, ignore_errors=True)
    unpack.mkdir(parents=True)   # dpkg-deb makes the last directory, not its parents
    subprocess.run(["dpkg-deb", "-x", str(found[-1]), str(unpack)], check=True)
    vmlinuz = unpack / "boot" / f"vmlinuz-{release}"
    if not vmlinuz.exists():
        raise MissingTool(f"{found[-1].name} has no boot/vmlinuz-{release}")
    shutil.copy2(vmlinuz, dest)
    shutil.rmtree(unpack)
    return dest


def _cpio(root: Path, out: Path) -> None:
    require("cpio", "cpio")
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    proc = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root,
                          input="\n".join([".", *names]).encode(), capture_output=True)
    if proc.returncode:
        raise RuntimeError(f"cpio failed: {proc.stderr.decode()}")
    out.write_bytes(gzip.compress(proc.stdout, compresslevel=1))


def initramfs(ko: Path, work: Path) -> Path:
    """busybox + /init + the module + the static loopback test, as a gzip'd cpio."""
    busybox = Path("/bin/busybox")
    if not busybox.exists() or b"/ld-linux" in busybox.read_bytes():
        raise MissingTool("no static /bin/busybox: install the Debian package 'busybox-static'")
    gcc = require("gcc", "gcc")
    root = work / "root"
    shutil.rmtree(root, ignore_errors=True)
    (root / "bin").mkdir(parents=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    shutil.copy2(GUEST / "init", root / "init")
    (root / "init").chmod(0o755)
    shutil.copy2(ko, root / "softuart.ko")
    proc = subprocess.run(
        [gcc, "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(root / "loopback_test"),
         str(GUEST / "loopback_test.c")], capture_output=True, text=True)
    if proc.returncode:
        hint = " (static libc: install the Debian package 'libc6-dev')"
        raise RuntimeError(f"guest test program did not build{hint}:\n{proc.stderr}")
    out = work / "initrd.cpio.gz"
    _cpio(root, out)
    return out


def _accel() -> str:
    """TCG by default: the same everywhere, and fast enough (about 20 s a boot)."""
    return os.environ.get("SOFTUART_QEMU_ACCEL", "tcg")


def boot(vmlinuz: Path, initrd: Path, accel: str, timeout: float = BOOT_TIMEOUT_S) -> QemuRun:
    qemu = require("qemu-system-x86_64", "qemu-system-x86")
    cmd = [
        qemu, "-accel", accel, "-m", "256", "-smp", "1", "-nographic", "-no-reboot",
        "-kernel", str(vmlinuz), "-initrd", str(initrd),
        "-append", "console=ttyS0 panic=-1 loglevel=4 rdinit=/init",
        "-nic", "none",
    ]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout)
        console = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace")
        console = out + f"\nSOFTUART-QEMU: FAIL timeout after {timeout:.0f} s\n"
    return QemuRun(accel=accel, seconds=time.monotonic() - t0, console=console)


def prepare(series: str) -> Path:
    """Fetch what the tests of @series need from the archive (the kernel image to
    boot, the arm64 headers to cross-build against); ``make test`` runs this
    before pytest, so downloads are not a test's time. Returns the image."""
    kdir = headers_for(HEADERS[series])
    arm64_headers(kdir)
    return kernel_image(kernel_release(kdir))


def run(series: str, ko: Path | None = None) -> QemuRun:
    """Boot @series with the module @ko (built here against its headers if None)."""
    kdir = headers_for(HEADERS[series])
    release = kernel_release(kdir)
    work = BUILD / "qemu" / release
    work.mkdir(parents=True, exist_ok=True)
    vmlinuz = kernel_image(release)
    if ko is None:
        ko = build_module(kdir, work / "module").ko
    initrd = initramfs(ko, work)
    return boot(vmlinuz, initrd, _accel())


if __name__ == "__main__":
    if sys.argv[1:2] == ["--prepare"]:
        for series in sys.argv[2:] or sorted(HEADERS):
            print(prepare(series))
        sys.exit(0)
    r = run(sys.argv[1] if len(sys.argv) > 1 else "6.1")
    print(r.console)
    print(f"[{r.accel}, {r.seconds:.1f} s] {r.result}")
    sys.exit(0 if r.result == "PASS" else 1)
