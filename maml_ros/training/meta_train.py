"""Meta-training: randomized tasks -> pooled baseline -> MAML -> validated checkpoint.

:class:`MetaTrainer` holds a run's state and its steps; :func:`meta_train`
only orders them:

1. ``collect``: ``tasks`` rollouts (nominal controller + exploration) in
   parallel workers (a local process pool, or Ray: ``ray_address``),
   hindsight-relabelled (``TaskSet``), and validation tasks.
2. ``pretrain``: the pooled network on all transitions (the
   domain-randomization baseline, and the starting point of MAML and of the
   other baselines); the baselines' fine-tuning step size and ridge strength
   picked on the validation tasks. ``train_physics``: the physics model
   (:mod:`~maml_ros.model.physics_model`) on the same tasks.
3. ``meta_step``: vectorized MAML meta-steps (Adam, gradient clipping);
   support = the first ``support_size`` steps of a task, query = its last
   ``query_size``. At ``refresh_at``, ``refresh`` replaces part of the tasks
   with rollouts of the meta-policy itself.
4. ``validate``, every ``validation_every`` meta-steps: the post-adaptation
   query loss and the closed-loop tracking RMSE after adaptation (through the
   robot's control loop); the best checkpoint (by RMSE) is kept.
5. The log as CSV and a PNG of the learning curves beside the checkpoint.
"""

from __future__ import annotations

import copy
import csv
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from maml_ros.evaluation.plots import plot_learning_curves
from maml_ros.evaluation.tracking import EvalSettings, evaluate_task
from maml_ros.maml import MAML
from maml_ros.maml.policy import PolicyNet
from maml_ros.model.adaptation import (
    finetune,
    ridge_head,
    scaled_mse,
    train_supervised,
)
from maml_ros.model.data import TaskSet
from maml_ros.model.formulation import Formulation
from maml_ros.model.model_based import SystemIdentification
from maml_ros.model.physics_model import PhysicsResidualModel
from maml_ros.model.policy_controller import PolicyController
from maml_ros.model.trained_models import TrainedModels
from maml_ros.sim import InverseDynamicsModel, RolloutConfig, Task
from maml_ros.training.collection import open_collector
from maml_ros.training.collector import Collector
from maml_ros.training.config import TrainConfig
from maml_ros.training.physics_training import (
    Window,
    query_loss,
    task_windows,
    train_physics,
)

FINETUNE_LRS = (0.003, 0.01, 0.03, 0.1, 0.3)
RIDGES = (0.1, 1.0, 10.0, 100.0, 1000.0)
VALIDATION_SEED_OFFSET = 900_000  # training seeds stay below, validation seeds above


def collect(collector: Collector, seeds: list[int], config: RolloutConfig,
            formulation: Formulation, *, controller=None, desc: str, progress: bool,
            windows: dict[str, int] | None = None, chunk: int = 64
            ) -> tuple[TaskSet, tuple[Window, Window] | None]:
    """Rollouts of ``seeds`` relabelled into a ``TaskSet``, in chunks for the progress bar;
    with ``windows`` (``support_size``, ``query_size``) also the physics model's windows."""
    parts, window_parts = [], []
    identification = SystemIdentification(formulation) if windows else None
    with tqdm(total=len(seeds), desc=desc, unit='task', disable=not progress) as bar:
        for start in range(0, len(seeds), chunk):
            tasks = [Task(seed) for seed in seeds[start:start + chunk]]
            rollouts = collector.collect(tasks, controller=controller, config=config)
            parts.append(TaskSet.from_rollouts(rollouts, formulation))
            if windows:
                window_parts.append(task_windows(rollouts, identification, **windows))
            bar.update(len(tasks))
    return TaskSet.concat(*parts), (
        tuple(Window.concat(*column) for column in zip(*window_parts, strict=True))
        if windows else None)


