"""The flight controller's UAVObjects as the model fills them (the FC's view, not truth).

Values are dicts of field name -> value; enum fields hold their option string;
fields with element names hold a dict element -> value; plain arrays a list,
as pipilot.uavtalk encodes and decodes them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipilot.sim.dynamics import r_to_quat
from pipilot.sim.receiver import Firmware
from pipilot.uavtalk.fields import ALARM_ELEMENTS, ALARM_LEVELS

if TYPE_CHECKING:
    from pipilot.sim.model import SimulatedCC3D

Values = dict[str, Any]



def attitude_state(m: SimulatedCC3D) -> Values:
    roll, pitch, yaw = (math.degrees(a) for a in m.estimator.euler())
    q = r_to_quat(m.estimator.r)
    return {"q1": q[0], "q2": q[1], "q3": q[2], "q4": q[3],
            "Roll": roll, "Pitch": pitch, "Yaw": yaw}


def accel_state(m: SimulatedCC3D) -> Values:
    # Stock 16.09 (Attitude module, updateSensorsCC3D) publishes the latest sensor
    # average and low-passes (AccelTau) only the attitude filter's own copy; with
    # firmware-patches/0005 AccelState is that low-passed value.
    a = m.estimator.accel_filt if m.firmware is Firmware.PATCHED else m.estimator.accel
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


def alarm_levels(m: SimulatedCC3D) -> dict[str, str]:
    """SystemAlarms.Alarm: what the modelled modules set, raised by injected alarms
    (`pipilot.sim.faults`) where those are higher."""
    alarms = dict.fromkeys(ALARM_ELEMENTS, "Uninitialised")
    for k in ("SystemConfiguration", "BootFault", "OutOfMemory", "StackOverflow",
              "CPUOverload", "EventSystem", "ManualControl", "Actuator", "Attitude",
              "Sensors", "Stabilization"):
        alarms[k] = "OK"
    alarms["Receiver"] = m.manual.receiver_alarm
    alarms["Telemetry"] = m.telemetry_alarm
    for k, level in m.injected_alarms.items():
        if ALARM_LEVELS.index(level) > ALARM_LEVELS.index(alarms[k]):
            alarms[k] = level
    return alarms


def system_alarms(m: SimulatedCC3D) -> Values:
    return {"Alarm": alarm_levels(m), "ExtendedAlarmStatus": {"SystemConfiguration": "None",
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


def actuator_desired(m: SimulatedCC3D) -> Values:
    st = m.stabilizer
    torque = m.quad.torque
    lim = m.params.max_torque
    return {"Roll": float(torque[0]) / lim[0], "Pitch": float(torque[1]) / lim[1],
            "Yaw": float(torque[2]) / lim[2], "Thrust": st.thrust_fraction}


def system_stats(m: SimulatedCC3D) -> Values:
    return {"FlightTime": int(m.now * 1000) & 0xFFFFFFFF, "CPULoad": 40}


#: objects whose other fields keep their stored (default) values
PARTIAL_SNAPSHOTS: dict[str, Callable[[SimulatedCC3D], Values]] = {
    "ActuatorDesired": actuator_desired,
    "SystemStats": system_stats,
}
