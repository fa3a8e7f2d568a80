"""The percentile every bench reports, so their figures are comparable.

The sample at rank round(q * (n - 1)) of the sorted values: no interpolation,
so a reported p99 is a latency that happened.
"""

from __future__ import annotations

from collections.abc import Iterable


def pct(values: Iterable[float], q: float) -> float:
    """The q-quantile (q in 0..1) of ``values``, one of the samples."""
    s = sorted(values)
    if not s:
        raise ValueError("no samples")
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]
