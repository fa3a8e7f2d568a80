"""Access control: the token, the login cookie, the origin check, the bind check.

As in Jupyter, opening ``/?token=TOKEN`` once stores the token in an HttpOnly
cookie and the page is logged in from then on. The token comes from
``--token``, ``PIPILOT_TOKEN`` or the config; otherwise one is generated at
first start and kept (mode 0600) so bookmarks keep working; a kept token file
that other users can read is refused. An empty token disables authentication,
which is only allowed on a loopback address.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from pipilot.errors import ConfigError

TOKEN_ENV = "PIPILOT_TOKEN"


def token_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "pipilot" / "token"


def resolve_token(
    cli: str | None,
    config: str | None = None,
    env: Mapping[str, str] = os.environ,
    path: Path | None = None,
) -> tuple[str, str]:
    """Return (token, where it came from); generate and store one if none is given."""
    if cli is not None:
        return cli, "--token"
    if env.get(TOKEN_ENV):  # set but empty (an unset shell variable) does not disable auth
        return env[TOKEN_ENV], TOKEN_ENV
    if config is not None:
        return config, "config"
    path = path or token_file()
    stored = read_token_file(path)
    if stored:
        return stored, str(path)
    return create_token_file(path), f"generated, stored in {path}"


def read_token_file(path: Path) -> str | None:
    """The token kept in ``path`` (None when there is none yet).

    A file others can read is refused: anyone holding the token flies the craft.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):   # no file yet (or no folder for it)
        return None
    except OSError as exc:
        raise ConfigError("token file", f"cannot read {path}: {exc.strerror or exc} "
                                        "(or give a token with --token or PIPILOT_TOKEN)") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError("token file", f"{path} is not a regular file")
        if st.st_mode & 0o077:
            raise ConfigError("token file",
                              f"{path} can be read by other users (mode "
                              f"{stat.S_IMODE(st.st_mode):03o}): run `chmod 600 {path}`")
        raw = os.read(fd, 4096)
    except OSError as exc:
        raise ConfigError("token file", f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError("token file", f"{path} does not hold a token (not ASCII text): "
                                        "delete it to have a new one made") from None
    if any(c.isspace() or not c.isprintable() for c in token):
        raise ConfigError("token file", f"{path} does not hold a token (more than one word): "
                                        "delete it to have a new one made")
    return token or None


def create_token_file(path: Path) -> str:
    """Generate a token and store it in ``path``, mode 0600 from its first byte on.

    The token is written to a private temporary file in the same folder and
    then linked into place, so no reader ever sees a partial file and no other
    user ever sees the token; a token stored meanwhile by another start wins.
    """
    token = secrets.token_urlsafe(24)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            os.fchmod(fd, 0o600)   # whatever the umask
            os.write(fd, (token + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:    # empty (replace it) or just stored by another start
            stored = read_token_file(path)
            if stored:
                return stored
            os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError("token file", f"cannot create {path}: {exc.strerror or exc} "
                                        "(or give a token with --token or PIPILOT_TOKEN)") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return token


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str) -> None:
    """Refuse to serve control to the network without a token."""
    if not token and not is_loopback(host):
        raise ConfigError(
            "server.token",
            f"refusing to listen on non-loopback address {host!r} without a token",
        )


def cookie_name(request: web.Request) -> str:
    # Cookies ignore ports: two servers on one host must not overwrite each other's.
    return f"pipilot_token_{request.url.port or 80}"


def given_token(request: web.Request) -> str | None:
    """The token a request carries: ?token=, Authorization header, or the login cookie."""
    if "token" in request.query:
        return request.query["token"]
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() in ("token", "bearer") and value:
        return value.strip()
    return request.cookies.get(cookie_name(request))


def token_matches(given: str | None, token: str) -> bool:
    if not token:
        return True
    if given is None:
        return False
    # Header values may carry undecodable bytes as surrogates: compare them as bytes.
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                               token.encode("utf-8", "surrogatepass"))


def host_is_loopback(request: web.Request) -> bool:
    """Whether the request names this machine by a loopback name (Host header).

    Without a token the server listens on loopback only, but a page from any
    site can reach it through DNS rebinding (its own name resolved to
    127.0.0.1): its Host and Origin then agree. Only a loopback Host is us.
    """
    host = request.headers.get("Host")
    if not host:
        return False
    name = urlsplit(f"//{host}").hostname
    return name is not None and is_loopback(name)


def same_origin(request: web.Request, extra: frozenset[str] = frozenset()) -> bool:
    """A browser's websocket must come from a page this server served.

    Clients that send no Origin (scripts, not browsers) pass; they still need
    the token. A present Origin must name this very host and port.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin in extra:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    host = request.headers.get("Host")
    return host is not None and parts.netloc.lower() == host.lower()
