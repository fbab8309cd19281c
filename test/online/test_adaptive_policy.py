"""Adaptation on the robot: accepted when it helps, rejected when it does not, never blocking."""

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from maml_ros.model.adaptation import maml_adapt
from maml_ros.model.held_out import HeldOut, Judgement
from maml_ros.model.physics_adaptation import keep_unidentified
from maml_ros.model.trained_models import TrainedModels
from maml_ros.model.transitions import Transitions
from maml_ros.online.adaptive_policy import AdaptivePolicy, rejection
from maml_ros.sim import Dynamics, RolloutConfig, Task, run_task

CHECKPOINT = Path(__file__).resolve().parents[2] / 'checkpoints' / 'panda_effort.safetensors'
HEAVY = Dynamics(payload_mass=1.8, actuator_gain=0.85, joint_friction=0.2)


@pytest.fixture(scope='module')
def models():
    return TrainedModels.load(CHECKPOINT)


@pytest.fixture(scope='module')
def support(models):
    adapter = AdaptivePolicy(models=models)
    config = RolloutConfig(robot=models.formulation.robot, steps=200, exploration_std=0.02)
    rollout = run_task(Task(3, HEAVY), config=config, controller=adapter)
    return Transitions(rollout.states, rollout.issued_commands, rollout.next_states)


def probe(adapter):
    q = np.array(adapter.models.formulation.robot.home)
    return adapter.command(q, np.zeros(7), q + 0.01, np.zeros(7), np.zeros(7))


def test_adaptation_lowers_the_support_loss_and_is_swapped_in(models, support):
    adapter = AdaptivePolicy(models=models)
    before = probe(adapter)
    outcome = adapter.adapt(support, inner_steps=5)
    assert outcome.accepted, outcome.reason
    assert outcome.loss_after < outcome.loss_before and outcome.transitions == 200
    assert adapter.adapted and not np.allclose(probe(adapter), before)
    adapter.reset()
    assert not adapter.adapted
    np.testing.assert_allclose(probe(adapter), before)


def test_diverging_adaptation_is_rejected_and_the_previous_policy_stays(models, support):
    adapter = AdaptivePolicy(models=models)
    before = probe(adapter)
    outcome = adapter.adapt(support, inner_steps=10, lr_scale=1e4)
    assert not outcome.accepted
    assert 'not finite' in outcome.reason or 'rose' in outcome.reason
    assert not adapter.adapted
    np.testing.assert_array_equal(probe(adapter), before)


def test_nan_support_data_is_rejected(models, support):
    adapter = AdaptivePolicy(models=models)
    states = support.states.copy()
    states[5, 3] = np.nan
    outcome = adapter.adapt(Transitions(states, support.commands, support.next_states),
                            inner_steps=5)
    assert not outcome.accepted and 'not finite' in outcome.reason


def test_a_physics_fit_without_a_positive_torque_coefficient_is_rejected(models, support):
    """A joint whose fitted torque coefficient is zero or negative would be commanded no
    torque or the opposite one: rejected even when the support loss fell."""
    adapter = AdaptivePolicy(models=models, method='maml_physics', worker='inline')
    fitted = adapter.adapt(support, inner_steps=1)
    assert fitted.accepted, fitted.reason
    fit = adapter.active_state()
    assert rejection(judged(fit, fitted.loss_before, fitted.loss_after)) == ''
    theta = fit.theta.copy()
    theta[6, 0], theta[2, 0] = 0.0, -0.3
    reason = rejection(judged(dataclasses.replace(fit, theta=theta), fitted.loss_before,
                              fitted.loss_after))
    assert reason.startswith('the torque coefficient of joints [3, 7] is not positive')


def test_joints_a_fit_did_not_identify_keep_the_model_they_had(models, support):
    """A fit that puts a joint's torque coefficient at or below zero does not command that
    joint with it: the joint keeps the active fit's parameters and lag, and says so; the
    other joints take the new fit."""
    adapter = AdaptivePolicy(models=models, method='maml_physics', worker='inline')
    active = adapter.active_state()
    assert adapter.adapt(support, inner_steps=1).accepted
    fit = adapter.active_state()
    assert fit.kept == () and fit.physical()['not_identified_joints'] == []
    theta, retention = fit.theta.copy(), fit.retention.copy()
    theta[6, 0], theta[2, 0], retention[2] = 0.0, -0.3, 0.5
    kept = keep_unidentified(dataclasses.replace(fit, theta=theta, retention=retention), active)
    assert kept.kept == (2, 6) and kept.physical()['not_identified_joints'] == [3, 7]
    np.testing.assert_array_equal(kept.theta[[2, 6]], active.theta[[2, 6]])
    np.testing.assert_array_equal(kept.retention[[2, 6]], active.retention[[2, 6]])
    others = [0, 1, 3, 4, 5]
    np.testing.assert_array_equal(kept.theta[others], fit.theta[others])
    assert rejection(judged(kept, 1.0, 0.5)) == ''


def test_joints_an_adaptation_predicts_worse_keep_the_model_they_had(models, support):
    """Per joint: a kept joint has the running fit's parameters and lag; the others, and the
    delay all joints share, are the new fit's."""
    adapter = AdaptivePolicy(models=models, method='maml_physics', worker='inline')
    running = adapter.active_state()
    outcome = adapter.adapt(support, inner_steps=1)
    fitted = adapter.active_state()
    assert outcome.accepted and outcome.kept == () and len(outcome.judged()['kept_joints']) == 0
    joints = np.array([True, False, True, True, True, True, False])
    fitted = dataclasses.replace(fitted, retention=np.full(7, 0.5))
    mixed = running.adopting(fitted, joints)
    np.testing.assert_array_equal(mixed.theta[~joints], running.theta[~joints])
    np.testing.assert_array_equal(mixed.theta[joints], fitted.theta[joints])
    np.testing.assert_array_equal(mixed.retention, np.where(joints, 0.5, running.retention))
    assert mixed.delay == fitted.delay and mixed.adapted


