"""Transitions: unbroken runs, the moving average within them, and prepared regressors."""

import numpy as np
import pytest
import torch

from maml_ros.model.transitions import Regressed, Transitions, centred_mean


def chain(states: np.ndarray) -> Transitions:
    return Transitions(states[:-1], np.arange(len(states) - 1.0)[:, None], states[1:])


def test_runs_break_where_a_next_state_is_not_the_following_state():
    first, second = chain(np.arange(5.0)[:, None]), chain(np.arange(10.0, 14.0)[:, None])
    joined = Transitions(*(np.concatenate([a, b]) for a, b in zip(
        (first.states, first.commands, first.next_states),
        (second.states, second.commands, second.next_states), strict=True)))
    assert joined.runs() == [slice(0, 4), slice(4, 7)]
    assert chain(np.arange(3.0)[:, None]).runs() == [slice(0, 2)]


def test_the_moving_average_is_centred_shrinks_at_the_ends_and_keeps_a_linear_trend():
    values = np.array([0.0, 0.0, 5.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(centred_mean(values, 5), [0, 5 / 3, 1, 1, 0, 0])
    line = 3.0 * np.arange(7.0) + 1.0
    np.testing.assert_allclose(centred_mean(line, 5), line)
    np.testing.assert_array_equal(centred_mean(values, 1), values)


def test_the_moving_average_takes_arrays_and_tensors_of_rows_of_any_shape():
    values = np.random.default_rng(0).standard_normal((9, 2, 3))
    expected = np.stack([centred_mean(values[:, j, k], 5) for j in range(2)
                         for k in range(3)], axis=-1).reshape(values.shape)
    np.testing.assert_allclose(centred_mean(values, 5), expected)
    averaged = centred_mean(torch.tensor(values), 5)
    assert isinstance(averaged, torch.Tensor)
    np.testing.assert_allclose(averaged.numpy(), expected)


def test_smoothing_never_averages_across_a_break():
    first, second = chain(np.zeros((4, 1))), chain(np.ones((4, 1)))
    joined = Transitions(np.concatenate([first.states, 2 + second.states]),
                         np.concatenate([first.commands, 100 + second.commands]),
                         np.concatenate([first.next_states, 2 + second.next_states]))
    smoothed = joined.smoothed(joined.commands, 5)
    np.testing.assert_allclose(smoothed[:3], centred_mean(joined.commands[:3], 5))
    np.testing.assert_allclose(smoothed[3:], centred_mean(joined.commands[3:], 5))


@pytest.mark.parametrize('index', [slice(2, 6), np.array([1, 2, 3])])
def test_prepared_regressors_are_sliced_with_their_transitions(index):
    transitions = chain(np.arange(9.0)[:, None])
    prepared = Regressed(transitions, np.arange(8.0)[:, None] * 10, smoothing=5)
    part = prepared[index]
    assert part.smoothing == 5 and len(part) == len(part.rows)
    np.testing.assert_array_equal(part.rows[:, 0], 10 * part.transitions.states[:, 0])
    np.testing.assert_array_equal(part.commands, transitions.commands[index])
    rows, commands = part.smoothed()
    np.testing.assert_allclose(rows, centred_mean(part.rows, 5))
    np.testing.assert_allclose(commands, centred_mean(part.commands, 5))
