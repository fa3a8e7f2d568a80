"""How much faster than real time the lock-step simulator runs (prints JSON).

Three scenarios, each run REPEAT times: a craft idle on the ground, a hover,
and the bare model fed frames without the UAVTalk link (the baseline: what
the telemetry costs). Figures: median and spread of the speed-up, simulated
seconds per wall-clock second.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

from pipilot.core.setpoints import NEUTRAL
from pipilot.sim import LockstepSim, SimulatedCC3D, stick_frame

SIM_S = 20.0
REPEAT = 3


def idle() -> None:
    LockstepSim(seed=1).run(SIM_S)


def hover() -> None:
    sim = LockstepSim(seed=1)
    sim.run(1.0)
    sim.set_sticks(yaw=-1.0)
    sim.run(1.2)
    sim.set_sticks(yaw=0.0)
    sim.set_sticks(throttle=sim.model.hover_throttle() + 0.05)
    sim.run(SIM_S - 2.2)


def bare_model() -> None:
    model = SimulatedCC3D(seed=1)
    frame = stick_frame(NEUTRAL)
    t = 0.01
    while t < SIM_S:
        model.feed_sbus_paced(frame, t)
        t += 0.014
    model.advance_to(SIM_S)


def measure(fn: Callable[[], None]) -> dict[str, float]:
    speedups = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        fn()
        speedups.append(SIM_S / (time.perf_counter() - t0))
    return {"median_x": round(statistics.median(speedups), 2),
            "min_x": round(min(speedups), 2), "max_x": round(max(speedups), 2)}


def main() -> None:
    base = measure(bare_model)
    out = {"sim_seconds": SIM_S, "repeat": REPEAT, "bare_model": base}
    for name, fn in (("lockstep_idle", idle), ("lockstep_hover", hover)):
        r = measure(fn)
        r["ratio_to_bare_model"] = round(r["median_x"] / base["median_x"], 3)
        out[name] = r
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
