"""Offline replay's split: the support window, and held-out transitions only after it."""

import numpy as np
import pytest

from maml_ros.evaluation.replay import split
from maml_ros.model.transitions import Transitions

PERIOD = 0.01


def numbered(count, *, gap_after=None):
    """``count`` transitions whose rows are their index; stamps one period apart (a gap of
    a second after row ``gap_after``)."""
    rows = np.arange(count, dtype=float)[:, None]
    stamps = 100.0 + PERIOD * np.arange(1, count + 1)
    if gap_after is not None:
        stamps[gap_after + 1:] += 1.0
    return Transitions(rows.repeat(2, 1), rows, rows.repeat(2, 1) + 0.5), stamps


def rows(transitions):
    return transitions.commands[:, 0].astype(int).tolist()


@pytest.mark.parametrize('start, first', [(0.0, 0), (0.05, 4), (0.5, 49)])
def test_the_support_starts_start_seconds_after_the_origin_and_the_rest_is_held_out(start,
                                                                                    first):
    transitions, stamps = numbered(100)
    support, support_stamps, held_out = split(transitions, stamps, support_size=20, start=start,
                                              origin=100.0)
    assert rows(support) == list(range(first, first + 20))
    np.testing.assert_array_equal(support_stamps, stamps[first:first + 20])
    assert rows(held_out) == list(range(first + 20, 100))  # after the support, none of it


def test_a_window_is_the_newest_transitions_up_to_its_end():
    transitions, stamps = numbered(100, gap_after=59)
    support, support_stamps, held_out = split(transitions, stamps, support_size=0,
                                              window=(stamps[69] + PERIOD / 2, 30))
    assert rows(support) == list(range(40, 70))  # across the gap, as the buffer kept them
    assert support_stamps[-1] == stamps[69] and rows(held_out) == list(range(70, 100))


@pytest.mark.parametrize('options, message', [
    ({'support_size': 80, 'start': 0.5}, 'fewer than the 80 asked for'),
    ({'support_size': 0, 'window': (100.0 + 20 * PERIOD, 30)}, 'recording started later'),
])
def test_too_few_transitions_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        split(*numbered(100), **options)
