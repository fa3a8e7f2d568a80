"""The drift loop on a Vehicle: telemetry in, roll/pitch trims out.

Publishes the standard additive source ``"drift"``. It reads AccelState,
AttitudeState, GyroState and FlightStatus from the telemetry session, runs a
``DriftController`` on every new accelerometer sample, and publishes trims
that are zero whenever the craft is disarmed, on the ground, or the loop is
suspended (a pilot took over).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from pipilot.control.drift import (
    CompensatorConfig,
    DriftController,
    EstimatorConfig,
    Sample,
    Trim,
)
from pipilot.core.setpoints import Setpoint
from pipilot.core.vehicle import FlightVehicle, ObjectValues, TelemetryLink
from pipilot.errors import LinkError
from pipilot.faultlog import FailureLog
from pipilot.uavtalk.fields import ARMED_OPTIONS, enum_name

log = logging.getLogger(__name__)

DRIFT_SOURCE = "drift"
GYRO_FRESH_S = 0.15
"""GyroState older than this (its default period is 1 s) is not used."""
ATTITUDE_WAIT_S = 0.4
"""How long an AccelState sample waits for the AttitudeState after it."""


def wrap_deg(angle: float) -> float:
    """An angle in degrees brought into -180..180."""
    return ((angle + 180.0) % 360.0) - 180.0


def _turns(a0: tuple[float, float, float],
           a1: tuple[float, float, float]) -> tuple[float, float, float]:
    """The shortest turn from attitude `a0` to `a1`, per axis (degrees)."""
    return (wrap_deg(a1[0] - a0[0]), wrap_deg(a1[1] - a0[1]), wrap_deg(a1[2] - a0[2]))


def _armed(values: ObjectValues) -> bool:
    return enum_name(values.get("Armed"), ARMED_OPTIONS) == "Armed"


class DriftCompensator:
    """Runs the drift loop as a task publishing the ``"drift"`` source.

    It sees the vehicle as a `FlightVehicle`: telemetry in, setpoints out, never
    the simulator's ground truth."""

    def __init__(self, vehicle: FlightVehicle, config: CompensatorConfig | None = None,
                 estimator: EstimatorConfig | None = None, *,
                 flying: Callable[[], bool], rate_hz: float = 50.0, priority: int = 0,
                 timeout_s: float = 0.5) -> None:
        self.vehicle = vehicle
        self.controller = DriftController(config, estimator, clock=vehicle.clock)
        self._flying = flying
        self._period = 1.0 / rate_hz
        self._priority = priority
        self._timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None
        self._last_accel_t: float | None = None
        self._last_accel_values: ObjectValues | None = None
        self._att_values: ObjectValues | None = None
        self._att_last: tuple[float, tuple[float, float, float]] | None = None
        self._att_prev: tuple[float, tuple[float, float, float]] | None = None
        self._pending: deque[tuple[float, tuple[float, float, float],
                                   tuple[float, float, float] | None]] = deque()
        self._suspended = False
        self.hold = False
        """Keep the trims fixed (a commanded move is under way)."""
        self.last_trim: Trim | None = None
        self.failures = FailureLog(log, "drift loop tick failed", clock=vehicle.clock)
        self.rate_errors: list[str] = []

    def _telemetry(self) -> TelemetryLink:
        tel = self.vehicle.telemetry
        if tel is None:
            raise LinkError("telemetry", "no telemetry link: the drift loop reads the "
                            "flight controller's IMU over it")
        return tel

    async def start(self) -> None:
        """Register the source, set the telemetry rates, start the loop.

        Without a telemetry link there is nothing to estimate from: LinkError."""
        self._telemetry()
        if DRIFT_SOURCE not in self.vehicle.mixer.sources:  # the core registers it
            self.vehicle.mixer.add_source(DRIFT_SOURCE, self._priority, mode="additive",
                                          timeout_s=self._timeout_s)
        await self.configure_rates()
        self._task = asyncio.create_task(self._run(), name="drift")

    async def configure_rates(self, timeout_s: float = 5.0) -> list[str]:
        """Ask the FC for AccelState and AttitudeState at the configured period.

        The 16.09 defaults (1 s and 130 ms) are too slow for the loop. Only the
        period and the update mode change: the other metadata fields keep the
        values the session last received from the flight side (its logging
        settings, say), or the firmware's defaults if none came. A lost
        ACK is the telemetry session's business (it retries); ``timeout_s`` is
        only a backstop above its retries. Best effort: a link that refuses
        leaves the loop working on slower data, and the failures are returned
        (and logged).
        """
        cfg = self.controller.config
        failed = []
        for name, period_ms in (("AccelState", cfg.accel_period_ms),
                                ("AttitudeState", cfg.attitude_period_ms)):
            try:
                await asyncio.wait_for(
                    self._telemetry().set_update_period(name, round(period_ms)), timeout_s)
            except Exception as exc:  # the loop still works, only slower
                log.warning("could not set the %s telemetry period: %s", name, exc)
                failed.append(name)
        self.rate_errors = failed
        return failed

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.vehicle.mixer.publish(DRIFT_SOURCE, Setpoint())

    def suspend(self) -> None:
        """Stop trimming for good (the pilot has the craft)."""
        self._suspended = True
        self.vehicle.mixer.publish(DRIFT_SOURCE, Setpoint())

    def _attitude_rate(self, values: ObjectValues, attitude: tuple[float, float, float],
                       t: float) -> tuple[float, float, float] | None:
        """Euler rates from the last two AttitudeState samples (None if too far apart)."""
        if values is not self._att_values:
            self._att_prev, self._att_values = self._att_last, values
            self._att_last = (t, attitude)
        if self._att_prev is None or self._att_last is None:
            return None
        (t0, a0), (t1, a1) = self._att_prev, self._att_last
        if not 0.02 < t1 - t0 <= 0.5:
            return None
        d = _turns(a0, a1)
        return (d[0] / (t1 - t0), d[1] / (t1 - t0), d[2] / (t1 - t0))

    @property
    def errors(self) -> int:
        """Ticks that failed so far."""
        return self.failures.failures

    async def _run(self) -> None:
        try:
            while True:
                try:
                    self.tick()
                except Exception as exc:  # a bad sample must not end the loop
                    self.failures.failed(exc)
                await asyncio.sleep(self._period)
        finally:
            self.failures.flush()

    def tick(self) -> Trim | None:
        """Process the newest telemetry; publish and return the trim if there was news.

        An AccelState sample waits for the AttitudeState after it, so that the
        attitude at its time is interpolated rather than extrapolated (at most
        ``ATTITUDE_WAIT_S``; then the last attitude is carried forward).
        """
        tel = self._telemetry()
        now = self.vehicle.clock.now()
        accel = tel.latest("AccelState")
        att = tel.latest("AttitudeState")
        if att is None:
            return None
        av, aage = att
        attitude = (float(av["Roll"]), float(av["Pitch"]), float(av["Yaw"]))
        t_att = now - aage
        rate = self._attitude_rate(av, attitude, t_att)
        if accel is not None:
            self._queue_accel(now, accel)
        status = tel.latest("FlightStatus")
        trim = None
        while self._pending:
            t_s, acc, gy = self._pending[0]
            aligned = self._attitude_at(t_s)
            if aligned is None and now - t_s < ATTITUDE_WAIT_S and t_att < t_s:
                break  # the attitude after this sample is still to come
            self._pending.popleft()
            if aligned is not None:
                sample = Sample(t=t_s, accel=acc, attitude=aligned, gyro=gy)
            else:
                sample = Sample(t=t_s, accel=acc, attitude=attitude, gyro=gy, attitude_t=t_att,
                                attitude_rate=rate)
            trim = self._step(sample, status)
        return trim

    def _queue_accel(self, now: float, accel: tuple[ObjectValues, float]) -> None:
        values, age = accel
        t = now - age
        if values is self._last_accel_values or (
                self._last_accel_t is not None and t <= self._last_accel_t):
            return  # nothing new (sessions keep one dict per received sample)
        self._last_accel_t, self._last_accel_values = t, values
        gyro = self._telemetry().latest("GyroState")
        rates = None
        if gyro is not None and gyro[1] <= GYRO_FRESH_S:
            rates = (float(gyro[0]["x"]), float(gyro[0]["y"]), float(gyro[0]["z"]))
        self._pending.append((t, (float(values["x"]), float(values["y"]), float(values["z"])),
                              rates))

    def _attitude_at(self, t: float) -> tuple[float, float, float] | None:
        """The attitude at ``t``, interpolated between the AttitudeState samples around it."""
        if self._att_prev is None or self._att_last is None:
            return None
        (t0, a0), (t1, a1) = self._att_prev, self._att_last
        if not t0 <= t <= t1 or t1 - t0 > 0.5:
            return None
        f = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
        d = _turns(a0, a1)
        return (a0[0] + f * d[0], a0[1] + f * d[1], a0[2] + f * d[2])

    def _step(self, sample: Sample, status: tuple[ObjectValues, float] | None) -> Trim:
        armed = status is not None and _armed(status[0])
        flying = armed and not self._suspended and self._flying()
        trim = self.controller.step(sample, armed=armed, flying=flying, hold=self.hold)
        self.last_trim = trim
        if not self._suspended:
            self.vehicle.mixer.publish(DRIFT_SOURCE, Setpoint(roll=trim.roll, pitch=trim.pitch))
        return trim
