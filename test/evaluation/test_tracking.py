"""Each evaluated method is what it claims to be (every table in BENCHMARKS.md rests on it)."""

import copy
import dataclasses
import os
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest
import torch

from maml_ros.cli import evaluate as evaluate_cli
from maml_ros.evaluation import tracking as evaluation
from maml_ros.evaluation.tracking import (
    EvalSettings,
    LoopRun,
    evaluate_task,
    evaluate_tasks,
    method_policy,
    run_loop,
    summarize,
)
from maml_ros.sim import (
    Dynamics,
    InverseDynamicsModel,
    ReferenceConfig,
    RolloutConfig,
    Task,
    make_robot,
    run_task,
)

HEAVY = Dynamics(payload_mass=2.0, actuator_gain=0.8, joint_friction=0.3)
NARROW = ReferenceConfig(max_amplitude=0.2, frequency_range=(0.1, 0.2))  # not the default
SETTINGS = EvalSettings(track_steps=200, oracle_rollouts=4, oracle_iterations=300)


@pytest.mark.parametrize('method', ['maml', 'pretrained_finetune', 'last_layer_ridge'])
def test_adapting_methods_adapt_their_own_network_on_the_support(models, robot, method):
    policy = method_policy(models, method, HEAVY, seed=3, settings=SETTINGS, robot=robot)
    start = models.meta_policy if method == 'maml' else models.pooled
    run = run_loop(policy, HEAVY, seed=3, settings=SETTINGS, robot=robot)
    assert run.outcome is not None and run.outcome.transitions == SETTINGS.support_size
    assert run.outcome.accepted, run.outcome.reason
    adapted = policy.active_state()
    assert any(not torch.equal(adapted[name], tensor)
               for name, tensor in start.state_dict().items())


@pytest.mark.parametrize('method', ['no_adaptation', 'oracle', 'nominal', 'true_model'])
def test_methods_that_do_not_adapt_do_not(models, robot, method):
    policy = method_policy(models, method, HEAVY, seed=3, settings=SETTINGS, robot=robot)
    assert run_loop(policy, HEAVY, seed=3, settings=SETTINGS, robot=robot).outcome is None


def test_only_methods_that_adapt_explore(models, robot):
    quiet = EvalSettings(support_size=40, settle_steps=0, track_steps=20, exploration_std=0.0)
    noisy = dataclasses.replace(quiet, exploration_std=0.3)

    def positions(method: str, settings: EvalSettings) -> np.ndarray:
        policy = method_policy(models, method, HEAVY, seed=3, settings=settings, robot=robot)
        return run_loop(policy, HEAVY, seed=3, settings=settings, robot=robot).true_positions

    np.testing.assert_array_equal(positions('no_adaptation', quiet),
                                  positions('no_adaptation', noisy))
    assert not np.array_equal(positions('maml', quiet), positions('maml', noisy))


def test_the_adaptation_takes_the_settings_inner_steps_and_readapt_period(models, robot):
    def adapted(**change) -> tuple[dict, list]:
        settings = EvalSettings(support_size=40, settle_steps=0, track_steps=50, **change)
        policy = method_policy(models, 'maml', HEAVY, seed=3, settings=settings, robot=robot)
        run = run_loop(policy, HEAVY, seed=3, settings=settings, robot=robot)
        return policy.active_state(), run.outcomes

    one, outcomes = adapted(inner_steps=1)
    three, _ = adapted(inner_steps=3)
    assert any(not torch.equal(one[name], three[name]) for name in one)
    # 0.5 s of tracking after the first (probation would hold re-adaptation for 3 s)
    _, again = adapted(readapt_period=0.2, probation_window=0.0)
    assert len(outcomes) == 1 and len(again) == 3


def test_the_adaptation_runs_at_the_checkpoints_own_rates(models, robot):
    """The loop's ``inner_lr`` is the checkpoint's, so its learned rates run unscaled whatever
    rate its training started from (the default, 0.1, would double them here)."""
    settings = EvalSettings(support_size=40, settle_steps=0, track_steps=1)

    def adapted(models) -> dict:
        policy = method_policy(models, 'maml', HEAVY, seed=3, settings=settings, robot=robot)
        run_loop(policy, HEAVY, seed=3, settings=settings, robot=robot)
        return policy.active_state()

    learner = copy.copy(models.learner)  # the same learned rates, trained from 0.05
    learner.base_inner_lr = 0.05
    shipped, other = adapted(models), adapted(dataclasses.replace(models, learner=learner))
    assert all(torch.equal(shipped[name], other[name]) for name in shipped)


