"""Support transitions are paired tick to tick, and only when that is right."""

import numpy as np
import pytest

from maml_ros.online.support_buffer import SupportBuffer

PERIOD = 0.01


def state(k: float) -> np.ndarray:
    return np.full(4, float(k))


def test_consecutive_ticks_make_transitions_with_the_command_in_force():
    buffer = SupportBuffer(capacity=10, n_joints=2, control_period=PERIOD)
    for k in range(4):
        buffer.record(k * PERIOD, state(k), np.full(2, 10.0 + k))
    t = buffer.transitions()
    assert len(t) == 3
    np.testing.assert_array_equal(t.states[:, 0], [0, 1, 2])
    np.testing.assert_array_equal(t.commands[:, 0], [10, 11, 12])
    np.testing.assert_array_equal(t.next_states[:, 0], [1, 2, 3])


def test_sliding_window_keeps_the_newest_capacity_transitions():
    buffer = SupportBuffer(capacity=3, n_joints=2, control_period=PERIOD)
    for k in range(10):
        buffer.record(k * PERIOD, state(k), np.zeros(2))
    assert buffer.full and len(buffer) == 3
    np.testing.assert_array_equal(buffer.transitions().states[:, 0], [6, 7, 8])
    buffer.resize(2)
    np.testing.assert_array_equal(buffer.transitions().states[:, 0], [7, 8])


@pytest.mark.parametrize('gap', [0.0, 0.5 * PERIOD, 2 * PERIOD, -PERIOD])
def test_repeated_late_or_backwards_states_break_the_chain(gap):
    buffer = SupportBuffer(capacity=10, n_joints=2, control_period=PERIOD)
    buffer.record(0.0, state(0), np.zeros(2))
    assert not buffer.record(gap, state(1), np.zeros(2))
    assert len(buffer) == 0 and buffer.broken == 1


def test_no_command_or_non_finite_data_makes_no_transition():
    buffer = SupportBuffer(capacity=10, n_joints=2, control_period=PERIOD)
    buffer.record(0.0, state(0), None)
    assert not buffer.record(PERIOD, state(1), np.array([np.nan, 0.0]))
    assert not buffer.record(2 * PERIOD, state(2), np.zeros(2))
    bad = state(3)
    bad[1] = np.inf
    buffer.record(3 * PERIOD, bad, np.zeros(2))
    assert len(buffer) == 1  # only 2 -> 3 is not made: tick 3's state is not finite
    assert not buffer.record(4 * PERIOD, state(4), np.zeros(2))


def test_break_chain_and_clear():
    buffer = SupportBuffer(capacity=10, n_joints=2, control_period=PERIOD)
    buffer.record(0.0, state(0), np.zeros(2))
    buffer.break_chain()
    assert not buffer.record(PERIOD, state(1), np.zeros(2))
    assert buffer.record(2 * PERIOD, state(2), np.zeros(2))
    buffer.clear()
    assert len(buffer) == 0 and buffer.transitions().states.shape == (0, 4)


def test_capacity_must_be_at_least_one():
    buffer = SupportBuffer(capacity=1, n_joints=2, control_period=PERIOD)
    buffer.resize(1)
    assert buffer.capacity == 1
    with pytest.raises(ValueError, match='capacity must be >= 1'):
        buffer.resize(0)


def test_an_empty_buffer_gives_empty_arrays_of_the_right_width():
    buffer = SupportBuffer(capacity=5, n_joints=2, control_period=PERIOD)
    assert buffer.record(0.0, state(0), np.zeros(2)) is False  # no previous state: no pair
    t = buffer.transitions()
    assert t.states.shape == t.next_states.shape == (0, 4) and t.commands.shape == (0, 2)


@pytest.mark.parametrize('arguments', [
    {'capacity': 0}, {'n_joints': 0}, {'control_period': 0.0}, {'tolerance': 0.0},
    {'tolerance': 1.0}])
def test_impossible_settings_are_refused_and_the_smallest_possible_ones_accepted(arguments):
    smallest = {'capacity': 1, 'n_joints': 1, 'control_period': 1e-6, 'tolerance': 0.01}
    SupportBuffer(**smallest)
    with pytest.raises(ValueError, match='^need capacity >= 1, n_joints >= 1, control_period > 0 '
                                         'and 0 < tolerance < 1$'):
        SupportBuffer(**{**smallest, **arguments})


def test_an_interval_off_by_exactly_the_tolerance_still_pairs():
    buffer = SupportBuffer(capacity=10, n_joints=2, control_period=0.5, tolerance=0.5)
    buffer.record(0.0, state(0), np.zeros(2))
    assert buffer.record(0.75, state(1), np.zeros(2))  # |0.75 - 0.5| = 0.5 * 0.5: kept
    assert not buffer.record(1.625, state(2), np.zeros(2))  # 0.875 later: too late
    assert not buffer.record(1.625, state(3), np.zeros(2))  # not newer
    assert buffer.broken == 2  # each break counted


def test_integer_data_is_stored_as_float():
    buffer = SupportBuffer(capacity=10, n_joints=2, control_period=PERIOD)
    buffer.record(0.0, [0, 1, 2, 3], [1, 2])
    buffer.record(PERIOD, [4, 5, 6, 7], [3, 4])
    t = buffer.transitions()
    assert t.states.dtype == t.commands.dtype == t.next_states.dtype == np.float64


def test_stamps_are_seconds_as_floats_even_when_recorded_as_integers():
    buffer = SupportBuffer(capacity=5, n_joints=1, control_period=1.0)
    assert buffer.stamps().dtype == np.float64  # empty
    for stamp in range(3):  # a clock in whole seconds
        buffer.record(stamp, np.zeros(2), np.zeros(1))
    stamps = buffer.stamps()
    assert stamps.dtype == np.float64 and stamps.tolist() == [1.0, 2.0]
