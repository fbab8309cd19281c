"""Meta-training: randomized tasks -> pooled baseline -> MAML -> validated checkpoint.

1. Collect ``tasks`` rollouts (nominal controller + exploration) in parallel
   workers and hindsight-relabel them (``TaskSet``).
2. Train the pooled network on all transitions: the domain-randomization
   baseline, and the starting point of MAML and of the other baselines.
3. Meta-train with vectorized MAML meta-steps (Adam, gradient clipping);
   support = the first ``support_size`` steps of a task, query = its last
   ``query_size``. Halfway, an on-policy refresh replaces part of the tasks
   with rollouts of the meta-policy itself.
4. Every ``validation_every`` meta-steps, validate on held-out tasks: the
   post-adaptation query loss and the closed-loop tracking RMSE after
   adaptation; the best checkpoint (by RMSE) is kept.
5. Pick the baselines' fine-tuning step size and ridge strength on the
   validation tasks; write the checkpoint, a CSV log and a PNG of the curves.
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

from maml_ros.maml import MAML
from maml_ros.maml.policy import PolicyNet
from maml_ros.sim import InverseDynamicsModel, RolloutCollector, RolloutConfig, Task
from maml_ros.training.adaptation import (
    finetune,
    ridge_head,
    scaled_mse,
    train_supervised,
)
from maml_ros.training.config import TrainConfig
from maml_ros.training.data import TaskSet
from maml_ros.training.evaluation import EvalSettings, evaluate_task
from maml_ros.training.formulation import Formulation
from maml_ros.training.models import TrainedModels
from maml_ros.training.policy_controller import PolicyController

FINETUNE_LRS = (0.003, 0.01, 0.03, 0.1, 0.3)
RIDGES = (0.1, 1.0, 10.0, 100.0, 1000.0)
VALIDATION_SEED_OFFSET = 900_000  # training seeds stay below, validation seeds above


def collect(collector: RolloutCollector, seeds: list[int], config: RolloutConfig,
            formulation: Formulation, *, controller=None, desc: str, progress: bool,
            chunk: int = 64) -> TaskSet:
    """Rollouts of ``seeds`` relabelled into a ``TaskSet``, in chunks for the progress bar."""
    parts = []
    with tqdm(total=len(seeds), desc=desc, unit='task', disable=not progress) as bar:
        for start in range(0, len(seeds), chunk):
            tasks = [Task(seed) for seed in seeds[start:start + chunk]]
            rollouts = collector.collect(tasks, controller=controller, config=config)
            parts.append(TaskSet.from_rollouts(rollouts, formulation))
            bar.update(len(tasks))
    return TaskSet.concat(*parts)


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


def meta_train(config: TrainConfig, *, out: Path, progress: bool = True,
               log: Callable[[str], None] = print) -> TrainedModels:
    """Meta-train as the module docstring says; writes ``out`` (the checkpoint),
    ``out`` with suffix ``.csv`` (the log) and ``.png`` (learning curves)."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    device = torch.device(config.device)
    formulation = Formulation(robot=config.robot, residual=config.residual)
    rollout_config = RolloutConfig(robot=config.robot, ranges=config.ranges,
                                   reference=config.reference, steps=config.steps_per_task,
                                   exploration_std=config.exploration_std)
    base = config.seed * 1_000_000
    train_seeds = [base + i for i in range(config.tasks)]
    refresh_seeds = [base + config.tasks + i for i in range(config.refresh_tasks)]
    validation_seeds = [base + VALIDATION_SEED_OFFSET + i for i in range(config.validation_tasks)]

    with RolloutCollector(workers=config.workers, config=rollout_config) as collector:
        data = collect(collector, train_seeds, rollout_config, formulation,
                       desc='collecting tasks', progress=progress)
        validation = collect(collector, validation_seeds, rollout_config, formulation,
                             desc='validation tasks', progress=progress)
        log(f'collected {len(data)} training and {len(validation)} validation tasks '
            f'({time.perf_counter() - started:.0f} s)')

        pooled = train_pooled(data, formulation, config, progress=progress)
        baselines = pick_baseline_settings(pooled, validation, config)
        log(f'pooled network trained; baselines picked on validation tasks: {baselines}')

        learner = MAML(copy.deepcopy(pooled), inner_lr=config.inner_lr,
                       inner_steps=config.inner_steps, first_order=config.first_order,
                       learn_inner_lr=config.learn_inner_lr,
                       adapt_params=config.adapt_params).to(device)
        optimizer = torch.optim.Adam(learner.parameters(), lr=config.meta_lr)
        loss_fn = scaled_mse(learner.model.output_scale)
        models = TrainedModels(formulation=formulation, learner=learner, pooled=pooled,
                               ranges=config.ranges, baselines=baselines,
                               info={'seed': config.seed, 'training': config.to_dict()})
        eval_settings = EvalSettings(support_size=config.support_size,
                                     inner_steps=config.inner_steps,
                                     exploration_std=config.exploration_std, methods=('maml',))
        rows: list[dict] = []
        best = float('inf')
        refresh_at = int(config.refresh_at * config.meta_iterations) if config.refresh_tasks else -1
        on_device = TaskSet(data.features.to(device), data.targets.to(device))
        for iteration in tqdm(range(config.meta_iterations + 1), desc='meta-training',
                              disable=not progress):
            if iteration == refresh_at:  # replace the oldest tasks by on-policy ones
                controller = PolicyController(formulation=formulation,
                                              architecture=pooled.architecture(),
                                              state=models.meta_policy.state_dict())
                fresh = collect(collector, refresh_seeds, rollout_config, formulation,
                                controller=controller, desc='on-policy refresh',
                                progress=progress)
                data = TaskSet.concat(data.subset(slice(len(fresh), None)), fresh)
                on_device = TaskSet(data.features.to(device), data.targets.to(device))
            if iteration % config.validation_every == 0 or iteration == config.meta_iterations:
                row = _validate(models, validation, config, eval_settings, iteration,
                                time.perf_counter() - started)
                rows.append(row)
                if row['tracking_rmse'] < best:
                    best = row['tracking_rmse']
                    models.info['validation'] = row
                    models.save(out)
                if progress:
                    tqdm.write(_describe(row))
            if iteration == config.meta_iterations:
                break
            batch = torch.randint(0, len(on_device), (config.meta_batch,), generator=generator)
            tasks = on_device.subset(batch.to(device))
            optimizer.zero_grad()
            meta_loss = learner.meta_loss(tasks.support(config.support_size),
                                          tasks.query(config.query_size), loss_fn)
            meta_loss.backward()
            torch.nn.utils.clip_grad_norm_(learner.parameters(), config.grad_clip)
            optimizer.step()
    _write_log(out, rows)
    log(f'best validation tracking RMSE {best:.4f} rad; checkpoint {out} '
        f'({time.perf_counter() - started:.0f} s in all)')
    return TrainedModels.load(out)


