"""Closed-loop evaluation: each method collects its support set, adapts, then tracks.

Per task (one robot's dynamics) and method: run the method's starting policy
with exploration noise for ``support_size`` control steps (as the adapter
node does on the robot), hindsight-relabel those transitions, adapt, then
track a fresh reference without exploration and report the joint tracking
RMSE (rad, true states). ``oracle`` instead trains on ample data of the task
itself. Tasks run in parallel worker processes.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from maml_ros.maml.policy import PolicyNet
from maml_ros.sim import Dynamics, Rollout, RolloutConfig, SimRobot, Task, run_task
from maml_ros.training.adaptation import (
    finetune,
    maml_adapt,
    ridge_head,
    state_with,
    train_supervised,
)
from maml_ros.training.data import TaskSet
from maml_ros.training.models import TrainedModels
from maml_ros.training.policy_controller import PolicyController

METHODS = ('no_adaptation', 'pretrained_finetune', 'last_layer_ridge', 'maml', 'oracle')


@dataclass(frozen=True, kw_only=True)
class EvalSettings:
    """How each task is evaluated.

    :param support_size: transitions collected before adapting.
    :param inner_steps: gradient steps of the gradient-based methods.
    :param track_steps: control steps of the tracking run that is scored.
    :param exploration_std: exploration noise while collecting support (see RolloutConfig).
    :param oracle_rollouts: rollouts of the task itself the oracle trains on.
    :param oracle_iterations: training iterations of the oracle.
    :param methods: which methods to run.
    """

    support_size: int = 200
    inner_steps: int = 5
    track_steps: int = 500
    exploration_std: float = 0.02
    oracle_rollouts: int = 16
    oracle_iterations: int = 1500
    methods: tuple[str, ...] = METHODS

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ValueError(f'unknown methods {unknown}; choose from {list(METHODS)}')
        if self.support_size < 2 or self.inner_steps < 0 or self.track_steps < 1:
            raise ValueError('need support_size >= 2, inner_steps >= 0, track_steps >= 1')


def support_set(models: TrainedModels, state: dict, dynamics: Dynamics, seed: int,
                settings: EvalSettings, robot: SimRobot) -> tuple[torch.Tensor, torch.Tensor]:
    """``settings.support_size`` relabelled transitions of the policy ``state`` on this robot,
    with exploration (its first N are the support of size N: the rollout is seeded)."""
    config = RolloutConfig(robot=models.formulation.robot, steps=settings.support_size,
                           exploration_std=settings.exploration_std)
    controller = PolicyController(formulation=models.formulation,
                                  architecture=models.meta_policy.architecture(), state=state)
    rollout = run_task(Task(seed, dynamics), config=config, controller=controller, robot=robot)
    x, y = models.formulation.hindsight(rollout.states, rollout.issued_commands,
                                        rollout.next_states)
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)


def _oracle_state(models: TrainedModels, dynamics: Dynamics, seed: int,
                  settings: EvalSettings, robot: SimRobot) -> dict:
    config = RolloutConfig(robot=models.formulation.robot, steps=500,
                           exploration_std=settings.exploration_std)
    rollouts = [run_task(Task(seed + 1 + i, dynamics), config=config, robot=robot)
                for i in range(settings.oracle_rollouts)]
    net = PolicyNet.from_architecture(models.pooled.architecture())
    net.load_state_dict(models.pooled.state_dict())
    x, y = TaskSet.from_rollouts(rollouts, models.formulation).pooled()
    train_supervised(net, x, y, iterations=settings.oracle_iterations, batch_size=1024,
                     lr=3e-4, seed=seed)
    return net.state_dict()


def adapted_state(models: TrainedModels, method: str, dynamics: Dynamics, *, seed: int,
                  settings: EvalSettings, robot: SimRobot) -> tuple[dict, dict[str, float]]:
    """The network weights ``method`` ends up with on this robot, and its ``adapt_ms``."""
    pooled_state = models.pooled.state_dict()
    if method == 'no_adaptation':
        return pooled_state, {}
    if method == 'oracle':
        return _oracle_state(models, dynamics, seed + 1000, settings, robot), {}
    base = models.meta_policy.state_dict() if method == 'maml' else pooled_state
    support = support_set(models, base, dynamics, seed, settings, robot)
    start = time.perf_counter()
    if method == 'maml':
        params = maml_adapt(models.learner, support, steps=settings.inner_steps)
    elif method == 'pretrained_finetune':
        params = finetune(models.pooled, support, lr=models.baselines['finetune_lr'],
                          steps=settings.inner_steps)
    else:
        params = ridge_head(models.pooled, support, ridge=models.baselines['ridge'])
    elapsed_ms = 1e3 * (time.perf_counter() - start)
    return state_with(models.pooled, params), {'adapt_ms': elapsed_ms}


def track(models: TrainedModels, state: dict, dynamics: Dynamics, *, seed: int,
          settings: EvalSettings, robot: SimRobot) -> Rollout:
    """Track the scored reference of ``seed`` with the given weights, no exploration."""
    controller = PolicyController(formulation=models.formulation,
                                  architecture=models.pooled.architecture(), state=state)
    config = RolloutConfig(robot=models.formulation.robot, steps=settings.track_steps,
                           exploration_std=0.0)
    return run_task(Task(seed + 2000, dynamics), config=config, controller=controller,
                    robot=robot)


def evaluate_task(models: TrainedModels, dynamics: Dynamics, *, seed: int,
                  settings: EvalSettings, robot: SimRobot | None = None) -> dict[str, dict]:
    """Every method of ``settings`` on one robot; ``{method: {'rmse': ..., ...}}``."""
    own_robot = robot is None
    robot = SimRobot(config=models.formulation.robot) if own_robot else robot
    models.warm_up()
    results: dict[str, dict] = {}
    try:
        for method in settings.methods:
            state, extra = adapted_state(models, method, dynamics, seed=seed,
                                         settings=settings, robot=robot)
            rollout = track(models, state, dynamics, seed=seed, settings=settings, robot=robot)
            results[method] = {'rmse': rollout.tracking_rmse, **extra}
    finally:
        if own_robot:
            robot.close()
    return results


def _evaluate_one(payload: tuple) -> dict[str, dict]:
    torch.set_num_threads(1)  # one core per worker process
    models, dynamics, seed, settings = payload
    return evaluate_task(models, dynamics, seed=seed, settings=settings)


def evaluate_tasks(models: TrainedModels, robots: Sequence[Dynamics], *, seed: int,
                   settings: EvalSettings, workers: int | None = None) -> list[dict[str, dict]]:
    """:func:`evaluate_task` for each robot, in ``workers`` processes (default: CPU count)."""
    payloads = [(models, dynamics, seed + 10_000 * i, settings)
                for i, dynamics in enumerate(robots)]
    workers = min(workers or os.cpu_count() or 1, len(payloads))
    if workers <= 1:
        return [evaluate_task(models, d, seed=s, settings=settings) for _, d, s, _ in payloads]
    with multiprocessing.get_context('spawn').Pool(workers) as pool:
        return pool.map(_evaluate_one, payloads, chunksize=1)


def summarize(results: Sequence[dict[str, dict]]) -> dict[str, dict[str, float]]:
    """Mean of each figure over tasks, per method."""
    summary: dict[str, dict[str, float]] = {}
    for method in results[0] if results else []:
        keys = results[0][method].keys()
        summary[method] = {key: float(np.mean([r[method][key] for r in results])) for key in keys}
        summary[method]['tasks'] = len(results)
    return summary