def _query_losses(learner: MAML, data: TaskSet, config: TrainConfig) -> tuple[float, float]:
    """Mean query loss before and after adapting on the support, over ``data``'s tasks."""
    loss = scaled_mse(learner.model.output_scale)
    support, query = data.support(config.support_size), data.query(config.query_size)
    with torch.no_grad():  # torch.func.grad still takes the inner gradients
        after = learner.meta_loss(support, query, loss).item()
        before = loss(learner.model(query[0]), query[1]).item()
    return before, after


def pick_baseline_settings(pooled: PolicyNet, data: TaskSet, config: TrainConfig
                           ) -> dict[str, float]:
    """Fine-tuning step size and ridge strength with the lowest validation query loss."""
    loss = scaled_mse(pooled.output_scale)
    support, query = data.support(config.support_size), data.query(config.query_size)

    def query_loss(adapt: Callable) -> float:
        with torch.no_grad():
            losses = [loss(torch.func.functional_call(pooled, adapt((support[0][i],
                                                                    support[1][i])),
                                                      query[0][i]), query[1][i])
                      for i in range(len(data))]
        return torch.stack(losses).mean().item()

    finetune_lr = min(FINETUNE_LRS, key=lambda lr: query_loss(
        lambda s: finetune(pooled, s, lr=lr, steps=config.inner_steps)))
    ridge = min(RIDGES, key=lambda r: query_loss(lambda s: ridge_head(pooled, s, ridge=r)))
    return {'finetune_lr': finetune_lr, 'ridge': ridge}


def train_pooled(data: TaskSet, formulation: Formulation, config: TrainConfig, *,
                 progress: bool) -> PolicyNet:
    """The network trained on all transitions pooled (the domain-randomization baseline)."""
    pooled = PolicyNet(input_dim=formulation.feature_dim, output_dim=formulation.n_joints,
                       hidden=config.hidden, activation=config.activation)
    pooled.fit_normalization(*data.pooled())
    if config.residual:  # a zero head makes the untrained policy the nominal controller
        torch.nn.init.zeros_(pooled.head.weight)
        torch.nn.init.zeros_(pooled.head.bias)
    with tqdm(total=config.pretrain_iterations, desc='pooled pretraining',
              disable=not progress) as bar:
        train_supervised(pooled, *data.pooled(), iterations=config.pretrain_iterations,
                         batch_size=config.pretrain_batch, lr=config.pretrain_lr,
                         seed=config.seed, progress=lambda i, loss: bar.update(1))
    return pooled