def test_scoring_starts_settle_steps_after_the_support_is_collected():
    assert EvalSettings(support_size=60, settle_steps=10).scored_from == 60 + 1 + 10


def test_the_figures_of_each_method(models, robot):
    """The RMSE from the first scored tick; the adaptation's time, whether it was accepted
    and how many joints kept their model for the methods that adapt; what was identified
    for those that identify."""
    settings = EvalSettings(support_size=60, settle_steps=10, track_steps=40,
                            methods=('nominal', 'maml', 'sysid'))
    results = evaluate_task(models, HEAVY, seed=3, settings=settings, robot=robot)
    assert set(results['nominal']) == {'rmse'}
    assert set(results['maml']) == {'rmse', 'adapt_ms', 'accepted', 'kept_joints',
                                    'rolled_back'}
    assert results['maml']['adapt_ms'] > 0 and results['maml']['accepted'] == 1.0
    assert results['maml']['kept_joints'] == 0.0  # a network is taken whole
    assert set(results['sysid']) == {'rmse', 'adapt_ms', 'accepted', 'kept_joints',
                                     'rolled_back', 'identified'}
    assert len(results['sysid']['identified']['actuator_gain']) == 7
    policy = method_policy(models, 'nominal', HEAVY, seed=3, settings=settings, robot=robot)
    run = run_loop(policy, HEAVY, seed=3, settings=settings, robot=robot)
    assert results['nominal']['rmse'] == run.rmse(settings.scored_from) != run.rmse(0)


def test_on_the_robot_its_urdf_describes_the_nominal_model_is_the_true_one(models, robot):
    """``nominal`` is computed torque with the URDF: on the robot the URDF describes it tracks
    as ``true_model`` does, far better than the pooled network."""
    settings = EvalSettings(track_steps=200, methods=('nominal', 'true_model', 'no_adaptation'))
    rmse = {method: result['rmse'] for method, result in
            evaluate_task(models, Dynamics(), seed=3, settings=settings, robot=robot).items()}
    assert rmse['nominal'] == pytest.approx(rmse['true_model'], rel=1e-6)
    assert rmse['nominal'] < 0.1 * rmse['no_adaptation']


def test_the_oracle_is_trained_on_the_evaluated_robot(models, robot):
    states = [method_policy(models, 'oracle', dynamics, seed=3, settings=SETTINGS,
                            robot=robot).active_state()
              for dynamics in (HEAVY, Dynamics())]
    assert any(not torch.equal(states[0][name], states[1][name]) for name in states[0])
    rmse = {method: result['rmse'] for method, result in evaluate_task(
        models, HEAVY, seed=3, robot=robot,
        settings=EvalSettings(track_steps=200, oracle_rollouts=4, oracle_iterations=300,
                              methods=('no_adaptation', 'oracle'))).items()}
    assert rmse['oracle'] < rmse['no_adaptation']


def test_the_oracle_starts_from_the_pooled_network(models, robot):
    settings = EvalSettings(oracle_rollouts=1, oracle_iterations=0)
    state = evaluation._oracle_state(models, HEAVY, 3, settings, robot)
    assert all(torch.equal(state[name], tensor)
               for name, tensor in models.pooled.state_dict().items())


def test_the_oracle_is_fitted_as_the_module_says(models, robot, monkeypatch):
    """Adam at 3e-4 in batches of 1024, seeded by the task: BENCHMARKS.md's oracle figures were
    made so."""
    calls = []
    monkeypatch.setattr(evaluation, 'train_supervised',
                        lambda net, x, y, **settings: calls.append(settings))
    for seed in (3, 4):
        evaluation._oracle_state(models, HEAVY, seed, EvalSettings(oracle_rollouts=1,
                                                                   oracle_iterations=7), robot)
    assert calls == [dict(iterations=7, batch_size=1024, lr=3e-4, seed=seed) for seed in (3, 4)]


def test_the_oracle_collects_its_data_on_the_checkpoints_robot(models, monkeypatch):
    """Its rollouts run the checkpoint's robot configuration and exploration scale (not the
    defaults, which happen to be the Panda's), with the evaluation's exploration, on the
    evaluated robot's engine (MuJoCo here: PyBullet is the default)."""
    formulation = dataclasses.replace(
        models.formulation, exploration_scale=tuple(float(k) for k in range(1, 8)),
        robot=dataclasses.replace(models.formulation.robot, control_period=0.02))
    configs = []

    def run_task(task, *, config, robot):
        configs.append(config)
        return real_run_task(task, config=dataclasses.replace(  # short, on the shared robot
            config, robot=robot.config, steps=20), robot=robot)

    real_run_task = evaluation.run_task
    monkeypatch.setattr(evaluation, 'run_task', run_task)
    settings = EvalSettings(oracle_rollouts=2, oracle_iterations=1, exploration_std=0.03)
    with make_robot('mujoco', config=models.formulation.robot) as robot:
        evaluation._oracle_state(dataclasses.replace(models, formulation=formulation,
                                                     reference=NARROW), HEAVY, 3, settings, robot)
    assert len(configs) == 2
    for config in configs:
        assert config.robot == formulation.robot and config.steps == 500
        assert config.reference == NARROW
        assert config.exploration_scale == formulation.exploration_scale
        assert (config.exploration_std, config.engine) == (0.03, 'mujoco')


