"""Timing statistics of a frame stream seen from its far end.

Frame i is taken to be meant for slot k_i of the nominal period P. With
`slotting="index"` (the default) k_i = i: right for a link that loses nothing
(a pty, a loopback); slots the writer reports it left out (the pump's
dropped and silent slots) go where the writer's log puts them (`skips_at`:
before which frame, counted from the first) or, beyond the log, at the
widest gaps; any other missing slot shows as lateness. With `slotting="gaps"` a gap of about n
periods advances n slots, for links that may drop frames. The mean period is
the least-squares slope of arrival time over slot, so bursty delivery at the
ends does not bias it; lateness is measured against the earliest arrival's
offset on the grid t0 + k*P.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def slots(times: Sequence[float], period: float, slotting: str = "index",
          skipped: int = 0, skips_at: Sequence[tuple[int, int]] = ()) -> list[int]:
    """Slot index of each arrival (first = 0). With "index", `skipped` slots that
    the writer reports it left out are placed as `skips_at` says ((index of
    the frame they precede, count) pairs), the rest at the widest gaps."""
    if slotting == "index":
        extra = [0] * len(times)
        for index, count in skips_at:
            if 0 < index < len(times) and 0 < count <= skipped:
                extra[index] += count
                skipped -= count
        widest = sorted(((b - a, i + 1) for i, (a, b) in enumerate(itertools.pairwise(times))),
                        reverse=True)
        for gap, i in widest:
            n = round(gap / period) - 1
            if skipped <= 0 or n <= 0:
                break
            if extra[i]:
                continue
            extra[i] = min(n, skipped)
            skipped -= extra[i]
        return [0, *itertools.accumulate(1 + e for e in extra[1:])]
    if slotting != "gaps":
        raise ValueError("slotting is 'index' or 'gaps'")
    out = [0]
    for a, b in itertools.pairwise(times):
        out.append(out[-1] + max(1, round((b - a) / period)))
    return out


def fitted_period(times: Sequence[float], k: Sequence[int]) -> float:
    """Least-squares slope of time over slot."""
    n = len(times)
    mk = sum(k) / n
    mt = sum(times) / n
    num = sum((ki - mk) * (ti - mt) for ki, ti in zip(k, times, strict=True))
    den = sum((ki - mk) ** 2 for ki in k)
    return num / den


def arrival_stats(times: Sequence[float], period: float, slotting: str = "index",
                  skipped: int = 0, warmup_s: float = 0.0,
                  skips_at: Sequence[tuple[int, int]] = ()) -> dict[str, float]:
    """mean period, lateness p50/p99/p99.9/max, longest gap, frames and slots.
    `skipped`, `skips_at`: slots the writer says it left out, and where (see
    `slots`); `warmup_s`: the first seconds are slotted (the writer's counts
    include them) but left out of the figures."""
    if len(times) < 2:
        return {"frames": float(len(times))}
    k = slots(times, period, slotting, skipped, skips_at)
    keep = [i for i, t in enumerate(times) if t >= times[0] + warmup_s]
    times = [times[i] for i in keep]
    k = [k[i] for i in keep]
    n = len(times)
    if n < 2:
        return {"frames": float(n)}
    offsets = [t - i * period for t, i in zip(times, k, strict=True)]
    base = min(offsets)
    late = sorted(o - base for o in offsets)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    mean_period = fitted_period(times, k)
    return {
        "frames": float(n),
        "slots": float(k[-1] - k[0] + 1),
        "mean_period_s": mean_period,
        "period_error_pct": (mean_period - period) / period * 100.0,
        "lateness_p50_s": percentile(late, 50),
        "lateness_p99_s": percentile(late, 99),
        "lateness_p999_s": percentile(late, 99.9),
        "lateness_max_s": late[-1],
        "longest_gap_s": max(gaps),
    }