class MetaTrainer:
    """One meta-training run: it owns the data, the networks and the log; each method is
    one step of the module docstring, and :func:`meta_train` only orders them.

    :param config: the training settings.
    :param collector: rollout workers for the robot of ``config`` (a local pool or Ray).
    :param out: where the best checkpoint goes.
    :param progress: show progress bars.
    :param log: where one-line reports go.
    """

    def __init__(self, config: TrainConfig, *, collector: Collector, out: Path,
                 progress: bool, log: Callable[[str], None]) -> None:
        torch.manual_seed(config.seed)
        self.config, self.collector, self.out = config, collector, out
        self.progress, self.log = progress, log
        self.started = time.perf_counter()
        self.generator = torch.Generator().manual_seed(config.seed)
        self.device = torch.device(config.device)
        self.formulation = Formulation(robot=config.robot, residual=config.residual,
                                       ranges=config.ranges)
        self.rollout_config = RolloutConfig(
            robot=config.robot, ranges=config.ranges, reference=config.reference,
            steps=config.steps_per_task, exploration_std=config.exploration_std,
            exploration_scale=self.formulation.exploration_scale, engine=config.engine)
        self.eval_settings = EvalSettings(support_size=config.support_size,
                                          inner_steps=config.inner_steps,
                                          exploration_std=config.exploration_std,
                                          methods=('maml',), engine=config.engine)
        self.refresh_at = (int(config.refresh_at * config.meta_iterations)
                           if config.refresh_tasks else -1)
        self.rows: list[dict] = []  # one per validation
        self.best = float('inf')  # the best validation tracking RMSE so far

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def _seeds(self, offset: int, count: int) -> list[int]:
        return [self.config.seed * 1_000_000 + offset + i for i in range(count)]

    def _collect(self, seeds: list[int], desc: str, controller=None, windows: bool = False
                 ) -> tuple[TaskSet, tuple[Window, Window] | None]:
        sizes = {'support_size': self.config.support_size, 'query_size': self.config.query_size}
        return collect(self.collector, seeds, self.rollout_config, self.formulation,
                       controller=controller, desc=desc, progress=self.progress,
                       windows=sizes if windows else None)

    def collect(self) -> None:
        """Step 1: the training and validation tasks (and the physics model's windows)."""
        config, physics = self.config, self.formulation.robot.command_interface == 'effort'
        self.data, self.windows = self._collect(self._seeds(0, config.tasks), 'collecting tasks',
                                                windows=physics)
        self.validation, self.validation_windows = self._collect(
            self._seeds(VALIDATION_SEED_OFFSET, config.validation_tasks), 'validation tasks',
            windows=physics)
        self.log(f'collected {len(self.data)} training and {len(self.validation)} validation '
                 f'tasks ({self.elapsed:.0f} s)')

    def pretrain(self) -> None:
        """Step 2: the pooled network, the baselines' settings, and MAML starting from it."""
        config = self.config
        pooled = train_pooled(self.data, self.formulation, config, progress=self.progress)
        baselines = pick_baseline_settings(pooled, self.validation, config)
        self.log(f'pooled network trained; baselines picked on validation tasks: {baselines}')
        self.learner = MAML(copy.deepcopy(pooled), inner_lr=config.inner_lr,
                            inner_steps=config.inner_steps, first_order=config.first_order,
                            learn_inner_lr=config.learn_inner_lr,
                            adapt_params=config.adapt_params).to(self.device)
        self.optimizer = torch.optim.Adam(self.learner.parameters(), lr=config.meta_lr)
        self.loss_fn = scaled_mse(self.learner.model.output_scale)
        self.models = TrainedModels(formulation=self.formulation, learner=self.learner,
                                    pooled=pooled, ranges=config.ranges, baselines=baselines,
                                    info={'seed': config.seed, 'training': config.to_dict()},
                                    reference=config.reference)
        self._to_device()

    def train_physics(self) -> None:
        """Step 2b: the physics model (effort interface), meta-trained on the same tasks."""
        config = self.config
        if self.windows is None:
            self.log('no physics model: it models joint torques (effort interface only)')
            return
        support, query = self.windows
        model = PhysicsResidualModel(n_joints=self.formulation.n_joints,
                                     features=config.physics_features,
                                     hidden=config.physics_hidden,
                                     harmonics=config.physics_harmonics)
        model.fit_normalization(support.inputs, support.commands)
        with tqdm(total=config.physics_iterations, desc='physics model',
                  disable=not self.progress) as bar:
            train_physics(model, support, query, iterations=config.physics_iterations,
                          lr=config.physics_lr, seed=config.seed,
                          progress=lambda iteration, loss: bar.update(1))
        with torch.no_grad():
            before, after = (query_loss(model, *self.validation_windows, adapt=adapt).item()
                             for adapt in (False, True))
        self.models.physics = model
        self.models.info['physics_validation'] = {'query_loss_before': before,
                                                  'query_loss_after': after}
        self.log(f'physics model trained: validation query loss {before:.4f} -> {after:.4f} '
                 f'({self.elapsed:.0f} s)')

    def _to_device(self) -> None:
        self.on_device = TaskSet(self.data.features.to(self.device),
                                 self.data.targets.to(self.device))

    def refresh(self) -> None:
        """Step 3b: replace the oldest tasks by rollouts of the meta-policy itself."""
        controller = PolicyController(formulation=self.formulation,
                                      architecture=self.models.pooled.architecture(),
                                      state=self.models.meta_policy.state_dict())
        fresh, _ = self._collect(self._seeds(self.config.tasks, self.config.refresh_tasks),
                                 'on-policy refresh', controller)
        self.data = TaskSet.concat(self.data.subset(slice(len(fresh), None)), fresh)
        self._to_device()

    def meta_step(self) -> float:
        """Step 3: one meta-step on a random meta-batch; its meta-loss."""
        config = self.config
        batch = torch.randint(0, len(self.on_device), (config.meta_batch,),
                              generator=self.generator)
        tasks = self.on_device.subset(batch.to(self.device))
        self.optimizer.zero_grad()
        meta_loss = self.learner.meta_loss(tasks.support(config.support_size),
                                           tasks.query(config.query_size), self.loss_fn)
        meta_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.learner.parameters(), config.grad_clip)
        self.optimizer.step()
        return meta_loss.item()

    def validate(self, iteration: int) -> dict:
        """Step 4: query losses and closed-loop tracking on held-out robots; the checkpoint is
        written when tracking is the best so far."""
        config, learner = self.config, self.learner
        learner.cpu()
        before, after = _query_losses(learner, self.validation, config)
        rng = np.random.default_rng(config.seed)
        description = InverseDynamicsModel.shared(self.formulation.robot).description
        rmses = []
        for seed in self._seeds(VALIDATION_SEED_OFFSET, config.closed_loop_tasks):
            dynamics = config.ranges.sample(rng, n_joints=description.n_joints,
                                            n_links=description.n_links)
            rmses.append(evaluate_task(self.models, dynamics, seed=seed,
                                       settings=self.eval_settings)['maml']['rmse'])
        learner.to(self.device)
        row = {'iteration': iteration, 'seconds': round(self.elapsed, 1),
               'query_loss_before': before, 'query_loss_after': after,
               'tracking_rmse': float(np.mean(rmses))}
        self.rows.append(row)
        if row['tracking_rmse'] < self.best:
            self.best = row['tracking_rmse']
            self.models.info['validation'] = row
            self.models.save(self.out)
        return row