def test_a_task_runs_on_the_robot_given_or_one_built_for_the_checkpoint(models, monkeypatch):
    """Built with the checkpoint's robot configuration (not the default Panda's), closed after."""
    config = dataclasses.replace(models.formulation.robot, control_period=0.02)
    slow = dataclasses.replace(models, formulation=dataclasses.replace(models.formulation,
                                                                       robot=config))
    built = []

    def make_robot(engine, *, config):
        built.append(real_make_robot(engine, config=config))
        return built[-1]

    real_make_robot = evaluation.make_robot
    monkeypatch.setattr(evaluation, 'make_robot', make_robot)
    settings = EvalSettings(track_steps=100, methods=('nominal',))
    rmse = evaluate_task(slow, HEAVY, seed=3, settings=settings)['nominal']['rmse']
    assert [robot.config for robot in built] == [config]
    assert built[0]._client is None  # closed
    with real_make_robot('pybullet', config=config) as robot:
        assert evaluate_task(slow, HEAVY, seed=3, settings=settings,
                             robot=robot)['nominal']['rmse'] == rmse
    assert len(built) == 1


def test_the_reference_is_the_one_a_training_rollout_of_the_task_tracks(models, robot):
    """Drawn from the task's seed with the checkpoint's reference settings; the robot starts
    on it."""
    narrow = dataclasses.replace(models, reference=NARROW)
    settings = EvalSettings(support_size=20, settle_steps=0, track_steps=30,
                            methods=('nominal',))
    run = run_loop(method_policy(narrow, 'nominal', HEAVY, seed=3, settings=settings,
                                 robot=robot), HEAVY, seed=3, settings=settings, robot=robot)
    steps = settings.scored_from + settings.track_steps
    rollout = run_task(Task(3, HEAVY), robot=robot, config=RolloutConfig(
        robot=models.formulation.robot, reference=NARROW, steps=steps))
    np.testing.assert_allclose(run.reference_positions, rollout.reference_positions,
                               rtol=0, atol=1e-9)
    np.testing.assert_array_equal(run.true_positions[0], rollout.true_states[0, :7])


def test_collection_and_the_control_loop_move_the_robot_alike_where_safety_does_not_act(
        models, robot):
    """The second closed loop (collection's, README "One loop, and the one it does not
    cover") differs from ControlLoop by what the README says only: driven by the same
    controller without exploration, and with a rate limit that never acts, the robot moves
    the same; with a rate limit that acts (1 N*m per tick, as a Panda's own), it does not."""
    steps, runs = 200, {}
    for rate in (1e9, 100.0):
        settings = EvalSettings(support_size=20, settle_steps=0, track_steps=steps - 21,
                                methods=('nominal',), max_command_rate=rate)
        policy = method_policy(models, 'nominal', HEAVY, seed=3, settings=settings, robot=robot)
        runs[rate] = run_loop(policy, HEAVY, seed=3, settings=settings, robot=robot)
    controller = method_policy(models, 'nominal', HEAVY, seed=3, settings=settings, robot=robot)
    rollout = run_task(Task(3, HEAVY), robot=robot, controller=controller, config=RolloutConfig(
        robot=models.formulation.robot, reference=models.reference, steps=steps,
        exploration_std=0.0))
    collected = rollout.true_states[:, :7]
    np.testing.assert_allclose(runs[1e9].true_positions, collected, rtol=0, atol=1e-9)
    assert np.abs(runs[100.0].true_positions - collected).max() > 1e-3  # the check can fail


