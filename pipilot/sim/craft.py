"""The simulated craft's physical parameters from a mission's ``[sim]`` figures.

A mission's ``[sim]`` table describes the craft in the terms a pilot knows it
(mass, the throttle stick it hovers at, how much it drags in wind); the model
wants thrust-to-weight and drag coefficients. The conversion lives here so
both simulator modes build the same craft from the same figures.
"""

from __future__ import annotations

import dataclasses

from pipilot.sim.dynamics import QuadParams
from pipilot.sim.manual import ManualControlSettings


def thrust_to_weight(hover_throttle: float,
                     settings: ManualControlSettings | None = None) -> float:
    """Thrust-to-weight ratio of a craft that hovers at ``hover_throttle`` (stick 0..1).

    The inverse of `SimulatedCC3D.hover_throttle`: the stick maps linearly onto the
    throttle channel's calibrated range, the firmware scales it from neutral
    (motors off) to max (full thrust).
    """
    cal = settings or ManualControlSettings()
    lo, mid, hi = (cal.channel_min["Throttle"], cal.channel_neutral["Throttle"],
                   cal.channel_max["Throttle"])
    scaled = (lo + hover_throttle * (hi - lo) - mid) / (hi - mid)
    if not 0.0 < scaled < 1.0:
        raise ValueError(f"hover throttle {hover_throttle:g} is outside the throttle channel's "
                         f"flying range (above neutral, below full)")
    return 1.0 / scaled


def craft_params(base: QuadParams | None = None, *, mass_kg: float | None = None,
                 drag: float | None = None, hover_throttle: float | None = None,
                 gust_mps: float | None = None) -> QuadParams:
    """``base`` (default: the standard craft) with the given figures; None keeps base's."""
    p = base or QuadParams()
    return dataclasses.replace(
        p, mass=p.mass if mass_kg is None else mass_kg,
        drag_xy=p.drag_xy if drag is None else drag,
        thrust_to_weight=(p.thrust_to_weight if hover_throttle is None
                          else thrust_to_weight(hover_throttle)),
        gust_sigma=p.gust_sigma if gust_mps is None else gust_mps)
