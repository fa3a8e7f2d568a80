"""Bad input, from a file or the command line: one clear line, a nonzero exit, never a traceback.

Each finding is reproduced as it was reported (a config that is not UTF-8 or
holds a 400- or 5000-digit integer, a token file that cannot be read or made,
``--plot`` into a missing folder, ``--duration nan``, ``--wind nan,0``,
``--baud 0``, ``--sbus-port ""``, ``tcp:bad``, the "join group root" hint, a
world-readable token file, the token printed into a log); then the same kind
of input for the other commands and options.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipilot.cli import _checks, main
from pipilot.cli._output import json_text
from pipilot.cli._telemetry_common import to_json
from pipilot.core import config as core_config
from pipilot.errors import ConfigError, LinkError
from pipilot.link.portspec import parse_tcp
from pipilot.link.serialport import access_hint, permission_hint
from pipilot.server.settings import server_config

ROOT = Path(__file__).resolve().parents[1]
TINY_MISSION = """
name = "tiny"
[[steps]]
action = "arm"
[[steps]]
action = "climb"
throttle = 0.54
seconds = 1
[[steps]]
action = "land"
seconds = 1
[[steps]]
action = "disarm"
"""


@pytest.fixture(autouse=True)
def _config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("PIPILOT_TOKEN", raising=False)


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI in process: exit 1 and exactly one `pipilot: error:` line on stderr."""
    return one_line_error_and_output(argv, capsys)[0]


def one_line_error_and_output(argv: list[str], capsys: pytest.CaptureFixture[str]
                              ) -> tuple[str, str]:
    """As `one_line_error`, and what the command printed on stdout before it."""
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 1, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("pipilot: error: "), err
    return lines[0], out


def run_cli(*argv: str, timeout: float = 60, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "pipilot", *argv], env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pipilot: error: "), r.stderr
    return lines[0]


# -- the core configuration file -----------------------------------------------------

@pytest.mark.parametrize("body, words", [
    (b'[link]\nport = "/dev/serial\xff0"\n', "not UTF-8"),
    (b"[link]\nperiod_ms = " + b"7" * 400 + b"\n", "link.period_ms"),
    (b"[link]\nperiod_ms = " + b"7" * 5000 + b"\n", "not valid TOML"),
    (b"[watchdog]\nstale_ms = " + b"9" * 400 + b"\n", "watchdog.stale_ms"),
    (b"[sources.pilot]\npriority = " + b"9" * 400 + b"\n", "sources.pilot.priority"),
    (b"[sources.pilot]\ntimeout_s = " + b"9" * 400 + b"\n", "sources.pilot.timeout_s"),
    (b"[link]\nperiod_ms = nan\n", "link.period_ms"),
    (b"[failsafe]\ndescent_time_s = inf\n", "failsafe.descent_time_s"),
    (b"[limits]\nthrottle_slew = -inf\n", "limits.throttle_slew"),
    (b"[sources.pilot]\ntimeout_s = nan\n", "sources.pilot.timeout_s"),
    (b"[sources.extra]\npriority = 99999999999999999999\n", "sources.extra.priority"),
    (b"[server]\nrate = nan\n", "server.rate"),
    (b"[channels.throttle]\nmin = " + b"1" * 400 + b"\n", "channels.throttle.min"),
    (b"[link]\nperiod_ms = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
])
def test_config_file_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         body: bytes, words: str) -> None:
    cfg = tmp_path / "pipilot.toml"
    cfg.write_bytes(body)
    with pytest.raises(ConfigError, match=words.replace("[", r"\[")):
        core_config.load(cfg)
    line = one_line_error(["fly", "--config", str(cfg), "--headless"], capsys)
    assert words in line and len(line) < 400


@pytest.mark.parametrize("body, words", [
    (b"[server]\nport = 80\xfe\n", "not UTF-8"),
    (b"[server]\nheartbeat_timeout_ms = " + b"3" * 5000 + b"\n", "not valid TOML"),
    (b"[server]\nburst = " + b"4" * 400 + b"\n", "server.burst"),
    (b"[server]\nupdate_hz = inf\n", "server.update_hz"),
])
def test_server_table_errors_are_config_errors(tmp_path: Path, body: bytes, words: str) -> None:
    cfg = tmp_path / "pipilot.toml"
    cfg.write_bytes(body)
    args = argparse.Namespace(http_host=None, http_port=None, token="t")
    with pytest.raises(ConfigError, match=words):
        server_config(args, core_config.load(cfg).server, env={})


# -- mission run: outputs checked before anything flies ------------------------------

@pytest.mark.parametrize("plot, words", [
    ("missing-folder/out.svg", "does not exist"),
    ("out.txt", "must end in"),
    ("", "empty"),
    (".", "folder"),
])
def test_mission_plot_is_checked_before_the_flight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str],
                                                   plot: str, words: str) -> None:
    monkeypatch.chdir(tmp_path)
    mission = tmp_path / "tiny.toml"
    mission.write_text(TINY_MISSION)
    line, out = one_line_error_and_output(
        ["mission", "run", str(mission), "--sim", "--plot", plot], capsys)
    assert "--plot" in line and words in line
    # refused before anything flew (a wall-clock bound could not tell: the simulated
    # flight takes a few seconds), so the mission never printed a step
    assert out == "", out


