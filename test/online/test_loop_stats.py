"""LoopStats: rate, jitter and latency of one reporting window, then a fresh window."""

import pytest

from maml_ros.online.loop_stats import LoopStats


def test_report_summarizes_the_window_and_starts_a_new_one():
    assert LoopStats(period=0.01).report(0.0) == {}
    stats = LoopStats(period=0.01)
    for k, now in enumerate([1.0, 1.01, 1.02, 1.035, 1.045]):
        stats.tick(now)
        stats.command(0.001 * (k + 1))
    values = stats.report(1.05)
    assert float(values['control_rate_hz']) == pytest.approx(5 / 0.05)
    assert float(values['max_loop_period_ms']) == pytest.approx(15.0)
    assert float(values['loop_jitter_p50_ms']) == pytest.approx(0.0, abs=1e-9)
    assert float(values['loop_jitter_p99_ms']) == pytest.approx(4.85, abs=0.01)
    assert float(values['latency_p50_ms']) == pytest.approx(3.0)
    stats.tick(1.055)
    values = stats.report(1.1)
    assert float(values['control_rate_hz']) == pytest.approx(1 / 0.05)
    assert float(values['max_loop_period_ms']) == pytest.approx(10.0)
    assert 'latency_p50_ms' not in values


def test_each_figure_is_the_percentile_it_names_in_milliseconds():
    """Intervals of 11, 12, 13, 10 and 14 ms against a 10 ms period: jitters 1, 2, 3, 0, 4 ms;
    latencies 1-5 ms. Percentiles interpolate linearly (p99 of 0..4: 3.96)."""
    stats = LoopStats(period=0.01)
    for k, now in enumerate([0.0, 0.011, 0.023, 0.036, 0.046, 0.060]):
        stats.tick(now)
        if k:
            stats.command(0.001 * k)
    assert stats.report(0.06) == {
        'control_rate_hz': '100.0', 'loop_jitter_p50_ms': '2.000',
        'loop_jitter_p99_ms': '3.960', 'max_loop_period_ms': '14.000',
        'latency_p50_ms': '3.000', 'latency_p99_ms': '4.960'}
