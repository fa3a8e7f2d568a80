"""Token files: made 0600 at once, refused when others can read them, one line when unusable;
the token shown once to a terminal and never to a log."""

from __future__ import annotations

import os
import select
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipilot.cli import main
from pipilot.errors import ConfigError
from pipilot.link.virtual import VirtualLink
from pipilot.server import auth
from pipilot.server.app import ServerConfig
from pipilot.server.settings import login_line

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("PIPILOT_TOKEN", raising=False)


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 1, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("pipilot: error: "), err
    return lines[0]


def test_token_file_is_created_0600_in_a_private_folder(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "pipilot" / "token"
    old = os.umask(0)   # the most permissive umask must not widen it
    try:
        token, source = auth.resolve_token(None, env={}, path=path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text() == token + "\n" and str(path) in source
    assert [p.name for p in path.parent.iterdir()] == ["token"]   # no temporary left
    assert auth.resolve_token(None, env={}, path=path) == (token, str(path))


def test_concurrent_first_starts_agree_on_one_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    tokens: list[str] = []
    go = threading.Barrier(8)

    def start() -> None:
        go.wait()
        tokens.append(auth.resolve_token(None, env={}, path=path)[0])

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(tokens) == 8 and len(set(tokens)) == 1
    assert path.read_text().strip() == tokens[0]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_token_file_others_can_read_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "token"
    path.write_text("secret-token\n")
    path.chmod(mode)
    with pytest.raises(ConfigError) as exc:
        auth.resolve_token(None, env={}, path=path)
    assert f"chmod 600 {path}" in str(exc.value)
    assert "secret-token" not in str(exc.value)


def test_token_file_that_cannot_be_read_is_one_line(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    xdg = tmp_path / "xdg"
    (xdg / "pipilot" / "token").mkdir(parents=True)   # a folder where the file should be
    with pytest.raises(ConfigError, match="token file"):
        auth.resolve_token(None, env={})
    line = one_line_error(["fly", "--sbus-port", "/dev/null"], capsys)
    assert "token" in line


def test_token_file_that_cannot_be_created_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocker))
    with pytest.raises(ConfigError, match="cannot create"):
        auth.resolve_token(None, env={})
    line = one_line_error(["fly", "--sbus-port", "/dev/null"], capsys)
    assert "cannot create" in line and "--token" in line


def test_token_file_with_garbage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"\xff\xfe not a token\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="does not hold a token"):
        auth.resolve_token(None, env={}, path=path)


def test_login_line_shows_the_token_only_to_a_terminal(tmp_path: Path) -> None:
    cfg = ServerConfig(host="127.0.0.1", port=0, token="s3cret")
    shown = login_line(cfg, 8080, "--token", terminal=True)
    assert "http://127.0.0.1:8080/?token=s3cret" in shown
    stored = f"generated, stored in {tmp_path}/token"
    for source, where in [("--token", "--token"), ("PIPILOT_TOKEN", "$PIPILOT_TOKEN"),
                          ("config", "[server] token"), (stored, f"{tmp_path}/token"),
                          (f"{tmp_path}/token", f"{tmp_path}/token")]:
        hidden = login_line(cfg, 8080, source, terminal=False)
        assert "s3cret" not in hidden, hidden
        assert "http://127.0.0.1:8080/" in hidden and where in hidden, hidden
    open_cfg = ServerConfig(host="127.0.0.1", port=0, token="")
    assert "http://127.0.0.1:8080/" in login_line(open_cfg, 8080, "--token", terminal=False)


def test_fly_prints_the_token_once_on_a_terminal(tmp_path: Path) -> None:
    """As `make sim` in a terminal: the login URL with its token, to a tty."""
    master, slave = os.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path)}
    cfg = tmp_path / "c.toml"
    cfg.write_text("[realtime]\nmlockall = false\n")
    with VirtualLink(callback=lambda data, times: None) as link:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipilot", "fly", "--sbus-port", link.path, "--config",
             str(cfg), "--http-port", "0", "--token", "tty-token"],
            env=env, stdout=slave, stderr=subprocess.PIPE, text=True)
        os.close(slave)
        seen = b""
        try:
            deadline = time.monotonic() + 60
            while b"\n" not in seen and time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.5)
                if ready:
                    seen += os.read(master, 4096)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)
            os.close(master)
    first = seen.decode(errors="replace").splitlines()[0]
    assert "?token=tty-token" in first, seen
    assert seen.count(b"tty-token") == 1
