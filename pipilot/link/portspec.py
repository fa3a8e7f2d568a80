"""Port specifications as the command line gives them: a device path or ``tcp:HOST:PORT``."""

from __future__ import annotations

from pipilot.errors import LinkError

TCP_PREFIX = "tcp:"
TCP_FORM = "tcp:HOST:PORT (PORT 1..65535, e.g. tcp:127.0.0.1:5760; an IPv6 HOST in [ ])"


def is_tcp(spec: str) -> bool:
    return spec.startswith(TCP_PREFIX)


def parse_tcp(spec: str) -> tuple[str, int]:
    """``tcp:HOST:PORT`` to (host, port); an empty HOST is 127.0.0.1.

    Every malformed spec is one LinkError naming the expected form.
    """
    rest = spec[len(TCP_PREFIX):] if is_tcp(spec) else spec
    host, sep, port_text = rest.rpartition(":")
    if not sep:
        raise LinkError(spec, f"no port: expected {TCP_FORM}")
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        raise LinkError(spec, f"port {port_text!r} is not a number: expected {TCP_FORM}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise LinkError(spec, f"port {port} is out of range: expected {TCP_FORM}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host and not host.count(":") >= 2:
        raise LinkError(spec, f"bad host {host!r}: expected {TCP_FORM}")
    if any(c.isspace() or not c.isprintable() for c in host) or "/" in host:
        raise LinkError(spec, f"bad host {host!r}: expected {TCP_FORM}")
    return host or "127.0.0.1", port


def check_port_spec(spec: str, option: str = "--port") -> str:
    """A telemetry port given on the command line: a device path or a valid tcp spec."""
    if not isinstance(spec, str) or not spec.strip():
        raise LinkError(option, "empty: give a device (e.g. /dev/ttySOFT0) or "
                                f"{TCP_FORM}")
    if "\0" in spec:
        raise LinkError(option, "contains a NUL byte")
    if is_tcp(spec):
        parse_tcp(spec)
    return spec
