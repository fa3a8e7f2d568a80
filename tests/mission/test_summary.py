"""Mission summaries computed from ground truth: excursion and height error on
synthetic tracks, where the right answer is known."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from pipilot.mission.events import EventKind, MissionEvent
from pipilot.mission.runner import height_error, hover_drift, percentile


def ev(t: float, kind: EventKind, step: int, action: str, **data: object) -> MissionEvent:
    return MissionEvent(t=t, kind=kind, message=action, step=step, action=action,
                        data=dict(data))


def mission(events: list[MissionEvent], samples: list[dict[str, float]]) -> SimpleNamespace:
    return SimpleNamespace(events=SimpleNamespace(history=events), samples=samples)


def track(t0: float, t1: float, f, dt: float = 0.02) -> list[dict[str, float]]:
    """Rows every dt from t0 to t1 with (north, east, height) = f(t)."""
    rows = []
    for i in range(round((t1 - t0) / dt) + 1):
        t = t0 + i * dt
        n, e, h = f(t)
        rows.append({"t": t, "north": n, "east": e, "down": -h})
    return rows


def out_and_back(t: float) -> tuple[float, float, float]:
    # 10 s hover from (1, 1): out 3 m east by t = 5 s, back by t = 10 s, at 2 m
    x = 3.0 * math.sin(math.pi * (t - 10.0) / 10.0) if 10.0 <= t <= 20.0 else 0.0
    return 1.0, 1.0 + x, 2.0


def test_excursion_is_the_farthest_point_not_the_end():
    events = [
        ev(10.0, EventKind.STEP_STARTED, 2, "hover", truth_ned=[1.0, 1.0, -2.0]),
        ev(20.0, EventKind.STEP_DONE, 2, "hover", truth_ned=[1.0, 1.0, -2.0]),
    ]
    s = hover_drift(mission(events, track(0.0, 25.0, out_and_back)))
    assert s["drift_m"] == pytest.approx(0.0, abs=1e-6)
    assert s["max_excursion_m"] == pytest.approx(3.0, abs=1e-3)
    assert s["hover_height_min_m"] == s["hover_height_max_m"] == 2.0
    assert s["hover_on_ground_s"] == 0.0


def test_the_longest_hover_or_hold_step_is_the_one_summed_up():
    def f(t: float) -> tuple[float, float, float]:
        return (t - 30.0 if t >= 30.0 else 0.0), 0.0, 1.0  # drifts north 1 m/s from t = 30

    events = [
        ev(0.0, EventKind.STEP_STARTED, 1, "hover", truth_ned=[0.0, 0.0, -1.0]),
        ev(5.0, EventKind.STEP_DONE, 1, "hover", truth_ned=[0.0, 0.0, -1.0]),
        ev(30.0, EventKind.STEP_STARTED, 3, "hold", truth_ned=[0.0, 0.0, -1.0],
           target_height_m=1.0),
        ev(42.0, EventKind.STEP_DONE, 3, "hold", truth_ned=[12.0, 0.0, -1.0]),
    ]
    s = hover_drift(mission(events, track(0.0, 50.0, f)))
    assert s["hover_seconds"] == 12.0
    assert s["max_excursion_m"] == pytest.approx(12.0, abs=1e-6)


def test_height_error_p90_over_hold_steps():
    # 10 s hold at a 1 m target: height error grows linearly 0 .. 0.5 m
    def f(t: float) -> tuple[float, float, float]:
        return 0.0, 0.0, 1.0 + 0.05 * (t - 10.0) if t >= 10.0 else 0.0

    events = [
        ev(10.0, EventKind.STEP_STARTED, 2, "hold", truth_ned=[0, 0, -1.0],
           target_height_m=1.0),
        ev(20.0, EventKind.STEP_DONE, 2, "hold", truth_ned=[0, 0, -1.5]),
    ]
    rows = track(0.0, 30.0, f)
    got = height_error(mission(events, rows))["height_error_p90_m"]
    # uniform over 0..0.5 m: the 90th percentile is 0.45 m
    assert got == pytest.approx(0.45, abs=1e-3)
    # heights below the target count as much as above
    for r in rows:
        r["down"] = -(2.0 + r["down"]) if r["t"] >= 10.0 else r["down"]  # 1 - x
    assert height_error(mission(events, rows))["height_error_p90_m"] == pytest.approx(
        0.45, abs=1e-3)


def test_height_error_is_null_without_a_hold_step():
    events = [
        ev(0.0, EventKind.STEP_STARTED, 1, "hover", truth_ned=[0, 0, -1.0]),
        ev(5.0, EventKind.STEP_DONE, 1, "hover", truth_ned=[0, 0, -1.0]),
    ]
    rows = track(0.0, 6.0, lambda t: (0.0, 0.0, 1.0))
    assert height_error(mission(events, rows)) == {"height_error_p90_m": None}
    # a hold that never completed is no hold step either
    events.append(ev(6.0, EventKind.STEP_STARTED, 2, "hold", truth_ned=[0, 0, -1.0],
                     target_height_m=1.0))
    assert height_error(mission(events, rows)) == {"height_error_p90_m": None}


def test_time_on_the_ground_during_the_hover():
    def f(t: float) -> tuple[float, float, float]:
        return 0.0, 0.0, max(0.0, 1.0 - 0.5 * t)  # sinks to the ground by t = 2 s

    events = [
        ev(0.0, EventKind.STEP_STARTED, 1, "hover", truth_ned=[0, 0, -1.0]),
        ev(6.0, EventKind.STEP_DONE, 1, "hover", truth_ned=[0, 0, 0.0]),
    ]
    s = hover_drift(mission(events, track(0.0, 6.0, f)))
    assert s["hover_on_ground_s"] == pytest.approx(4.0, abs=0.05)
    assert s["hover_height_min_m"] == 0.0 and s["hover_height_max_m"] == 1.0


@pytest.mark.parametrize(("xs", "q", "want"), [
    ([3.0], 0.9, 3.0),
    ([0.0, 1.0], 0.9, 0.9),
    ([5.0, 1.0, 3.0, 2.0, 4.0], 0.5, 3.0),
    ([5.0, 1.0, 3.0, 2.0, 4.0], 1.0, 5.0),
    ([5.0, 1.0, 3.0, 2.0, 4.0], 0.0, 1.0),
])
def test_percentile(xs, q, want):
    assert percentile(xs, q) == pytest.approx(want)


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        percentile([], 0.9)
