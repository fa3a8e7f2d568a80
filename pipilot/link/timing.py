"""Timing statistics of a frame stream seen from its far end.

Arrival times are assigned to slots of the nominal period P (a gap of about
n periods advances n slots), so a writer that drifts shows growing lateness
and a mean period off P, and one that skips a slot shows a gap but no drift.
Lateness is measured against the earliest arrival's offset on that grid.
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


def slots(times: Sequence[float], period: float) -> list[int]:
    """Slot index of each arrival (first = 0)."""
    out = [0]
    for a, b in itertools.pairwise(times):
        out.append(out[-1] + max(1, round((b - a) / period)))
    return out


def arrival_stats(times: Sequence[float], period: float) -> dict[str, float]:
    """mean period, lateness p50/p99/p99.9/max, longest gap, frames and slots."""
    n = len(times)
    if n < 2:
        return {"frames": float(n)}
    k = slots(times, period)
    offsets = [t - i * period for t, i in zip(times, k, strict=True)]
    base = min(offsets)
    late = sorted(o - base for o in offsets)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    mean_period = (times[-1] - times[0]) / k[-1]
    return {
        "frames": float(n),
        "slots": float(k[-1] + 1),
        "mean_period_s": mean_period,
        "period_error_pct": (mean_period - period) / period * 100.0,
        "lateness_p50_s": percentile(late, 50),
        "lateness_p99_s": percentile(late, 99),
        "lateness_p999_s": percentile(late, 99.9),
        "lateness_max_s": late[-1],
        "longest_gap_s": max(gaps),
    }
