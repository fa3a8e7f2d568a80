"""`pipilot doctor` against fake /proc, /sys, /dev and /boot trees."""

from __future__ import annotations

import grp
import os
from pathlib import Path

import pytest

from pipilot.cli import doctor, main
from pipilot.cli.doctor import FAIL, PASS, SKIP, System, parse_proc_driver, run_checks

PROC_LINE = "0: uart:softuart port:00000000 irq:0 tx:5785 rx:5786 brk:1 CTS|DSR|CD"


def write(root: Path, path: str, text: str) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def pi_tree(root: Path, *, serial0: str = "ttyAMA0", cmdline: str = "root=/dev/mmcblk0p2",
            proc: str | None = PROC_LINE, config: str = "dtoverlay=disable-bt\n") -> System:
    write(root, "/proc/device-tree/model", "Raspberry Pi 3 Model B Plus Rev 1.3\0")
    write(root, "/proc/cmdline", cmdline)
    write(root, "/boot/firmware/config.txt", config)
    (root / "dev").mkdir(exist_ok=True)
    os.symlink(serial0, root / "dev" / "serial0")
    (root / "sys/module/softuart").mkdir(parents=True)
    for name, value in [("tx_late_aborts", "0"), ("tx_dropped", "0"),
                        ("rx_missed_edges", "2"), ("rx_rebuilt_pairs", "1"),
                        ("rx_false_starts", "0"),
                        ("softuart_line", "gpio")]:
        write(root, f"/sys/class/tty/ttySOFT0/{name}", value + "\n")
    if proc is not None:
        write(root, "/proc/tty/driver/softuart", "serinfo:1.0 driver revision:\n" + proc + "\n")
    write(root, "/dev/ttySOFT0", "")
    os.chmod(root / "dev/ttySOFT0", 0o660)
    return System(root=root, uid=0, groups=())


@pytest.fixture(autouse=True)
def node_group(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Group name the fake device nodes report (no chown needed, so no root)."""
    wanted = {"name": "dialout"}
    real = grp.getgrgid

    def getgrgid(gid: int) -> grp.struct_group:
        g = real(gid)
        return grp.struct_group((wanted["name"], g.gr_passwd, gid, g.gr_mem))

    monkeypatch.setattr(doctor.grp, "getgrgid", getgrgid)
    return wanted


def dialout_gid() -> int:
    try:
        return grp.getgrnam("dialout").gr_gid
    except KeyError:
        pytest.fail("these tests need a dialout group (Debian base system)")


def by_name(checks: list) -> dict[str, tuple[str, str]]:
    return {c.name: (c.status, c.detail) for c in checks}


def test_parses_the_serial_core_proc_file() -> None:
    ports = parse_proc_driver("serinfo:1.0 driver revision:\n" + PROC_LINE + "\n"
                              "1: uart:softuart port:00000000 irq:0 tx:1 rx:9 fe:3 pe:1 oe:2\n")
    assert ports[0] == {"tx": 5785, "rx": 5786, "fe": 0, "pe": 0, "brk": 1, "oe": 0}
    assert ports[1]["fe"] == 3 and ports[1]["pe"] == 1 and ports[1]["oe"] == 2


def test_healthy_pi_passes_everything(tmp_path: Path) -> None:
    checks = by_name(run_checks(pi_tree(tmp_path)))
    assert {s for s, _ in checks.values()} == {PASS}
    assert "frame 0 parity 0 overrun 0" in checks["ttySOFT0 counters"][1]
    assert "rx_missed_edges 2" in checks["ttySOFT0 counters"][1]
    assert "rx_rebuilt_pairs 1" in checks["ttySOFT0 counters"][1]


def test_each_pi_pitfall_fails_with_its_fix(tmp_path: Path) -> None:
    sys_ = pi_tree(tmp_path, serial0="ttyS0", cmdline="console=serial0,115200 console=tty1",
                   proc=PROC_LINE.replace("brk:1", "fe:4 brk:1"), config="")
    checks = by_name(run_checks(sys_))
    assert checks["console on serial0"][0] == FAIL
    assert "console=serial0" in checks["console on serial0"][1]
    assert checks["serial0 is the PL011"][0] == FAIL
    assert "dtoverlay=disable-bt" in checks["serial0 is the PL011"][1]
    assert checks["ttySOFT0 counters"][0] == FAIL
    assert "frame 4" in checks["ttySOFT0 counters"][1]


def test_device_node_outside_dialout_fails(tmp_path: Path, node_group: dict[str, str]) -> None:
    sys_ = pi_tree(tmp_path)
    node_group["name"] = "root"
    checks = by_name(run_checks(sys_))
    assert checks["/dev/ttySOFT0 permissions"][0] == FAIL
    assert "99-softuart.rules" in checks["/dev/ttySOFT0 permissions"][1]


def test_counters_without_root_say_what_is_missing(tmp_path: Path) -> None:
    checks = by_name(run_checks(pi_tree(tmp_path, proc=None)))
    assert checks["ttySOFT0 counters"][0] == PASS
    assert "need root" in checks["ttySOFT0 counters"][1]


def test_non_pi_without_module_skips_pi_checks(tmp_path: Path) -> None:
    checks = by_name(run_checks(System(root=tmp_path, uid=0, groups=())))
    assert checks["Raspberry Pi"][0] == SKIP
    assert checks["console on serial0"][0] == SKIP
    assert checks["serial0 is the PL011"][0] == SKIP
    assert checks["softuart module"][0] == FAIL
    assert "modprobe" in checks["softuart module"][1]


def test_module_loaded_but_no_ports_points_at_the_overlay(tmp_path: Path) -> None:
    (tmp_path / "sys/module/softuart").mkdir(parents=True)
    checks = by_name(run_checks(System(root=tmp_path, uid=0, groups=())))
    assert checks["softuart module"][0] == FAIL
    assert "overlay" in checks["softuart module"][1]


def test_dialout_membership(tmp_path: Path) -> None:
    gid = dialout_gid()
    out = by_name(run_checks(System(root=tmp_path, uid=1000, groups=(100,))))
    assert out["dialout group"][0] == FAIL
    assert "usermod -aG dialout" in out["dialout group"][1]
    ok = by_name(run_checks(System(root=tmp_path, uid=1000, groups=(100, gid))))
    assert ok["dialout group"][0] == PASS


def test_runs_on_this_machine(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["doctor"])
    out = capsys.readouterr().out.splitlines()
    assert rc in (0, 1)
    assert out and all(line.split()[0] in (PASS, FAIL, SKIP) for line in out)
    assert any("softuart module" in line for line in out)
