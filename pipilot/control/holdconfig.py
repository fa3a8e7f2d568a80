"""The flow-deck hold's settings: ``[hold]`` and ``[hold.estimator]``.

The same tables in a mission file (`pipilot.mission.spec`) and in the core
configuration (`pipilot.core.config`, for the page's hold). Apart from the
hold and its estimator so that reading a configuration does not load numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipilot.core.tomlconf import check_fields, setting
from pipilot.errors import ConfigError

RATE_SOURCES = ("imu", "attitude")


@dataclass(frozen=True)
class FlowConfig:
    """Model, noise and timing figures of the flow estimator."""

    latency_s: float = setting(0.08, gt=0.0, le=1.0, unit="s")
    """Nominal age of telemetry at its arrival: link latency plus the packet's
    time on the 9600 baud wire (about 40 ms for an AttitudeState)."""
    latency_max_s: float = setting(0.25, gt=0.0, le=2.0, unit="s")
    """Flow waits at most this long for rates; then it is fused with the last ones."""
    range_budget_s: float = setting(0.1, gt=0.0)
    """The VL53L1X timing budget: a range is the mean over it."""
    accel_noise: float = setting(1.0, gt=0.0)
    """Unmodelled horizontal acceleration (m/s^2/sqrt(Hz))."""
    bias_walk: float = setting(0.1, gt=0.0)
    """How fast the unknown acceleration may change (m/s^2/sqrt(s))."""
    flow_noise_counts: float = setting(5.0, gt=0.0)
    """One sample's flow noise, quantisation and rotation left over, counts (a tenth
    of a pixel), at SQUAL 100 (it grows as SQUAL falls: fewer features tracked)."""
    vertical_accel_noise: float = setting(2.0, gt=0.0)
    """Unmodelled vertical acceleration (m/s^2/sqrt(Hz))."""
    range_noise_m: float = setting(0.01, gt=0.0)
    """Noise of one range at 1 m (grows with the distance squared)."""
    gate_sigma: float = setting(5.0, gt=0.0)
    """Innovations beyond this many standard deviations are rejected."""
    gate_reset: float = setting(25.0, gt=0.0)
    """After this many rejections in a row the state is reset to the measurement."""
    max_tilt_deg: float = setting(40.0, gt=0.0, le=80.0, unit="deg")
    """Beyond this tilt flow and range are not used (the beam leaves the floor)."""
    rest_height_m: float = setting(0.08, ge=0.0, le=1.0, unit="m")
    """Below this height, with no valid flow, the craft is taken as standing on the
    floor (or leaving or reaching it): no horizontal speed. The PMW3901 cannot focus
    below 80 mm. It must be above the deck's height on the landed craft."""
    rest_speed_sigma: float = setting(0.05, gt=0.0, unit="m/s")
    """How far from zero the speed at rest may be."""
    max_gap_s: float = setting(0.5, gt=0.0)
    """A longer gap between fused samples restarts the prediction there."""

    def __post_init__(self) -> None:
        check_fields(self, "hold.estimator")


