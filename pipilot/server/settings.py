"""Server settings from the command line, the environment and the config's [server] table."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from typing import Any

from pipilot.core.config import ServerTable
from pipilot.core.tomlconf import Rule, check
from pipilot.errors import ConfigError
from pipilot.server import auth
from pipilot.server.app import ServerConfig


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


def server_config(args: argparse.Namespace, table: ServerTable | None = None,
                  env: Mapping[str, str] | None = None) -> tuple[ServerConfig, str]:
    """Build the ServerConfig (and say where its token came from) from the command
    line over the config file's ``[server]`` table (`CoreConfig.server`, already
    checked); errors name the option or key."""
    t = table or ServerTable()
    host = args.http_host if args.http_host is not None else t.host
    if not host.strip():
        raise ConfigError("--http-host" if args.http_host is not None else "server.host",
                          "must be an address")
    port = t.port
    if args.http_port is not None:
        port = check(args.http_port, "--http-port", Rule(ge=0, le=65535), int)
    kw: dict[str, Any] = {} if env is None else {"env": env}
    token, source = auth.resolve_token(args.token, t.token, **kw)
    cfg = ServerConfig(
        host=host, port=port, token=token,
        heartbeat_timeout=t.heartbeat_timeout_ms / 1000.0,
        update_hz=t.update_hz, rate=t.rate, burst=t.burst,
        observers_open=t.observers == "open",
        extra_origins=frozenset(t.extra_origins),
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
