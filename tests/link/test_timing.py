import pytest

from pipilot.link.timing import arrival_stats, percentile, slots

P = 0.007


def test_a_perfect_stream():
    s = arrival_stats([5 + i * P for i in range(1000)], P)
    assert s["mean_period_s"] == pytest.approx(P)
    assert s["lateness_max_s"] == pytest.approx(0, abs=1e-9)
    assert s["longest_gap_s"] == pytest.approx(P)


def test_a_drifting_writer_shows_growing_lateness():
    s = arrival_stats([i * P * 1.03 for i in range(1000)], P)
    assert s["period_error_pct"] == pytest.approx(3.0, rel=1e-6)
    assert s["lateness_max_s"] == pytest.approx(999 * P * 0.03, rel=1e-6)


def test_a_skipped_slot_is_a_gap_not_drift_when_slotting_by_gaps():
    times = [i * P for i in range(100) if i != 50]
    assert slots(times, P, "gaps")[50] == 51
    s = arrival_stats(times, P, "gaps")
    assert s["longest_gap_s"] == pytest.approx(2 * P)
    assert s["lateness_max_s"] == pytest.approx(0, abs=1e-9)
    assert s["slots"] == 100


def test_one_late_frame():
    times = [i * P for i in range(100)]
    times[10] += 0.002
    s = arrival_stats(times, P)
    assert s["lateness_max_s"] == pytest.approx(0.002)
    assert s["lateness_p50_s"] == pytest.approx(0.0, abs=1e-12)


def test_percentile():
    v = sorted(range(1, 101))
    assert percentile(v, 50) == 50 and percentile(v, 99) == 99 and percentile(v, 100) == 100


def test_by_index_a_skipped_slot_counts_as_lateness():
    times = [i * P for i in range(100) if i != 50]
    s = arrival_stats(times, P)
    assert s["lateness_max_s"] == pytest.approx(P)


def test_bursty_delivery_does_not_bias_the_mean_period():
    # frames written every P, delivered in bursts of 5 (each burst when its last is written)
    times = [((i // 5) * 5 + 4) * P for i in range(1000)]
    s = arrival_stats(times, P)
    assert s["mean_period_s"] == pytest.approx(P, rel=1e-3)
    assert s["lateness_max_s"] == pytest.approx(4 * P)


def test_reported_skips_go_to_the_widest_gaps():
    times = [i * P for i in range(100) if i not in (30, 70, 71)]
    times = [t + (0.004 if 40 <= i < 45 else 0) for i, t in enumerate(times)]  # a burst
    assert slots(times, P, skipped=3)[-1] == 99
    s = arrival_stats(times, P, skipped=3)
    assert s["lateness_max_s"] == pytest.approx(0.004)
    assert s["mean_period_s"] == pytest.approx(P, rel=1e-3)
    assert slots([1.0], P) == [0]


def test_warmup_is_slotted_but_not_counted():
    times = [i * P for i in range(200) if i != 3]          # a slot dropped at start-up
    s = arrival_stats(times, P, skipped=1, warmup_s=0.1)
    assert s["lateness_max_s"] == pytest.approx(0, abs=1e-9)
    assert s["frames"] == len([t for t in times if t >= 0.1])


def test_logged_skips_go_where_the_writer_says():
    # slot 40 written 0.7 P late and slot 41 left out (the pump's late-wake rule): the
    # widest gap is before the late frame, but the frame is late, not early
    times = [(i + (0.7 if i == 40 else 0)) * P for i in range(100) if i != 41]
    by_width = arrival_stats(times, P, skipped=1)
    assert by_width["lateness_p50_s"] == pytest.approx(0.3 * P)  # misread: all others "late"
    s = arrival_stats(times, P, skipped=1, skips_at=[(41, 1)])
    assert s["lateness_max_s"] == pytest.approx(0.7 * P)
    assert s["lateness_p50_s"] == pytest.approx(0.0, abs=1e-12)
    assert s["longest_gap_s"] == pytest.approx(1.7 * P)
    assert slots(times, P, skipped=1, skips_at=[(41, 1)])[41] == 42


def test_logged_skips_beyond_the_count_or_the_stream_are_ignored():
    times = [i * P for i in range(100) if i != 50]
    assert slots(times, P, skipped=1, skips_at=[(500, 1), (10, 3)])[-1] == 99