def judged(state, loss_before: float, loss_after: float) -> Judgement:
    """``state`` judged better on held-out transitions for every joint."""
    folds = np.ones((2, 7))
    return Judgement(state, loss_before, loss_after, HeldOut(folds, folds / 2,
                                                             np.array([99, 99])),
                     np.ones(7, dtype=bool))


def test_a_slow_adaptation_does_not_block_commands(models, support, monkeypatch):
    adapter = AdaptivePolicy(models=models)
    release = threading.Event()
    original = models.learner.adapt

    def slow_adapt(*args, **kwargs):
        release.wait(5.0)
        return original(*args, **kwargs)

    monkeypatch.setattr(models.learner, 'adapt', slow_adapt)
    assert adapter.start(support, inner_steps=5) == ''
    assert adapter.start(support, inner_steps=5) == 'an adaptation is running'
    for _ in range(50):  # the worker waits on `release`: commands must not wait for it
        probe(adapter)
    assert adapter.busy and not release.is_set()
    release.set()
    assert adapter.wait(10.0)
    assert adapter.last_outcome.accepted and adapter.adapted


def test_reset_while_adapting_drops_the_result(models, support, monkeypatch):
    adapter = AdaptivePolicy(models=models)
    release = threading.Event()
    original = models.learner.adapt
    monkeypatch.setattr(models.learner, 'adapt',
                        lambda *a, **k: (release.wait(5.0), original(*a, **k))[1])
    outcomes = []
    assert adapter.start(support, inner_steps=5, on_done=outcomes.append) == ''
    adapter.reset()
    release.set()
    assert adapter.wait(10.0)
    assert outcomes[0].reason == 'adaptation was reset while it ran'
    assert not adapter.adapted


def test_too_few_transitions_start_nothing(models, support):
    adapter = AdaptivePolicy(models=models, min_transitions=10)
    few = Transitions(support.states[:5], support.commands[:5], support.next_states[:5])
    assert adapter.start(few, inner_steps=5) == 'only 5 support transitions'
    assert adapter.last_outcome is None


def test_worker_process_adapts_like_this_process_and_survives_its_death(models, support):
    here = AdaptivePolicy(models=models).adapt(support, inner_steps=5)
    adapter = AdaptivePolicy(models=models, worker="process")
    try:
        outcome = adapter.adapt(support, inner_steps=5)
        assert outcome.accepted, outcome.reason
        assert outcome.loss_after == pytest.approx(here.loss_after, rel=1e-4)
        for worker in list(adapter._pool._processes.values()):
            worker.kill()  # the worker dies; the robot carries on with the adapted policy
            worker.join()
        failed = adapter.adapt(support, inner_steps=5)
        assert not failed.accepted and 'adaptation failed' in failed.reason
        assert adapter.adapted
        adapter.reset()
        again = adapter.adapt(support, inner_steps=5)  # a new worker took over
        assert again.accepted and again.loss_after == pytest.approx(here.loss_after, rel=1e-4)
    finally:
        adapter.close()


def test_closing_while_the_worker_starts_does_not_wait_for_its_warm_up(models):
    """A node stopped seconds after it started: the worker process, still importing torch
    and warming up, is of no use any more and is stopped, not waited for."""
    adapter = AdaptivePolicy(models=models, worker='process')
    workers = list(adapter._pool._processes.values())
    assert not adapter.ready
    adapter.close(wait=10.0)
    assert workers and not any(worker.is_alive() for worker in workers)
    assert adapter._started.exception() is not None  # its warm-up never finished


def test_steps_that_overshoot_are_retried_shorter_instead_of_rejected(models, support,
                                                                       monkeypatch):
    import maml_ros.online.adaptive_policy as adaptive_policy
    monkeypatch.setattr(adaptive_policy, 'BACKTRACKS', 0)
    overshoot = AdaptivePolicy(models=models).adapt(support, inner_steps=5, lr_scale=5.0)
    assert not overshoot.accepted and 'predicts held-out transitions no better' in \
        overshoot.reason and overshoot.loss_after > overshoot.loss_before
    monkeypatch.undo()
    outcome = AdaptivePolicy(models=models).adapt(support, inner_steps=5, lr_scale=5.0)
    assert outcome.accepted and outcome.loss_after < outcome.loss_before


def test_a_re_adaptation_takes_its_steps_from_the_active_weights(models, support):
    adapter = AdaptivePolicy(models=models)
    assert adapter.adapt(support, inner_steps=5).accepted
    first = adapter.active_state()
    assert adapter.adapt(support, inner_steps=5).accepted
    x, y = models.formulation.hindsight(support.states, support.commands, support.next_states)
    expected = maml_adapt(models.learner, (torch.as_tensor(x, dtype=torch.float32),
                                           torch.as_tensor(y, dtype=torch.float32)),
                          steps=5, start=first)
    for name, tensor in expected.items():
        torch.testing.assert_close(adapter.active_state()[name], tensor)
    assert any(not torch.equal(tensor, first[name]) for name, tensor in expected.items())