def _describe(row: dict) -> str:
    return (f'[{row["iteration"]}] query loss {row["query_loss_before"]:.4f} -> '
            f'{row["query_loss_after"]:.4f}, tracking RMSE {row["tracking_rmse"]:.4f} rad')


def _validate(models: TrainedModels, validation: TaskSet, config: TrainConfig,
              settings: EvalSettings, iteration: int, elapsed: float) -> dict:
    learner = models.learner
    device = next(learner.parameters()).device
    learner.cpu()
    before, after = _query_losses(learner, validation, config)
    seeds = range(config.seed * 1_000_000 + VALIDATION_SEED_OFFSET,
                  config.seed * 1_000_000 + VALIDATION_SEED_OFFSET + config.closed_loop_tasks)
    rng = np.random.default_rng(config.seed)
    description = InverseDynamicsModel.shared(models.formulation.robot).description
    rmses = []
    for seed in seeds:
        dynamics = config.ranges.sample(rng, n_joints=description.n_joints,
                                        n_links=description.n_links)
        rmses.append(evaluate_task(models, dynamics, seed=seed, settings=settings)['maml']['rmse'])
    learner.to(device)
    return {'iteration': iteration, 'seconds': round(elapsed, 1), 'query_loss_before': before,
            'query_loss_after': after, 'tracking_rmse': float(np.mean(rmses))}


def _write_log(out: Path, rows: list[dict]) -> None:
    csv_path, png_path = out.with_suffix('.csv'), out.with_suffix('.png')
    with csv_path.open('w', newline='') as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, (losses, tracking) = plt.subplots(1, 2, figsize=(11, 4))
    iterations = [row['iteration'] for row in rows]
    losses.plot(iterations, [row['query_loss_before'] for row in rows], label='before adapting')
    losses.plot(iterations, [row['query_loss_after'] for row in rows], label='after adapting')
    losses.set_xlabel('meta-step')
    losses.set_ylabel('validation query loss (scaled MSE)')
    losses.set_yscale('log')
    losses.legend()
    tracking.plot(iterations, [row['tracking_rmse'] for row in rows], 'o-')
    tracking.set_xlabel('meta-step')
    tracking.set_ylabel('closed-loop tracking RMSE after adapting (rad)')
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
