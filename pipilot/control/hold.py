"""Position and height hold from the flow deck: the ``"hold"`` mixer source.

`FlowHold` implements `pipilot.control.holdapi.HoldControl`. It reads the
flow deck's samples (``await deck.get()``) and the CC3D's AttitudeState
telemetry, runs a `FlowEstimator`, and publishes roll and pitch from a
position/velocity loop and throttle from a height loop that learns the
hover throttle in flight, starting from the caller's guess. It knows the
craft only through these: no simulator, no drag, mass or hover figure.

Failsafe: flow that is stale or invalid for ``flow_timeout_s`` (not needed
below ``flow_min_height_m`` before take-off and at the end of a landing,
where the camera cannot focus: the craft flies level there, or, taking off
and seeing valid flow above ``touchdown_height_m``, holds position with at
most `LOW_TILT_DEG`), a range stale or
invalid for ``range_timeout_s``, or AttitudeState older than
``attitude_timeout_s`` withdraws the source at once (state WITHDRAWN, with
the sensor and why in ``reason``); the one who engaged the hold flies the
fallback, whose throttle the height loop gives while the range, the attitude
and the estimate are still good (the flow alone lost, typically:
`vertical_fallback`, the height held on the ranger, not a hover throttle
flown open loop that may still be wrong). Once all are valid again for
``resume_s`` it holds again where the craft then is. A range that jumps to
the floor, a range under the flow camera's focus distance while the flow is
sharp, a learned hover throttle at its bound (``hover_range``) or a
non-finite value withdraws it until it is engaged anew (`latched`), and the
hover throttle learned meanwhile never stays above the guess.

Body rates (the flow's rotation part) come from the deck's MPU-6050 when it
has one (``rates = "imu"``, the default then): read on the Pi at hundreds of
hertz with no link delay. Otherwise, or while the IMU is faulty or stale for
``imu_timeout_s``, they are the difference of consecutive AttitudeStates
(``rates = "attitude"``); losing the IMU alone does not withdraw the hold,
it says so in ``reason`` and goes on with the slower rates. The AttitudeState
period asked of the FC is one the 9600-baud line carries beside the FC's
other periodic objects (`pipilot.uavtalk.linkbudget`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from typing import Protocol

from pipilot.control.flow import FlowConfig, FlowEstimate, FlowEstimator
from pipilot.control.holdapi import HoldState, HoldStatus
from pipilot.control.holdconfig import HoldConfig as HoldConfig
from pipilot.core.setpoints import Setpoint
from pipilot.core.vehicle import FlightVehicle, ObjectValues
from pipilot.errors import ConfigError
from pipilot.faultlog import FailureLog
from pipilot.sensors import pmw3901
from pipilot.sensors.reader import (
    FlowDeckPoller,
    Item,
    SensorFault,
    TimedFlow,
    TimedImu,
    TimedRange,
)
from pipilot.uavtalk import linkbudget

log = logging.getLogger(__name__)

HOLD_SOURCE = "hold"
GRAVITY = 9.80665
FLOW_FRESH_S = 0.1
"""Valid flow this recent flies the horizontal hold even below flow_min_height_m."""
TAKEOFF_CLIMB_MPS = 0.05
"""Rising faster than this, the craft has started up: the take-off ramp stops."""
TAKEOFF_WAIT_S = 0.5
"""Asked to climb and still on the floor this long, the hover throttle ramps up: a
craft the guess lifts is up by then, and a ramp would only over-learn its hover."""
LOW_TILT_DEG = 4.0
"""The most tilt the hold asks for below flow_min_height_m, legs near the floor
(taking off, or a held height that low), without the lead."""
FOCUS_SQUAL = 2 * pmw3901.SQUAL_MIN
"""SQUAL this high, not merely valid, is taken as the camera in focus."""
FOCUS_S = 0.3
"""Valid flow this long while the ranger says the deck is below half the flow camera's
focus distance: the ranger lies (frozen on the floor, say)."""
NOT_CHECKED = "the sensors not checked since the hold's last tick began"
"""Why the height loop cannot fly before a tick (one that did not fail) checked them."""
RANGE_JUMP_MPS = 3.0
"""A range falling faster than this towards the floor is a jump, not a descent."""



class Deck(Protocol):
    """Where the hold gets the flow deck's samples (`SensorReader`, `PolledDeck`)."""

    async def get(self) -> list[Item]: ...


def deck_has_imu(deck: object) -> bool:
    """Whether ``deck`` reads an IMU (a `FlowDeckPoller` with one, directly or in a reader)."""
    poller = getattr(deck, "poller", None)
    return isinstance(poller, FlowDeckPoller) and poller.imu is not None


class PolledDeck:
    """A lock-step deck: sleeps on the loop's clock and polls, the flow deck every
    ``period_s`` and its IMU, if it has one, at the IMU's own rate in between."""

    def __init__(self, poller: FlowDeckPoller, period_s: float = 0.01) -> None:
        if not 0 < period_s <= 1:
            raise ValueError("period_s must be in (0, 1]")
        self.poller = poller
        self.period_s = period_s
        imu = poller.imu_period_s
        self._imu_steps = 1 if imu is None else max(1, round(period_s / imu))
        self._step = 0

    async def get(self) -> list[Item]:
        step_s = self.period_s / self._imu_steps
        while True:
            await asyncio.sleep(step_s)
            self._step = (self._step + 1) % self._imu_steps
            items = self.poller.poll() if self._step == 0 else self.poller.poll_imu()
            if items:
                return items


