"""Receiver task and arming, modelled on LibrePilot 16.09's Receiver and ManualControl.

Every 20 ms the receiver task reads the mapped channels, scales them with the
per-channel calibration of ManualControlSettings (min / neutral / max), checks
the range (250 units of slack), and after more than 10 consecutive good (or
bad) reads flips ``Connected``. Disconnected means failsafe stick values
(FailsafeChannel: throttle -1, sticks 0) and a Receiver warning.

The arm handler (armhandler.c) runs on each new command: with throttle low,
the arming input (Yaw for "Yaw Left") held at or beyond -0.20 for longer than
ArmingSequenceTime arms; held at or beyond +0.20 for longer than
DisarmingSequenceTime disarms; an armed craft whose throttle stays low for
longer than ArmedTimeout disarms. Arming needs a fresh crossing of the
threshold, so a stick already held left does not arm.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pipilot.sbus.scale import CENTER, UNIT_MAX, UNIT_MIN
from pipilot.sim.receiver import SbusReceiver

log = logging.getLogger(__name__)

UPDATE_PERIOD_S = 0.020
CONNECTION_OFFSET = 250
ARMED_THRESHOLD = 0.20
FUNCTIONS = (
    "Throttle", "Roll", "Pitch", "Yaw", "FlightMode", "Collective",
    "Accessory0", "Accessory1", "Accessory2", "Accessory3",
)
STICK_MIN, STICK_NEUTRAL, STICK_MAX = UNIT_MIN, CENTER, UNIT_MAX
THROTTLE_NEUTRAL = 212  # a little above min, as a GCS calibration leaves it


def _rig_numbers() -> dict[str, int]:
    # NOTES.md channel map (1-based, as ManualControlSettings.ChannelNumber); 0 = unassigned
    return {"Throttle": 1, "Yaw": 2, "Roll": 3, "Pitch": 4, "FlightMode": 0, "Collective": 0,
            "Accessory0": 5, "Accessory1": 6, "Accessory2": 7, "Accessory3": 8}


@dataclass
class ManualControlSettings:
    """The fields of ManualControlSettings the model uses, with the rig's values."""

    channel_number: dict[str, int] = field(default_factory=_rig_numbers)
    channel_min: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FUNCTIONS, STICK_MIN))
    channel_neutral: dict[str, int] = field(
        default_factory=lambda: {f: (THROTTLE_NEUTRAL if f == "Throttle" else STICK_NEUTRAL)
                                 for f in FUNCTIONS})
    channel_max: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FUNCTIONS, STICK_MAX))
    deadband_pct: float = 2.0
    failsafe: dict[str, float] = field(default_factory=lambda: {
        "Throttle": -1.0, "Roll": 0.0, "Pitch": 0.0, "Yaw": 0.0, "Collective": 0.0,
        "Accessory0": 0.0, "Accessory1": 0.0, "Accessory2": 0.0, "Accessory3": 0.0})

    def assigned(self, fn: str) -> bool:
        return self.channel_number.get(fn, 0) > 0


@dataclass
class FlightModeSettings:
    arming: str = "Yaw Left"
    arming_sequence_ms: int = 1000
    disarming_sequence_ms: int = 1000
    armed_timeout_ms: int = 30000


def scale_channel(value: int, vmax: int, vmin: int, neutral: int) -> float:
    """Calibrated -1..1 value; reversed channels have min > max."""
    if (vmax > vmin and value >= neutral) or (vmin > vmax and value <= neutral):
        scaled = (value - neutral) / (vmax - neutral) if vmax != neutral else 0.0
    else:
        scaled = (value - neutral) / (neutral - vmin) if vmin != neutral else 0.0
    return max(-1.0, min(1.0, scaled))


def valid_input_range(vmin: int, vmax: int, value: int) -> bool:
    lo, hi = (vmin, vmax) if vmin <= vmax else (vmax, vmin)
    return lo - CONNECTION_OFFSET <= value <= hi + CONNECTION_OFFSET


def apply_deadband(value: float, deadband_pct: float) -> float:
    db = deadband_pct * 0.01
    if abs(value) < db:
        return 0.0
    return (value - db) / (1 - db) if value > 0 else (value + db) / (1 - db)


class Armed(enum.Enum):
    DISARMED = "Disarmed"
    ARMING = "Arming"
    ARMED = "Armed"


