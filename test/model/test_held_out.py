"""The never-worse rule: an adaptation judged on support transitions it was not fitted on."""

import numpy as np
import pytest

from maml_ros.model.held_out import (
    MIN_ROWS,
    HeldOut,
    Prediction,
    Procedure,
    cross_validate,
    judge,
)
from maml_ros.model.transitions import Regressed, Transitions

ROWS = 200  # halves of 100: enough held out to judge by (MIN_ROWS)


def transitions(rows: int = ROWS) -> Transitions:
    """Two joints, moving at 0.5 rad/s, whose command is ``2 x`` and ``-x`` of the first
    state column."""
    x = np.linspace(-1.0, 1.0, rows)
    states = np.stack([x, np.cos(3 * x), 0 * x + 0.5, 0 * x + 0.5], axis=1)
    return Transitions(states, np.stack([2 * x, -x], axis=1), states)


def gains(state: np.ndarray, data: Transitions) -> Prediction:
    """A model that is a gain per joint on the first state column."""
    return Prediction(np.arange(len(data)), data.states[:, :1] * state)


def least_squares(data: Transitions) -> np.ndarray:
    x = data.states[:, 0]
    return data.commands.T @ x / (x @ x)


def squared_loss(state, data: Transitions) -> float:
    prediction = gains(state, data)
    return float(np.mean((prediction.commands - data.commands[prediction.rows]) ** 2))


def per_joint(fit) -> Procedure:
    return Procedure(fit=fit, predict=gains, loss=squared_loss,
                     adopt=lambda running, fitted, joints: np.where(joints, fitted, running))


def test_a_fit_that_memorizes_its_support_is_judged_on_what_it_did_not_see():
    """A lookup table of the support fits it exactly (support loss 0) and predicts nothing
    else: the running model, right on one joint and half right on the other, keeps both."""

    def memorize(data: Transitions):
        return {round(float(x), 9): command for x, command in
                zip(data.states[:, 0], data.commands, strict=True)}

    def look_up(state, data: Transitions) -> Prediction:
        if isinstance(state, np.ndarray):
            return gains(state, data)
        return Prediction(np.arange(len(data)), np.array(
            [state.get(round(float(x), 9), np.zeros(2)) for x in data.states[:, 0]]))

    def loss(state, data: Transitions) -> float:
        prediction = look_up(state, data)
        return float(np.mean((prediction.commands - data.commands) ** 2))

    running = np.array([2.0, -0.5])
    procedure = Procedure(fit=memorize, predict=look_up, loss=loss)
    judged = judge(procedure, running, transitions())
    assert judged.loss_after == 0.0 < judged.loss_before
    assert not judged.adopted.any() and judged.kept == (1, 2)
    assert judged.held_out.refusal(judged.adopted).startswith(
        'it predicts held-out transitions no better')


def test_each_joint_takes_the_adaptation_unless_it_predicts_that_joint_worse():
    """The running model is right on joint 1 and wrong on joint 2; a fit that is wrong on
    joint 1 (every fold says so) and right on joint 2 is taken on joint 2 only."""
    running = np.array([2.0, 0.0])
    procedure = per_joint(lambda data: least_squares(data) * np.array([1.5, 1.0]))
    judged = judge(procedure, running, transitions())
    np.testing.assert_array_equal(judged.adopted, [False, True])
    np.testing.assert_allclose(judged.state, [2.0, -1.0])
    assert judged.kept == (1,) and judged.held_out.refusal(judged.adopted) == ''
    before, after = judged.held_out.per_joint()
    x = transitions().states[:, 0]
    rms = np.sqrt(np.mean(x ** 2))  # each half of x is the other's mirror image
    np.testing.assert_allclose(before, [0.0, rms], atol=1e-12)
    np.testing.assert_allclose(after, [rms, 0.0], atol=1e-12)


