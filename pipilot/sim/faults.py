"""Faults injected into the simulated CC3D: what goes wrong on the rig, on purpose.

``sim.faults`` (a `SimFaults`, on `LockstepSim` and `RealtimeSim` alike) breaks
the simulated flight controller or airframe the way the real failure does, so
that a mission, the drift loop or the web page can be tried against it. Each
entry point changes only the model (or the telemetry line); pipilot's flight
path sees the consequence the way it would on the rig, through S.Bus and
UAVTalk, and never reads this object or the model's truth.

- `cut_telemetry` / `restore_telemetry`: the telemetry line broken (a loose
  wire, a dead level shifter), ground -> flight, flight -> ground or both.
  Bytes on a cut direction are lost; the FC's Telemetry module drops the
  connection after its own 8 s timeout, as telemetry.c does.
- `raise_alarm` / `clear_alarm`: a SystemAlarms element set to Warning,
  Critical or Error (as a failing sensor or module sets it). As
  armhandler.c's okToArm() does, any alarm at Critical or above except GPS
  and Telemetry refuses arming; as its forcedDisArm() does, Guidance or
  Receiver at exactly Critical disarms. Only the flag is modelled: the
  failing sensor itself is not.
- `disarm`: the FC disarms by itself at its next arm-handler run (20 ms task),
  whatever the sticks say: forcedDisArm()'s effect without its alarm. The
  motors stop; a craft in the air falls.
- `upset`: an angular-rate kick on the airframe (a collision, a prop strike),
  added to the rigid body's body rates: the IMU feels it, the attitude
  estimate follows and the stabiliser fights it with the torque it has.
  Only in the air: a craft resting on the ground has no rates to kick.
- `drop_updates` / `resume_updates`: every update of an object finds the FC's
  telemetry queue full and is dropped, counted as a TxFailure (the queue
  overflow of pipilot.sim.telemetry, for that object alone). Answers to
  requests bypass the queue (uavtalk.c) and still arrive.

In real time the model runs on its own thread: every entry point takes the
simulator's lock.

`schedule(fault)` injects one at a time of the model's clock (a mission's
``[[sim.faults]]`` table, for ``pipilot mission run --sim``); `log` lists
every fault injected, with its time.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pipilot.errors import PipilotError
from pipilot.uavtalk.fields import ALARM_ELEMENTS

if TYPE_CHECKING:
    import threading

    from pipilot.sim.model import SimulatedCC3D

log = logging.getLogger(__name__)

#: The levels an injected alarm may take (SystemAlarms' enum, above OK).
FAULT_LEVELS = ("Warning", "Critical", "Error")
#: The entry points a scheduled fault may name, and the `ScheduledFault` fields each
#: takes (a mission's ``[[sim.faults]]`` table may hold only these beside
#: ``at_s`` and ``action``).
FAULT_KEYS: dict[str, frozenset[str]] = {
    "cut_telemetry": frozenset({"up", "down"}),
    "restore_telemetry": frozenset(),
    "raise_alarm": frozenset({"element", "level"}),
    "clear_alarm": frozenset({"element"}),
    "disarm": frozenset(),
    "upset": frozenset({"roll_dps", "pitch_dps", "yaw_dps"}),
    "drop_updates": frozenset({"object"}),
    "resume_updates": frozenset({"object"}),
}
FAULT_ACTIONS = tuple(FAULT_KEYS)


def inert_fault(fault: ScheduledFault) -> tuple[str, str] | None:
    """(the field to set, why) when ``fault`` would inject nothing: a cut of neither
    direction, an upset without a kick; None when it does something."""
    if fault.action == "cut_telemetry" and not (fault.up or fault.down):
        return "up", "cut_telemetry with up and down false cuts nothing"
    if fault.action == "upset" and not (fault.roll_dps or fault.pitch_dps or fault.yaw_dps):
        return "roll_dps", "upset needs a kick: set roll_dps, pitch_dps or yaw_dps"
    return None


class SimFaultError(PipilotError, ValueError):
    """A fault the simulator cannot inject as asked (unknown name, bad value)."""


class TelemetryLine(Protocol):
    """The simulated telemetry line: ``up`` (ground -> flight) and ``down`` carry bytes
    while True."""

    up: bool
    down: bool


class ScheduledFault(Protocol):
    """One fault at a time of the run: ``action`` (one of `FAULT_ACTIONS`) with the
    arguments it takes (the others are ignored)."""

    @property
    def at_s(self) -> float: ...
    @property
    def action(self) -> str: ...
    @property
    def up(self) -> bool: ...
    @property
    def down(self) -> bool: ...
    @property
    def element(self) -> str: ...
    @property
    def level(self) -> str: ...
    @property
    def roll_dps(self) -> float: ...
    @property
    def pitch_dps(self) -> float: ...
    @property
    def yaw_dps(self) -> float: ...
    @property
    def object(self) -> str: ...


@dataclass
class LineSwitch:
    """A telemetry line's two directions, for a runner that has no wire object."""

    up: bool = True
    down: bool = True


