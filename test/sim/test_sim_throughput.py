"""The throughput probe returns sensible figures (the figures themselves go in BENCHMARKS.md)."""

import pytest

from maml_ros.sim import RolloutConfig, measure_throughput


@pytest.mark.parametrize('workers', [1, 2])
def test_throughput_probe_measures_bare_and_collection_rates(workers):
    report = measure_throughput(workers=workers, config=RolloutConfig(steps=50), bare_steps=500,
                                tasks_per_round=1, rounds=1)
    assert report.workers == workers and report.substeps == 10
    for rate in (report.bare_steps_per_second, report.bare_free_steps_per_second,
                 report.collection_steps_per_second):
        assert 1e3 < rate < 1e7
    assert report.collection_control_steps_per_second == pytest.approx(
        report.collection_steps_per_second / 10)
    assert 0.0 < report.physics_share < 1.0
    # Collection steps the same physics plus Python work: it cannot beat the physics.
    assert report.ratio < 1.5
