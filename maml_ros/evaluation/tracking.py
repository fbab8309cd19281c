"""Closed-loop evaluation through the loop the robot runs: collect support, adapt, track.

Per task (one robot's dynamics) and method, :class:`ControlLoop` runs against
the simulated robot in this process, on simulated time, exactly as the adapter
node runs it on the robot (policy, exploration, safety filter, support
buffer, the same adaptation call and its divergence guard). The reference is
the task's random one, drawn with the checkpoint's reference settings as in
training; the first ``support_size + 1`` ticks collect support with
exploration, then the policy adapts (inline: on simulated time it takes
no time), the robot gets ``settle_steps`` ticks to converge from where the
unadapted policy left it, and the next ``track_steps`` ticks are scored: the
joint tracking RMSE (rad) of the true positions. Methods:

- learned: ``no_adaptation`` (the pooled network), ``pretrained_finetune``,
  ``last_layer_ridge``, ``maml`` (the meta-learned network), ``maml_physics``
  (the meta-learned physics model with its residual:
  :mod:`~maml_ros.model.physics_model`), and ``oracle`` (a network trained
  on ample data of the task itself: the pooled network fitted to
  ``oracle_rollouts`` rollouts of the task with Adam, learning rate 3e-4,
  batches of 1024, seeded by the task);
- classical (:mod:`maml_ros.model.model_based`): ``nominal`` (URDF computed
  torque), ``sysid`` (every link's inertial parameters, friction, delay and lag identified
  by a cross-validated ridge toward the URDF: the rival to beat), ``sysid_simple`` (a
  least-squares scale per joint on the URDF's torque, friction, delay) and ``true_model``
  (computed torque with the true parameters: the floor).

Those that do not adapt do not explore. Tasks run in parallel worker processes.
The robot is simulated by PyBullet, as in training, or by MuJoCo
(``engine``: sim-to-sim, the proxy for the gap to a real robot).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from maml_ros.maml.policy import PolicyNet
from maml_ros.model.adaptation import ADAPTATIONS, train_supervised
from maml_ros.model.data import TaskSet
from maml_ros.model.model_based import ModelPolicy, sysid_policy, true_model_policy
from maml_ros.model.trained_models import TrainedModels
from maml_ros.online.adaptive_policy import PHYSICS, AdaptationOutcome, AdaptivePolicy
from maml_ros.online.control_loop import ControlLoop, LoopSettings
from maml_ros.online.policy import Policy
from maml_ros.sim import (
    Dynamics,
    RolloutConfig,
    SimRobot,
    Task,
    check_engine,
    make_robot,
    random_reference,
    run_task,
)
from maml_ros.sim.rollout import task_streams

METHODS = ('nominal', 'no_adaptation', 'pretrained_finetune', 'last_layer_ridge', 'sysid',
           'sysid_simple', 'maml', 'maml_physics', 'oracle', 'true_model')


@dataclass(frozen=True, kw_only=True)
class EvalSettings:
    """How each task is evaluated.

    :param support_size: transitions collected before adapting.
    :param inner_steps: gradient steps of the gradient-based methods.
    :param settle_steps: control steps between adapting and scoring (the recovery from the
        unadapted policy's tracking error is not what the score is about).
    :param track_steps: control steps of the tracking run that is scored.
    :param exploration_std: exploration noise while collecting support (see RolloutConfig).
    :param readapt_period: seconds between re-adaptations on the sliding window; 0: adapt
        once (as the adapter's ``readapt_period``).
    :param max_command_rate: the safety filter's largest command change per second (as the
        adapter's ``max_command_rate``).
    :param probation_window: seconds each adaptation is watched before it is trusted (as
        the adapter's; 0: never rolled back).
    :param probation_margin: how much worse it may do on probation (as the adapter's).
    :param oracle_rollouts: rollouts of the task itself the oracle trains on.
    :param oracle_iterations: training iterations of the oracle.
    :param methods: which methods to run.
    :param engine: the physics engine that simulates the evaluated robots.
    """

    support_size: int = LoopSettings.support_size
    inner_steps: int = 5
    settle_steps: int = 100
    track_steps: int = 500
    readapt_period: float = 0.0
    max_command_rate: float = LoopSettings.max_command_rate
    probation_window: float = LoopSettings.probation_window
    probation_margin: float = LoopSettings.probation_margin
    exploration_std: float = LoopSettings.exploration_std
    oracle_rollouts: int = 16
    oracle_iterations: int = 1500
    methods: tuple[str, ...] = METHODS
    engine: str = 'pybullet'

    def __post_init__(self) -> None:
        check_engine(self.engine)
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ValueError(f'unknown methods {unknown}; choose from {list(METHODS)}')
        if self.support_size < 2 or self.inner_steps < 0 or self.track_steps < 1 \
                or self.settle_steps < 0:
            raise ValueError('need support_size >= 2, inner_steps >= 0, settle_steps >= 0, '
                             'track_steps >= 1')

    @property
    def scored_from(self) -> int:
        """The first scored tick of a run."""
        return self.support_size + 1 + self.settle_steps


def _oracle_state(models: TrainedModels, dynamics: Dynamics, seed: int,
                  settings: EvalSettings, robot: SimRobot) -> dict:
    config = RolloutConfig(robot=models.formulation.robot, reference=models.reference, steps=500,
                           exploration_std=settings.exploration_std,
                           exploration_scale=models.formulation.exploration_scale,
                           engine=robot.engine)
    rollouts = [run_task(Task(seed + 1 + i, dynamics), config=config, robot=robot)
                for i in range(settings.oracle_rollouts)]
    net = PolicyNet.from_architecture(models.pooled.architecture())
    net.load_state_dict(models.pooled.state_dict())
    x, y = TaskSet.from_rollouts(rollouts, models.formulation).pooled()
    train_supervised(net, x, y, iterations=settings.oracle_iterations, batch_size=1024,
                     lr=3e-4, seed=seed)
    return net.state_dict()


@dataclass(frozen=True)
class LoopRun:
    """One closed-loop run: per tick the true positions, the reference and the command sent,
    and the outcome of every adaptation (and roll-back), in order."""

    true_positions: np.ndarray
    reference_positions: np.ndarray
    commands: np.ndarray
    outcomes: list[AdaptationOutcome]

    @property
    def outcome(self) -> AdaptationOutcome | None:
        """The first adaptation's outcome (None when the method did not adapt)."""
        return self.outcomes[0] if self.outcomes else None

    @property
    def rollbacks(self) -> int:
        """How many adaptations the loop rolled back on probation."""
        return sum(outcome.rolled_back for outcome in self.outcomes)

    def rmse(self, first: int) -> float:
        """Tracking RMSE (rad) over ticks ``first..`` and all joints."""
        error = self.true_positions[first:] - self.reference_positions[first:]
        return float(np.sqrt(np.mean(error ** 2)))


def method_policy(models: TrainedModels, method: str, dynamics: Dynamics, *, seed: int,
                  settings: EvalSettings, robot: SimRobot) -> Policy:
    """The policy ``method`` starts with on this robot (adapting inline, on simulated time)."""
    if method == 'nominal':
        return ModelPolicy(models=models, torque=models.formulation.nominal)
    if method in ('sysid', 'sysid_simple'):
        return sysid_policy(models, simple=method == 'sysid_simple')
    if method == 'true_model':
        robot.set_dynamics(dynamics)
        return true_model_policy(models, robot)
    if method == 'oracle':
        return AdaptivePolicy(models=models, method=None, worker='inline',
                              initial_state=_oracle_state(models, dynamics, seed + 1000,
                                                          settings, robot))
    adapts = method in ADAPTATIONS or method == PHYSICS
    return AdaptivePolicy(models=models, method=method if adapts else None, worker='inline')


def run_loop(policy: Policy, dynamics: Dynamics, *, seed: int, settings: EvalSettings,
             robot: SimRobot) -> LoopRun:
    """The task's reference tracked by :class:`ControlLoop` with ``policy`` on ``robot``:
    ``scored_from + track_steps`` ticks, stamps and clock on simulated time."""
    models = policy.models
    period = models.formulation.robot.control_period
    steps = settings.scored_from + settings.track_steps
    _, reference_seed, noise_seed, exploration_seed = task_streams(seed)
    description = robot.description
    reference = random_reference(np.random.default_rng(reference_seed), limits=description.limits,
                                 home=description.home, steps=steps, control_period=period,
                                 config=models.reference)
    explores = policy.method is not None
    loop_settings = LoopSettings(
        support_size=settings.support_size, inner_steps=settings.inner_steps,
        inner_lr=models.learner.base_inner_lr, readapt_period=settings.readapt_period,
        max_command_rate=settings.max_command_rate,
        probation_window=settings.probation_window, probation_margin=settings.probation_margin,
        exploration_std=settings.exploration_std if explores else 0.0)
    clock, outcomes = [0.0], []
    loop = ControlLoop(policy=policy, settings=loop_settings, period=period,
                       stamp_clock=lambda: clock[0], on_adapted=outcomes.append,
                       seed=int(exploration_seed.generate_state(1)[0]))
    robot.set_dynamics(dynamics)
    robot.reset(positions=reference.positions[0], seed=noise_seed)
    loop.set_reference(reference, 0.0)
    true_positions, reference_positions, commands = [], [], []
    for step in range(steps):
        clock[0] = now = step * period
        q, qd = robot.measured_state()
        loop.joint_state(q, qd, now, now)
        tick = loop.step(now)
        true_positions.append(robot.true_state()[0])
        reference_positions.append(tick.q_ref)
        commands.append(tick.command)
        robot.step(tick.command)
    return LoopRun(np.array(true_positions), np.array(reference_positions), np.array(commands),
                   outcomes)


def evaluate_method(models: TrainedModels, method: str, dynamics: Dynamics, *, seed: int,
                    settings: EvalSettings, robot: SimRobot) -> dict[str, float]:
    """``{'rmse': ..., 'adapt_ms': ...}`` of ``method`` on this robot."""
    policy = method_policy(models, method, dynamics, seed=seed, settings=settings, robot=robot)
    run = run_loop(policy, dynamics, seed=seed, settings=settings, robot=robot)
    result = {'rmse': run.rmse(settings.scored_from)}
    if run.outcome is not None:
        result.update(adapt_ms=run.outcome.duration_ms, accepted=float(run.outcome.accepted),
                      kept_joints=float(len(run.outcome.kept)), rolled_back=float(run.rollbacks))
    identified = policy.identified()
    if identified is not None:
        result['identified'] = identified
    policy.close()
    return result


def evaluate_task(models: TrainedModels, dynamics: Dynamics, *, seed: int,
                  settings: EvalSettings, robot: SimRobot | None = None) -> dict[str, dict]:
    """Every method of ``settings`` on one robot; ``{method: {'rmse': ..., ...}}``."""
    own_robot = robot is None
    robot = make_robot(settings.engine, config=models.formulation.robot) if own_robot else robot
    models.warm_up()
    try:
        return {method: evaluate_method(models, method, dynamics, seed=seed, settings=settings,
                                        robot=robot)
                for method in settings.methods}
    finally:
        if own_robot:
            robot.close()


def _evaluate_one(payload: tuple) -> dict[str, dict]:
    torch.set_num_threads(1)  # one core per worker process
    models, dynamics, seed, settings = payload
    return evaluate_task(models, dynamics, seed=seed, settings=settings)


def evaluate_tasks(models: TrainedModels, robots: Sequence[Dynamics], *, seed: int,
                   settings: EvalSettings, workers: int | None = None) -> list[dict[str, dict]]:
    """:func:`evaluate_task` for each robot, in ``workers`` processes (default: CPU count).

    A worker process that dies raises :class:`~concurrent.futures.process.BrokenProcessPool`.
    """
    payloads = [(models, dynamics, seed + 10_000 * i, settings)
                for i, dynamics in enumerate(robots)]
    workers = min(workers or os.cpu_count() or 1, len(payloads))
    if workers <= 1:
        return [evaluate_task(models, d, seed=s, settings=settings) for _, d, s, _ in payloads]
    # Not multiprocessing.Pool: a worker that dies (a crash in the simulator) would hang it.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context('spawn')) as pool:
        return list(pool.map(_evaluate_one, payloads, chunksize=1))


def summarize(results: Sequence[dict[str, dict]]) -> dict[str, dict[str, float]]:
    """Mean of each figure (number) over tasks, per method."""
    summary: dict[str, dict[str, float]] = {}
    for method in results[0] if results else []:
        keys = [key for key, value in results[0][method].items() if isinstance(value, float)]
        summary[method] = {key: float(np.mean([r[method][key] for r in results])) for key in keys}
        summary[method]['tasks'] = len(results)
    return summary