def test_a_joint_friction_held_still_is_judged_where_it_moved():
    """Joint 2 is held still where the first state column is below 0.5 (its command there
    is the push friction held, which no model predicts). A fit wrong on those transitions
    and right where it moved is taken. A joint that never moved is judged on every row (a
    robot at rest is identified from the torques that hold it)."""
    data = transitions()
    x = data.states[:, 0]
    moving = x > 0.5
    for rows in (data.states, data.next_states):
        rows[:, 3] = np.where(moving, 0.5, 0.0)
    pushed = Transitions(data.states, np.stack([data.commands[:, 0], np.where(
        moving, -x, 0.3 * np.sign(np.sin(40 * x)))], 1), data.next_states)
    procedure = per_joint(lambda fold: np.array([2.0, -1.0]))
    running = np.array([2.0, 0.0])
    judged = judge(procedure, running, pushed)
    np.testing.assert_array_equal(judged.adopted, [True, True])
    before, after = judged.held_out.per_joint()
    assert after[1] < before[1]
    for rows in (data.states, data.next_states):
        rows[:, 3] = 0.0
    held = judge(procedure, running, pushed).held_out
    everywhere = np.sqrt(np.mean(pushed.commands[:, 1] ** 2))  # the running model says 0
    assert held.per_joint()[0][1] == pytest.approx(everywhere)


