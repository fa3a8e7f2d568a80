"""Missions flown on the simulated CC3D, and what a test records of the flight.

`SimFlight` is a lock-step simulator with pipilot's own flight core
(`pipilot.mission.lockstep.sim_lockstep`): the mission talks to a real
Vehicle, the core mixes every frame, the model arms, flies and falls as the
firmware and the airframe do, and telemetry is pipilot's UAVTalk engine over
the virtual 9600-baud line. Faults come from the simulator's own surface
(``flight.sim.faults``). The test's record is taken at the seams only: every
publish to the mixer and the mix of every frame sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pipilot.core.mixer import MixOutput
from pipilot.core.setpoints import Setpoint
from pipilot.core.vehicle import Vehicle
from pipilot.mission.api import Mission
from pipilot.mission.events import EventKind
from pipilot.mission.lockstep import run_lockstep, sim_lockstep

HOVER = 0.47
"""The missions' [mission] hover_throttle: the pilot's figure for the standard
simulated craft (which hovers at about 0.468)."""


class SimFlight:
    """A LockstepSim with pipilot's flight core, and the record of its mixer."""

    def __init__(self, *, seed: int = 1, firmware: str = "patched") -> None:
        # patched firmware: the drift loop reads the low-passed AccelState
        self.sim = sim_lockstep(seed=seed, firmware=firmware)
        vehicle = self.sim.vehicle
        assert isinstance(vehicle, Vehicle) and vehicle.core is not None
        self.vehicle = vehicle
        self.clock = vehicle.clock
        #: (clock time, source, setpoint) of every publish
        self.log: list[tuple[float, str, Setpoint]] = []
        #: (frame deadline, the core's mix for that frame) of every frame sent
        self.frames: list[tuple[float, MixOutput]] = []
        #: (frame deadline, true altitude in m) at every frame: truth, for assertions
        self.altitude: list[tuple[float, float]] = []
        mixer, core = vehicle.mixer, vehicle.core
        publish, tick = mixer.publish, core.tick

        def recorded_publish(source: str, setpoint: Setpoint, t: float | None = None) -> None:
            publish(source, setpoint, t)
            self.log.append((self.clock.now(), source, setpoint))

        def recorded_tick(now: float | None = None) -> bytes:
            frame = tick(now)
            assert core.last_output is not None
            t = self.clock.now() if now is None else now
            self.frames.append((t, core.last_output))
            self.altitude.append((t, self.sim.model.truth.altitude))
            return frame

        mixer.publish = recorded_publish  # type: ignore[method-assign]
        core.tick = recorded_tick  # type: ignore[method-assign]

    @property
    def armed(self) -> str:
        """FlightStatus.Armed as the simulated FC holds it (truth, for assertions)."""
        return str(self.sim.model.manual.armed.value)

    def published(self, source: str = "mission") -> list[tuple[float, Setpoint]]:
        return [(t, sp) for t, name, sp in self.log if name == source]

    async def linked(self) -> None:
        """Until telemetry is connected and an attitude has come (the mission then
        starts at once)."""
        tel = self.vehicle.telemetry
        assert tel is not None
        while not (tel.connected and tel.latest("AttitudeState") is not None):
            await asyncio.sleep(0.02)

    def run(self, main: Callable[[], Awaitable[Any]]) -> Any:
        return run_lockstep(self.sim, main)


Script = Callable[[Mission, SimFlight], Awaitable[Any]]
Fault = tuple[float, Callable[[SimFlight], object]]
"""(seconds after the mission starts, what to do to the simulator then)."""


def schedule(flight: SimFlight, faults: Sequence[Fault]) -> None:
    """Inject each fault at its time from now, on the running (lock-step) loop."""
    loop = asyncio.get_running_loop()
    for delay, inject in faults:
        loop.call_later(delay, inject, flight)


def abort_time(m: Mission) -> float:
    """Clock time of the mission's abort."""
    return next(e.t for e in m.events.history if e.kind is EventKind.ABORT) + m.started_at


def after_abort(flight: SimFlight, m: Mission) -> list[tuple[float, Setpoint]]:
    """The mission's publishes after its abort (its failsafe)."""
    t_abort = abort_time(m)
    return [(t, sp) for t, sp in flight.published() if t > t_abort]


def step_window(m: Mission, action: str) -> tuple[float, float]:
    """Clock times at which the (first) ``action`` step started and was done."""
    hist = m.events.history
    start = next(e.t for e in hist if e.kind is EventKind.STEP_STARTED and e.action == action)
    done = next(e.t for e in hist if e.kind is EventKind.STEP_DONE and e.action == action)
    return start + m.started_at, done + m.started_at
