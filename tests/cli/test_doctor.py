"""`pipilot doctor` against fake /proc, /sys, /dev and /boot trees."""

from __future__ import annotations

import grp
import os
from pathlib import Path
from typing import Any

import pytest

from pipilot.cli import doctor, main
from pipilot.cli.doctor import FAIL, PASS, SKIP, System, parse_proc_driver, run_checks
from pipilot.core.clock import VirtualClock
from pipilot.sensors.bus import SensorError
from pipilot.sim.flowdeck import (
    Pmw3901Model,
    SensorTruth,
    SimI2cBus,
    SimSpiBus,
    Vl53l1xModel,
)
from pipilot.sim.mpu6050 import ImuTruth, Mpu6050Model

PROC_LINE = "0: uart:softuart port:00000000 irq:0 tx:5785 rx:5786 brk:1 CTS|DSR|CD"


def write(root: Path, path: str, text: str) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def pi_tree(root: Path, *, serial0: str = "ttyAMA0", cmdline: str = "root=/dev/mmcblk0p2",
            proc: str | None = PROC_LINE, config: str = "dtoverlay=disable-bt\n",
            buses: bool = True, product_id: int = 0x49, model_id: int = 0xEACC) -> System:
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
    if buses:
        write(root, "/dev/spidev0.0", "")
        write(root, "/dev/i2c-1", "")
    return System(root=root, uid=0, groups=(), **flowdeck(product_id, model_id))


def flowdeck(product_id: int = 0x49, model_id: int = 0xEACC,
             imu_id: int | None = 0x68) -> dict[str, Any]:
    """Bus openers reaching register models instead of /dev; the I2C bus carries an
    MPU-6050 at 0x68 too unless ``imu_id`` is None. Time is virtual."""
    clock = VirtualClock()

    def i2c(bus: int) -> SimI2cBus:
        devices: dict[int, Any] = {0x29: Vl53l1xModel(SensorTruth, clock, model_id=model_id)}
        if imu_id is not None:
            devices[0x68] = Mpu6050Model(ImuTruth, clock, who_am_i=imu_id)
        return SimI2cBus(devices)

    return {
        "open_spi": lambda dev: SimSpiBus(Pmw3901Model(SensorTruth, clock,
                                                       product_id=product_id)),
        "open_i2c": i2c, "now": clock.now, "sleep": clock.advance,
    }


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


def test_flow_deck_passes_with_its_buses_and_ids(tmp_path: Path) -> None:
    checks = by_name(run_checks(pi_tree(tmp_path)))
    assert checks["SPI (flow sensor)"] == (PASS, "/dev/spidev0.0 present")
    assert checks["PMW3901"] == (PASS, "product id 0x49 on /dev/spidev0.0")
    assert checks["I2C (range sensor)"] == (PASS, "/dev/i2c-1 present")
    assert checks["VL53L1X"] == (PASS, "model id 0xEACC at 0x29 on /dev/i2c-1")


def test_pi_without_spi_and_i2c_names_the_config_lines(tmp_path: Path) -> None:
    checks = by_name(run_checks(pi_tree(tmp_path, buses=False), flowdeck=True))
    assert checks["SPI (flow sensor)"] == (FAIL, "no /dev/spidev0.0: enable SPI with "
                                           "dtparam=spi=on in /boot/firmware/config.txt "
                                           "and reboot")
    assert checks["I2C (range sensor)"][0] == FAIL
    assert "dtparam=i2c_arm=on" in checks["I2C (range sensor)"][1]
    assert checks["PMW3901"] == (SKIP, "needs /dev/spidev0.0")
    assert checks["VL53L1X"] == (SKIP, "needs /dev/i2c-1")


def test_enabled_but_not_rebooted(tmp_path: Path) -> None:
    sys_ = pi_tree(tmp_path, buses=False,
                   config="dtoverlay=disable-bt\ndtparam=audio=on,spi=on\ndtparam=i2c_arm=on\n")
    checks = by_name(run_checks(sys_, flowdeck=True))
    assert checks["SPI (flow sensor)"][0] == FAIL and "reboot" in checks["SPI (flow sensor)"][1]
    assert "has dtparam=spi=on" in checks["SPI (flow sensor)"][1]
    assert "has dtparam=i2c_arm=on" in checks["I2C (range sensor)"][1]


