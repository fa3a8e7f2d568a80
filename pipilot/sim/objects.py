"""The flight controller's UAVObjects as the model fills them (the FC's view, not truth).

Values are dicts of field name -> value; enum fields hold their option string;
fields with element names hold a dict element -> value; plain arrays a list.
``FLIGHT_PERIODS`` are the flight-side telemetry periods from the 16.09 object
metadata (0 = sent on change).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipilot.sim.dynamics import r_to_quat

if TYPE_CHECKING:
    from pipilot.sim.model import SimulatedCC3D

Values = dict[str, Any]

ALARM_ELEMENTS = (
    "SystemConfiguration", "BootFault", "OutOfMemory", "StackOverflow", "CPUOverload",
    "EventSystem", "Telemetry", "Receiver", "ManualControl", "Actuator", "Attitude", "Sensors",
    "Magnetometer", "Airspeed", "Stabilization", "Guidance", "PathPlan", "Battery", "FlightTime",
    "I2C", "GPS",
)

# periodic objects and their flight telemetry period in seconds; 0 = on change
FLIGHT_PERIODS: dict[str, float] = {
    "AttitudeState": 0.130,
    "AccelState": 1.0,
    "GyroState": 1.0,
    "ManualControlCommand": 2.0,
    "SystemAlarms": 1.0,
    "FlightTelemetryStats": 5.0,
    "StabilizationDesired": 1.0,
    "FlightStatus": 0.0,
}


def attitude_state(m: SimulatedCC3D) -> Values:
    roll, pitch, yaw = (math.degrees(a) for a in m.estimator.euler())
    q = r_to_quat(m.estimator.r)
    return {"q1": q[0], "q2": q[1], "q3": q[2], "q4": q[3],
            "Roll": roll, "Pitch": pitch, "Yaw": yaw}


def accel_state(m: SimulatedCC3D) -> Values:
    a = m.estimator.accel_filt
    return {"x": float(a[0]), "y": float(a[1]), "z": float(a[2])}


def gyro_state(m: SimulatedCC3D) -> Values:
    g = m.estimator.gyro
    return {"x": math.degrees(g[0]), "y": math.degrees(g[1]), "z": math.degrees(g[2]),
            "SensorReadTimestamp": int(m.now * 72e6) & 0xFFFFFFFF}


def flight_status(m: SimulatedCC3D) -> Values:
    return {"Armed": m.manual.armed.value, "FlightMode": "Stabilized1",
            "AlwaysStabilizeWhenArmed": "False", "FlightModeAssist": "None",
            "AssistedControlState": "Primary", "AssistedThrottleState": "Manual",
            "ControlChain": {"Stabilization": "True", "PathFollower": "False",
                             "PathPlanner": "False"}}


def manual_control_command(m: SimulatedCC3D) -> Values:
    c = m.manual.cmd
    return {"Connected": "True" if c.connected else "False", "Throttle": c.throttle,
            "Roll": c.roll, "Pitch": c.pitch, "Yaw": c.yaw, "Collective": 0.0,
            "Thrust": c.throttle, "Channel": list(c.channel), "FlightModeSwitchPosition": 0}


def system_alarms(m: SimulatedCC3D) -> Values:
    alarms = dict.fromkeys(ALARM_ELEMENTS, "Uninitialised")
    for k in ("SystemConfiguration", "BootFault", "OutOfMemory", "StackOverflow",
              "CPUOverload", "EventSystem", "ManualControl", "Actuator", "Attitude",
              "Sensors", "Stabilization"):
        alarms[k] = "OK"
    alarms["Receiver"] = m.manual.receiver_alarm
    alarms["Telemetry"] = m.telemetry_alarm
    return {"Alarm": alarms, "ExtendedAlarmStatus": {"SystemConfiguration": "None",
                                                     "BootFault": "None"},
            "ExtendedAlarmSubStatus": {"SystemConfiguration": 0, "BootFault": 0}}


def stabilization_desired(m: SimulatedCC3D) -> Values:
    roll, pitch, yaw_rate, thrust = m.stabilizer.desired
    return {"Roll": roll, "Pitch": pitch, "Yaw": yaw_rate, "Thrust": thrust,
            "StabilizationMode": {"Roll": "Attitude", "Pitch": "Attitude",
                                  "Yaw": "AxisLock", "Thrust": "CruiseControl"}}


SNAPSHOTS: dict[str, Callable[[SimulatedCC3D], Values]] = {
    "AttitudeState": attitude_state,
    "AccelState": accel_state,
    "GyroState": gyro_state,
    "FlightStatus": flight_status,
    "ManualControlCommand": manual_control_command,
    "SystemAlarms": system_alarms,
    "StabilizationDesired": stabilization_desired,
}


class ObjectView:
    """Lock-step stand-in for a telemetry session: objects as the ground would last see them.

    Each object is refreshed at its flight telemetry period (on-change objects
    are checked every 20 ms), so ``latest`` returns the same staleness a real
    link would give, minus the wire time.
    """

    def __init__(self, model: SimulatedCC3D) -> None:
        self.model = model
        self._latest: dict[str, tuple[Values, float]] = {}
        self.connected = True
        for name, period in FLIGHT_PERIODS.items():
            if name not in SNAPSHOTS:
                continue
            if period > 0:
                model.add_task(f"view:{name}", period, self._sampler(name), first=model.now)
            else:
                model.add_task(f"view:{name}", 0.020, self._on_change(name), first=model.now)

    def _sampler(self, name: str) -> Callable[[float], None]:
        def sample(now: float) -> None:
            self._latest[name] = (SNAPSHOTS[name](self.model), now)
        return sample

    def _on_change(self, name: str) -> Callable[[float], None]:
        def check(now: float) -> None:
            values = SNAPSHOTS[name](self.model)
            old = self._latest.get(name)
            if old is None or old[0] != values:
                self._latest[name] = (values, now)
        return check

    def latest(self, name: str) -> tuple[Values, float] | None:
        got = self._latest.get(name)
        if got is None:
            return None
        values, t = got
        return values, self.model.now - t