@dataclass(frozen=True)
class HoldConfig:
    """Limits, failsafe times and gains of the hold (``[hold]`` in a mission and in
    the core configuration)."""

    max_tilt_deg: float = setting(12.0, gt=0.0, le=45.0)
    max_speed_mps: float = setting(1.0, gt=0.0)
    """Largest horizontal speed the position loop asks for."""
    max_climb_mps: float = setting(0.5, gt=0.0)
    max_descent_mps: float = setting(0.4, gt=0.0)
    throttle_min: float = setting(0.2, gt=0.0, le=1.0)
    throttle_max: float = setting(0.8, gt=0.0, le=1.0)
    max_height_m: float = setting(2.5, gt=0.0, le=4.0)
    """The held height never goes above this (the ranger's reach is 4 m in the dark)."""
    flow_timeout_s: float = setting(0.4, gt=0.0, le=10.0)
    range_timeout_s: float = setting(0.5, gt=0.0, le=10.0)
    resume_s: float = setting(0.3, gt=0.0, le=10.0)
    """Both sensors valid this long before a withdrawn hold holds again."""
    flow_min_height_m: float = setting(0.15, gt=0.0)
    """Below this the flow is not required before take-off and at the end of a landing:
    the craft flies level on the height loop."""
    attitude_timeout_s: float = setting(0.5, gt=0.0, le=10.0)
    """AttitudeState older than this withdraws the hold (its rates turn the flow)."""
    hover_range: float = setting(0.15, gt=0.0, le=0.5)
    """The learned hover throttle stays within this of the guess; reaching it withdraws
    the hold (a height that does not answer the throttle is a sensor problem)."""
    touchdown_height_m: float = setting(0.1, gt=0.0)
    touchdown_s: float = setting(0.6, gt=0.0, le=10.0)
    """A landing has touched down once the height is below touchdown_height_m and
    the climb rate within 0.1 m/s for this long."""
    landing_sink_mps: float = setting(0.2, gt=0.0)
    """The least descent rate asked for while landing, so the floor stops it."""
    land_extend_s: float = setting(5.0, ge=0.0, le=60.0)
    """A land step not touched down in its time flies on this long, then aborts."""
    withdrawn_abort_s: float = setting(10.0, gt=0.0, le=120.0)
    """A hold step not held for this long (withdrawn, or resuming after it held; net
    of the time it held since, so a hold that flaps still reaches it) aborts the
    mission."""
    fallback_sink: float = setting(0.0, ge=0.0, le=0.2)
    """The withdrawn fallback, when it flies open loop (the range or the attitude lost
    too: with both good it holds the height on the range), flies this much below the
    learned hover throttle. 0 by default: 0.02 (5 % less thrust) put a 1 m hover on
    the floor within the 5 s of a texture dropout, so every dropout ended in an
    abort; the fallback's bound is ``withdrawn_abort_s``."""
    position_kp: float = setting(2.0, gt=0.0)
    """Speed asked for per metre off the held point (1/s)."""
    velocity_kp: float = setting(3.0, gt=0.0)
    """Acceleration asked for per m/s of speed error (1/s)."""
    takeoff_ramp: float = setting(0.1, ge=0.0, le=1.0)
    """Throttle per second the learned hover throttle rises at least while the craft,
    asked to climb, still sits on the floor after half a second (a craft heavier than
    the guess)."""
    height_kp: float = setting(2.0, gt=0.0)
    """Climb rate asked for per metre of height error (1/s)."""
    climb_kp: float = setting(0.08, gt=0.0)
    """Throttle per m/s of climb-rate error."""
    hover_ki: float = setting(0.06, gt=0.0)
    """How fast the hover throttle is learned: throttle per second per m/s of error."""
    attitude_lead_s: float = setting(0.4, ge=0.0, le=2.0, unit="s")
    """The FC's attitude time constant (1 / its attitude Kp: 0.4 s for LibrePilot's
    stock 2.5), which the hold's tilt commands lead by; 0: no lead."""
    stick_angle_deg: float = setting(42.0, gt=0.0, le=90.0)
    """The FC's RollMax/PitchMax: the angle of a full stick."""
    stick_deadband_pct: float = setting(2.0, ge=0.0, le=20.0, unit="%")
    """The FC's ManualControlSettings.Deadband: roll and pitch sticks within it are
    zero, beyond it shifted by it. The hold adds it back, or its small corrections
    (under a degree, the size of a wind's push) would never reach the craft."""
    nudge_mps: float = setting(0.5, gt=0.0)
    """Speed of the held point at full roll or pitch stick."""
    rate_hz: float = setting(50.0, gt=0.0, le=200.0)
    rates: str | None = setting(None, choices=RATE_SOURCES)
    """Where the flow's rotation comes from: "imu" (the deck's MPU-6050) or
    "attitude" (AttitudeState differences); unset: "imu" when the deck has one."""
    imu_timeout_s: float = setting(0.05, gt=0.0, le=1.0, unit="s")
    """IMU rates older than this: the hold takes its rates from AttitudeState."""
    attitude_period_ms: float | None = setting(None, gt=0.0, le=5000.0, unit="ms")
    """AttitudeState period asked of the FC; unset: `IMU_ATTITUDE_PERIOD_MS` with
    IMU rates, the fastest the line carries without. A period the line cannot
    carry is raised to the fastest one it can."""

    def __post_init__(self) -> None:
        check_fields(self, "hold")
        if not self.throttle_min < self.throttle_max <= 1.0:
            raise ConfigError("hold.throttle_max", "must be above throttle_min and <= 1")
        if self.max_tilt_deg > self.stick_angle_deg:
            raise ConfigError("hold.max_tilt_deg", "must be within stick_angle_deg")