def meta_train(config: TrainConfig, *, out: Path, progress: bool = True,
               log: Callable[[str], None] = print) -> TrainedModels:
    """Meta-train as the module docstring says; writes ``out`` (the checkpoint),
    ``out`` with suffix ``.csv`` (the log) and ``.png`` (learning curves)."""
    with open_collector(config=RolloutConfig(robot=config.robot, engine=config.engine),
                        workers=config.workers, ray_address=config.ray_address,
                        log=log) as collector:
        trainer = MetaTrainer(config, collector=collector, out=out, progress=progress, log=log)
        trainer.collect()
        trainer.pretrain()
        trainer.train_physics()
        last = config.meta_iterations
        for iteration in tqdm(range(last + 1), desc='meta-training', disable=not progress):
            if iteration == trainer.refresh_at:
                trainer.refresh()
            if iteration % config.validation_every == 0 or iteration == last:
                row = trainer.validate(iteration)
                if progress:
                    tqdm.write(_describe(row))
            if iteration < last:
                trainer.meta_step()
    write_training_log(out, trainer.rows)
    log(f'best validation tracking RMSE {trainer.best:.4f} rad; checkpoint {out} '
        f'({trainer.elapsed:.0f} s in all)')
    return TrainedModels.load(out)


def _describe(row: dict) -> str:
    return (f'[{row["iteration"]}] query loss {row["query_loss_before"]:.4f} -> '
            f'{row["query_loss_after"]:.4f}, tracking RMSE {row["tracking_rmse"]:.4f} rad')


def write_training_log(out: Path, rows: list[dict]) -> None:
    """The validation rows as ``out.csv`` and their learning curves as ``out.png``."""
    with out.with_suffix('.csv').open('w', newline='') as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_learning_curves(out.with_suffix('.png'), rows)