def test_evaluation_groups_draw_the_robots_they_name(models):
    def groups(*names):
        options = evaluate_cli.parse_args(['--checkpoint', 'unused', '--tasks', '8',
                                           '--groups', *names])
        return evaluate_cli.robot_groups(models, options)

    drawn = groups('in_range', 'out_of_range', 'delay_and_lag')
    description = InverseDynamicsModel.shared(models.formulation.robot).description
    sizes = {'n_joints': description.n_joints, 'n_links': description.n_links}
    assert all(models.ranges.contains(d, **sizes) for d in drawn['in_range'])
    assert not any(models.ranges.contains(d, **sizes) for d in drawn['out_of_range'])
    for dynamics in drawn['delay_and_lag']:
        assert models.ranges.contains(dynamics, **sizes)
        assert dynamics.latency_steps in (1, 2) and min(dynamics.actuator_lag) >= 0.005
    # A group's robots do not depend on which other groups are asked for.
    assert groups('delay_and_lag')['delay_and_lag'] == drawn['delay_and_lag']


def test_with_the_mujoco_engine_every_method_meets_the_mujoco_robot(models):
    """``--engine mujoco``: the robot of every method is MuJoCo's (the oracle's training data
    too: ``test_the_oracle_collects_its_data_on_the_checkpoints_robot``); computed torque
    with its true parameters (rotor inertia included) is the floor there too."""
    settings = EvalSettings(track_steps=200, oracle_rollouts=4, oracle_iterations=300,
                            methods=('nominal', 'true_model', 'maml_physics'), engine='mujoco')
    mujoco = evaluate_task(models, HEAVY, seed=3, settings=settings)
    pybullet = evaluate_task(models, HEAVY, seed=3,
                             settings=dataclasses.replace(settings, engine='pybullet'))
    assert mujoco['nominal']['rmse'] != pybullet['nominal']['rmse']
    assert mujoco['true_model']['rmse'] < 0.1 * mujoco['nominal']['rmse']
    assert mujoco['maml_physics']['rmse'] < mujoco['nominal']['rmse']
    with make_robot('mujoco', config=models.formulation.robot, armature=0.2) as heavy:
        floor = run_loop(method_policy(models, 'true_model', HEAVY, seed=3, settings=settings,
                                       robot=heavy), HEAVY, seed=3, settings=settings,
                         robot=heavy).rmse(settings.scored_from)
    assert floor < 0.005  # 0.013 rad without the rotor inertia in the model
    with pytest.raises(ValueError, match="unknown engine 'gazebo'"):
        EvalSettings(engine='gazebo')


def rmse_of(results: list[dict[str, dict]]) -> list[dict[str, float]]:
    """Each task's RMSE per method (the rest, adaptation time included, varies run to run)."""
    return [{method: figures['rmse'] for method, figures in task.items()} for task in results]


def test_each_robot_is_evaluated_with_its_own_seed_in_any_number_of_workers(models):
    settings = EvalSettings(support_size=20, settle_steps=10, track_steps=50,
                            methods=('nominal', 'sysid'))
    robots = [HEAVY, HEAVY]
    inline = rmse_of(evaluate_tasks(models, robots, seed=5, settings=settings, workers=1))
    assert inline == rmse_of([evaluate_task(models, HEAVY, seed=seed, settings=settings)
                              for seed in (5, 10_005)])
    assert inline[0] != inline[1]  # the same robot, another reference and noise
    assert rmse_of(evaluate_tasks(models, robots, seed=5, settings=settings,
                                  workers=2)) == inline


def test_a_methods_figures_do_not_depend_on_the_methods_run_before_it(models, robot):
    """Each run restarts the robot's measurement noise from the task's seed."""
    settings = EvalSettings(support_size=20, settle_steps=10, track_steps=50)
    noisy = dataclasses.replace(HEAVY, position_noise_std=0.001, velocity_noise_std=0.01)

    def sysid(methods: tuple[str, ...]) -> float:
        return evaluate_task(models, noisy, seed=5, robot=robot, settings=dataclasses.replace(
            settings, methods=methods))['sysid']['rmse']

    assert sysid(('nominal', 'sysid')) == sysid(('sysid',))


def test_each_task_explores_with_its_own_noise(models, robot, monkeypatch):
    seeds = []

    def control_loop(**arguments):
        seeds.append(arguments['seed'])
        return real_control_loop(**arguments)

    real_control_loop = evaluation.ControlLoop
    monkeypatch.setattr(evaluation, 'ControlLoop', control_loop)
    settings = EvalSettings(support_size=20, settle_steps=0, track_steps=1)
    for seed in (5, 6, 5):
        run_loop(method_policy(models, 'maml', HEAVY, seed=seed, settings=settings, robot=robot),
                 HEAVY, seed=seed, settings=settings, robot=robot)
    assert seeds[0] != seeds[1] and seeds[0] == seeds[2]