def test_the_folds_are_the_halves_each_fitted_on_the_other():
    seen = []

    def fit(data: Transitions) -> np.ndarray:
        seen.append(data.states[:, 0].copy())
        return least_squares(data)

    data = transitions()
    cross_validate(per_joint(fit), np.zeros(2), data)
    x = data.states[:, 0]
    np.testing.assert_array_equal(seen[0], x[:ROWS // 2])
    np.testing.assert_array_equal(seen[1], x[ROWS // 2:])


def test_a_joint_worse_in_one_fold_only_or_no_worse_takes_the_adaptation():
    held_out = HeldOut(before=np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]),
                       after=np.array([[1.2, 1.2, 1.0], [0.9, 1.1, 1.0]]),
                       rows=np.array([99, 99]))
    np.testing.assert_array_equal(held_out.adopted(per_joint=True), [True, False, True])


def test_a_shared_model_worse_in_one_fold_only_is_taken():
    """Much worse in the first fold, a little better in the second: worse over the two
    together, but not in every fold."""
    held_out = HeldOut(before=np.array([[1.0, 1.0], [1.0, 1.0]]),
                       after=np.array([[3.0, 3.0], [0.9, 0.9]]), rows=np.array([99, 99]))
    np.testing.assert_array_equal(held_out.adopted(per_joint=False), [True, True])
    worse = HeldOut(held_out.before, np.array([[3.0, 3.0], [1.1, 1.1]]), held_out.rows)
    np.testing.assert_array_equal(worse.adopted(per_joint=False), [False, False])


def test_a_shared_model_is_taken_whole_or_not_at_all_in_each_joints_scale():
    """Joint 2's command scale is 10 times joint 1's: its error counts 100 times less. The
    errors are squared: 0.1 and 1.4 against 1 and 1 is better (1.97 < 2)."""
    held_out = HeldOut(before=np.array([[1.0, 1.0]] * 2), after=np.array([[0.5, 3.0]] * 2),
                       rows=np.array([99, 99]))
    np.testing.assert_array_equal(held_out.adopted(per_joint=False), [False, False])
    np.testing.assert_array_equal(held_out.adopted(per_joint=False, scale=np.array([1, 10])),
                                  [True, True])
    squared = HeldOut(held_out.before, np.array([[0.1, 1.4]] * 2), held_out.rows)
    np.testing.assert_array_equal(squared.adopted(per_joint=False), [True, True])
    assert squared.error_after(np.array([1.0, 2.0])) == pytest.approx((0.01 + 0.49) / 2)


def test_a_network_is_judged_in_its_joints_command_scale():
    """One gain for both joints (a shared model): the fit is right on joint 2, whose
    commands are large, and wrong on joint 1, whose commands are small. Weighed in each
    joint's scale it is worse; in command units, better."""
    data = transitions()
    data = Transitions(data.states, data.commands * [0.01, 10.0], data.next_states)

    def fit(part: Transitions) -> np.ndarray:
        return np.full(2, least_squares(part)[1])

    running = np.array([0.02, 5.0])  # right on joint 1, 15 |x| off on joint 2
    procedure = Procedure(fit=fit, predict=gains, loss=squared_loss)
    assert judge(procedure, running, data).adopted.all()
    weighed = Procedure(fit=fit, predict=gains, loss=squared_loss, scale=np.array([0.01, 10]))
    assert not judge(weighed, running, data).adopted.any()


def test_a_support_too_short_to_judge_by_is_taken_as_fitted():
    """Halves that hold out fewer than MIN_ROWS transitions are noise to judge by: a fit
    worse on joint 1 is taken on every joint, with its figures but no verdict."""
    running = np.array([2.0, 0.0])
    procedure = per_joint(lambda data: least_squares(data) * np.array([1.5, 1.0]))
    short = transitions(2 * MIN_ROWS - 2)
    judged = judge(procedure, running, short)
    assert not judged.held_out.judged and judged.adopted.all() and judged.kept == ()
    assert judged.held_out.refusal(judged.adopted) == ''
    np.testing.assert_allclose(judged.state, least_squares(short) * [1.5, 1.0])
    assert judge(procedure, running, transitions(2 * MIN_ROWS)).kept == (1,)


def test_of_several_ways_to_fit_the_one_that_predicts_the_halves_best_is_taken():
    """Two ways to regress the same commands: on the first state column with noise added,
    or on it as it is. The noisy regressor fits and predicts worse on the held-out halves;
    the fit on the clean one is the adaptation, whichever comes first."""
    data = transitions()
    noisy = data.states[:, :1] + np.random.default_rng(0).normal(0.0, 0.5, (ROWS, 1))

    def fit(prepared: Regressed) -> np.ndarray:
        x = prepared.rows[:, 0]
        return prepared.commands.T @ x / (x @ x)

    def predict(state, prepared) -> Prediction:
        rows = prepared.rows if isinstance(prepared, Regressed) else prepared.states[:, :1]
        return Prediction(np.arange(len(prepared)), rows * state)

    for order in (1, -1):
        procedure = Procedure(
            fit=fit, predict=predict, loss=lambda state, prepared: 0.0,
            adopt=lambda running, fitted, joints: np.where(joints, fitted, running),
            variants=lambda data, order=order: [
                Regressed(data, noisy), Regressed(data, data.states[:, :1])][::order])
        judged = judge(procedure, np.zeros(2), data)
        np.testing.assert_allclose(judged.state, [2.0, -1.0])


@pytest.mark.parametrize('delay', [0, 3])
def test_each_model_is_scored_on_the_rows_both_predict(delay):
    """A fit that cannot predict its first ``delay`` rows (a delay to look back over) and a
    running model that predicts them all are compared on the same transitions."""

    def delayed(state, data: Transitions) -> Prediction:
        prediction = gains(state, data)
        skip = delay if state is not running else 0
        return Prediction(prediction.rows[skip:], prediction.commands[skip:])

    running = np.array([2.0, 0.0])
    procedure = Procedure(fit=least_squares, predict=delayed, loss=squared_loss)
    held_out = cross_validate(procedure, running, transitions())
    np.testing.assert_array_equal(held_out.rows, [ROWS // 2 - delay] * 2)
    second = transitions()[ROWS // 2 + delay:]  # fold 1: fitted on the first half
    np.testing.assert_allclose(held_out.before[0], np.sqrt(np.mean(
        (second.states[:, :1] * running - second.commands) ** 2, axis=0)))
