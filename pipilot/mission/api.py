"""Scripted flight: ``async with Mission(vehicle) as m: await m.arm(); ...``.

One background task owns the mission source: on every tick it checks the
safety monitors, publishes the current command and sees whether the current
step is done. Steps only hand it a command profile and wait, so the craft is
never left without fresh setpoints and a monitor never waits for a step.

Any monitor that objects, an exception in the script, Ctrl-C, or leaving the
``async with`` while still armed aborts into the configured failsafe:

- ``land``: with the flow-deck hold holding, the hold flies the descent to
  the floor and the throttle is cut once it has touched down (or, bounded,
  after ``land_seconds`` plus the time to come down from ``max_height_m``);
  otherwise, or once the hold withdraws, descend at the land throttle (below
  the hover throttle the hold learned) for ``land_seconds``; then cut the
  throttle and disarm;
- ``disarm``: cut the throttle and disarm at once;
- ``release``: stop publishing, leaving the craft to the pilot or, if none,
  to the flight core's own failsafe.

A pilot taking over from the page always releases: the pilot flies.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pipilot.control.drift import CompensatorConfig, EstimatorConfig
from pipilot.control.holdapi import HoldState
from pipilot.core.setpoints import NEUTRAL, ArmRequest, Setpoint
from pipilot.core.vehicle import ObservedVehicle
from pipilot.errors import SafetyAbort
from pipilot.faultlog import FailureLog
from pipilot.mission.events import EventKind, EventStream, MissionEvent
from pipilot.mission.io import VehicleIO
from pipilot.mission.monitors import (
    AlarmRaised,
    AttitudeLimit,
    Expectations,
    FlightView,
    Monitor,
    PilotTakeover,
    StepTimeout,
    TelemetryLost,
    UnexpectedDisarm,
    run_monitors,
)
from pipilot.mission.spec import MissionConfig, SafetyConfig, Step, validate_step

if TYPE_CHECKING:
    from pipilot.control.compensator import DriftCompensator
    from pipilot.control.hold import Deck, FlowHold

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted (Ctrl-C)"
FLIGHT_STATUS_REFRESH_S = 2.0
"""FlightStatus older than this is asked for (it is only sent on change)."""
HOLD_STEPS = ("climb", "hold", "land")
"""The steps the flow-deck hold flies; any other releases it."""
GESTURE_SETTLE_S = 0.5
"""Throttle low and sticks centred this long before an arm or disarm gesture."""


class State(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    FAILSAFE = "failsafe"
    COMPLETED = "completed"
    ABORTED = "aborted"


Profile = Callable[[float], Setpoint]
"""The setpoint as a function of the time since the step started."""


@dataclass
class _ActiveStep:
    index: int
    step: Step
    profile: Profile
    started: float
    done: Callable[[float], bool]
    deadline: float | None
    future: asyncio.Future[None]


class Mission:
    """A mission flown through a Vehicle (see pipilot.core.vehicle)."""

    def __init__(self, vehicle: ObservedVehicle, *, mission: MissionConfig | None = None,
                 safety: SafetyConfig | None = None, drift: bool = True,
                 drift_config: CompensatorConfig | None = None,
                 estimator_config: EstimatorConfig | None = None,
                 monitors: list[Monitor] | None = None, hold: FlowHold | None = None,
                 deck: Deck | None = None, hold_height_m: float = 1.0) -> None:
        self.config = mission or MissionConfig()
        self.safety = safety or SafetyConfig()
        self.io = VehicleIO(vehicle)
        self.events = EventStream()
        self.state = State.IDLE
        self.abort_reason: str | None = None
        self.abort_monitor: str | None = None
        self.monitors: list[Monitor] = monitors if monitors is not None else [
            PilotTakeover(),
            TelemetryLost(self.safety.telemetry_timeout_s),
            UnexpectedDisarm(),
            AlarmRaised(self.safety.alarm_level, self.safety.ignore_alarms),
            AttitudeLimit(self.safety.max_tilt_deg),
            StepTimeout(),
        ]
        self._drift_wanted = drift
        self._drift_config = drift_config
        self._estimator_config = estimator_config
        self.drift: DriftCompensator | None = None  # when on
        self.flow_hold = hold
        """The flow-deck hold flying hold steps (None: they are plain hovers)."""
        self._deck = deck
        self._hold_height = hold_height_m
        self._hold_task: asyncio.Task[None] | None = None
        self._hold_seen = 0
        """Hold transitions reported so far (of hold.transition_count)."""
        self._rates_seen = "imu"
        """The rates source last reported (the hold starts on the IMU when it has one)."""
        self._hold_was_withdrawn = False
        self._fallback_ranged = False
        """The fallback last reported flies the height loop (else open loop)."""
        self._between: Profile | None = None
        """The hold's fallback, flown on between a hold (or climb) step and the next."""
        self._vertical_failures = FailureLog(log, "hold's height loop failed",
                                             clock=vehicle.clock)
        """Faults of the hold's height loop for the fallback (it then flies open loop)."""
        self._open_descent_since: float | None = None
        self._hold_stalled_since: float | None = None
        self._command = NEUTRAL
        self._expect_armed = False
        self._on_ground = True
        """No flying step since the start or since a completed landing."""
        self._step: _ActiveStep | None = None
        self._step_count = 0
        self._t0 = 0.0
        self._task: asyncio.Task[None] | None = None
        self._failsafe_done: asyncio.Event | None = None
        self._publishing = True
        self._refused: tuple[str, str] | None = None
        """An abort that came before the mission started (it then never starts)."""
        self._failsafe_name = ""
        self._failsafe_phase = ""
        self._phase_started = 0.0
        self._last_progress = -1e9
        self.samples: list[dict[str, float]] = []
        """Per-tick record (time, command, trims, attitude, truth) for plots."""

    # -- lifecycle ------------------------------------------------------------

    async def __aenter__(self) -> Mission:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool:
        if exc_type is not None and self.state is State.RUNNING:
            if issubclass(exc_type, asyncio.CancelledError | KeyboardInterrupt):
                self.abort(INTERRUPTED, "interrupt")
            elif not issubclass(exc_type, SafetyAbort):
                self.abort(f"mission script failed: {exc_type.__name__}: {exc}", "script")
        elif exc_type is None and self.state is State.RUNNING and self._expect_armed:
            self.abort("mission ended with the craft still armed", "script")
        await self.finish()
        return False

    async def start(self) -> None:
        if self.state is not State.IDLE:
            raise RuntimeError("a Mission runs once")
        self.io.register()
        self._t0 = self.io.now()
        self._failsafe_done = asyncio.Event()
        linked = await self._wait_for_link()
        if not linked or self._refused is not None:
            # nothing was commanded yet: no failsafe to fly, just refuse to start
            reason, monitor = self._refused or (
                f"telemetry lost: no connection to the flight controller within "
                f"{self.safety.connect_timeout_s:g} s", "telemetry")
            self._set_state(State.ABORTED)
            self.abort_reason, self.abort_monitor = reason, monitor
            self._emit(EventKind.ABORT, f"abort: {reason}", data={"monitor": monitor})
            self._emit(EventKind.FINISHED, f"mission aborted: {reason}")
            self.events.close()
            raise SafetyAbort(reason)
        self._set_state(State.RUNNING)
        if self._drift_wanted:
            from pipilot.control.compensator import DriftCompensator

            self.drift = DriftCompensator(
                self.io.vehicle, self._drift_config, self._estimator_config,
                flying=self._flying)
            await self.drift.start()
        if self.flow_hold is not None:
            if self._deck is None:
                raise RuntimeError("a flow hold needs a deck to read")
            await self.flow_hold.configure_rates()
            self._hold_task = asyncio.create_task(self.flow_hold.run(self._deck),
                                                  name="flow-hold")
        self._emit(EventKind.STARTED, "mission started"
                   + (" with drift compensation" if self.drift else "")
                   + (" with the flow-deck hold" if self.flow_hold else ""))
        self._task = asyncio.create_task(self._loop(), name="mission")

    async def _wait_for_link(self) -> bool:
        """Wait for the telemetry handshake and a first attitude (bounded)."""
        deadline = self.io.now() + self.safety.connect_timeout_s
        while self._refused is None:
            view = self.io.view()
            if view.telemetry_connected and view.attitude_age is not None:
                return True
            if self.io.now() >= deadline:
                return False
            await self.io.sleep(0.02)
        return False

    async def finish(self) -> None:
        """End the mission: wait for a running failsafe, then stop publishing."""
        try:
            if self.state is State.FAILSAFE and self._failsafe_done is not None:
                await self._failsafe_done.wait()
            if self.state is State.RUNNING:
                self._set_state(State.COMPLETED)
        finally:
            # Whatever happens here (even a cancellation while the failsafe
            # flies), the mission's last command must not outlive the mission.
            if self._task is not None:
                self._task.cancel()
                # a loop that died has logged why and aborted; its error must not
                # cut this clean-up short
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
                self._task = None
            self.io.cancel_refreshes()
            self.io.withdraw()
            await self._stop_hold()
        if self.drift is not None:
            await self.drift.stop()
        if self.state is State.COMPLETED:
            self._emit(EventKind.FINISHED, "mission completed")
        else:
            self._emit(EventKind.FINISHED, f"mission aborted: {self.abort_reason}")
        self.events.close()

    async def _stop_hold(self) -> None:
        self._vertical_failures.flush()
        if self.flow_hold is not None:
            self.flow_hold.release("mission finished")
        if self._hold_task is not None:
            self._hold_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._hold_task
            self._hold_task = None

    @property
    def completed(self) -> bool:
        return self.state is State.COMPLETED

    @property
    def started_at(self) -> float:
        """The clock's time when the mission started (mission time 0)."""
        return self._t0

    def time(self) -> float:
        """Mission time: seconds since start."""
        return self.io.now() - self._t0

    # -- steps ------------------------------------------------------------------

    async def arm(self, *, timeout_s: float | None = None) -> None:
        if self._expect_armed:
            return  # armed by this mission already: the gesture would cut the throttle
        timeout = timeout_s or self.safety.arm_timeout_s
        await self._run(Step("arm", {"timeout_s": timeout}), _gesture(ArmRequest.ARM),
                        done=lambda _t: self.io.armed() == "Armed", deadline=timeout)
        self._expect_armed = True

    async def climb(self, *, throttle: float, seconds: float) -> None:
        step = Step("climb", {"throttle": throttle, "seconds": seconds})
        if self.flow_hold is not None:
            # the height loop flies the climb to the hold's height: an open-loop
            # throttle climbs or sinks by how wrong the mission's hover figure is
            height = self._hold_height
            await self._timed(step, self._hold_fallback,
                              on_start=lambda: self._engage_hold(height))
            return
        await self._timed(step, lambda _: Setpoint.saturated(throttle=throttle))

    async def hold(self, *, seconds: float, height: float | None = None) -> None:
        """Hold position and height (the flow deck's hold); without one, a plain hover.

        ``height`` (default: the mission's ``[hold] target_height_m``) is said in
        the step's start event as ``target_height_m``."""
        target = self._hold_height if height is None else height
        step = Step("hold", _params(seconds=seconds, height=height))
        if self.flow_hold is None:
            thr = self.config.hover_throttle
            await self._timed(step, lambda _: Setpoint.saturated(throttle=thr),
                              data={"target_height_m": target})
            return
        await self._timed(step, self._hold_fallback, data={"target_height_m": target},
                          on_start=lambda: self._engage_hold(target))

    def _engage_hold(self, height: float) -> None:
        assert self.flow_hold is not None
        if self.flow_hold.state is HoldState.OFF:
            self.flow_hold.engage(height, hover_guess=self.config.hover_throttle)
        else:
            self.flow_hold.set_target_height(height)

    def _height_loop(self) -> float | None:
        """The hold's height loop for the fallback (`FlowHold.vertical_fallback`), or
        None: the fallback then flies open loop. A fault in it is logged once and
        counted, never raised into the failsafe that flies on it."""
        hold = self.flow_hold
        if hold is None:
            return None
        try:
            return hold.vertical_fallback()
        except Exception as exc:
            self._vertical_failures.failed(exc)
            return None

    def _ranger_descent(self) -> Setpoint | None:
        """A landing descent on the hold's ranger while it does not hold (the flow
        alone lost, typically): its height loop, tilted as the hold last held
        against the wind."""
        thr = self._height_loop()
        if thr is None or self.flow_hold is None:
            return None
        roll, pitch = self.flow_hold.fallback_tilt()
        return Setpoint.saturated(throttle=thr, roll=roll, pitch=pitch)

    def _hold_fallback(self, _t: float) -> Setpoint:
        """What the mission flies under the hold: an attitude hover, tilted against the
        steady wind the hold last measured (it wins when the hold withdraws). Its
        throttle is the hold's height loop while that can fly (the flow alone lost,
        typically), else the hover throttle learned so far."""
        thr = self.config.hover_throttle
        roll = pitch = 0.0
        if self.flow_hold is not None:
            vertical = self._height_loop()
            if vertical is not None:
                thr = vertical
            elif self.flow_hold.hover_throttle is not None:
                # less fallback_sink, if one is set (0 by default: see HoldConfig)
                thr = self.flow_hold.hover_throttle - self.flow_hold.config.fallback_sink
            roll, pitch = self.flow_hold.fallback_tilt()
        return Setpoint.saturated(throttle=thr, roll=roll, pitch=pitch)

    async def hover(self, *, seconds: float, throttle: float | None = None) -> None:
        thr = self.config.hover_throttle if throttle is None else throttle
        await self._timed(Step("hover", _params(seconds=seconds, throttle=throttle)),
                          lambda _: Setpoint.saturated(throttle=thr))

    async def move(self, *, seconds: float, roll: float = 0.0, pitch: float = 0.0,
                   throttle: float | None = None) -> None:
        thr = self.config.hover_throttle if throttle is None else throttle
        async with self._drift_held():
            await self._timed(
                Step("move", _params(roll=roll, pitch=pitch, seconds=seconds,
                                     throttle=throttle)),
                lambda _: Setpoint.saturated(throttle=thr, roll=roll, pitch=pitch))

    async def yaw(self, *, rate: float, seconds: float, throttle: float | None = None) -> None:
        thr = self.config.hover_throttle if throttle is None else throttle
        async with self._drift_held():
            await self._timed(Step("yaw", _params(rate=rate, seconds=seconds,
                                                  throttle=throttle)),
                              lambda _: Setpoint.saturated(throttle=thr, yaw=rate))

    async def land(self, *, seconds: float | None = None, throttle: float | None = None) -> None:
        secs = self.safety.land_seconds if seconds is None else seconds
        thr = self._land_throttle() if throttle is None else throttle
        hold = self.flow_hold
        if hold is not None and hold.state is not HoldState.OFF:
            # the height loop flies the descent to the floor; the step ends once the
            # hold has touched down, so the motors stop on the floor, not above it
            bound = secs + hold.config.land_extend_s
            step = Step("land", _params(seconds=secs, throttle=throttle))

            def down(_t: float) -> Setpoint:   # flies if the hold withdraws
                ranged = self._ranger_descent()   # the flow lost: down on the ranger
                return (Setpoint.saturated(throttle=self._land_throttle()) if ranged is None
                        else ranged)

            def landed(t: float) -> bool:
                if hold.touched_down:
                    return True
                if t >= bound:
                    self.abort(f"landing: no touchdown in {bound:g} s (the step's {secs:g} s "
                               f"+ land_extend_s); height {_fmt(hold.status().height_m)} m",
                               "hold")
                return False

            try:
                await self._run(step, down, done=landed, deadline=bound,
                                on_start=hold.land)
            finally:
                if self.state is not State.FAILSAFE:   # else the failsafe's to release
                    hold.release("landed")
        else:
            await self._timed(Step("land", _params(seconds=secs, throttle=throttle)),
                              lambda t: Setpoint.saturated(throttle=thr if t < secs else 0.0))
        self._command = NEUTRAL
        self._on_ground = True

    async def disarm(self, *, timeout_s: float | None = None) -> None:
        timeout = timeout_s or self.safety.arm_timeout_s
        self._expect_armed = False
        await self._run(Step("disarm", {"timeout_s": timeout}), _gesture(ArmRequest.DISARM),
                        done=lambda _t: self.io.armed() == "Disarmed", deadline=timeout)
        self._command = NEUTRAL

    async def run_step(self, step: Step) -> None:
        """Run one validated Step (as read from a TOML mission)."""
        p = dict(step.params)
        method = getattr(self, step.action)
        await method(**p)

    # -- aborting ---------------------------------------------------------------

    def abort(self, reason: str, monitor: str = "script") -> None:
        """Stop the mission and fly the failsafe (idempotent: the first reason wins)."""
        if self.state is not State.RUNNING:
            if self.state is State.FAILSAFE and monitor == "interrupt":
                self._escalate()
            elif self.state is State.IDLE and self._refused is None:
                # Ctrl-C while waiting for the link: the mission must not start later
                self._refused = (reason, monitor)
            return
        self.abort_reason = reason
        self.abort_monitor = monitor
        failsafe = "release" if monitor == "takeover" else self.safety.failsafe
        hold = self.flow_hold
        if hold is not None:
            if (failsafe == "land" and not self._on_ground
                    and hold.state is HoldState.HOLDING and not hold.stalled(self.io.now())):
                hold.land()   # its sensors are valid: the hold flies the descent
            elif failsafe == "land" and not self._on_ground and hold.vertical_problem is None:
                hold.land()   # the flow is lost, the range is not: down on the ranger
            else:   # the failsafe flies, not the hold
                hold.release(f"mission aborted: {reason}")
        self._set_state(State.FAILSAFE)
        self._emit(EventKind.ABORT, f"abort: {reason}", data={"monitor": monitor,
                                                              "failsafe": failsafe})
        if self._step is not None and not self._step.future.done():
            self._step.future.set_exception(SafetyAbort(reason))
            self._step.future.exception()  # seen: do not warn if nobody awaits it
        self._failsafe_name = failsafe
        self._failsafe_phase = failsafe
        if failsafe == "land" and self._on_ground:
            # already down: a descent at the land throttle would spin up (or lift) the craft
            self._failsafe_phase = "disarm"
        self._phase_started = self.io.now()
        if self.drift is not None and monitor == "takeover":
            self.drift.suspend()
        if failsafe == "release":
            self._publishing = False
            self.io.withdraw()
            self._finish_failsafe("released to the pilot" if monitor == "takeover"
                                  else "released to the flight core's failsafe")

    def _escalate(self) -> None:
        """A second Ctrl-C during a landing: cut and disarm now."""
        if self._failsafe_phase == "land":
            self._failsafe_phase = "disarm"
            self._phase_started = self.io.now()
            if self.flow_hold is not None:
                self.flow_hold.release("second interrupt")
            self._emit(EventKind.FAILSAFE, "second interrupt: disarming now")

    def _failsafe_command(self, now: float) -> Setpoint | None:
        """The failsafe's command at ``now``; None once it has finished."""
        if self._failsafe_phase == "land":
            command = self._failsafe_land(now)
            if command is not None:
                return command
            self._failsafe_phase = "disarm"
            self._phase_started = now
            if self.flow_hold is not None:   # its source would override the gesture
                self.flow_hold.release("failsafe disarming")
        elapsed = now - self._phase_started
        if self.io.armed() == "Disarmed" and elapsed > 0.1:
            return None
        if elapsed < GESTURE_SETTLE_S + self.safety.arm_timeout_s:
            return _gesture(ArmRequest.DISARM)(elapsed)
        return None

    def _failsafe_land(self, now: float) -> Setpoint | None:
        """The failsafe's descent; None once it is down (then the disarm follows).

        The hold, while it holds, flies it to the floor and says when it has
        touched down; it has ``land_seconds`` plus the time to come down from
        ``max_height_m`` before it is released. Without it the descent is open
        loop below the hover throttle (it cannot climb) for ``land_seconds``
        from when the hold last flew."""
        if self.io.armed() == "Disarmed":
            return None
        hold = self.flow_hold
        down = Setpoint.saturated(throttle=self._land_throttle())
        if hold is not None and hold.state is not HoldState.OFF:
            if hold.touched_down:
                self._emit(EventKind.FAILSAFE, "touched down: disarming")
                hold.release("landed")
                return None
            bound = (self.safety.land_seconds
                     + hold.config.max_height_m / hold.config.max_descent_mps)
            if now - self._phase_started >= bound:
                self._emit(EventKind.FAILSAFE, f"the hold did not touch down in {bound:g} s: "
                           "descending below the hover throttle")
                hold.release("no touchdown")
            elif hold.state is HoldState.HOLDING:
                self._open_descent_since = None
                return down   # under the hold's source: flies if it withdraws
            else:
                ranged = self._ranger_descent()
                if ranged is not None:   # the flow is lost: down on the ranger
                    self._open_descent_since = None
                    return ranged
        if self._open_descent_since is None:
            self._open_descent_since = now
        if now - self._open_descent_since < self.safety.land_seconds:
            return down
        return None

    def _finish_failsafe(self, how: str) -> None:
        self._emit(EventKind.FAILSAFE, f"failsafe {self._failsafe_name} done: {how}")
        self._set_state(State.ABORTED)
        self._publishing = False
        self.io.withdraw()
        if self._failsafe_done is not None:
            self._failsafe_done.set()

    # -- the loop -------------------------------------------------------------

    async def _loop(self) -> None:
        period = 1.0 / self.config.rate_hz
        try:
            while True:
                self._tick()
                await self.io.sleep(period)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the loop itself failed: fail safe, loudly
            log.exception("mission loop failed")
            if self.state is State.RUNNING:
                self.abort(f"mission loop failed: {exc}", "internal")
            if self._failsafe_done is not None:
                self._failsafe_done.set()
            raise

    def _tick(self) -> None:
        now = self.io.now()
        self.io.refresh_stale("FlightStatus", FLIGHT_STATUS_REFRESH_S)
        view = self.io.view()
        if self.state is State.RUNNING:
            step = self._step
            expect = Expectations(
                armed=self._expect_armed,
                step_label=None if step is None else f"step {step.index + 1} ({step.step})",
                step_deadline=None if step is None else step.deadline,
                elapsed=now - self._t0)
            objection = run_monitors(self.monitors, view, expect)
            if objection is not None:
                name, reason = objection
                self.abort(reason, name)
        if self.state is State.RUNNING:
            self._check_hold_withdrawn(now)
        if self.state is State.RUNNING:
            step = self._step
            if step is not None and not step.future.done():
                elapsed = now - step.started
                if step.done(elapsed) and self.state is State.RUNNING:
                    self._step = None
                    # between steps the hold's fallback flies on (its height loop)
                    self._between = step.profile if step.profile == self._hold_fallback \
                        else None
                    self._emit(EventKind.STEP_DONE, f"{step.step.action} done",
                               index=step.index, step=step.step, data=self._truth_data())
                    step.future.set_result(None)
                elif self.state is State.RUNNING:
                    self._command = step.profile(elapsed)
            elif step is None and self._between is not None:
                self._command = self._between(0.0)
        if self.state is State.RUNNING:
            command: Setpoint | None = self._command
        elif self.state is State.FAILSAFE:
            command = self._failsafe_command(now)
            if command is None:
                self._finish_failsafe("disarmed" if self.io.armed() == "Disarmed"
                                      else "stopped publishing")
        else:
            command = None
        if command is not None and self._publishing:
            self.io.publish(command)
        self._watch_hold()
        self._record(now, command, view)

    def _check_hold_withdrawn(self, now: float) -> None:
        """A hold engaged but not holding (withdrawn, or resuming after it held; or
        holding, its task stalled) for ``withdrawn_abort_s`` aborts: the fallback's
        attitude hover has no bound in time or height. The time counts net of what
        the hold held since (`FlowHold.unheld_for`), so flapping does not reset it."""
        hold = self.flow_hold
        if hold is None:
            return
        limit = hold.config.withdrawn_abort_s
        if not hold.stalled(now):
            self._hold_stalled_since = None
        elif self._hold_stalled_since is None:
            self._hold_stalled_since = now
        elif now - self._hold_stalled_since >= limit:
            # its source went stale 0.5 s after the last tick: the fallback flies
            self.abort(f"hold stalled: no fresh setpoint for {limit:g} s", "hold")
        # engaging again after it held is a resumption: the fallback still flies
        unheld = hold.state is HoldState.WITHDRAWN or (
            hold.state is HoldState.ENGAGING and hold.held_since_engaged)
        if hold.latched is not None:
            # it will not resume: waiting out the limit flies the fallback for nothing
            self.abort(f"hold withdrawn for good: {hold.reason}", "hold")
        elif unheld and hold.unheld_for(now) >= limit:
            self.abort(f"hold withdrawn for {limit:g} s: {hold.reason}", "hold")

    def _watch_hold(self) -> None:
        """Say each time the hold withdraws (and the fallback flies) and resumes,
        and each time its body rates change source."""
        hold = self.flow_hold
        if hold is None:
            return
        if hold.imu_rates and hold.state is not HoldState.OFF \
                and hold.rates_source != self._rates_seen:
            self._rates_seen = hold.rates_source
            self._emit(EventKind.HOLD, "hold rates from the IMU" if hold.rates_reason is None
                       else f"hold rates from AttitudeState: {hold.rates_reason}",
                       data={"state": hold.state.value, "rates": hold.rates_source,
                             "reason": hold.rates_reason})
        if hold.transition_count != self._hold_seen:
            new = min(hold.transition_count - self._hold_seen, len(hold.transitions))
            self._hold_seen = hold.transition_count
            for _t, state, reason in list(hold.transitions)[-new:]:
                self._report_hold(state, reason)
        if hold.state is HoldState.OFF:
            self._hold_was_withdrawn = self._fallback_ranged = False
            return
        ranged = self._height_loop() is not None   # what the fallback flies, not what it could
        if self._hold_was_withdrawn and ranged != self._fallback_ranged:
            self._fallback_ranged = ranged
            why = hold.vertical_problem or "the height loop failed (logged)"
            data: dict[str, Any] = {
                "state": hold.state.value, "reason": None if ranged else why,
                "fallback_height": "ranger" if ranged else "open loop",
                "hover_throttle": _round(hold.hover_throttle)}
            step = self._step
            if self.state is State.RUNNING and step is not None \
                    and step.profile == self._hold_fallback:   # a hover, not a descent
                data["fallback_throttle"] = round(self._hold_fallback(0.0).throttle, 4)
            self._emit(EventKind.HOLD, "hold fallback: the height on the ranger again"
                       if ranged else f"hold fallback: the height open loop: {why}", data=data)

    def _report_hold(self, state: HoldState, reason: str | None) -> None:
        hold = self.flow_hold
        assert hold is not None
        if state is HoldState.WITHDRAWN:
            self._hold_was_withdrawn = True
            thr = self._hold_fallback(0.0).throttle
            roll, pitch = hold.fallback_tilt()
            ranged = self._fallback_ranged = self._height_loop() is not None   # what flies
            self._emit(EventKind.HOLD, f"hold withdrawn: {reason}; flying an attitude "
                       f"hover at throttle {thr:.3f}, roll {roll:+.3f}, pitch {pitch:+.3f}"
                       + ("; the height held on the ranger" if ranged else ""),
                       data={"state": state.value, "reason": reason,
                             "fallback_throttle": round(thr, 4),
                             "fallback_height": "ranger" if ranged else "open loop",
                             "hover_throttle": _round(hold.hover_throttle)})
        elif state is HoldState.HOLDING:
            resumed, self._hold_was_withdrawn = self._hold_was_withdrawn, False
            self._emit(EventKind.HOLD, "hold resumed" if resumed else "holding",
                       data={"state": state.value})

    def _record(self, now: float, command: Setpoint | None, view: FlightView) -> None:
        t = now - self._t0
        row: dict[str, float] = {"t": t}
        if command is not None:
            row.update(throttle=command.throttle, roll=command.roll, pitch=command.pitch,
                       yaw=command.yaw)
        if view.roll_deg is not None:
            row.update(roll_deg=view.roll_deg, pitch_deg=view.pitch_deg or 0.0)
        trim = None if self.drift is None else self.drift.last_trim
        if trim is not None:
            row.update(trim_roll_deg=trim.roll_deg, trim_pitch_deg=trim.pitch_deg,
                       est_vn=trim.estimate.velocity_ned[0],
                       est_ve=trim.estimate.velocity_ned[1])
        hold = None if self.flow_hold is None else self.flow_hold.status()
        if hold is not None and hold.height_m is not None:
            row.update(est_height=hold.height_m, hold_holding=float(
                hold.state is HoldState.HOLDING))
            sp = None if self.flow_hold is None else self.flow_hold.last_setpoint
            if sp is not None and hold.state is HoldState.HOLDING:
                row.update(hold_throttle=sp.throttle, hold_roll=sp.roll, hold_pitch=sp.pitch)
            if hold.position_m is not None and hold.velocity_mps is not None:
                row.update(est_pn=hold.position_m[0], est_pe=hold.position_m[1],
                           est_vn=hold.velocity_mps[0], est_ve=hold.velocity_mps[1])
        truth = self.io.truth_position()
        if truth is not None:
            row.update(north=truth[0], east=truth[1], down=truth[2])
        self.samples.append(row)
        if t - self._last_progress >= 1.0 and self.state is State.RUNNING:
            self._last_progress = t
            data = {k: round(v, 3) for k, v in row.items() if k != "t"}
            self._emit(EventKind.PROGRESS, "progress", data=data)

    # -- helpers ----------------------------------------------------------------

    def _flying(self) -> bool:
        """Whether the drift loop may act: armed and throttle at flying level."""
        return (self.state is State.RUNNING and self._expect_armed
                and self._command.throttle >= (self._drift_config or CompensatorConfig())
                .airborne_throttle)

    @contextlib.asynccontextmanager
    async def _drift_held(self) -> AsyncIterator[None]:
        """The drift loop keeps its trims but does not fight a commanded move."""
        if self.drift is not None:
            self.drift.hold = True
        try:
            yield
        finally:
            if self.drift is not None:
                self.drift.hold = False

    def _land_throttle(self) -> float:
        """0.9 x the hover throttle (the hold's learned one if it has one), or the
        configured land throttle, but never above 0.9 x the learned one: a craft
        lighter than [mission] hover_throttle says must not climb while landing."""
        hover = self.config.hover_throttle
        if self.flow_hold is not None and self.flow_hold.hover_throttle is not None:
            hover = self.flow_hold.hover_throttle
            if self.safety.land_throttle is not None:
                return min(self.safety.land_throttle, 0.9 * hover)
        if self.safety.land_throttle is not None:
            return self.safety.land_throttle
        return 0.9 * hover

    async def _timed(self, step: Step, profile: Profile,
                     data: dict[str, Any] | None = None,
                     on_start: Callable[[], None] | None = None) -> None:
        seconds = float(step.params["seconds"])
        await self._run(step, profile, done=lambda t: t >= seconds, deadline=seconds,
                        data=data, on_start=on_start)

    async def _run(self, step: Step, profile: Profile, *, done: Callable[[float], bool],
                   deadline: float, data: dict[str, Any] | None = None,
                   on_start: Callable[[], None] | None = None) -> None:
        """Run a step; ``on_start`` is called once its checks passed, as it starts."""
        # validates API calls exactly as the TOML steps are validated
        validate_step(step.action, step.params, f"step {self._step_count + 1} ({step.action})")
        if self.state is not State.RUNNING:
            raise SafetyAbort(self.abort_reason or f"mission is {self.state.value}")
        if self._step is not None:
            raise RuntimeError("one step at a time")
        if step.action in ("climb", "hover", "move", "yaw", "hold"):
            self._on_ground = False
        hold = self.flow_hold
        if (hold is not None and step.action not in HOLD_STEPS
                and hold.state is not HoldState.OFF):
            # the hold's source overrides the mission's: this step would not fly
            hold.release(f"{step.action} step")
        if on_start is not None:
            on_start()
        index = self._step_count
        self._step_count += 1
        now = self.io.now()
        loop = asyncio.get_running_loop()
        active = _ActiveStep(index, step, profile, now, done,
                             now + deadline + self.safety.step_timeout_margin_s,
                             loop.create_future())
        self._between = None
        self._command = profile(0.0)
        self._step = active
        self._emit(EventKind.STEP_STARTED, f"{step}", index=index, step=step,
                   data={**self._truth_data(), **(data or {})})
        await active.future

    def _truth_data(self) -> dict[str, Any]:
        truth = self.io.truth_position()
        return {} if truth is None else {"truth_ned": [round(x, 4) for x in truth]}

    def _set_state(self, state: State) -> None:
        if state is not self.state:
            log.info("mission %s -> %s", self.state.value, state.value)
            self.state = state

    def _emit(self, kind: EventKind, message: str, *, index: int | None = None,
              step: Step | None = None, data: dict[str, Any] | None = None) -> None:
        self.events.emit(MissionEvent(
            t=self.time(), kind=kind, message=message, step=index,
            action=None if step is None else step.action, data=data or {}))


def _fmt(x: float | None) -> str:
    return "?" if x is None else f"{x:.2f}"


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _gesture(arm: ArmRequest) -> Profile:
    """Throttle off and sticks centred first, then the arming gesture.

    The firmware's arm handler only starts a sequence on a fresh crossing of
    the threshold with the throttle already low, so the gesture must not
    arrive in the same frame as the throttle cut.
    """
    def profile(t: float) -> Setpoint:
        return NEUTRAL if t < GESTURE_SETTLE_S else Setpoint(arm=arm)
    return profile


def _params(**kw: float | None) -> dict[str, float]:
    return {k: float(v) for k, v in kw.items() if v is not None}