class ArmState(enum.Enum):
    DISARMED = enum.auto()
    ARMING_MANUAL = enum.auto()
    ARMED = enum.auto()
    DISARMING_MANUAL = enum.auto()
    DISARMING_TIMEOUT = enum.auto()


@dataclass
class ManualControlCommand:
    throttle: float = -1.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0
    accessory: list[float] = field(default_factory=lambda: [0.0] * 4)
    channel: list[int] = field(default_factory=lambda: [0] * len(FUNCTIONS))
    connected: bool = False


_ARMING_AXES = {
    "Roll Left": ("roll", 1.0), "Roll Right": ("roll", -1.0),
    "Pitch Forward": ("pitch", 1.0), "Pitch Aft": ("pitch", -1.0),
    "Yaw Left": ("yaw", 1.0), "Yaw Right": ("yaw", -1.0),
}

# the firmware's PIOS_RCVR_INVALID / TIMEOUT as they show in ManualControlCommand.Channel
RCVR_TIMEOUT = 0xFFFF  # -1
RCVR_INVALID = 0xFFFE  # -2


class ManualControl:
    """The 20 ms receiver task plus the arm handler."""

    def __init__(self, receiver: SbusReceiver,
                 settings: ManualControlSettings | None = None,
                 modes: FlightModeSettings | None = None) -> None:
        self.receiver = receiver
        self.settings = settings or ManualControlSettings()
        self.modes = modes or FlightModeSettings()
        self.cmd = ManualControlCommand()
        self.receiver_alarm = "Warning"  # until the first good connection
        self.armed = Armed.DISARMED
        self.arm_state = ArmState.DISARMED
        self._connected_count = 0
        self._disconnected_count = 0
        self._prev_arming_input = 0.0
        self._arm_start = 0.0
        self.armed_since: float | None = None
        #: SystemAlarms.Alarm as the firmware holds it (the model installs its own);
        #: the arm handler reads it as armhandler.c does, see `ok_to_arm`.
        self.alarms: Callable[[], Mapping[str, str]] = lambda: {"Receiver": self.receiver_alarm}
        self._force_disarm = False

    # -- receiver.c ---------------------------------------------------------
    def receiver_task(self, now: float) -> None:
        s = self.settings
        valid = True
        scaled: dict[str, float] = {}
        for i, fn in enumerate(FUNCTIONS):
            if not s.assigned(fn):
                self.cmd.channel[i] = RCVR_INVALID
                continue
            num = s.channel_number[fn]
            raw = self.receiver.read(num - 1) if num <= 18 else None
            if raw is None:
                self.cmd.channel[i] = RCVR_TIMEOUT
                valid = False
                continue
            self.cmd.channel[i] = raw
            scaled[fn] = scale_channel(raw, s.channel_max[fn], s.channel_min[fn],
                                       s.channel_neutral[fn])
        if not all(s.assigned(fn) for fn in ("Throttle", "Yaw", "Roll", "Pitch")):
            self._set_alarm("Critical")
            self.cmd.connected = False
            return
        for fn in ("Throttle", "Yaw", "Roll", "Pitch", "Collective",
                   "Accessory0", "Accessory1", "Accessory2", "Accessory3"):
            if s.assigned(fn) and fn in scaled:
                valid &= valid_input_range(s.channel_min[fn], s.channel_max[fn],
                                           self.cmd.channel[FUNCTIONS.index(fn)])
        if valid:
            self._connected_count += 1
            if self._connected_count > 10:
                self._set_connected(True)
        else:
            self._disconnected_count += 1
            if self._disconnected_count > 10:
                self._set_connected(False)
        c = self.cmd
        if not c.connected:
            c.throttle = s.failsafe["Throttle"]
            c.roll, c.pitch, c.yaw = s.failsafe["Roll"], s.failsafe["Pitch"], s.failsafe["Yaw"]
            c.accessory = [s.failsafe[f"Accessory{k}"] for k in range(4)]
            self._set_alarm("Warning")
        elif valid:
            self._set_alarm("OK")
            c.roll = apply_deadband(scaled["Roll"], s.deadband_pct)
            c.pitch = apply_deadband(scaled["Pitch"], s.deadband_pct)
            c.yaw = apply_deadband(scaled["Yaw"], s.deadband_pct)
            c.throttle = scaled["Throttle"]
            c.accessory = [scaled.get(f"Accessory{k}", 0.0) for k in range(4)]
        self.arm_handler(now)

    def _set_connected(self, connected: bool) -> None:
        if connected != self.cmd.connected:
            log.info("manual control: receiver %s", "connected" if connected else "lost")
        self.cmd.connected = connected
        self._connected_count = 0
        self._disconnected_count = 0

    def _set_alarm(self, level: str) -> None:
        self.receiver_alarm = level

    # -- armhandler.c -------------------------------------------------------
    def _transition(self, state: ArmState, now: float) -> None:
        if state is not self.arm_state:
            log.info("arming: %s -> %s at %.3f s", self.arm_state.name, state.name, now)
            self.arm_state = state

    def _set_armed(self, armed: Armed, now: float) -> None:
        if armed is not self.armed:
            log.info("FlightStatus.Armed = %s at %.3f s", armed.value, now)
            self.armed = armed
            self.armed_since = now if armed is Armed.ARMED else None

    def force_disarm(self) -> None:
        """Disarm at the next arm-handler run, whatever the sticks say (a forced disarm)."""
        self._force_disarm = True

    def forced_disarm(self) -> bool:
        """armhandler.c forcedDisArm(): a Guidance or Receiver alarm at exactly Critical."""
        alarms = self.alarms()
        return (self._force_disarm or self.receiver_alarm == "Critical"
                or "Critical" in (alarms.get("Guidance"), alarms.get("Receiver")))

    def arm_handler(self, now: float) -> None:
        m, c = self.modes, self.cmd
        if self.forced_disarm():
            self._force_disarm = False
            self._transition(ArmState.DISARMED, now)
            self._set_armed(Armed.DISARMED, now)
            return
        if m.arming == "Always Disarmed":
            self._set_armed(Armed.DISARMED, now)
            return
        low_throttle = c.throttle < 0
        if not low_throttle:
            if self.arm_state in (ArmState.DISARMING_MANUAL, ArmState.DISARMING_TIMEOUT):
                self._transition(ArmState.ARMED, now)
            elif self.arm_state is ArmState.ARMING_MANUAL:
                self._transition(ArmState.DISARMED, now)
            return
        if m.arming == "Always Armed":
            self._set_armed(Armed.ARMED, now)
            return
        axis, sign = _ARMING_AXES.get(m.arming, (None, 0.0))
        level = sign * getattr(c, axis) if axis else 0.0
        if self.arm_state not in (ArmState.DISARMED, ArmState.ARMED):
            self._prev_arming_input = 0.0
        manual_arm = level <= -ARMED_THRESHOLD and self._prev_arming_input > -ARMED_THRESHOLD
        manual_disarm = (not manual_arm and level >= ARMED_THRESHOLD
                         and self._prev_arming_input < ARMED_THRESHOLD)
        self._prev_arming_input = level
        elapsed_ms = (now - self._arm_start) * 1000.0
        st = self.arm_state
        if st is ArmState.DISARMED:
            self._set_armed(Armed.DISARMED, now)
            if manual_arm and self.ok_to_arm():
                self._arm_start = now
                self._transition(ArmState.ARMING_MANUAL, now)
        elif st is ArmState.ARMING_MANUAL:
            self._set_armed(Armed.ARMING, now)
            if manual_arm and elapsed_ms > m.arming_sequence_ms:
                self._transition(ArmState.ARMED, now)
            elif not manual_arm:
                self._transition(ArmState.DISARMED, now)
        elif st is ArmState.ARMED:
            self._arm_start = now
            self._transition(ArmState.DISARMING_TIMEOUT, now)
            self._set_armed(Armed.ARMED, now)
        elif st is ArmState.DISARMING_TIMEOUT:
            if m.armed_timeout_ms != 0 and elapsed_ms > m.armed_timeout_ms:
                self._transition(ArmState.DISARMED, now)
            if manual_disarm:
                self._arm_start = now
                self._transition(ArmState.DISARMING_MANUAL, now)
        elif st is ArmState.DISARMING_MANUAL:
            if manual_disarm and elapsed_ms > m.disarming_sequence_ms:
                self._transition(ArmState.DISARMED, now)
            elif not manual_disarm:
                self._transition(ArmState.ARMED, now)

    def ok_to_arm(self) -> bool:
        """armhandler.c okToArm(): no alarm at Critical or above, GPS and Telemetry aside."""
        if self.receiver_alarm in ("Critical", "Error"):
            return False
        return not any(level in ("Critical", "Error") for name, level in self.alarms().items()
                       if name not in ("GPS", "Telemetry"))
