"""Rollouts: reproducible per seed, consistent arrays, parallel collection, any controller."""

import dataclasses
import importlib
import os
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

from maml_ros.sim import (
    Dynamics,
    NominalController,
    Rollout,
    RolloutCollector,
    RolloutConfig,
    SimRobot,
    Task,
    collect_rollouts,
    evaluate_tracking,
    run_task,
)

CONFIG = RolloutConfig(steps=120)
ARRAYS = [field.name for field in dataclasses.fields(Rollout) if field.type == 'np.ndarray']


class Recording:
    """Wraps a controller and keeps what it asked for (in-process only)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.outputs = []

    def command(self, *args):
        output = self.inner.command(*args)
        self.outputs.append(output)
        return output


@pytest.fixture(scope='module')
def robot():
    with SimRobot(config=CONFIG.robot) as shared:
        yield shared


def assert_same_rollouts(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert (a.seed, a.dynamics) == (b.seed, b.dynamics)
        for name in ARRAYS:
            assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_same_seed_reproduces_a_rollout_bitwise_whatever_ran_before(robot):
    fresh = run_task(3, config=CONFIG)
    run_task(5, config=CONFIG, robot=robot)
    run_task(Task(6, Dynamics(payload_mass=2.0, latency_steps=2)), config=CONFIG, robot=robot)
    reused = run_task(3, config=CONFIG, robot=robot)
    assert_same_rollouts([fresh], [reused])
    other = run_task(4, config=CONFIG, robot=robot)
    assert other.dynamics != fresh.dynamics
    assert not np.array_equal(other.states, fresh.states)


def test_rollout_arrays_line_up(robot):
    rollout = run_task(Task(11, Dynamics(latency_steps=2, velocity_noise_std=0.01)),
                       config=CONFIG, robot=robot)
    steps, n = CONFIG.steps, 7
    assert rollout.states.shape == rollout.next_states.shape == (steps, 2 * n)
    assert rollout.commands.shape == rollout.issued_commands.shape == (steps, n)
    assert rollout.goal_states.shape == (steps, 2 * n)
    assert np.array_equal(rollout.next_states[:-1], rollout.states[1:])
    assert np.array_equal(rollout.true_next_states[:-1], rollout.true_states[1:])
    assert np.array_equal(rollout.goal_states[:-1, :n], rollout.reference_positions[1:])
    assert np.array_equal(rollout.goal_states[:-1, n:], rollout.reference_velocities[1:])
    # The command in force lags the issued one by the latency.
    assert np.array_equal(rollout.commands[2:], rollout.issued_commands[:-2])
    # Measured states are noisy in velocity only, as configured.
    assert np.array_equal(rollout.states[:, :n], rollout.true_states[:, :n])
    assert np.std(rollout.states[:, n:] - rollout.true_states[:, n:]) == pytest.approx(
        0.01, rel=0.2)
    # The robot starts at rest where the reference starts.
    assert np.array_equal(rollout.true_states[0, :n], rollout.reference_positions[0])


def test_exploration_noise_is_added_to_the_controller_and_bounded(robot):
    recorder = Recording(NominalController())
    config = dataclasses.replace(CONFIG, exploration_std=0.012)
    rollout = run_task(Task(2, Dynamics()), config=config, controller=recorder, robot=robot)
    noise = rollout.issued_commands - np.clip(recorder.outputs, -robot.limits.effort,
                                              robot.limits.effort)
    bound = 2.5 * 0.012 * robot.limits.effort  # clipped at 2.5 std
    assert np.all(np.abs(noise) <= bound + 1e-12)
    assert np.any(np.abs(noise) > 0.9 * bound)  # the bound is reached: it is a clip
    assert np.std(noise / robot.limits.effort) > 0.01

    quiet = dataclasses.replace(CONFIG, exploration_std=0.0)
    recorder = Recording(NominalController())
    rollout = run_task(Task(2, Dynamics()), config=quiet, controller=recorder, robot=robot)
    assert np.array_equal(rollout.issued_commands, np.array(recorder.outputs))


def test_exploration_follows_a_given_per_joint_scale(robot):
    scale = (0.0,) * 6 + (1.0,)  # only the wrist explores, by at most 2.5 * 0.012 N*m
    config = dataclasses.replace(CONFIG, exploration_std=0.012, exploration_scale=scale)
    recorder = Recording(NominalController())
    rollout = run_task(Task(2, Dynamics()), config=config, controller=recorder, robot=robot)
    noise = rollout.issued_commands - np.clip(recorder.outputs, -robot.limits.effort,
                                              robot.limits.effort)
    assert np.all(noise[:, :6] == 0.0)
    assert 0 < np.max(np.abs(noise[:, 6])) <= 2.5 * 0.012 + 1e-12


def test_evaluation_reports_the_rmse_of_true_positions(robot):
    task = Task(8, Dynamics(position_noise_std=0.05))  # large noise on measurements only
    rmse = evaluate_tracking(NominalController(), task=task, config=CONFIG, robot=robot)
    quiet = dataclasses.replace(CONFIG, exploration_std=0.0)
    rollout = run_task(task, config=quiet, robot=robot)
    error = rollout.true_next_states[:, :7] - rollout.goal_states[:, :7]
    assert rmse == pytest.approx(np.sqrt(np.mean(error**2)))
    noisy_error = rollout.next_states[:, :7] - rollout.goal_states[:, :7]
    assert np.sqrt(np.mean(noisy_error**2)) > 2 * rmse


def test_parallel_collection_with_two_workers_matches_one_worker():
    tasks = [0, 1, 2, Task(3, Dynamics(payload_mass=1.0, latency_steps=1))]
    one = collect_rollouts(tasks, config=CONFIG, workers=1)
    two = collect_rollouts(tasks, config=CONFIG, workers=2)
    assert [r.seed for r in two] == [0, 1, 2, 3]
    assert two[3].dynamics == Dynamics(payload_mass=1.0, latency_steps=1)
    assert_same_rollouts(one, two)


@pytest.fixture
def controllers():
    """The importable controller module (spawned workers import it by name)."""
    return importlib.import_module('helpers.sim_test_controllers')


def test_any_picklable_controller_drives_collection_in_workers(controllers):
    controller = controllers.PlainPD(stiffness=200.0)
    in_process = [run_task(seed, config=CONFIG, controller=controller) for seed in (4, 5, 6)]
    assert controller.resets == 3  # reset() once per task
    with RolloutCollector(workers=2, config=CONFIG) as collector:
        in_workers = collector.collect([4, 5, 6], controller=controllers.PlainPD(200.0))
        # The pool stays up between collections (an on-policy refresh).
        again = collector.collect([6], controller=controllers.PlainPD(200.0))
    assert_same_rollouts(in_process, in_workers)
    assert_same_rollouts(in_process[2:], again)
    nominal = run_task(4, config=CONFIG)
    assert not np.array_equal(nominal.commands, in_workers[0].commands)


def test_a_controller_workers_cannot_import_raises_instead_of_hanging(ghost_controller):
    with pytest.raises(ModuleNotFoundError, match='ghost_controllers'):
        collect_rollouts([0, 1], config=CONFIG, controller=ghost_controller, workers=2)


class EndsItsProcess:
    """Unpickled in a worker process, it ends that process at once (as a crash would)."""

    def __reduce__(self):
        return os._exit, (3,)


def test_a_worker_process_that_dies_is_an_error_and_the_next_collection_works(controllers):
    with RolloutCollector(workers=2, config=CONFIG) as collector:
        with pytest.raises(BrokenProcessPool):
            collector.collect([0, 1], controller=EndsItsProcess())
        again = collector.collect([4, 5], controller=controllers.PlainPD(200.0))
    assert [rollout.seed for rollout in again] == [4, 5]


def test_invalid_tasks_are_rejected_before_any_work():
    with pytest.raises(ValueError, match='non-negative integer'):
        collect_rollouts([1, -2], config=CONFIG, workers=2)
    with pytest.raises(ValueError, match='steps must be >= 1'):
        RolloutConfig(steps=0)
