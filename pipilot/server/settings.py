"""Server settings from the command line, the environment and the config's [server] table."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from pipilot.core.config import check_numbers, read_toml
from pipilot.errors import ConfigError
from pipilot.server import auth
from pipilot.server.app import ServerConfig

KEYS = {"host", "port", "token", "heartbeat_timeout_ms", "update_hz", "rate", "burst",
        "observers", "extra_origins"}


def add_http_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every command that serves the page shares."""
    g = parser.add_argument_group("browser controller")
    g.add_argument("--http-host", default=None,
                   help="address to serve the page on (default 127.0.0.1; a non-loopback "
                        "address needs a token)")
    g.add_argument("--http-port", type=int, default=None, help="port (default 8080)")
    g.add_argument("--token", default=None,
                   help="access token (default: $PIPILOT_TOKEN, the config's [server] token, "
                        "or one generated at first start and kept); '' disables it on loopback")


def read_server_table(path: str | None) -> dict[str, Any] | None:
    """The [server] table of a TOML config file (None without a file or a table)."""
    if not path:
        return None
    table = read_toml(path).get("server")
    if table is not None and not isinstance(table, dict):
        raise ConfigError("server", "must be a table")
    if table is not None:
        check_numbers(table, "server")
    return table


def _num(table: Mapping[str, Any], key: str, lo: float, hi: float, default: float) -> float:
    v = table.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi \
            or not math.isfinite(v):  # range first: isfinite() overflows on a huge int
        raise ConfigError(f"server.{key}", f"must be a number in {lo:g}..{hi:g}, got {v!r}")
    return float(v)


def server_config(args: argparse.Namespace, table: Mapping[str, Any] | None = None,
                  env: Mapping[str, str] | None = None) -> tuple[ServerConfig, str]:
    """Build the ServerConfig (and say where its token came from); errors name the key."""
    table = dict(table or {})
    unknown = set(table) - KEYS
    if unknown:
        raise ConfigError(f"server.{sorted(unknown)[0]}",
                          f"unknown key (known: {', '.join(sorted(KEYS))})")
    host = args.http_host if args.http_host is not None else table.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host.strip():
        key = "--http-host" if args.http_host is not None else "server.host"
        raise ConfigError(key, "must be an address")
    port = args.http_port if args.http_port is not None else table.get("port", 8080)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        key = "--http-port" if args.http_port is not None else "server.port"
        raise ConfigError(key, f"must be 0..65535 (0: any free port), got {port!r}")
    cfg_token = table.get("token")
    if cfg_token is not None and not isinstance(cfg_token, str):
        raise ConfigError("server.token", "must be a string")
    kw: dict[str, Any] = {} if env is None else {"env": env}
    token, source = auth.resolve_token(args.token, cfg_token, **kw)
    observers = table.get("observers", "token")
    if observers not in ("token", "open"):
        raise ConfigError("server.observers", "must be 'token' or 'open'")
    origins = table.get("extra_origins", [])
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ConfigError("server.extra_origins", "must be a list of origins")
    cfg = ServerConfig(
        host=host, port=port, token=token,
        # the page sends every 50 ms: leave it at least three chances
        heartbeat_timeout=_num(table, "heartbeat_timeout_ms", 150, 5000, 300) / 1000.0,
        update_hz=_num(table, "update_hz", 1, 60, 20),
        rate=_num(table, "rate", 5, 1000, 80),
        burst=_num(table, "burst", 1, 1000, 40),
        observers_open=observers == "open",
        extra_origins=frozenset(origins),
    )
    auth.check_bind(cfg.host, cfg.token)
    return cfg, source


def page_url(config: ServerConfig, port: int) -> str:
    host = config.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # reachable locally; the LAN address works too
    if ":" in host:
        host = f"[{host}]"
    base = f"http://{host}:{port}/"
    return f"{base}?token={config.token}" if config.token else base


def login_line(config: ServerConfig, port: int, token_source: str, terminal: bool) -> str:
    """The line that tells where to fly from.

    The token is printed only to an interactive terminal: elsewhere (a pipe, a
    file, the systemd journal) the line would keep it for anyone reading the
    log, so it names where the token is kept instead.
    """
    url = page_url(config, port)
    if not config.token or terminal:
        where = f" (token: {token_source})" if token_source else ""
        return f"pipilot: fly from {url}{where}"
    bare = page_url(dataclasses.replace(config, token=""), port)
    return f"pipilot: fly from {bare}?token=TOKEN ({_token_hint(token_source)})"


def _token_hint(source: str) -> str:
    not_shown = "TOKEN not shown: output is not a terminal"
    if source == "--token":
        return f"{not_shown}; it is the one given with --token"
    if source == auth.TOKEN_ENV:
        return f"{not_shown}; it is ${auth.TOKEN_ENV}"
    if source == "config":
        return f"{not_shown}; it is the config's [server] token"
    path = source.removeprefix("generated, stored in ")
    return f"{not_shown}; it is in {path}"
