"""The overlay, dkms.conf and udev rule agree with the module they ship."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from softuart_kbuild import MODULE_SRC

MAIN_C = (MODULE_SRC / "softuart_main.c").read_text()


def tool(cmd: str) -> str:
    path = shutil.which(cmd)
    if path is None:
        pytest.fail(f"'{cmd}' not found: install the Debian package 'device-tree-compiler'")
    return path


def fdtget(dtbo: Path, node: str, prop: str, *, hex_cells: bool = False) -> str:
    args = [tool("fdtget"), *(["-t", "x"] if hex_cells else []), str(dtbo), node, prop]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()


def test_overlay_compiles_cleanly_and_binds_the_module(tmp_path: Path) -> None:
    dtbo = tmp_path / "softuart.dtbo"
    proc = subprocess.run([tool("dtc"), "-@", "-I", "dts", "-O", "dtb", "-o", str(dtbo),
                           str(MODULE_SRC / "softuart-overlay.dts")],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    node = "/fragment@1/__overlay__/softuart0"
    compatible = fdtget(dtbo, node, "compatible")
    assert f'.compatible = "{compatible}"' in MAIN_C
    assert fdtget(dtbo, node, "tx-gpios", hex_cells=True).split()[1:] == ["11", "0"]  # GPIO17
    assert fdtget(dtbo, node, "rx-gpios", hex_cells=True).split()[1:] == ["1b", "0"]  # GPIO27
    assert fdtget(dtbo, node, "current-speed") == "9600"
    assert fdtget(dtbo, "/fragment@2/__overlay__", "softuart0") == "/softuart0"
    assert 'of_alias_get_id(dev->of_node, "softuart")' in (
        MODULE_SRC / "softuart_gpio.c").read_text()
    # Both pins stay inputs with pull-ups until the driver takes TX at mark.
    assert fdtget(dtbo, "/fragment@0/__overlay__/softuart_pins", "brcm,function") == "0 0"
    assert fdtget(dtbo, "/fragment@0/__overlay__/softuart_pins", "brcm,pull") == "2 2"


def test_dkms_builds_the_kbuild_module() -> None:
    conf = (MODULE_SRC / "dkms.conf").read_text()
    kbuild = (MODULE_SRC / "Kbuild").read_text()
    name = re.search(r'BUILT_MODULE_NAME\[0\]="(\w+)"', conf)
    assert name and f"obj-m += {name.group(1)}.o" in kbuild
    assert re.search(r'PACKAGE_NAME="softuart"', conf)


def test_udev_rule_matches_the_device_name() -> None:
    rule = (MODULE_SRC / "99-softuart.rules").read_text()
    assert '.dev_name	= "ttySOFT"' in MAIN_C
    assert re.search(r'KERNEL=="ttySOFT\[0-9\]\*".*GROUP="dialout"', rule)