IMU_ATTITUDE_PERIOD_MS = 200
"""AttitudeState period with IMU rates: it only tilts the thrust and turns the
velocity into north and east, which change slowly in a hold."""


def attitude_period_ms(config: HoldConfig, imu_rates: bool, baud: int = linkbudget.BAUD,
                       others: dict[str, int] | None = None) -> int:
    """The AttitudeState period the hold asks for: what ``config`` says (or its
    default for the rate source), no faster than the line carries beside
    ``others`` (default: the FC's stock periodic objects)."""
    others = linkbudget.stock_periodic() if others is None else others
    fastest = linkbudget.fastest_period_ms("AttitudeState", others, baud)
    if fastest is None:
        raise ConfigError("hold.attitude_period_ms",
                          f"the {baud}-baud line has no room for AttitudeState beside "
                          f"{', '.join(sorted(others))}")
    want = config.attitude_period_ms
    if want is None:
        want = IMU_ATTITUDE_PERIOD_MS if imu_rates else fastest
    return max(round(want), fastest)


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


class FlowHold:
    """The flow-deck hold on a FlightVehicle (see the module's docstring)."""

    def __init__(self, vehicle: FlightVehicle, config: HoldConfig | None = None,
                 estimator: FlowConfig | None = None, *, priority: int | None = None,
                 timeout_s: float | None = None, imu: bool = False,
                 telemetry_baud: int = linkbudget.BAUD) -> None:
        """``priority``/``timeout_s``: the ``"hold"`` source's; None keeps the mixer's
        (the standard source's), or 25 and 0.5 s where the mixer has none. ``imu``:
        the deck it will read has an IMU; ``[hold] rates = "imu"`` without one is a
        ConfigError. ``telemetry_baud``: the telemetry line's, which the
        AttitudeState period asked for must fit beside the FC's stock objects."""
        self.vehicle = vehicle
        self.config = config or HoldConfig()
        if self.config.rates == "imu" and not imu:
            raise ConfigError("hold.rates", 'is "imu" but the flow deck has no IMU '
                              '(wire an MPU-6050 to the Pi\'s I2C, or say "attitude")')
        self.imu_rates = imu and self.config.rates != "attitude"
        """Rates from the deck's IMU (False: from AttitudeState)."""
        self.rates_source = "attitude"
        """Where the rates come from now: "imu", or "attitude" (the IMU's fallback too)."""
        self.rates_reason: str | None = None
        """Why IMU rates are not used although asked for (None when they are)."""
        self.attitude_period_ms: int | None = None
        """The AttitudeState period asked of the FC (set by configure_rates)."""
        self.attitude_period_set = False
        """The FC acknowledged `attitude_period_ms` (configure_rates succeeded)."""
        self.telemetry_baud = telemetry_baud
        self.attitude_period_error: str | None = None
        """Why the last configure_rates did not set the period (None: it did, or
        none was tried): the hold then works on the FC's own period."""
        self._last_imu_t: float | None = None
        self._imu_fault: str | None = None
        self.estimator = FlowEstimator(estimator)
        self.state = HoldState.OFF
        self.reason: str | None = None
        self.target_height: float | None = None
        self.target_position: tuple[float, float] | None = None
        self.hover_throttle: float | None = None
        self.last_setpoint: Setpoint | None = None
        self._want_height: float | None = None
        self._piloted = False
        self._pilot_t: float | None = None
        self._sticks = Setpoint()
        self._last_flow_t: float | None = None
        self._last_range_t: float | None = None
        self._valid_since: float | None = None
        self._att_values: ObjectValues | None = None
        self._att_prev: tuple[float, float, float, float] | None = None
        self._yaw = 0.0
        self._last_tick: float | None = None
        self._estimate: FlowEstimate | None = None
        self._fallback: tuple[float, float] | None = None
        self._resuming = False
        self._att_t: float | None = None
        self._hover_guess: float | None = None
        self._latched: str | None = None
        self._prev_range: tuple[float, float] | None = None
        self._focus_since: float | None = None
        self._lead_state: tuple[float, float, float] | None = None
        self._sit_since: float | None = None
        self._low_ok = False
        self._landing = False
        self._touch_since: float | None = None
        self._vertical_problem: str | None = NOT_CHECKED
        self._vertical_t: float | None = None
        self.touched_down = False
        """A landing (`land`) has reached the floor and stopped there."""
        self._unheld_s = 0.0              # `unheld_for` at the last transition ...
        self._unheld_at = 0.0             # ... made then
        self._has_held = False
        self.failures = FailureLog(log, "hold tick failed", clock=vehicle.clock)
        self.transitions: deque[tuple[float, HoldState, str | None]] = deque(maxlen=64)
        """The newest transitions; `transition_count` counts them all."""
        self.transition_count = 0
        source = vehicle.mixer.sources.get(HOLD_SOURCE)
        if source is None or priority is not None or timeout_s is not None:
            vehicle.mixer.add_source(
                HOLD_SOURCE, priority if priority is not None
                else source.priority if source is not None else 25, mode="override",
                timeout_s=timeout_s if timeout_s is not None
                else source.timeout_s if source is not None else 0.5)

    # -- HoldControl -----------------------------------------------------------

    def engage(self, target_height_m: float | None = None, *, hover_guess: float,
               piloted: bool = False) -> None:
        if not 0.0 < hover_guess < 1.0:
            raise ConfigError("hover_guess", f"must be between 0 and 1, not {hover_guess!r}")
        if target_height_m is not None and not (
                math.isfinite(target_height_m) and target_height_m >= 0.0):
            raise ConfigError("target_height_m", f"must be >= 0, not {target_height_m!r}")
        cfg = self.config
        if self.state is HoldState.OFF or self.hover_throttle is None:
            self.hover_throttle = _clip(hover_guess, cfg.throttle_min, cfg.throttle_max)
            self._hover_guess = self.hover_throttle
        if self.state is HoldState.OFF:
            est = self._estimate
            self._latched = None
            self._vertical_t = None
            self._reset_timers()
            # before take-off the flow camera cannot focus: the floor needs no flow
            self._low_ok = est is None or est.height < cfg.flow_min_height_m
            self._landing = self.touched_down = False
            self._touch_since = None
        self._want_height = (None if target_height_m is None
                             else min(target_height_m, cfg.max_height_m))
        self.target_height = self._want_height
        self._piloted = piloted
        self._pilot_t = self.vehicle.clock.now() if piloted else None
        self._sticks = Setpoint()
        if self.state in (HoldState.OFF, HoldState.WITHDRAWN):
            self.target_position = None
            self._set(HoldState.ENGAGING, "waiting for fresh flow and range")
        elif self.state is HoldState.HOLDING and self.target_height is None:
            est = self._estimate
            self.target_height = None if est is None else min(est.height, cfg.max_height_m)

    def set_target_height(self, height_m: float) -> None:
        """Hold at ``height_m`` (bounded by max_height_m) from now on."""
        h = min(max(height_m, 0.0), self.config.max_height_m)
        self._want_height = self.target_height = h
        if h > 0.0:
            self._landing = False

    def land(self) -> None:
        """Descend to the floor; `touched_down` says when it is there (the one who
        engaged the hold then cuts the throttle)."""
        self.set_target_height(0.0)
        self._landing = True

    def release(self, reason: str = "released") -> None:
        self.vehicle.mixer.withdraw(HOLD_SOURCE)
        self._set(HoldState.OFF, reason)

    def pilot(self, sticks: Setpoint) -> None:
        self._sticks = sticks
        self._pilot_t = self.vehicle.clock.now()

    def status(self) -> HoldStatus:
        est = self._estimate
        now = self.vehicle.clock.now()
        e = self.estimator
        return HoldStatus(
            state=self.state, reason=self.reason,
            height_m=None if est is None else est.height,
            climb_mps=None if est is None else est.climb,
            velocity_mps=None if est is None else est.velocity,
            position_m=None if est is None else est.position,
            target_height_m=self.target_height, target_position_m=self.target_position,
            hover_throttle=self.hover_throttle,
            flow_age_s=None if e.last_flow_valid_t is None else now - e.last_flow_valid_t,
            range_age_s=None if e.last_range_valid_t is None else now - e.last_range_valid_t,
            rates=self.rates_source,
            attitude_period_ms=self.attitude_period_ms if self.attitude_period_set else None,
            attitude_period_error=self.attitude_period_error)

    # -- the loop ---------------------------------------------------------------

    async def run(self, deck: Deck) -> None:
        """Feed the deck's samples and tick at ``rate_hz`` until cancelled."""
        reader = asyncio.create_task(self._read(deck), name="hold-deck")
        try:
            period = 1.0 / self.config.rate_hz
            while True:
                try:
                    self.tick()
                except Exception as exc:   # a bad sample must not end the loop
                    self.failures.failed(exc)
                    self._withdraw(f"hold failed: {exc}")
                await asyncio.sleep(period)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self.failures.flush()
            self.vehicle.mixer.withdraw(HOLD_SOURCE)

    async def _read(self, deck: Deck) -> None:
        while True:
            try:
                self.feed(await deck.get())
            except Exception as exc:   # the samples go stale and the hold withdraws
                self.failures.failed(exc)
                await asyncio.sleep(0.1)

    def feed(self, items: list[Item]) -> None:
        """Hand deck samples to the estimator (a bad one is logged, the rest still fed)."""
        for item in items:
            try:
                self._feed_one(item)
            except Exception as exc:   # one bad sample must not drop the good ones
                self.failures.failed(exc)

    def _feed_one(self, item: Item) -> None:
        if isinstance(item, TimedImu):
            if self.imu_rates:
                r = item.timed_rates()
                self.estimator.add_rates(r.t, r.rates, telemetry=False)
                self._last_imu_t = item.t
                self._imu_fault = None
        elif isinstance(item, TimedFlow):
            self._last_flow_t = item.t
            self.estimator.add_flow(item.t, item.sample)
        elif isinstance(item, TimedRange):
            self._last_range_t = item.t
            self.estimator.add_range(item.t, item.sample)
            if item.sample.valid:
                self._check_range_jump(item.t, item.sample.range_m)
        elif isinstance(item, SensorFault):
            if item.imu:
                self._imu_fault = item.message
            log.debug("flow deck fault: %s", item.message)

    def _update_rates_source(self, now: float) -> None:
        """IMU rates while they are fresh; AttitudeState's otherwise (said in reason)."""
        if not self.imu_rates:
            return
        if self._last_imu_t is not None and now - self._last_imu_t <= self.config.imu_timeout_s:
            source, why = "imu", None
        else:
            age = ("no sample yet" if self._last_imu_t is None
                   else f"no sample for {now - self._last_imu_t:.2f} s")
            why = f"IMU {'fault: ' + self._imu_fault if self._imu_fault else 'stale: ' + age}" \
                  "; rates from AttitudeState"
            source = "attitude"
        if source != self.rates_source:
            log.warning("hold rates from %s%s", source, f" ({why})" if why else "")
        self.rates_source, self.rates_reason = source, why

    def _read_telemetry(self, now: float) -> None:
        tel = self.vehicle.telemetry
        got = None if tel is None else tel.latest("AttitudeState")
        if got is None:
            return
        values, age = got
        if values is self._att_values:
            return
        self._att_values = values
        t = now - age
        self._att_t = t
        roll, pitch, yaw = (float(values["Roll"]), float(values["Pitch"]),
                            float(values["Yaw"]))
        self._yaw = yaw
        self.estimator.add_attitude(t, roll, pitch, yaw)
        prev, self._att_prev = self._att_prev, (t, roll, pitch, yaw)
        if self.rates_source == "imu":
            return
        if prev is not None and 0.0 < t - prev[0] <= 0.5:
            dt = t - prev[0]
            rates = (math.radians(roll - prev[1]) / dt, math.radians(pitch - prev[2]) / dt,
                     math.radians(((yaw - prev[3] + 180.0) % 360.0) - 180.0) / dt)
            # a rate from two attitudes is the mean over the interval between them
            self.estimator.add_rates(t - dt / 2, rates)

    def tick(self) -> Setpoint | None:
        """Read telemetry, update the estimate, run the state machine, publish."""
        now = self.vehicle.clock.now()
        # until this tick has checked the sensors, the height loop has no verdict to fly on
        self._vertical_problem = NOT_CHECKED
        dt = 0.0 if self._last_tick is None else min(max(now - self._last_tick, 0.0), 0.1)
        self._last_tick = now
        self._update_rates_source(now)
        self._read_telemetry(now)
        self.estimator.update(now)
        est = self._estimate = self.estimator.estimate(now)
        if self.state is HoldState.OFF:
            return None
        problem, self._vertical_problem = self._sensor_problem(now, est)
        self._check_touchdown(now, est, self._vertical_problem)
        if self._piloted and self._pilot_t is not None:
            pilot = self.vehicle.mixer.sources.get("pilot")
            limit = pilot.timeout_s if pilot is not None else 0.5
            if now - self._pilot_t > limit:
                problem = f"pilot heartbeat lost ({now - self._pilot_t:.2f} s)"
        if self.state is HoldState.HOLDING:
            if problem is not None:
                self._withdraw(problem)
                return None
        else:
            if problem is not None or est is None:
                self._valid_since = None
                if self.state is HoldState.ENGAGING and problem is not None:
                    self.reason = f"waiting: {problem}"
                elif self.state is HoldState.WITHDRAWN and problem is not None:
                    self.reason = problem   # what is wrong now (a second sensor, say)
                return None
            if self._valid_since is None:
                self._valid_since = now
            if self.state is HoldState.WITHDRAWN:
                self._resuming = True
                self._set(HoldState.ENGAGING, "sensors valid again")
            wait = self.config.resume_s if self._resuming else 0.0
            if now - self._valid_since < wait:
                return None
            self._start_holding(est)
        assert est is not None
        self.reason = self.rates_reason   # holding, on AttitudeState rates: say why
        sp = self._control(est, dt)
        if self._latched is not None:   # the hover throttle reached its bound
            self._withdraw(self._latched)
            return None
        if not all(math.isfinite(v) for v in (sp.throttle, sp.roll, sp.pitch, sp.yaw)):
            self._latched = "non-finite setpoint"
            self._withdraw(self._latched)
            return None
        self.last_setpoint = sp
        self.vehicle.mixer.publish(HOLD_SOURCE, sp)
        return sp

    def _sensor_problem(self, now: float,
                        est: FlowEstimate | None) -> tuple[str | None, str | None]:
        """What keeps the hold from holding, and what keeps its height loop from flying
        (everything but the flow, which the height does not need): None where
        nothing does."""
        cfg = self.config
        e = self.estimator
        ranger: str | None = None
        flow: str | None = None
        attitude: str | None = None
        if self._last_range_t is None or now - self._last_range_t > cfg.range_timeout_s:
            ranger = "range stale: no sample for " + (
                "ever" if self._last_range_t is None else f"{now - self._last_range_t:.2f} s")
        elif e.last_range_valid_t is None or now - e.last_range_valid_t > cfg.range_timeout_s:
            what = e.last_range.status_text if e.last_range is not None else "?"
            ranger = f"range invalid: {what}"
        if not self._low(est):
            if self._last_flow_t is None or now - self._last_flow_t > cfg.flow_timeout_s:
                flow = "flow stale: no sample for " + (
                    "ever" if self._last_flow_t is None else f"{now - self._last_flow_t:.2f} s")
            elif e.last_flow_valid_t is None or now - e.last_flow_valid_t > cfg.flow_timeout_s:
                f = e.last_flow
                flow = "flow invalid: " + ("?" if f is None else f"SQUAL {f.squal} ({f.status})")
        self._check_focus(now)
        if self._att_t is None or now - self._att_t > cfg.attitude_timeout_s:
            attitude = "attitude stale: no AttitudeState for " + (
                "ever" if self._att_t is None else f"{now - self._att_t:.2f} s")
        if est is not None:
            if not all(math.isfinite(v) for v in (est.height, est.climb, *est.position,
                                                  *est.velocity, *est.accel_bias)):
                self._latched = "non-finite estimate"
            elif not self._low_ok and est.height < cfg.flow_min_height_m and self._landing:
                self._low_ok = True   # the end of a landing: the flow cannot focus
            elif self._low_ok and est.height >= cfg.flow_min_height_m:
                self._low_ok = False  # taken off: from now on the flow is needed
        both = [p for p in (ranger, flow, attitude, self._latched) if p is not None]
        height = [p for p in (ranger, attitude, self._latched) if p is not None]
        if est is None:
            height.append("no estimate yet")
        return ("; ".join(both) or None), ("; ".join(height) or None)

    def _flow_fresh(self, now: float) -> bool:
        """The estimator fuses valid flow now (it is not at rest, blind on the floor)."""
        e = self.estimator
        return (not e.resting and e.last_flow_valid_t is not None
                and now - e.last_flow_valid_t <= FLOW_FRESH_S)

    def _low(self, est: FlowEstimate | None) -> bool:
        """Near the floor where no flow is needed: before take-off, end of a landing."""
        return (self._low_ok and est is not None
                and est.height < self.config.flow_min_height_m)

    def _check_focus(self, now: float) -> None:
        """The PMW3901 cannot focus below MIN_RANGE_M: valid flow says the deck is at
        least that high. A valid range below half of it for FOCUS_S meanwhile is a
        ranger fault (frozen on the floor while the craft climbs): latched, before the
        height loop, blind, flies the craft away."""
        e = self.estimator
        r, f = e.last_range, e.last_flow
        # the sensor's own word, not whether the estimator fuses it (at rest it does not)
        focused = (e.last_flow_valid_t is not None and now - e.last_flow_valid_t <= FLOW_FRESH_S
                   and f is not None and f.squal >= FOCUS_SQUAL)
        short = r is not None and r.valid and r.range_m < pmw3901.MIN_RANGE_M / 2
        if not (focused and short) or self._landing or self.state is HoldState.OFF:
            self._focus_since = None
            return
        assert r is not None
        if self._focus_since is None:
            self._focus_since = now
        elif now - self._focus_since >= FOCUS_S and self._latched is None:
            self._latched = (f"the flow camera is in focus, yet the range says "
                             f"{r.range_m:.2f} m (no focus below "
                             f"{pmw3901.MIN_RANGE_M * 1000:.0f} mm): ranger fault")
            self._low_ok = False
            self._unlearn()   # learned blind, on the lying range

    def _unlearn(self) -> None:
        """No higher than the guessed hover throttle: what was learned came from a lying
        height (or none), and the fallback and the failsafe's descent fly it. Never
        raised: a craft that learned less than the guess may be lighter than it, and
        0.9 x the guess would climb in the failsafe's descent."""
        guess, now = self._hover_guess, self.hover_throttle
        if guess is not None and now is not None:
            self.hover_throttle = min(now, guess)

    def _check_range_jump(self, t: float, range_m: float) -> None:
        """A range that drops to near the floor between two samples (faster than
        RANGE_JUMP_MPS) is a ranger fault, however the filter takes it: latched."""
        prev, self._prev_range = self._prev_range, (t, range_m)
        if prev is None or self.state is HoldState.OFF:
            return
        dt = max(t - prev[0], 1e-3)
        if (range_m < self.config.flow_min_height_m and prev[1] - range_m > 0.1
                and (prev[1] - range_m) / dt > RANGE_JUMP_MPS):
            self._latched = (f"range jumped from {prev[1]:.2f} m to {range_m:.2f} m without "
                             "a descent (ranger fault)")
            self._low_ok = False

    def _check_touchdown(self, now: float, est: FlowEstimate | None,
                         problem: str | None) -> None:
        cfg = self.config
        if (not self._landing or est is None or problem is not None
                or est.height >= cfg.touchdown_height_m or abs(est.climb) > 0.1):
            self._touch_since = None
            return
        if self._touch_since is None:
            self._touch_since = now
        if not self.touched_down and now - self._touch_since >= cfg.touchdown_s:
            self.touched_down = True
            log.info("hold: touched down (height %.2f m)", est.height)

    def stalled(self, now: float) -> bool:
        """Holding, yet its source is not fresh: the hold's task has stopped ticking."""
        source = self.vehicle.mixer.sources.get(HOLD_SOURCE)
        return self.state is HoldState.HOLDING and (source is None or not source.fresh(now))

    @property
    def latched(self) -> str | None:
        """Why the hold withdrew until it is engaged anew (a fault it does not resume
        from: a range jump, a range under a sharp flow's focus distance, the hover
        throttle at its bound, a non-finite value)."""
        unheld = self.state in (HoldState.WITHDRAWN, HoldState.ENGAGING)
        return self._latched if unheld else None

    @property
    def held_since_engaged(self) -> bool:
        """The hold has held since it was engaged: ENGAGING now is a resumption, and
        the fallback flies as while withdrawn."""
        return self._has_held

    def unheld_for(self, now: float) -> float:
        """How long the engaged hold has not held (withdrawn, or engaging), less the
        time it has held since; 0 while off, and the time taken to first hold after
        engaging is forgiven once it holds. A hold that flaps back to HOLDING for an
        instant does not start afresh, so the mission's ``withdrawn_abort_s`` bounds
        the fallback's time however often it flaps."""
        gone = now - self._unheld_at
        if self.state is HoldState.OFF:
            return 0.0
        if self.state is HoldState.HOLDING:
            return max(0.0, self._unheld_s - gone)
        return self._unheld_s + gone

    def _withdraw(self, reason: str) -> None:
        self.vehicle.mixer.withdraw(HOLD_SOURCE)
        self._valid_since = None
        self._reset_timers()
        if self.state is HoldState.HOLDING:
            self._fallback = None
            self._fallback = self.fallback_tilt()
        if self.state is not HoldState.OFF:
            self._set(HoldState.WITHDRAWN, reason)

    def _reset_timers(self) -> None:
        """Forget what spans ticks of holding: a withdrawal, a resumption or a new
        engagement starts these afresh."""
        self._sit_since = self._focus_since = self._lead_state = None

    def _start_holding(self, est: FlowEstimate) -> None:
        self._fallback = None
        self._resuming = False
        self._reset_timers()
        self.target_position = est.position
        if self._want_height is None:
            self.target_height = min(est.height, self.config.max_height_m)
        self._set(HoldState.HOLDING, None)

    def _set(self, state: HoldState, reason: str | None) -> None:
        if state is not self.state:
            now = self.vehicle.clock.now()
            self.transitions.append((now, state, reason))
            self.transition_count += 1
            if state is HoldState.OFF:
                self._unheld_s, self._has_held = 0.0, False
            elif state is HoldState.HOLDING and not self._has_held:
                self._unheld_s, self._has_held = 0.0, True   # engaging was no withdrawal
            else:
                self._unheld_s = self.unheld_for(now)
            self._unheld_at = now
            log.info("hold %s -> %s%s", self.state.value, state.value,
                     f": {reason}" if reason else "")
        self.state = state
        self.reason = reason

    def _control(self, est: FlowEstimate, dt: float) -> Setpoint:
        cfg = self.config
        sticks = self._sticks if self._piloted else Setpoint()
        assert self.target_position is not None and self.hover_throttle is not None
        # near the floor the craft flies level; taking off, once above the touchdown
        # height and seeing valid flow, it holds position with a small tilt
        low = self._low(est) and (self._landing or est.height < cfg.touchdown_height_m
                        or not self._flow_fresh(est.t))
        yaw = math.radians(self._yaw)
        c, s = math.cos(yaw), math.sin(yaw)
        # the pilot's sticks move the held point (forward/right -> north/east)
        fwd, right = sticks.pitch * -cfg.nudge_mps, sticks.roll * cfg.nudge_mps
        tn, te = self.target_position
        tn += (c * fwd - s * right) * dt
        te += (s * fwd + c * right) * dt
        if low:
            tn, te = est.position   # no horizontal hold near the floor: level
        self.target_position = (tn, te)
        if self.target_height is None:
            self.target_height = min(est.height, cfg.max_height_m)
        if self._piloted:
            climb = (sticks.throttle - 0.5) * 2.0
            rate = climb * (cfg.max_climb_mps if climb > 0 else cfg.max_descent_mps)
            if abs(climb) > 0.1:
                self.target_height = _clip(self.target_height + rate * dt, 0.0,
                                           cfg.max_height_m)
        # horizontal: position -> speed -> acceleration -> tilt
        if low:
            roll_deg = pitch_deg = 0.0
        else:
            vn_cmd = cfg.position_kp * (tn - est.position[0])
            ve_cmd = cfg.position_kp * (te - est.position[1])
            speed = math.hypot(vn_cmd, ve_cmd)
            if speed > cfg.max_speed_mps:
                vn_cmd, ve_cmd = (vn_cmd * cfg.max_speed_mps / speed,
                                  ve_cmd * cfg.max_speed_mps / speed)
            an = cfg.velocity_kp * (vn_cmd - est.velocity[0]) - est.accel_bias[0]
            ae = cfg.velocity_kp * (ve_cmd - est.velocity[1]) - est.accel_bias[1]
            if est.height < cfg.flow_min_height_m:   # taking off, or flown that low
                roll_deg, pitch_deg = self._tilt(an, ae, LOW_TILT_DEG)
            else:
                roll_deg, pitch_deg = self._lead(*self._tilt(an, ae))
        thr = self._vertical(est, dt)
        return Setpoint.saturated(throttle=thr, roll=self._stick(roll_deg),
                                  pitch=self._stick(pitch_deg), yaw=sticks.yaw)

    def _vertical(self, est: FlowEstimate, dt: float) -> float:
        """The height loop: height -> climb rate -> throttle around the hover throttle,
        which it learns (over ``dt``) from how the height answers."""
        cfg = self.config
        assert self.hover_throttle is not None
        self._vertical_t = est.t
        if self.target_height is None:
            self.target_height = min(est.height, cfg.max_height_m)
        target_h = min(self.target_height, cfg.max_height_m)
        vz_cmd = _clip(cfg.height_kp * (target_h - est.height), -cfg.max_descent_mps,
                       cfg.max_climb_mps)
        if est.height > cfg.max_height_m:
            vz_cmd = min(vz_cmd, -cfg.max_descent_mps)
        if self._landing:
            vz_cmd = min(vz_cmd, -cfg.landing_sink_mps)
        err = vz_cmd - est.climb
        thr = self.hover_throttle + cfg.climb_kp * err
        saturated = not cfg.throttle_min < thr < cfg.throttle_max
        # on the floor a descent cannot answer: learning would wind the hover down
        grounded = est.height < cfg.touchdown_height_m and err < 0
        sitting_s = self._sitting(est, err)   # every tick: a pause restarts it
        if (not saturated or (thr >= cfg.throttle_max) != (err > 0)) and not grounded:
            guess = self._hover_guess if self._hover_guess is not None else thr
            lo = max(cfg.throttle_min, guess - cfg.hover_range)
            hi = min(cfg.throttle_max, guess + cfg.hover_range)
            rate = cfg.hover_ki * err
            if sitting_s >= TAKEOFF_WAIT_S:
                rate = max(rate, cfg.takeoff_ramp)   # too heavy to leave: speed it up
            learned = self.hover_throttle + rate * dt
            if not lo <= learned <= hi:
                # the height does not answer: the ranger lies or the craft is far off
                # the guess. The upper bound is no hover throttle for the fallback to
                # fly (on a ranger stuck while the craft climbs, it climbs away)
                high = learned > hi
                self._latched = (f"hover throttle at its bound {_clip(learned, lo, hi):.3f} "
                                 f"(guess {guess:.3f} +- {cfg.hover_range:g}): the height "
                                 "does not answer the throttle"
                                 + ("; back to the guess" if high else ""))
                self.hover_throttle = _clip(learned, lo, hi)
                self._unlearn()
            else:
                self.hover_throttle = learned
        return _clip(thr, cfg.throttle_min, cfg.throttle_max)

    @property
    def vertical_problem(self) -> str | None:
        """What keeps `vertical_fallback` from flying the height now (None: nothing):
        the hold holds (or is off), the range or the attitude is stale or invalid, a
        fault is latched, or the estimate is old (the hold's task stopped ticking)."""
        if self.state not in (HoldState.WITHDRAWN, HoldState.ENGAGING):
            return f"the hold is {self.state.value}"
        if self._latched is not None:
            return self._latched
        if self._vertical_problem is not None:
            return self._vertical_problem
        est = self._estimate
        if est is None or self.hover_throttle is None:
            return "no estimate yet"
        age = self.vehicle.clock.now() - est.t
        if age > self.config.range_timeout_s:
            return f"the hold's estimate is {age:.2f} s old"
        return None

    def vertical_fallback(self) -> float | None:
        """The throttle for the fallback while the hold does not hold (withdrawn, or
        engaging) but its height loop can fly (`vertical_problem` is None: the range,
        the attitude and the estimate fresh and valid, nothing latched; the flow
        alone lost, typically). None otherwise: the
        caller flies the learned hover throttle, open loop. The fallback then keeps
        the held height (or lands, after `land`) instead of climbing or sinking by
        how wrong the hover throttle still is. Calling it is flying it: the hover
        throttle learns from how the height answers, once per new estimate."""
        est = self._estimate
        if self.vertical_problem is not None or est is None:   # est: for the type checker
            return None
        last = self._vertical_t
        dt = 0.0 if last is None else min(max(est.t - last, 0.0), 0.25)
        thr = self._vertical(est, dt)
        if self._latched is not None or not math.isfinite(thr):
            return None   # the hover throttle reached its bound: the height lies
        return thr

    def _lead(self, roll_deg: float, pitch_deg: float) -> tuple[float, float]:
        """The FC turns its attitude towards the setpoint with a time constant (its
        attitude loop's 1/Kp): a lead of ``attitude_lead_s`` cancels it, so the
        craft tilts as soon as asked. The lead's derivative is low-passed over a
        quarter of it; the result stays within max_tilt_deg."""
        tau = self.config.attitude_lead_s
        now = self.vehicle.clock.now()
        prev, self._lead_state = self._lead_state, (now, roll_deg, pitch_deg)
        if tau <= 0.0 or prev is None:
            return roll_deg, pitch_deg
        t0, fr, fp = prev
        dt = now - t0
        if not 0.0 < dt <= 0.1:
            self._lead_state = (now, roll_deg, pitch_deg)
            return roll_deg, pitch_deg
        k = min(1.0, dt / (0.25 * tau))
        fr += k * (roll_deg - fr)
        fp += k * (pitch_deg - fp)
        self._lead_state = (now, fr, fp)
        out_r, out_p = roll_deg + 3.0 * (roll_deg - fr), pitch_deg + 3.0 * (pitch_deg - fp)
        tilt, limit = math.hypot(out_r, out_p), self.config.max_tilt_deg
        if tilt > limit:
            out_r, out_p = out_r * limit / tilt, out_p * limit / tilt
        return out_r, out_p

    def _sitting(self, est: FlowEstimate, err: float) -> float:
        """How long the craft has sat on the floor before take-off (the floor needs no
        flow yet), not rising, while asked to climb."""
        cfg = self.config
        sitting = (err > 0 and est.height < cfg.touchdown_height_m and not self._landing
                   and self._low_ok and est.climb < TAKEOFF_CLIMB_MPS)
        if not sitting:
            self._sit_since = None
            return 0.0
        if self._sit_since is None:
            self._sit_since = est.t
        return est.t - self._sit_since

    def _stick(self, angle_deg: float) -> float:
        """The stick that makes the FC fly ``angle_deg``, across its deadband."""
        v = angle_deg / self.config.stick_angle_deg
        if v == 0.0:
            return 0.0
        db = self.config.stick_deadband_pct * 0.01
        return math.copysign(db + abs(v) * (1.0 - db), v)

    def _tilt(self, an: float, ae: float, limit: float | None = None) -> tuple[float, float]:
        """Roll and pitch (degrees, within max_tilt_deg and ``limit``) that accelerate
        north/east by an, ae."""
        yaw = math.radians(self._yaw)
        c, s = math.cos(yaw), math.sin(yaw)
        a_fwd, a_right = c * an + s * ae, -s * an + c * ae
        pitch_deg = -math.degrees(math.atan2(a_fwd, GRAVITY))
        roll_deg = math.degrees(math.atan2(a_right, GRAVITY))
        tilt = math.hypot(roll_deg, pitch_deg)
        limit = min(self.config.max_tilt_deg, limit if limit is not None else math.inf)
        if tilt > limit:
            roll_deg *= limit / tilt
            pitch_deg *= limit / tilt
        return roll_deg, pitch_deg

    def fallback_tilt(self) -> tuple[float, float]:
        """Roll and pitch sticks for the fallback attitude hover: the tilt that held
        against the steady push (wind drag, an off-level board) the estimate last
        saw, latched when the hold withdrew; level before any estimate."""
        if self._fallback is not None:
            return self._fallback
        est = self._estimate
        if est is None or not self.estimator.horizontal_known:
            return (0.0, 0.0)
        roll_deg, pitch_deg = self._tilt(-est.accel_bias[0], -est.accel_bias[1])
        return (self._stick(roll_deg), self._stick(pitch_deg))

    async def configure_rates(self, timeout_s: float = 5.0) -> list[str]:
        """Ask the FC for AttitudeState at a period its line carries (best effort):
        `attitude_period_ms` of the config and the rate source, beside the FC's
        stock periodic objects. What failed and may work on a retry is returned
        (and logged); a line with no room at ``telemetry_baud`` is not asked and
        not retried. The outcome is kept in `attitude_period_set` /
        `attitude_period_error`."""
        self.attitude_period_set = False
        try:
            period = attitude_period_ms(self.config, self.imu_rates, self.telemetry_baud)
        except ConfigError as exc:      # a slow line: the FC's own period, not more load
            self.attitude_period_ms = None
            self.attitude_period_error = str(exc)
            log.warning("AttitudeState period not asked for: %s", exc)
            return []                   # nothing a retry could change
        self.attitude_period_ms = period
        tel = self.vehicle.telemetry
        if tel is None:
            self.attitude_period_error = "no telemetry link"
            return ["AttitudeState"]
        try:
            await asyncio.wait_for(tel.set_update_period("AttitudeState", period), timeout_s)
        except Exception as exc:   # slower attitudes still work, less well
            why = str(exc) or (f"no answer in {timeout_s:g} s" if isinstance(exc, TimeoutError)
                               else type(exc).__name__)
            log.warning("could not set the AttitudeState period: %s", why)
            self.attitude_period_error = why
            return ["AttitudeState"]
        self.attitude_period_set = True
        self.attitude_period_error = None
        return []