class SimFaults:
    """The fault-injection surface of one simulated CC3D (see the module docstring)."""

    def __init__(self, model: SimulatedCC3D, line: TelemetryLine,
                 lock: threading.RLock | None = None) -> None:
        self._model = model
        self._line = line
        self._lock = lock
        #: (model time, what) of every fault injected, in order
        self.log: list[tuple[float, str]] = []

    def _note(self, what: str) -> None:
        self.log.append((self._model.now, what))
        log.warning("simulated fault at %.3f s: %s", self._model.now, what)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._lock is None:
            yield
            return
        with self._lock:
            yield

    # -- the telemetry line --------------------------------------------------------
    def cut_telemetry(self, *, up: bool = True, down: bool = True) -> None:
        """Cut the line ground -> flight (``up``), flight -> ground (``down``), or both."""
        if not (up or down):
            raise SimFaultError("cut_telemetry with up and down false cuts nothing")
        with self._locked():
            if up:
                self._line.up = False
            if down:
                self._line.down = False
            self._note("telemetry cut " + ("both ways" if up and down else
                                           "ground -> flight" if up else "flight -> ground"))

    def restore_telemetry(self) -> None:
        """Mend the line both ways (the session's own handshake reconnects)."""
        with self._locked():
            self._line.up = self._line.down = True
            self._note("telemetry restored")

    @property
    def telemetry_cut(self) -> bool:
        """Whether either direction of the line is cut."""
        return not (self._line.up and self._line.down)

    # -- SystemAlarms -----------------------------------------------------------------
    def raise_alarm(self, element: str, level: str = "Critical") -> None:
        """Set SystemAlarms.Alarm[``element``] to ``level`` (at least: a module's own
        higher level still shows) until `clear_alarm`."""
        if element not in ALARM_ELEMENTS:
            raise SimFaultError(f"no SystemAlarms element {element!r}; one of "
                                f"{', '.join(ALARM_ELEMENTS)}")
        if level not in FAULT_LEVELS:
            raise SimFaultError(f"alarm level must be one of {', '.join(FAULT_LEVELS)}, "
                                f"not {level!r}")
        with self._locked():
            self._model.injected_alarms[element] = level
            self._note(f"alarm {element}={level}")

    def clear_alarm(self, element: str) -> None:
        """Take back an alarm raised with `raise_alarm` (nothing if none was)."""
        with self._locked():
            if self._model.injected_alarms.pop(element, None) is not None:
                self._note(f"alarm {element} cleared")

    @property
    def alarms(self) -> dict[str, str]:
        """The alarms raised on purpose now, element -> level."""
        with self._locked():
            return dict(self._model.injected_alarms)

    # -- arming -------------------------------------------------------------------------
    def disarm(self) -> None:
        """The FC disarms at its next arm-handler run, whatever the sticks say."""
        with self._locked():
            self._model.manual.force_disarm()
            self._note("FC disarms by itself")

    # -- the airframe ----------------------------------------------------------------
    def upset(self, *, roll_dps: float = 0.0, pitch_dps: float = 0.0,
              yaw_dps: float = 0.0) -> None:
        """Add a body-rate kick (degrees per second, body axes) to the airframe in flight."""
        kick = (roll_dps, pitch_dps, yaw_dps)
        if not all(isinstance(x, int | float) and math.isfinite(x) for x in kick):
            raise SimFaultError(f"an upset needs finite rates in deg/s, not {kick!r}")
        with self._locked():
            truth = self._model.quad.truth
            if truth.on_ground:
                raise SimFaultError("the craft rests on the ground: an upset needs it in the air")
            truth.rate += [math.radians(x) for x in kick]
            self._note(f"upset: body rates kicked by {roll_dps:g}, {pitch_dps:g}, "
                       f"{yaw_dps:g} deg/s")

    # -- the telemetry queue -------------------------------------------------------------
    def drop_updates(self, name: str) -> None:
        """Every update of object ``name`` meets a full telemetry queue and is lost."""
        with self._locked():
            telemetry = self._model.telemetry
            if telemetry is None:
                raise SimFaultError("the simulated FC has no telemetry port attached")
            if name not in telemetry.objects:
                raise SimFaultError(f"the simulated FC has no object {name!r}")
            telemetry.dropped_updates.add(name)
            self._note(f"{name} updates dropped")

    def resume_updates(self, name: str) -> None:
        """Updates of ``name`` are queued again."""
        with self._locked():
            if self._model.telemetry is not None:
                self._model.telemetry.dropped_updates.discard(name)
                self._note(f"{name} updates resumed")

    # -- a schedule ---------------------------------------------------------------------
    def inject(self, fault: ScheduledFault) -> None:
        """Inject ``fault`` now (its ``at_s`` is not looked at)."""
        action = fault.action
        if action == "cut_telemetry":
            self.cut_telemetry(up=fault.up, down=fault.down)
        elif action == "restore_telemetry":
            self.restore_telemetry()
        elif action == "raise_alarm":
            self.raise_alarm(fault.element, fault.level)
        elif action == "clear_alarm":
            self.clear_alarm(fault.element)
        elif action == "disarm":
            self.disarm()
        elif action == "upset":
            self.upset(roll_dps=fault.roll_dps, pitch_dps=fault.pitch_dps,
                       yaw_dps=fault.yaw_dps)
        elif action == "drop_updates":
            self.drop_updates(fault.object)
        elif action == "resume_updates":
            self.resume_updates(fault.object)
        else:
            raise SimFaultError(f"no fault {action!r}; one of {', '.join(FAULT_ACTIONS)}")

    def schedule(self, fault: ScheduledFault) -> None:
        """Inject ``fault`` when the model's clock reaches ``fault.at_s`` (at once if it
        has). One that cannot be injected then (an upset on the ground) is logged and
        skipped: the run goes on."""
        if fault.action not in FAULT_ACTIONS:
            raise SimFaultError(f"no fault {fault.action!r}; one of {', '.join(FAULT_ACTIONS)}")
        if not (math.isfinite(fault.at_s) and fault.at_s >= 0.0):
            raise SimFaultError(f"a fault's time must be finite and >= 0 s, not {fault.at_s!r}")
        if (inert := inert_fault(fault)) is not None:
            raise SimFaultError(inert[1])

        def fire(_now: float) -> None:
            task.cancel()
            try:
                self.inject(fault)
            except SimFaultError as exc:
                self.log.append((self._model.now, f"{fault.action} not injected: {exc}"))
                log.warning("simulated fault %s at %.3f s not injected: %s", fault.action,
                            self._model.now, exc)

        with self._locked():
            task = self._model.add_task(f"fault:{fault.action}", 1.0, fire,
                                        first=max(fault.at_s, self._model.now))