def test_mission_summary_survives_a_plot_that_fails(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Should the figure fail after the flight (disk full, folder removed), the summary stays."""
    import pipilot.mission.plot as plot

    def fail(*_args: object, **_kw: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plot, "plot_mission", fail)
    mission = tmp_path / "tiny.toml"
    mission.write_text(TINY_MISSION)
    code = main(["mission", "run", str(mission), "--sim", "--json",
                 "--plot", str(tmp_path / "out.svg")])
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert code == 1 and summary["completed"] and "No space left" in summary["plot_error"]
    assert "not written" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, words", [
    (["--sbus-port", ""], "--sbus-port"),
    (["--telemetry-port", ""], "--telemetry-port"),
    (["--telemetry-port", "tcp:bad"], "tcp:HOST:PORT"),
    (["--config", ""], "--config"),
])
def test_mission_run_port_options(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  argv: list[str], words: str) -> None:
    mission = tmp_path / "tiny.toml"
    mission.write_text(TINY_MISSION)
    assert words in one_line_error(["mission", "run", str(mission), *argv], capsys)


# -- numeric options ------------------------------------------------------------------

def test_sim_duration_nan_is_refused() -> None:
    line = assert_one_line(run_cli("sim", "--headless", "--duration", "nan", timeout=120))
    assert "--duration" in line


@pytest.mark.parametrize("wind", ["nan,0", "0,inf", "0,0,nan", "-inf,0"])
def test_sim_wind_nan_is_refused(wind: str) -> None:
    r = run_cli("sim", "--headless", "--duration", "0.5", "--json", f"--wind={wind}",
                timeout=120)
    assert "--wind" in assert_one_line(r)
    assert "NaN" not in r.stdout


@pytest.mark.parametrize("argv, words", [
    (["--duration", "inf"], "--duration"),
    (["--duration", "-1"], "--duration"),
    (["--duration", "0"], "--duration"),
    (["--duration", "1e300"], "--duration"),
    (["--period-ms", "nan"], "--period-ms"),
    (["--period-ms", "-7"], "--period-ms"),
    (["--period-ms", "3"], "--period-ms"),
    (["--mount-tilt", "nan,0"], "--mount-tilt"),
    (["--seed", "-1"], "--seed"),
    (["--hover-throttle", "0"], "--hover-throttle"),
    (["--hover-throttle", "1"], "--hover-throttle"),
    (["--hover-throttle", "nan"], "--hover-throttle"),
    (["--http-port", "-1"], "--http-port"),
    (["--http-port", "70000"], "--http-port"),
    (["--http-host", ""], "--http-host"),
])
def test_sim_numeric_options(capsys: pytest.CaptureFixture[str], argv: list[str],
                             words: str) -> None:
    assert words in one_line_error(["sim", *argv], capsys)


def test_telemetry_baud_zero_is_refused_at_once() -> None:
    master, slave = os.openpty()
    try:
        try:
            r = run_cli("telemetry", "--port", os.ttyname(slave), "--baud", "0", timeout=30)
        except subprocess.TimeoutExpired:  # unrefused, it waits for a flight side for ever
            pytest.fail("--baud 0 was not refused: the command was still waiting after 30 s")
        assert "--baud" in assert_one_line(r) and "9600" in r.stderr
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("argv, words", [
    (["telemetry", "--port", "/dev/null", "--baud", "-9600"], "--baud"),
    (["telemetry", "--port", "/dev/null", "--baud", "12345"], "--baud"),
    (["telemetry", "--port", "/dev/null", "--duration", "nan"], "--duration"),
    (["telemetry", "--port", "/dev/null", "--duration", "-5"], "--duration"),
    (["telemetry", "--port", ""], "--port"),
    (["telemetry", "--port", "tcp:bad"], "tcp:HOST:PORT"),
    (["telemetry", "--port", "tcp:host:notaport"], "tcp:HOST:PORT"),
    (["telemetry", "--port", "tcp:127.0.0.1:70000"], "out of range"),
    (["telemetry", "--port", "tcp:127.0.0.1:0"], "out of range"),
    (["log", "record", "--port", "/dev/null", "--out", "x.opl", "--baud", "0"], "--baud"),
    (["log", "record", "--port", "tcp:bad", "--out", "x.opl"], "tcp:HOST:PORT"),
    (["log", "record", "--port", "/dev/null", "--out", "x.opl", "--duration", "inf"],
     "--duration"),
    (["log", "record", "--port", "/dev/null", "--out", "no/such/folder/x.opl"],
     "does not exist"),
    (["log", "record", "--port", "/dev/null", "--out", "x.txt"], ".opl"),
    (["link-test", "--port", "/dev/null", "--duration", "nan"], "--duration"),
    (["link-test", "--port", "/dev/null", "--duration", "0"], "--duration"),
    (["link-test", "--port", "/dev/null", "--period-ms", "inf"], "--period-ms"),
    (["link-test", "--port", ""], "--port"),
    (["fly", "--sbus-port", ""], "--sbus-port"),
    (["fly", "--sbus-port", " "], "--sbus-port"),
    (["fly", "--config", ""], "--config"),
    (["fly", "--sbus-port", "/dev/null", "--telemetry-port", ""], "--telemetry-port"),
    (["fly", "--sbus-port", "/dev/null", "--telemetry-port", "tcp:x"], "tcp:HOST:PORT"),
    (["fly", "--sbus-port", "/dev/null", "--telemetry-port", "/dev/null",
      "--telemetry-baud", "0"], "--telemetry-baud"),
    (["fly", "--sbus-port", "/dev/null", "--http-port", "-1"], "--http-port"),
])
def test_bad_options_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str], argv: list[str],
                                  words: str) -> None:
    monkeypatch.chdir(tmp_path)
    line = one_line_error(argv, capsys)
    assert words in line, line
    assert "invalid literal" not in line


def test_tcp_specs_name_the_expected_form() -> None:
    for bad in ("tcp:bad", "tcp:host:notaport", "tcp:h:0", "tcp:h:65536", "tcp:h:-1",
                "tcp:h:", "tcp:a:b:1", "tcp:h o:1"):
        with pytest.raises(LinkError, match=r"expected tcp:HOST:PORT"):
            parse_tcp(bad)
    assert parse_tcp("tcp::5760") == ("127.0.0.1", 5760)
    assert parse_tcp("tcp:[::1]:5760") == ("::1", 5760)
    assert parse_tcp("tcp:fc.local:65535") == ("fc.local", 65535)


async def test_open_stream_with_a_bad_tcp_spec_is_one_link_error() -> None:
    from pipilot.link.stream import open_stream

    for bad in ("tcp:bad", "tcp:127.0.0.1:99999"):
        with pytest.raises(LinkError, match="expected tcp:HOST:PORT"):
            await open_stream(bad)


def test_check_helpers_refuse_non_finite_numbers() -> None:
    for v in (math.nan, math.inf, -math.inf, 10**400):
        with pytest.raises(ConfigError):
            _checks.number("--x", v, 0, 10)   # type: ignore[arg-type]
        with pytest.raises(ConfigError):
            _checks.duration("--x", v)   # type: ignore[arg-type]
    assert _checks.duration("--x", None) is None
    assert _checks.baud("--baud", 0, "tcp:h:1") == 0   # a TCP link has no baud


# -- JSON output ----------------------------------------------------------------------

def test_json_output_is_always_valid_json() -> None:
    doc = {"a": math.nan, "b": [math.inf, 1.5], "c": {"d": -math.inf}, "e": (2, math.nan)}
    text = json_text(doc)
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": {"d": None}, "e": [2, None]}
    assert "NaN" not in text and "Infinity" not in text
    line = to_json({"t": 1.0, "values": {"x": math.nan}})
    assert json.loads(line)["values"]["x"] == "nan"


# -- the permission hint for a device of group root ----------------------------------

def test_root_only_device_hint_says_root_alone_not_join_root(tmp_path: Path) -> None:
    dev = tmp_path / "ttyS9"
    dev.write_text("")
    os.chown(dev, -1, 0)   # group root, as a node udev has no rule for
    dev.chmod(0o600)
    hint = access_hint(str(dev))
    assert "usermod" not in hint and "'root' group" not in hint, hint
    assert "root alone" in hint and "udev" in hint and "run as root" in hint
    assert "ttyS9" in hint   # the rule names the device
    dialout = permission_hint("/dev/ttyS9", _gid("dialout"), 0o660)
    assert "usermod -aG dialout" in dialout
    assert "udev" in permission_hint("/dev/ttyS9", _gid("dialout"), 0o600)


def test_doctor_names_a_root_only_node(tmp_path: Path) -> None:
    from pipilot.cli.doctor import FAIL, System, check_node

    (tmp_path / "dev").mkdir()
    node = tmp_path / "dev" / "ttySOFT0"
    node.write_text("")
    os.chown(node, -1, 0)
    node.chmod(0o600)
    c = check_node(System(root=tmp_path, uid=1000, groups=(1000,)), "ttySOFT0")
    assert c.status == FAIL
    assert "only root" in c.detail and "99-softuart.rules" in c.detail
    assert "usermod" not in c.detail


def _gid(name: str) -> int:
    import grp

    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        pytest.skip(f"no {name} group on this system")



async def test_telemetry_port_permission_denied_names_the_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The telemetry port (opened by pyserial) gets the same hint as the S.Bus port."""
    import errno

    import serial

    from pipilot.link.stream import open_serial

    dev = tmp_path / "ttyUSB7"
    dev.write_text("")
    os.chown(dev, -1, 0)
    dev.chmod(0o600)

    def refuse(*_args: object, **_kw: object) -> None:
        raise serial.SerialException(errno.EACCES, f"could not open port {dev}: denied")

    monkeypatch.setattr(serial, "Serial", refuse)
    with pytest.raises(LinkError) as exc:
        await open_serial(str(dev))
    assert "permission denied" in str(exc.value) and "root alone" in str(exc.value)
    assert "usermod" not in str(exc.value)
