"""Rollouts: one task's closed-loop run, and collection over many tasks in worker processes.

A task is a seed (and optionally explicit dynamics). The seed alone fixes the
task's dynamics, reference, measurement noise and exploration noise, through
independent streams of ``numpy.random.SeedSequence(seed)``, so a task gives the
same data bitwise whichever worker runs it and whatever ran there before.

Workers are started with the ``spawn`` method (a PyBullet client cannot be
forked safely) and keep one robot per configuration for their lifetime;
scripts that collect must guard their entry point with
``if __name__ == '__main__':``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import pickle
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np

from maml_ros.sim.command import EXPLORATION_STD
from maml_ros.sim.controller import Controller, NominalController
from maml_ros.sim.dynamics import Dynamics, DynamicsRanges
from maml_ros.sim.engines import check_engine, make_robot
from maml_ros.sim.model import InverseDynamicsModel, RobotConfig
from maml_ros.sim.reference import ReferenceConfig, ReferenceTrajectory, random_reference
from maml_ros.sim.robot import SimRobot


@dataclass(frozen=True, kw_only=True)
class RolloutConfig:
    """Everything about a rollout except the task seed and the controller.

    :param robot: the robot and how it is commanded.
    :param ranges: domain-randomization ranges for tasks without explicit dynamics.
    :param reference: how reference trajectories are drawn.
    :param steps: control steps per task.
    :param exploration_std: std of the Gaussian noise added to each command, as a
        fraction of the command scale (:class:`~maml_ros.sim.command.CommandSpace`).
    :param exploration_scale: that scale per joint (a formulation's); default: the robot's
        command space's (the effort limits, for effort).
    :param engine: the physics engine that simulates the robot (``pybullet`` or ``mujoco``).
    """

    robot: RobotConfig = RobotConfig()
    ranges: DynamicsRanges = DynamicsRanges()
    reference: ReferenceConfig = ReferenceConfig()
    steps: int = 500
    exploration_std: float = EXPLORATION_STD
    exploration_scale: tuple[float, ...] | None = None
    engine: str = 'pybullet'

    def __post_init__(self) -> None:
        check_engine(self.engine)
        if self.steps < 1:
            raise ValueError(f'steps must be >= 1, got {self.steps}')
        if self.exploration_std < 0:
            raise ValueError(f'exploration_std must be >= 0, got {self.exploration_std}')


@dataclass(frozen=True)
class Task:
    """One task: a seed, and dynamics to use instead of drawing them from the ranges.

    :param seed: non-negative integer; fixes everything random about the task.
    :param dynamics: explicit dynamics (evaluation, a simulated "real robot").
    """

    seed: int
    dynamics: Dynamics | None = None


@dataclass(frozen=True, kw_only=True)
class Rollout:
    """Transitions of one task; arrays have one row per control step ``t = 0..steps-1``.

    States are ``(q, qd)`` concatenated (``2n`` columns). ``states`` and
    ``next_states`` are as measured (with noise), ``true_*`` without noise;
    ``next_states[t] == states[t + 1]``. ``commands`` are those in force between
    ``t`` and ``t + 1`` (after latency), ``issued_commands`` those the controller
    issued at ``t``; both clamped to the limits, before the actuator gain. The
    reference is at step ``t``; ``goal_states`` is the reference at ``t + 1``.
    """

    seed: int
    dynamics: Dynamics
    joint_names: tuple[str, ...]
    command_interface: str
    control_period: float
    states: np.ndarray
    commands: np.ndarray
    issued_commands: np.ndarray
    next_states: np.ndarray
    true_states: np.ndarray
    true_next_states: np.ndarray
    reference_positions: np.ndarray
    reference_velocities: np.ndarray
    reference_accelerations: np.ndarray
    goal_states: np.ndarray

    @property
    def steps(self) -> int:
        return len(self.states)

    @property
    def tracking_rmse(self) -> float:
        """RMSE (rad) of true positions against the reference, over steps 1..T and joints."""
        n = len(self.joint_names)
        error = self.true_next_states[:, :n] - self.goal_states[:, :n]
        return float(np.sqrt(np.mean(error**2)))


def task_streams(seed: int) -> list[np.random.SeedSequence]:
    """Independent random streams of a task: dynamics, reference, measurement noise,
    exploration."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f'task seed must be a non-negative integer, got {seed!r}')
    return np.random.SeedSequence(int(seed)).spawn(4)


def as_tasks(tasks: Iterable[Task | int]) -> list[Task]:
    """``tasks`` as :class:`Task` objects, each seed checked here rather than in a worker."""
    tasks = [task if isinstance(task, Task) else Task(task) for task in tasks]
    for task in tasks:
        task_streams(task.seed)
    return tasks


def run_task(
    task: Task | int,
    *,
    config: RolloutConfig | None = None,
    controller: Controller | None = None,
    robot: SimRobot | None = None,
    reference: ReferenceTrajectory | None = None,
) -> Rollout:
    """Run one task in this process.

    :param task: the task, or just its seed.
    :param config: rollout settings (defaults: :class:`RolloutConfig`).
    :param controller: what issues commands (default: the nominal controller).
    :param robot: a robot built for ``config.robot`` to reuse; by default one is
        built and closed here.
    :param reference: a reference to track instead of the task's random one; it
        must have ``config.steps + 1`` rows.
    """
    config = config if config is not None else RolloutConfig()
    task = task if isinstance(task, Task) else Task(task)
    controller = controller if controller is not None else NominalController(
        config=config.robot, ranges=config.ranges)
    own_robot = robot is None
    if not own_robot and (robot.config, robot.engine) != (config.robot, config.engine):
        raise ValueError('robot was built for another RobotConfig or engine than config\'s')
    robot = make_robot(config.engine, config=config.robot) if own_robot else robot
    try:
        return _run(task, config, controller, robot, reference)
    finally:
        if own_robot:
            robot.close()


def _run(task: Task, config: RolloutConfig, controller: Controller, robot: SimRobot,
         reference: ReferenceTrajectory | None) -> Rollout:
    d = robot.description
    steps, n = config.steps, d.n_joints
    dynamics_seq, reference_seq, noise_seq, exploration_seq = task_streams(task.seed)
    dynamics = task.dynamics if task.dynamics is not None else config.ranges.sample(
        np.random.default_rng(dynamics_seq), n_joints=n, n_links=d.n_links)
    if reference is None:
        reference = random_reference(
            np.random.default_rng(reference_seq), limits=d.limits, home=d.home, steps=steps,
            control_period=config.robot.control_period, config=config.reference)
    if reference.positions.shape != (steps + 1, n):
        raise ValueError(f'reference needs shape {(steps + 1, n)}, '
                         f'got {reference.positions.shape}')
    exploration = robot.command_space.with_scale(config.exploration_scale).exploration(
        np.random.default_rng(exploration_seq), config.exploration_std, steps)

    robot.set_dynamics(dynamics)
    robot.reset(positions=reference.positions[0], seed=noise_seq)
    reset = getattr(controller, 'reset', None)
    if reset is not None:
        reset()
    q_ref, qd_ref, qdd_ref = reference.positions, reference.velocities, reference.accelerations
    measured, true, in_force, issued = [], [], [], []
    command = controller.command
    for position, velocity, acceleration, noise in zip(q_ref, qd_ref, qdd_ref, exploration,
                                                       strict=False):
        q, qd = robot.measured_state()
        measured.append(robot.measured_state_vector())
        true.append(robot.true_state_vector())
        robot.step(command(q, qd, position, velocity, acceleration) + noise)
        in_force.append(robot.command_in_force)
        issued.append(robot.issued_command)
    measured.append(robot.measured_state_vector())
    true.append(robot.true_state_vector())

    measured_states, true_states = np.array(measured), np.array(true)
    return Rollout(
        seed=task.seed,
        dynamics=dynamics,
        joint_names=d.joint_names,
        command_interface=config.robot.command_interface,
        control_period=config.robot.control_period,
        states=measured_states[:-1],
        commands=np.array(in_force),
        issued_commands=np.array(issued),
        next_states=measured_states[1:],
        true_states=true_states[:-1],
        true_next_states=true_states[1:],
        reference_positions=q_ref[:-1],
        reference_velocities=qd_ref[:-1],
        reference_accelerations=qdd_ref[:-1],
        goal_states=np.concatenate([q_ref[1:], qd_ref[1:]], axis=1),
    )


def evaluate_tracking(
    controller: Controller,
    *,
    task: Task | int,
    config: RolloutConfig | None = None,
    robot: SimRobot | None = None,
    reference: ReferenceTrajectory | None = None,
) -> float:
    """Closed-loop tracking RMSE (rad) of ``controller`` on one task, from true states.

    Runs without exploration noise (measurement noise and latency stay as the
    task's dynamics say). Arguments as for :func:`run_task`.
    """
    config = dataclasses.replace(config if config is not None else RolloutConfig(),
                                 exploration_std=0.0)
    return run_task(task, config=config, controller=controller, robot=robot,
                    reference=reference).tracking_rmse


# -- parallel collection -----------------------------------------------------

_worker_robots: dict[tuple[RobotConfig, str], SimRobot] = {}


def _worker_robot(config: RolloutConfig) -> SimRobot:
    key = (config.robot, config.engine)
    if key not in _worker_robots:
        _worker_robots[key] = make_robot(config.engine, config=config.robot)
    return _worker_robots[key]


def warm_worker(config: RolloutConfig) -> None:
    """Load the robot of ``config`` in this worker process before its first task."""
    # Only an optimisation: a failing initializer breaks the pool without its
    # error, so errors are left to surface from the first task instead.
    with contextlib.suppress(Exception):
        _worker_robot(config)
        InverseDynamicsModel.shared(config.robot).inertia_lower_bound()


def run_chunk(payload: tuple[RolloutConfig, bytes, list[Task]]) -> list[Rollout]:
    """Run a chunk of tasks in this worker process on its robot: ``(config, pickled
    controller, tasks)``, as collection backends send them."""
    config, pickled_controller, tasks = payload
    # Unpickled here, not by the pool: a task that fails to unpickle kills the
    # worker and hangs the pool, whereas this raises in the caller.
    controller = pickle.loads(pickled_controller)
    robot = _worker_robot(config)
    return [run_task(task, config=config, controller=controller, robot=robot) for task in tasks]


class RolloutCollector:
    """Collects rollouts of many tasks in worker processes, each with its own simulated robot.

    The pool starts on first use and lives until :meth:`close`, so repeated
    collections (an on-policy refresh) do not reload the URDF. With one worker,
    tasks run in this process.

    :param workers: number of worker processes; default ``os.cpu_count()``.
    :param config: default rollout settings; its robot is loaded when workers start.
    """

    def __init__(self, *, workers: int | None = None, config: RolloutConfig | None = None) -> None:
        self.workers = int(workers) if workers is not None else (os.cpu_count() or 1)
        if self.workers < 1:
            raise ValueError(f'workers must be >= 1, got {workers}')
        self.config = config if config is not None else RolloutConfig()
        self._pool: ProcessPoolExecutor | None = None
        self._robot: SimRobot | None = None

    def collect(
        self,
        tasks: Iterable[Task | int],
        *,
        controller: Controller | None = None,
        config: RolloutConfig | None = None,
    ) -> list[Rollout]:
        """Run every task; results come back in the order of ``tasks``.

        :param tasks: tasks or seeds.
        :param controller: picklable controller (default: the nominal controller)
            plus the configured exploration noise. With several workers its class
            must be importable there (from a module or the main script, not from an
            interactive session); otherwise the worker's import error is raised here.
            A worker process that dies raises
            :class:`~concurrent.futures.process.BrokenProcessPool`.
        :param config: rollout settings for this call (default: the collector's).
        """
        config = config if config is not None else self.config
        tasks = as_tasks(tasks)
        if self.workers == 1 or len(tasks) <= 1:
            if self._robot is None or (self._robot.config, self._robot.engine) != (
                    config.robot, config.engine):
                self._close_robot()
                self._robot = make_robot(config.engine, config=config.robot)
            return [run_task(task, config=config, controller=controller, robot=self._robot)
                    for task in tasks]
        if self._pool is None:  # not multiprocessing.Pool: a worker that dies would hang it
            self._pool = ProcessPoolExecutor(self.workers,
                                             mp_context=multiprocessing.get_context('spawn'),
                                             initializer=warm_worker, initargs=(self.config,))
        # One contiguous chunk per worker: tasks cost the same, and the controller
        # is pickled once per chunk.
        count = min(self.workers, len(tasks))
        bounds = [len(tasks) * i // count for i in range(count + 1)]
        chunks = [tasks[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]
        pickled = pickle.dumps(controller)
        try:
            results = list(self._pool.map(run_chunk,
                                          [(config, pickled, chunk) for chunk in chunks]))
        except BrokenProcessPool:  # a worker died: the next collection starts new ones
            self._close_pool()
            raise
        return [rollout for chunk in results for rollout in chunk]

    def _close_robot(self) -> None:
        if self._robot is not None:
            self._robot.close()
            self._robot = None

    def _close_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def close(self) -> None:
        """Stop the workers and free the in-process robot."""
        self._close_pool()
        self._close_robot()

    def __enter__(self) -> RolloutCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def collect_rollouts(
    tasks: Sequence[Task | int],
    *,
    config: RolloutConfig | None = None,
    controller: Controller | None = None,
    workers: int | None = None,
) -> list[Rollout]:
    """One-shot :meth:`RolloutCollector.collect` (starts and stops the workers)."""
    with RolloutCollector(workers=workers, config=config) as collector:
        return collector.collect(tasks, controller=controller)
