"""The classical rivals: system identification recovers the physics, the true model is the floor."""

import numpy as np

from maml_ros.evaluation.tracking import EvalSettings, evaluate_task, run_loop
from maml_ros.model.model_based import JointModel, SystemIdentification, sysid_policy
from maml_ros.model.transitions import Transitions
from maml_ros.sim import Dynamics

SETTINGS = EvalSettings(track_steps=200)


def test_simple_identification_recovers_actuator_gain_and_payload_on_a_noise_free_robot(
        models, robot):
    truth = Dynamics(payload_mass=2.0, actuator_gain=0.8, joint_friction=0.3,
                     position_noise_std=0.0, velocity_noise_std=0.0)
    policy = sysid_policy(models, simple=True)
    run = run_loop(policy, truth, seed=5, settings=SETTINGS, robot=robot)
    assert run.outcome.accepted and policy.model.delay == 0
    physics = policy.identified()  # what an engineer reads; the four big joints
    np.testing.assert_allclose(physics['actuator_gain'][:4], 0.8, rtol=0.03)
    np.testing.assert_allclose(physics['payload_kg'][:4], 2.0, rtol=0.05)
    np.testing.assert_allclose(physics['coulomb_friction'][:4], 0.3, rtol=0.2)


def test_the_engineers_identification_finds_delay_and_lag_and_its_controller_inverts_them(
        models, robot):
    """A robot whose commands act two steps late through a 15 ms torque lag: ``sysid``
    finds both (the lag as the nearest candidate, 14.4 ms, on the big joints), and tracks
    better than ``sysid_simple``, whose model has no lag."""
    late = Dynamics(payload_mass=1.5, joint_friction=0.2, latency_steps=2, actuator_lag=0.015)
    settings = EvalSettings(track_steps=200, methods=('nominal', 'sysid', 'sysid_simple'))
    results = evaluate_task(models, late, seed=11, settings=settings, robot=robot)
    identified = results['sysid']['identified']
    assert identified['delay_steps'] == 2
    assert identified['torque_lag_ms'][:4] == [14.4] * 4
    assert results['sysid']['rmse'] < results['sysid_simple']['rmse'] < results['nominal']['rmse']


def test_the_delay_is_found_and_commands_are_paired_with_the_state_they_act_on(models):
    """A hand-made sequence: the command that acts over step t was sent 2 steps earlier."""
    identification = SystemIdentification(models.formulation)
    rng = np.random.default_rng(0)
    steps, n, period = 120, 7, models.formulation.robot.control_period
    q = rng.uniform(-0.5, 0.5, (steps, n)) + np.array(models.formulation.robot.home)
    qd = rng.normal(0.0, 0.5, (steps, n))
    acceleration = rng.normal(0.0, 3.0, (steps, n))
    truth = JointModel(params=np.tile([1.3, 1.5, 0.2, 0.4, 0.05], (n, 1)),
                       eps=np.full(n, 0.05), delay=2)
    acting = truth.commands(identification.regressors(q, qd, acceleration))
    sent = np.roll(acting, -2, axis=0)  # sent[t] acts over step t + 2
    states = np.concatenate([q, qd], axis=1)
    next_states = np.concatenate([q + period * qd, qd + period * acceleration], axis=1)
    model = identification.fit(identification.support(
        Transitions(states[2:], sent[2:], next_states[2:])))
    assert model.delay == 2
    np.testing.assert_allclose(model.params, truth.params, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.eps, truth.eps)


def test_methods_rank_as_physics_says_on_a_heavy_robot(models, robot):
    heavy = Dynamics(payload_mass=2.5, actuator_gain=0.75, joint_friction=0.3,
                     joint_damping=0.2)
    settings = EvalSettings(track_steps=200, methods=('nominal', 'sysid', 'true_model'))
    rmse = {method: result['rmse'] for method, result in
            evaluate_task(models, heavy, seed=11, settings=settings, robot=robot).items()}
    assert rmse['true_model'] < rmse['sysid'] < rmse['nominal']
    assert rmse['true_model'] < 0.002  # computed torque with the truth: the floor
    assert rmse['nominal'] > 10 * rmse['true_model']  # the URDF alone misses 2.5 kg and 25%


def test_the_floor_inverts_delay_and_lag_and_cancels_the_ripple(models, robot):
    """The reality gap is no excuse for the true model: with the delay and lag inverted it
    still tracks to a few mrad, where the URDF alone does not."""
    gap = Dynamics(latency_steps=2, actuator_lag=0.015, torque_ripple=0.2, ripple_phase=1.0)
    settings = EvalSettings(track_steps=200, methods=('nominal', 'true_model'))
    rmse = {method: result['rmse'] for method, result in
            evaluate_task(models, gap, seed=11, settings=settings, robot=robot).items()}
    assert rmse['true_model'] < 0.003
    assert rmse['nominal'] > 5 * rmse['true_model']
