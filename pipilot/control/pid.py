"""A PID controller fit for a flight loop.

- Output limits, with back-calculation anti-windup: when the output saturates,
  the integrator is pulled back by ``(u_limited - u_raw) / tracking_time``, so
  it never winds up beyond what the limits allow.
- Derivative on the measurement (a setpoint step does not kick the output),
  low-pass filtered with time constant ``derivative_tau``.
- Bumpless enable/disable: a disabled controller follows the measurement and
  outputs the value it is told to hold; enabling starts from that output.
- Time comes from a clock passed in; ``update`` may also be given ``now``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipilot.core.clock import Clock


@dataclass(frozen=True)
class PIDGains:
    """Gains and limits of one PID loop (output units per error unit)."""

    kp: float
    ki: float = 0.0
    kd: float = 0.0
    out_min: float = -math.inf
    out_max: float = math.inf
    derivative_tau: float = 0.05
    """Time constant (s) of the derivative's first-order low-pass filter."""
    tracking_time: float | None = None
    """Anti-windup back-calculation time constant (s); None picks sqrt(Td*Ti)."""
    max_dt: float = 0.5
    """Longer gaps between updates are clipped to this (a stall is not a trend)."""

    def __post_init__(self) -> None:
        for name in ("kp", "ki", "kd", "derivative_tau", "max_dt"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"PID {name} must be finite and >= 0, not {value!r}")
        if self.max_dt == 0:
            raise ValueError("PID max_dt must be > 0")
        if not self.out_min < self.out_max:
            raise ValueError(f"PID out_min {self.out_min} must be < out_max {self.out_max}")
        if self.tracking_time is not None and not self.tracking_time > 0:
            raise ValueError("PID tracking_time must be > 0")

    def effective_tracking_time(self) -> float:
        if self.tracking_time is not None:
            return self.tracking_time
        if self.ki > 0 and self.kp > 0:
            ti = self.kp / self.ki
            td = self.kd / self.kp
            return math.sqrt(ti * td) if td > 0 else ti
        return 1.0


class PID:
    """One loop: ``update(setpoint, measurement) -> output``."""

    def __init__(self, gains: PIDGains, clock: Clock, *, enabled: bool = True) -> None:
        self.gains = gains
        self._clock = clock
        self._enabled = enabled
        self._integral = 0.0  # in output units, so gain changes are bumpless
        self._d_term = 0.0
        self._last_measurement: float | None = None
        self._last_time: float | None = None
        self._output = 0.0
        self._hold = 0.0
        self._start_from: float | None = None  # bumpless start pending

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def output(self) -> float:
        """The last output (the held value while disabled)."""
        return self._output

    @property
    def integral(self) -> float:
        return self._integral

    def reset(self) -> None:
        """Forget all history: integrator, derivative filter, last sample."""
        self._integral = 0.0
        self._d_term = 0.0
        self._last_measurement = None
        self._last_time = None
        self._start_from = None
        self._output = self._hold if not self._enabled else 0.0

    def disable(self, hold: float = 0.0) -> None:
        """Stop acting; ``update`` returns ``hold`` while it keeps tracking."""
        self._enabled = False
        self._hold = self._clamp(hold)
        self._output = self._hold

    def enable(self, initial_output: float | None = None) -> None:
        """Start acting, with the first output continuing from ``initial_output``.

        By default it continues from the current output (the held value), so
        switching on does not jerk the actuator.
        """
        if self._enabled:
            return
        start = self._output if initial_output is None else self._clamp(initial_output)
        self._start_from = start
        self._integral = start
        self._d_term = 0.0
        self._output = start
        self._enabled = True

    def update(self, setpoint: float, measurement: float, now: float | None = None) -> float:
        """Advance the loop to ``now`` (default: the clock) and return the output."""
        if not (math.isfinite(setpoint) and math.isfinite(measurement)):
            return self._output  # a bad sample must not poison the state
        t = self._clock.now() if now is None else now
        g = self.gains
        if self._last_time is None or self._last_measurement is None:
            dt = 0.0
        else:
            dt = min(t - self._last_time, g.max_dt)
        if dt < 0:
            return self._output
        error = setpoint - measurement

        last = self._last_measurement
        if dt > 0 and last is not None:  # dt > 0 only with a previous sample
            dmeas = measurement - last
            tau = g.derivative_tau
            # backward-Euler low-pass of -kd * dy/dt
            self._d_term = (tau * self._d_term - g.kd * dmeas) / (tau + dt)
        self._last_measurement = measurement
        self._last_time = t

        if not self._enabled:
            self._output = self._hold
            self._integral = self._hold
            return self._output

        p_term = g.kp * error
        if self._start_from is not None:
            # first step after enable: choose the integrator so the output
            # continues exactly where it was
            self._integral = self._start_from - p_term - self._d_term
            self._start_from = None
        raw = p_term + self._integral + self._d_term
        out = self._clamp(raw)
        if dt > 0:
            # back-calculation: bleed the integrator by the amount clipped away
            self._integral += dt * (g.ki * error + (out - raw) / g.effective_tracking_time())
            lo, hi = g.out_min, g.out_max
            self._integral = min(max(self._integral, lo), hi)
        self._output = out
        return out

    def _clamp(self, value: float) -> float:
        return min(max(value, self.gains.out_min), self.gains.out_max)
