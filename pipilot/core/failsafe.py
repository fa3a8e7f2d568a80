"""The source-loss failsafe: an Enum of states and one transition function.

States and what the mixer sends in each:

- STANDBY: no controlling source has been fresh yet: throttle off, sticks
  centred, valid frames (the flight controller sees a healthy receiver).
- NORMAL: a fresh override source ("pilot", "mission", "test") flies.
- DESCENT: every override source went stale and the policy is "descend":
  level attitude, throttle slewed down to `descent_throttle`, for
  `descent_time_s`; then THROTTLE_CUT.
- THROTTLE_CUT: throttle off, level attitude, valid frames.
- FAILSAFE: frames carry the S.Bus failsafe flag, so the firmware's own
  failsafe takes over. Entered on source loss when the policy is
  "failsafe", and whenever a forced reason is held (shutdown, link error).

A fresh override source returns STANDBY, DESCENT, THROTTLE_CUT and a
source-loss FAILSAFE to NORMAL; forced reasons hold FAILSAFE until released.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from pipilot.core.tomlconf import check_fields, setting

log = logging.getLogger(__name__)

POLICIES = ("descend", "failsafe")


class FailsafeState(enum.Enum):
    STANDBY = "standby"
    NORMAL = "normal"
    DESCENT = "descent"
    THROTTLE_CUT = "throttle_cut"
    FAILSAFE = "failsafe"


@dataclass(frozen=True)
class FailsafePolicy:
    """What to do when no override source is fresh.

    `on_source_loss`: "descend" (level attitude, throttle down to
    `descent_throttle` at the throttle slew rate, hold for `descent_time_s`,
    then cut) or "failsafe" (failsafe-flag frames at once).
    """

    on_source_loss: str = setting("descend", choices=POLICIES)
    descent_throttle: float = setting(0.35, ge=0.0, le=1.0)
    descent_time_s: float = setting(8.0, ge=0.0, le=120.0, unit="s")

    def __post_init__(self) -> None:
        check_fields(self, "failsafe")


class Failsafe:
    """The state machine. `update(now, fresh)` is called once per mixer tick."""

    def __init__(self, policy: FailsafePolicy) -> None:
        self.policy = policy
        self.state = FailsafeState.STANDBY
        self.reason = "no control source yet"
        self.since = 0.0
        self._forced: dict[str, str] = {}
        self._held_by_force = False   # FAILSAFE because of a forced reason

    @property
    def active(self) -> bool:
        """True while frames carry the failsafe flag."""
        return self.state is FailsafeState.FAILSAFE

    def force(self, reason: str, detail: str = "") -> None:
        """Hold FAILSAFE for `reason` (e.g. "shutdown", "link error") until released;
        `detail` is shown after the reason (e.g. the errno text)."""
        self._forced[reason] = f"{reason}: {detail}" if detail else reason

    def release(self, reason: str) -> None:
        self._forced.pop(reason, None)

    @property
    def forced_reasons(self) -> tuple[str, ...]:
        return tuple(self._forced)

    def update(self, now: float, fresh_source: str | None) -> FailsafeState:
        """Advance given the freshest override source (None if none is fresh)."""
        s = self.state
        if self._forced:
            reason = "; ".join(self._forced.values())
            if s is not FailsafeState.FAILSAFE or self.reason != reason:
                self._set(FailsafeState.FAILSAFE, reason, now)
        elif fresh_source is not None:
            if s is not FailsafeState.NORMAL:
                self._set(FailsafeState.NORMAL, f"source {fresh_source!r} fresh", now)
        elif s is FailsafeState.NORMAL:
            if self.policy.on_source_loss == "descend":
                self._set(FailsafeState.DESCENT, "no fresh control source: descending", now)
            else:
                self._set(FailsafeState.FAILSAFE, "no fresh control source", now)
        elif s is FailsafeState.DESCENT and now - self.since >= self.policy.descent_time_s:
            self._set(FailsafeState.THROTTLE_CUT, "descent time over: throttle cut", now)
        elif s is FailsafeState.FAILSAFE and self._held_by_force:
            # the forced reasons were released with no source fresh: apply the policy
            nxt = (FailsafeState.THROTTLE_CUT if self.policy.on_source_loss == "descend"
                   else FailsafeState.FAILSAFE)
            self._set(nxt, "no fresh control source", now)
        return self.state

    def _set(self, state: FailsafeState, reason: str, now: float) -> None:
        self._held_by_force = bool(self._forced) and state is FailsafeState.FAILSAFE
        log_fn = log.info if state in (FailsafeState.NORMAL, FailsafeState.STANDBY) else log.warning
        log_fn("failsafe: %s -> %s (%s)", self.state.value, state.value, reason)
        self.state = state
        self.reason = reason
        self.since = now
