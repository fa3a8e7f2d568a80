"""The setpoint mixer: named sources in, 16 calibrated S.Bus channel values out.

Each tick the freshest highest-priority *override* source flies; *additive*
sources (the drift loop) add a bounded roll/pitch/yaw trim. Limits and slew
rates apply, an arm request becomes the rig's arming gesture, the failsafe
state machine decides what to send when sources go stale, and the
calibration maps the result to raw values that are always in range.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from pipilot.core.calibration import Calibration
from pipilot.core.clock import Clock, MonotonicClock
from pipilot.core.failsafe import Failsafe, FailsafePolicy, FailsafeState
from pipilot.core.setpoints import ArmRequest, Setpoint, SetpointError
from pipilot.errors import ConfigError

log = logging.getLogger(__name__)

MODES = ("override", "additive")
#: Arming gestures the firmware offers on the yaw stick: (arm, disarm) yaw value.
#: LibrePilot's armhandler arms "Yaw Left" below -0.2 and disarms it mirrored.
GESTURES = {"yaw_left": (-1.0, 1.0), "yaw_right": (1.0, -1.0)}

#: An arm request makes the gesture only this long after its last publish, even
#: while the source is otherwise fresh: the firmware arms after 1 s of gesture,
#: so a publisher that vanished mid-gesture must not hold it on for its whole
#: timeout (0.5 s, 1 s). Above the slowest publisher's period (missions >= 5 Hz).
ARM_HOLD_S = 0.25
#: An arm request is honoured only from a setpoint whose own throttle is at most
#: this: the gesture forces throttle off, so an arm request from a source that
#: asks for lift (a craft in the air) would drop the craft. Disarm is not
#: guarded: it is the deliberate way to stop the motors.
ARM_THROTTLE_MAX = 0.05

#: Standard sources: name -> (priority, mode, timeout_s). Higher priority wins.
STANDARD_SOURCES: dict[str, tuple[int, str, float]] = {
    "pilot": (30, "override", 0.5),
    "hold": (25, "override", 0.5),
    "mission": (20, "override", 1.0),
    "test": (10, "override", 0.5),
    "drift": (0, "additive", 0.5),
}


@dataclass(frozen=True)
class Limits:
    """Bounds applied after mixing. Slew rates are in units per second
    (0 disables that slew limit); gestures and throttle cuts are not slewed."""

    throttle_max: float = 1.0
    tilt_max: float = 1.0
    yaw_max: float = 1.0
    trim_max: float = 0.25
    throttle_slew: float = 2.0
    axis_slew: float = 8.0

    def __post_init__(self) -> None:
        for name in ("throttle_max", "tilt_max", "yaw_max", "trim_max"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise ConfigError(f"limits.{name}", f"must be 0..1, got {v!r}")
        for name in ("throttle_slew", "axis_slew"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0.0):
                raise ConfigError(f"limits.{name}", f"must be >= 0 (units/s), got {v!r}")


@dataclass
class Source:
    name: str
    priority: int
    mode: str
    timeout_s: float
    setpoint: Setpoint = field(default_factory=Setpoint)
    stamp: float | None = None

    def fresh(self, now: float) -> bool:
        return self.stamp is not None and 0.0 <= now - self.stamp <= self.timeout_s


@dataclass(frozen=True)
class MixOutput:
    """One tick's result: `channels` (16 raw values, all in 0..2047),
    `failsafe` (send the failsafe flag), `state` and `reason` of the failsafe
    machine, the winning `source` (or None) and the normalised `setpoint`
    actually sent (after trims, limits, slew and gestures)."""

    channels: tuple[int, ...]
    failsafe: bool
    state: FailsafeState
    reason: str
    source: str | None
    setpoint: Setpoint
    ch17: bool = False
    ch18: bool = False


class Mixer:
    """Combines published setpoints into S.Bus channel values."""

    def __init__(self, calibration: Calibration | None = None, limits: Limits | None = None,
                 policy: FailsafePolicy | None = None, clock: Clock | None = None,
                 gesture: str = "yaw_left", standard_sources: bool = True) -> None:
        if not isinstance(gesture, str) or gesture not in GESTURES:
            raise ConfigError("arming.gesture", f"must be one of {', '.join(GESTURES)}")
        self.calibration = calibration or Calibration()
        self.limits = limits or Limits()
        self.failsafe = Failsafe(policy or FailsafePolicy())
        self.clock: Clock = clock or MonotonicClock()
        self.gesture = gesture
        self._sources: dict[str, Source] = {}
        # throttle, roll, pitch, yaw, acc0..3: the last values sent
        self._out = [0.0] * 8
        self._arm_refused = False
        self._last_tick: float | None = None
        self._descent_from = 0.0
        #: called after every publish (the FlightCore mixes at once); None for none
        self.on_publish: Callable[[], None] | None = None
        if standard_sources:
            for name, (prio, mode, timeout) in STANDARD_SOURCES.items():
                self.add_source(name, prio, mode, timeout)

    # -- sources -------------------------------------------------------------
    def add_source(self, name: str, priority: int, mode: str = "override",
                   timeout_s: float = 0.5) -> None:
        """Register (or re-configure) a source. Stale after `timeout_s` without a publish."""
        if mode not in MODES:
            raise ConfigError(f"sources.{name}.mode", f"must be one of {', '.join(MODES)}")
        if not (isinstance(timeout_s, (int, float)) and 0.0 < timeout_s <= 10.0):
            raise ConfigError(f"sources.{name}.timeout_s", "must be in (0, 10] s")
        old = self._sources.get(name)
        self._sources[name] = Source(name, int(priority), mode, float(timeout_s))
        if old is not None:
            self._sources[name].setpoint, self._sources[name].stamp = old.setpoint, old.stamp

    @property
    def sources(self) -> dict[str, Source]:
        return dict(self._sources)

    def publish(self, source: str, setpoint: Setpoint, t: float | None = None) -> None:
        """Publish the latest setpoint of `source`, stamped `t` (default: now).

        With a running FlightCore this mixes at once, so call it from the
        event loop's thread (asyncio tasks, callbacks)."""
        src = self._sources.get(source)
        if src is None:
            raise SetpointError(f"unknown setpoint source {source!r}; add_source() it first")
        if not isinstance(setpoint, Setpoint):
            raise SetpointError(f"source {source!r} published {type(setpoint).__name__}, "
                                "not a Setpoint")
        src.setpoint = setpoint
        src.stamp = self.clock.now() if t is None else float(t)
        if self.on_publish is not None:
            self.on_publish()

    def withdraw(self, source: str) -> None:
        """Mark a source stale at once (e.g. the pilot's websocket closed)."""
        if source in self._sources:
            self._sources[source].stamp = None

    # -- the tick --------------------------------------------------------------
    def tick(self, now: float | None = None) -> MixOutput:
        """Mix the current sources at time `now` into one frame's channel values."""
        now = self.clock.now() if now is None else now
        if not math.isfinite(now):   # would poison the slew state for good
            raise ValueError(f"mixer tick at a non-finite time {now!r}")
        dt = 0.0 if self._last_tick is None else min(max(now - self._last_tick, 0.0), 0.1)
        self._last_tick = now
        fresh = [s for s in self._sources.values() if s.fresh(now)]
        overrides = sorted((s for s in fresh if s.mode == "override"),
                           key=lambda s: (-s.priority, -(s.stamp or 0.0)))
        winner = overrides[0] if overrides else None
        prev = self.failsafe.state
        state = self.failsafe.update(now, winner.name if winner else None)
        if state is FailsafeState.DESCENT and prev is not FailsafeState.DESCENT:
            self._descent_from = self._out[0]

        arm = ArmRequest.NONE
        if state is FailsafeState.NORMAL and winner is not None:
            sp = winner.setpoint
            trim = [0.0, 0.0, 0.0]
            for s in fresh:
                if s.mode == "additive":
                    trim[0] += s.setpoint.roll
                    trim[1] += s.setpoint.pitch
                    trim[2] += s.setpoint.yaw
            tm = self.limits.trim_max
            trim = [max(-tm, min(tm, x)) for x in trim]
            target = [sp.throttle, sp.roll + trim[0], sp.pitch + trim[1], sp.yaw + trim[2],
                      *sp.accessories]
            assert winner.stamp is not None
            arm = sp.arm if now - winner.stamp <= ARM_HOLD_S else ArmRequest.NONE
            if arm is ArmRequest.ARM and sp.throttle > ARM_THROTTLE_MAX:
                if not self._arm_refused:
                    log.warning("arm request from %r ignored: its throttle %.2f is not off",
                                winner.name, sp.throttle)
                self._arm_refused = True
                arm = ArmRequest.NONE
            else:
                self._arm_refused = False
            self._slew(self._limit(target), dt)
        elif state is FailsafeState.DESCENT:
            thr = min(self._descent_from, self.policy.descent_throttle)
            self._slew(self._limit([thr, 0.0, 0.0, 0.0, *self._out[4:]]), dt)
        else:  # STANDBY, THROTTLE_CUT, FAILSAFE: throttle off, level, no slew
            self._out[:4] = [0.0, 0.0, 0.0, 0.0]

        o = list(self._out)
        if arm is not ArmRequest.NONE:
            arm_yaw, disarm_yaw = GESTURES[self.gesture]
            # the gesture is sent, not slewed to or from: the slewed yaw restarts
            # from centre, so the firmware never sees it a moment after it ends
            self._out[0] = self._out[3] = 0.0
            o[0], o[3] = 0.0, arm_yaw if arm is ArmRequest.ARM else disarm_yaw
        sent = Setpoint(throttle=o[0], roll=o[1], pitch=o[2], yaw=o[3],
                        accessories=(o[4], o[5], o[6], o[7]), arm=arm)
        channels = tuple(self.calibration.to_channels(sent))
        return MixOutput(channels=channels, failsafe=self.failsafe.active, state=state,
                         reason=self.failsafe.reason, source=winner.name if winner else None,
                         setpoint=sent)

    @property
    def policy(self) -> FailsafePolicy:
        return self.failsafe.policy

    def _limit(self, v: list[float]) -> list[float]:
        lim = self.limits
        v[0] = max(0.0, min(lim.throttle_max, v[0]))
        for i, bound in ((1, lim.tilt_max), (2, lim.tilt_max), (3, lim.yaw_max)):
            v[i] = max(-bound, min(bound, v[i]))
        for i in range(4, 8):
            v[i] = max(-1.0, min(1.0, v[i]))
        return v

    def _slew(self, target: list[float], dt: float) -> None:
        for i, t in enumerate(target):
            rate = self.limits.throttle_slew if i == 0 else self.limits.axis_slew
            if rate <= 0.0 or i >= 4:  # accessories are switches: never slewed
                self._out[i] = t
                continue
            step = rate * dt
            cur = self._out[i]
            self._out[i] = cur + max(-step, min(step, t - cur))
