import argparse

import pytest

from pipilot.core.config import from_dict
from pipilot.errors import ConfigError
from pipilot.server.settings import add_http_arguments, page_url, server_config


def server(table):
    """A config file's [server] table as `pipilot fly` reads it (the whole file checked)."""
    return from_dict({"server": table}).server


def parse(*argv):
    p = argparse.ArgumentParser()
    add_http_arguments(p)
    return p.parse_args(argv)


@pytest.fixture(autouse=True)
def _config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("PIPILOT_TOKEN", raising=False)


def test_defaults_loopback_8080_and_a_generated_token(tmp_path):
    cfg, source = server_config(parse())
    assert (cfg.host, cfg.port, cfg.heartbeat_timeout) == ("127.0.0.1", 8080, 0.3)
    assert len(cfg.token) >= 24 and str(tmp_path) in source
    again, _ = server_config(parse())
    assert again.token == cfg.token
    assert page_url(cfg, 8080) == f"http://127.0.0.1:8080/?token={cfg.token}"


def test_command_line_beats_config_and_env():
    cfg, source = server_config(parse("--http-host", "0.0.0.0", "--http-port", "9000",
                                      "--token", "abc"),
                                server({"host": "127.0.0.1", "port": 1, "token": "cfg"}),
                                env={"PIPILOT_TOKEN": "env"})
    assert (cfg.host, cfg.port, cfg.token, source) == ("0.0.0.0", 9000, "abc", "--token")
    table = server({"token": "cfg"})
    assert server_config(parse(), table, env={"PIPILOT_TOKEN": "env"})[0].token == "env"
    assert server_config(parse(), table, env={})[0].token == "cfg"


def test_config_table_is_validated_key_by_key():
    for table, key in [({"port": "80"}, "server.port"), ({"bogus": 1}, "server.bogus"),
                       ({"heartbeat_timeout_ms": 0}, "server.heartbeat_timeout_ms"),
                       ({"observers": "all"}, "server.observers"),
                       ({"update_hz": float("nan")}, "server.update_hz")]:
        with pytest.raises(ConfigError) as exc:
            server_config(parse("--token", "t"), server(table))
        assert exc.value.key == key
    cfg, _ = server_config(parse("--token", "t"),
                           server({"heartbeat_timeout_ms": 500, "observers": "open"}))
    assert cfg.heartbeat_timeout == 0.5 and cfg.observers_open


def test_no_token_off_loopback_is_refused():
    with pytest.raises(ConfigError) as exc:
        server_config(parse("--http-host", "0.0.0.0", "--token", ""))
    assert "non-loopback" in str(exc.value)
    cfg, _ = server_config(parse("--token", ""))
    assert cfg.token == "" and page_url(cfg, 8080) == "http://127.0.0.1:8080/"
