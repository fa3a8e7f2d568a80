"""The exception hierarchy: one root, subclasses that carry context."""

from __future__ import annotations


class PipilotError(Exception):
    """Root of every error pipilot raises on purpose."""


class ConfigError(PipilotError):
    """A configuration value is missing, mistyped or out of range."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config {_short(key, 200)}: {_short(message)}")
        self.key = key


def _short(text: str, most: int = 1000) -> str:
    """One line of readable length: a hostile file's 5000-character value is cut."""
    text = " ".join(text.split())
    return text if len(text) <= most else f"{text[:most]}... ({len(text)} characters)"


class LinkError(PipilotError):
    """A serial port or other byte link could not be opened or used."""

    def __init__(self, port: str, message: str) -> None:
        super().__init__(f"{port}: {message}")
        self.port = port


class ProtocolError(PipilotError):
    """Bytes on a link broke a protocol rule."""


class SafetyAbort(PipilotError):
    """A safety monitor stopped a flight; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