def test_wrong_ids_say_what_answered(tmp_path: Path) -> None:
    checks = by_name(run_checks(pi_tree(tmp_path, product_id=0x12, model_id=0x1234), flowdeck=True))
    assert checks["PMW3901"] == (FAIL, "/dev/spidev0.0: no PMW3901: product id 0x12 / inverse "
                                       "0xED, expected 0x49 / 0xB6")
    assert checks["VL53L1X"] == (FAIL, "/dev/i2c-1: no VL53L1X at 0x29: model id 0x1234, "
                                       "expected 0xEACC")


def test_a_bus_that_cannot_be_opened_is_a_failure_line(tmp_path: Path) -> None:
    sys_ = pi_tree(tmp_path)

    def refuse(dev: str) -> Any:
        raise SensorError(dev, "the spidev module is not installed: pip install "
                               "'pipilot[sensors]'")

    sys_.open_spi = refuse
    checks = by_name(run_checks(sys_, flowdeck=True))
    assert checks["PMW3901"] == (FAIL, "/dev/spidev0.0: the spidev module is not installed: "
                                       "pip install 'pipilot[sensors]'")


def test_non_pi_without_buses_skips_the_flow_deck(tmp_path: Path) -> None:
    checks = by_name(run_checks(System(root=tmp_path, uid=0, groups=())))
    assert checks["SPI (flow sensor)"][0] == SKIP and checks["I2C (range sensor)"][0] == SKIP
    assert checks["PMW3901"][0] == SKIP and checks["VL53L1X"][0] == SKIP


def test_imu_passes_with_its_id_wake_and_one_g(tmp_path: Path) -> None:
    checks = by_name(run_checks(pi_tree(tmp_path), imu=True))
    assert checks["I2C (IMU)"] == (PASS, "/dev/i2c-1 present")
    status, detail = checks["MPU-6050"]
    assert status == PASS and detail.startswith("WHO_AM_I 0x68 at 0x68 on /dev/i2c-1, awake, ")
    assert " 1.0" in detail and "g, 30 deg C" in detail


def test_a_wrong_imu_id_fails_with_what_answered_when_required(tmp_path: Path) -> None:
    sys_ = pi_tree(tmp_path)
    sys_.open_i2c = flowdeck(imu_id=0x72)["open_i2c"]
    checks = by_name(run_checks(sys_, imu=True))
    assert checks["MPU-6050"] == (FAIL, "/dev/i2c-1: no MPU-6050 at 0x68: WHO_AM_I 0x72, "
                                        "expected 0x68")


def test_a_missing_imu_is_skipped_unless_required(tmp_path: Path) -> None:
    sys_ = pi_tree(tmp_path)
    sys_.open_i2c = flowdeck(imu_id=None)["open_i2c"]
    optional = by_name(run_checks(sys_))
    assert optional["MPU-6050"][0] == SKIP and "--imu" in optional["MPU-6050"][1]
    required = by_name(run_checks(sys_, imu=True))
    assert required["MPU-6050"][0] == FAIL
    assert "MPU-6050 at 0x68: read of 0x75 failed: Remote I/O error" in required["MPU-6050"][1]
    assert "AD0" in required["MPU-6050"][1]


def test_pi_without_i2c_fails_the_imu_with_the_fix_when_required(tmp_path: Path) -> None:
    checks = by_name(run_checks(pi_tree(tmp_path, buses=False), imu=True))
    assert checks["I2C (IMU)"][0] == FAIL and "dtparam=i2c_arm=on" in checks["I2C (IMU)"][1]
    assert checks["MPU-6050"] == (SKIP, "needs /dev/i2c-1")


def test_a_craft_without_a_flow_deck_is_not_failed_for_it(tmp_path: Path) -> None:
    checks = run_checks(pi_tree(tmp_path, buses=False))
    deck = by_name(checks)
    assert deck["SPI (flow sensor)"][0] == SKIP
    assert "dtparam=spi=on" in deck["SPI (flow sensor)"][1]      # the fix is still named
    assert "--flowdeck" in deck["SPI (flow sensor)"][1]
    assert deck["I2C (range sensor)"][0] == SKIP
    names = {"SPI (flow sensor)", "I2C (range sensor)", "PMW3901", "VL53L1X"}
    assert all(c.status != FAIL for c in checks if c.name in names)
