"""Missions on the simulator in lock-step time: a 60 s hover in a few seconds.

``LockstepEventLoop`` is an asyncio event loop whose clock is the simulator's
VirtualClock. When every task is waiting, instead of sleeping it advances the
simulation (frames, physics, telemetry) to the next timer. All asyncio code
(the mission loop, the drift loop, user scripts) then runs unchanged, with
plain ``asyncio.sleep``, and the result does not depend on the machine's load.

``sim_lockstep`` builds a ``LockstepSim`` with pipilot's own flight core:
its ``.vehicle`` is the real Vehicle facade (mixer, core, clock, UAVTalk
telemetry at 9600 baud, and ``.sim``, the model, for ground truth only).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import selectors
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from pipilot.core.config import CoreConfig
from pipilot.mission.spec import FaultSpec
from pipilot.sim import LockstepSim
from pipilot.sim.craft import craft_params
from pipilot.sim.dynamics import QuadParams
from pipilot.sim.lockstep import FrameSource
from pipilot.sim.receiver import Firmware

T = TypeVar("T")


class _AdvancingSelector(selectors.DefaultSelector):
    def __init__(self, advance: Callable[[float], None], now: Callable[[], float]) -> None:
        super().__init__()
        self._advance = advance
        self._now = now

    def select(self, timeout: float | None = None
               ) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events or timeout is None or timeout <= 0:
            if timeout is None and not events:
                raise RuntimeError("lock-step loop would wait forever: nothing is scheduled")
            return events
        self._advance(self._now() + timeout)
        return events


class LockstepEventLoop(asyncio.SelectorEventLoop):
    """An event loop on the simulator's virtual time."""

    def __init__(self, sim: LockstepSim) -> None:
        self.sim = sim
        super().__init__(selector=_AdvancingSelector(sim.run_until, sim.clock.now))

    def time(self) -> float:
        return self.sim.clock.now()


def run_lockstep(sim: LockstepSim, main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` to completion on ``sim``'s virtual time."""
    loop = LockstepEventLoop(sim)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def sim_lockstep(*, mount_tilt_deg: float = 0.0, mount_tilt_axis_deg: float = 0.0,
                 wind_mps: float = 0.0, wind_from_deg: float = 0.0, gust_mps: float | None = None,
                 seed: float = 0, core: bool | CoreConfig = True,
                 firmware: Firmware | str = Firmware.STOCK, mass_kg: float | None = None,
                 drag: float | None = None, hover_throttle: float | None = None,
                 telemetry_latency_s: float = 0.0, texture: float = 1.0,
                 attitude_kp: float | None = None, period_ms: float = 14.0,
                 params: QuadParams | None = None,
                 frame_source: FrameSource | None = None, first_frame_s: float = 0.010,
                 telemetry_baud: int = 9600, handshake: bool = True,
                 flow_scale: float = 1.0, flow_noise: float = 1.0, range_scale: float = 1.0,
                 texture_dropout_at_s: float = 0.0, texture_dropout_s: float = 0.0,
                 imu: bool = True,
                 faults: Sequence[FaultSpec | Mapping[str, Any]] = ()) -> LockstepSim:
    """A lock-step simulator with pipilot's flight core, in the [sim] table's conditions.

    ``sim.vehicle`` is the Vehicle to fly. The tilt leans the board by
    ``mount_tilt_deg`` towards ``mount_tilt_axis_deg`` (0 = nose up, 90 = right
    side down); the wind blows from ``wind_from_deg`` (0 = from the north) at
    ``wind_mps``, with gusts of ``gust_mps`` rms. ``gust_mps``, ``mass_kg``,
    ``drag`` and ``hover_throttle`` change the craft (``params``, default the
    standard one: see pipilot.sim.craft); None keeps ``params``' own.
    ``flow_scale``, ``flow_noise``, ``range_scale``, ``texture_dropout_*`` and ``imu`` shape
    the flow deck
    under the craft, which `pipilot.cli.mission.sim_deck` builds from the same
    [sim] table: they are accepted here so that a [sim] table passes whole.
    ``faults`` (``[[sim.faults]]``: FaultSpecs, or their ``dataclasses.asdict``
    form) are scheduled on ``sim.faults``. ``attitude_kp`` tunes the FC's attitude
    loop (None keeps its default).
    """
    axis = math.radians(mount_tilt_axis_deg)
    tilt = (mount_tilt_deg * math.sin(axis), mount_tilt_deg * math.cos(axis))
    frm = math.radians(wind_from_deg)
    wind = (-wind_mps * math.cos(frm), -wind_mps * math.sin(frm))
    craft = craft_params(params, mass_kg=mass_kg, drag=drag, hover_throttle=hover_throttle,
                         gust_mps=gust_mps)
    sim = LockstepSim(seed=int(seed), mount_tilt_deg=tilt, wind=wind, core=core,
                      firmware=firmware, period_ms=period_ms, params=craft,
                      frame_source=frame_source, first_frame_s=first_frame_s,
                      telemetry_baud=telemetry_baud, handshake=handshake,
                      telemetry_latency_s=telemetry_latency_s, texture=texture)
    if attitude_kp is not None:
        stab = sim.model.stabilizer
        stab.s = dataclasses.replace(stab.s, attitude_kp=attitude_kp)
    for fault in faults:
        sim.faults.schedule(fault if isinstance(fault, FaultSpec) else FaultSpec(**fault))
    return sim
