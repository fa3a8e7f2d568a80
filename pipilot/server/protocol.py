"""The websocket protocol: strict parsing of every message a page sends.

Nothing reaches the vehicle unless it parsed here: numbers must be finite and in
range (never clamped silently), unknown types and keys are refused, and a message
is a small JSON object. Parsing is pure, so it is tested without a server.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from pipilot.core.clock import Clock
from pipilot.core.setpoints import N_ACCESSORIES, STICK_RANGES, Setpoint
from pipilot.errors import PipilotError

MAX_MESSAGE_BYTES = 2048


class MessageError(PipilotError, ValueError):
    """A message the server refuses; `code` is machine-readable, the text is for people.

    A page causes it, so it is a PipilotError; still a ValueError for older callers.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def sticks_json(sticks: Setpoint) -> dict[str, Any]:
    """A setpoint's stick positions as the page's messages carry them (no arm request)."""
    return {
        "throttle": sticks.throttle,
        "yaw": sticks.yaw,
        "roll": sticks.roll,
        "pitch": sticks.pitch,
        "accessories": list(sticks.accessories),
    }


@dataclass(frozen=True)
class Control:
    """Stick positions (a Setpoint with no arm request); every one is also the
    pilot's heartbeat."""

    seq: int
    sticks: Setpoint
    t: float | None = None  # the page's clock, echoed for latency measurements
    hold: bool = False
    """The page's Hold toggle as it was when these sticks were read: with Hold on
    the throttle is a climb-rate command (mid: hold the height), not a throttle.
    The server uses a throttle only when this matches its own mode (see cockpit)."""


@dataclass(frozen=True)
class Heartbeat:
    """Keeps the pilot's seat fresh without moving the sticks."""

    seq: int


@dataclass(frozen=True)
class Ping:
    """Round-trip probe: answered at once with a pong carrying `t` back."""

    t: float


@dataclass(frozen=True)
class Arm:
    """Hold-to-confirm finished on the page: ask the FC to arm (True) or disarm."""

    arm: bool


@dataclass(frozen=True)
class Take:
    """Ask for the pilot's seat; `force` takes it from another pilot."""

    force: bool = False


@dataclass(frozen=True)
class Release:
    """Give the pilot's seat back."""


@dataclass(frozen=True)
class Hold:
    """Engage (``on``) or release the flow-deck position and height hold."""

    on: bool
    seq: int


Message = Control | Heartbeat | Ping | Arm | Take | Release | Hold

_KEYS = {
    "control": {"type", "seq", "t", "throttle", "yaw", "roll", "pitch", "accessories", "hold"},
    "heartbeat": {"type", "seq"},
    "ping": {"type", "t"},
    "arm": {"type"},
    "disarm": {"type"},
    "take": {"type", "force"},
    "release": {"type"},
    "hold": {"type", "on", "seq"},
}
_REQUIRED = {
    "control": {"type", "seq", "throttle", "yaw", "roll", "pitch", "accessories"},
    "heartbeat": {"type", "seq"},
    "ping": {"type", "t"},
    "hold": {"type", "on", "seq"},
}


def _bool(obj: dict[str, Any], key: str) -> bool:
    v = obj[key]
    if not isinstance(v, bool):
        raise MessageError("bad_value", f"{key} must be true or false")
    return v


def _reject_constant(name: str) -> float:
    raise MessageError("bad_json", f"{name} is not a number")


def _number(obj: dict[str, Any], key: str, lo: float, hi: float) -> float:
    v = obj[key]
    # bool is an int in Python; a page sending true for a stick is a bug.
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise MessageError("bad_value", f"{key} must be a number")
    try:
        v = float(v)
    except OverflowError:  # an integer of hundreds of digits
        raise MessageError("out_of_range", f"{key} outside [{lo:g}, {hi:g}]") from None
    if not math.isfinite(v) or not lo <= v <= hi:
        raise MessageError("out_of_range", f"{key}={v} outside [{lo:g}, {hi:g}]")
    return v


def _seq(obj: dict[str, Any]) -> int:
    v = obj["seq"]
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**53:
        raise MessageError("bad_value", "seq must be an integer >= 0")
    return v


def parse_message(text: str | bytes) -> Message:
    """Parse one websocket text message; raise MessageError with a reason."""
    if len(text) > MAX_MESSAGE_BYTES:
        raise MessageError("too_large", f"message over {MAX_MESSAGE_BYTES} bytes")
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except MessageError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError("bad_json", f"not JSON: {exc}") from None
    except RecursionError:
        raise MessageError("bad_json", "nested too deeply") from None
    if not isinstance(obj, dict):
        raise MessageError("bad_message", "a message is a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in _KEYS:
        raise MessageError("unknown_type", f"unknown message type {kind!r}")
    extra = set(obj) - _KEYS[kind]
    if extra:
        raise MessageError("bad_message", f"unknown keys for {kind}: {sorted(extra)}")
    missing = _REQUIRED.get(kind, {"type"}) - set(obj)
    if missing:
        raise MessageError("bad_message", f"{kind} needs {sorted(missing)}")

    if kind == "control":
        acc = obj["accessories"]
        if not isinstance(acc, list) or len(acc) != N_ACCESSORIES:
            raise MessageError("bad_value", f"accessories must be a list of {N_ACCESSORIES}")
        accs = tuple(
            _number({f"accessories[{i}]": a}, f"accessories[{i}]", *STICK_RANGES["accessories"])
            for i, a in enumerate(acc)
        )
        sticks = Setpoint(
            throttle=_number(obj, "throttle", *STICK_RANGES["throttle"]),
            roll=_number(obj, "roll", *STICK_RANGES["roll"]),
            pitch=_number(obj, "pitch", *STICK_RANGES["pitch"]),
            yaw=_number(obj, "yaw", *STICK_RANGES["yaw"]),
            accessories=(accs[0], accs[1], accs[2], accs[3]),
        )
        t = _number(obj, "t", -1e300, 1e300) if "t" in obj else None
        hold = _bool(obj, "hold") if "hold" in obj else False
        return Control(seq=_seq(obj), sticks=sticks, t=t, hold=hold)
    if kind == "heartbeat":
        return Heartbeat(seq=_seq(obj))
    if kind == "ping":
        return Ping(t=_number(obj, "t", -1e300, 1e300))
    if kind in ("arm", "disarm"):
        return Arm(arm=kind == "arm")
    if kind == "take":
        return Take(force=_bool(obj, "force") if "force" in obj else False)
    if kind == "hold":
        return Hold(on=_bool(obj, "on"), seq=_seq(obj))
    return Release()


class TokenBucket:
    """Rate limit: `rate` messages a second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float, clock: Clock) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._last = clock.now()

    def allow(self) -> bool:
        now = self._clock.now()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def encode(kind: str, **fields: Any) -> str:
    """One server -> page message as compact JSON."""
    return json.dumps({"type": kind, **fields}, separators=(",", ":"), allow_nan=False)