class InlineExecutor:
    """A ``ProcessPoolExecutor`` that records how it was asked for and maps in this process."""

    made: list = []

    def __init__(self, max_workers, *, mp_context):
        self.made.append({'workers': max_workers, 'start': mp_context.get_start_method()})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, function, payloads, chunksize=1):
        self.made[-1]['chunksize'] = chunksize
        return map(function, payloads)


@pytest.mark.parametrize('cpus, workers, pool', [
    (1, None, None),  # one CPU: in this process
    (3, None, 2),  # as many workers as CPUs, at most one per robot
    (None, None, None),  # CPU count unknown: one
    (8, 1, None),  # asked for one
    (1, 2, 2),  # asked for two
])
def test_tasks_go_to_one_spawned_worker_process_each(models, monkeypatch, cpus, workers, pool):
    InlineExecutor.made = []
    monkeypatch.setattr(evaluation.os, 'cpu_count', lambda: cpus)
    monkeypatch.setattr(evaluation, 'ProcessPoolExecutor', InlineExecutor)
    monkeypatch.setattr(torch, 'set_num_threads', lambda threads: None)
    settings = EvalSettings(support_size=20, settle_steps=0, track_steps=1, methods=('nominal',))
    results = evaluate_tasks(models, [HEAVY, HEAVY], seed=5, settings=settings, workers=workers)
    assert len(results) == 2
    if pool is None:
        assert InlineExecutor.made == []
    else:
        assert InlineExecutor.made == [{'workers': pool, 'start': 'spawn', 'chunksize': 1}]


class EndsItsProcess:
    """Unpickled in a worker process, it ends that process at once (as a crash would)."""

    def __reduce__(self):
        return os._exit, (3,)


def test_a_worker_process_that_dies_is_an_error_not_a_hang(models):
    settings = EvalSettings(support_size=20, settle_steps=0, track_steps=1, methods=('nominal',))
    with pytest.raises(BrokenProcessPool):
        evaluate_tasks(models, [HEAVY, EndsItsProcess()], seed=5, settings=settings, workers=2)


def test_a_worker_evaluates_its_task_on_one_thread(models):
    settings = EvalSettings(support_size=20, settle_steps=10, track_steps=50,
                            methods=('nominal',))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert rmse_of([evaluation._evaluate_one((models, HEAVY, 7, settings))]) == rmse_of(
            [evaluate_task(models, HEAVY, seed=7, settings=settings)])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_the_summary_is_the_mean_of_each_number_over_the_tasks():
    results = [{'sysid': {'rmse': 0.1, 'adapt_ms': 2.0, 'identified': {'delay_steps': 1}},
                'nominal': {'rmse': 0.4}},
               {'sysid': {'rmse': 0.3, 'adapt_ms': 4.0, 'identified': {'delay_steps': 2}},
                'nominal': {'rmse': 0.5}}]
    assert summarize(results) == {'sysid': {'rmse': pytest.approx(0.2), 'adapt_ms': 3.0,
                                            'tasks': 2},
                                  'nominal': {'rmse': 0.45, 'tasks': 2}}
    assert summarize(results[:1]) == {'sysid': {'rmse': 0.1, 'adapt_ms': 2.0, 'tasks': 1},
                                      'nominal': {'rmse': 0.4, 'tasks': 1}}
    assert summarize([]) == {}


def test_the_rmse_is_over_every_joint_from_the_first_scored_tick():
    reference = np.zeros((4, 2))
    true = np.array([[9.0, 9.0], [1.0, -1.0], [3.0, 1.0], [1.0, 1.0]])
    run = LoopRun(true, reference, np.zeros((4, 2)), [])
    assert run.rmse(1) == pytest.approx(np.sqrt(14 / 6))
    assert run.rmse(0) == pytest.approx(np.sqrt(176 / 8))
    assert run.outcome is None


NEEDS = 'need support_size >= 2, inner_steps >= 0, settle_steps >= 0, track_steps >= 1'


@pytest.mark.parametrize('change, says', [
    ({'methods': ('maml', 'psychic')},
     f"unknown methods ['psychic']; choose from {list(evaluation.METHODS)}"),
    ({'support_size': 1}, NEEDS),
    ({'inner_steps': -1}, NEEDS),
    ({'track_steps': 0}, NEEDS),
    ({'settle_steps': -1}, NEEDS),
    ({'engine': 'gazebo'}, "unknown engine 'gazebo'; choose from ['pybullet', 'mujoco']"),
])
def test_settings_that_cannot_run_are_refused(change, says):
    with pytest.raises(ValueError) as refusal:
        EvalSettings(**change)
    assert str(refusal.value) == says
    EvalSettings(support_size=2, inner_steps=0, track_steps=1, settle_steps=0)
