"""Sample efficiency: tracking RMSE against support size and inner steps (the headline figure).

The shipped checkpoint on held-out robots drawn inside its training ranges,
through the evaluation's closed loop (the control loop the robot runs): each
method collects N support transitions with its own starting policy and
exploration, adapts with K gradient steps, then keeps tracking without
exploration; the score is the tracking RMSE (rad) of those 500 ticks,
averaged over robots.

- ``maml_physics``: the physics model (the adapter's default; per support size, its one
  step is exact, so no steps sweep);
- ``maml``: the meta-policy with its learned inner rates;
- ``pretrained_finetune``: the pooled network, SGD at the validated step size;
- ``no_adaptation``: the pooled network as is (one value);
- ``nominal``: URDF computed torque (one value);
- ``sysid``: the least-squares identified model (per support size; no steps);
- ``true_model``: computed torque with the true parameters (the floor; one value).

    python bench/sample_efficiency.py [--robots 12] [--workers 2] [--json PATH] [--plot PNG]
"""

from __future__ import annotations

import argparse
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib
import numpy as np
import torch

from maml_ros.evaluation.tracking import EvalSettings, evaluate_method
from maml_ros.model.trained_models import TrainedModels
from maml_ros.resources import shipped_checkpoint
from maml_ros.sim import InverseDynamicsModel, SimRobot

from bench_common import save_figure, write_json

matplotlib.use('Agg')
from matplotlib import pyplot as plt  # noqa: E402

SUPPORT = (25, 50, 100, 200, 500)
STEPS = (0, 1, 3, 5, 10)
METHODS = ('maml', 'pretrained_finetune')


def evaluate_robot(payload) -> dict[str, float]:
    """``{'method/support/steps': rmse}`` (and ``'no_adaptation'``) on one robot."""
    torch.set_num_threads(1)  # one core per worker process
    models, dynamics, seed = payload
    models.warm_up()
    with SimRobot(config=models.formulation.robot) as robot:
        def rmse(method: str, **settings) -> float:
            return evaluate_method(models, method, dynamics, seed=seed, robot=robot,
                                   settings=EvalSettings(**settings))['rmse']

        results = {method: rmse(method) for method in ('nominal', 'no_adaptation', 'true_model')}
        for method in ('sysid', 'maml_physics'):
            results.update({f'{method}/{size}': rmse(method, support_size=size)
                            for size in SUPPORT})
        for method in METHODS:
            for size in SUPPORT:
                for steps in STEPS:
                    results[f'{method}/{size}/{steps}'] = rmse(method, support_size=size,
                                                               inner_steps=steps)
        return results


def plot(path: Path, mean: dict[str, float], robots: int) -> None:
    figure, (by_size, by_steps) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for method, color in zip(METHODS, ('tab:blue', 'tab:orange'), strict=True):
        by_size.plot(SUPPORT, [mean[f'{method}/{n}/5'] for n in SUPPORT], 'o-', color=color,
                     label=f'{method}, 5 steps')
        by_steps.plot(STEPS, [mean[f'{method}/200/{k}'] for k in STEPS], 'o-', color=color,
                      label=f'{method}, 200 transitions')
    for method, color, label in (('sysid', 'tab:green', 'sysid (least squares)'),
                                 ('maml_physics', 'tab:red', 'maml_physics (one exact step)')):
        by_size.plot(SUPPORT, [mean[f'{method}/{n}'] for n in SUPPORT], 's-', color=color,
                     label=label, lw=2.5 if method == 'maml_physics' else 1.5)
        by_steps.axhline(mean[f'{method}/200'], color=color, ls='-.',
                         label=f'{method}, 200 transitions')
    for axis in (by_size, by_steps):
        axis.axhline(mean['nominal'], color='tab:purple', ls='--', label='nominal (URDF)')
        axis.axhline(mean['no_adaptation'], color='gray', ls='--', label='no_adaptation')
        axis.axhline(mean['true_model'], color='black', ls=':', label='true_model (floor)')
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    by_size.set_xscale('log')
    by_size.minorticks_off()
    by_size.set_xticks(SUPPORT, [str(n) for n in SUPPORT])
    by_size.set_xlabel('support transitions (10 ms each)')
    by_size.set_ylabel('tracking RMSE (rad, log)')
    by_size.set_yscale('log')
    by_steps.set_xlabel('inner gradient steps')
    figure.suptitle(f'Adaptation on {robots} held-out in-range robots (shipped checkpoint)')
    save_figure(figure, path, dpi=110)


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--robots', type=int, default=12)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--seed', type=int, default=2024)
    parser.add_argument('--json', type=Path,
                        default=Path('bench/results/sample_efficiency.json'))
    parser.add_argument('--plot', type=Path,
                        default=Path('bench/results/sample_efficiency.png'))
    options = parser.parse_args(args)
    models = TrainedModels.load(shipped_checkpoint())
    description = InverseDynamicsModel.shared(models.formulation.robot).description
    rng = np.random.default_rng(options.seed)
    robots = [models.ranges.sample(rng, n_joints=description.n_joints,
                                   n_links=description.n_links) for _ in range(options.robots)]
    payloads = [(models, dynamics, options.seed + 10_000 * i) for i, dynamics in enumerate(robots)]
    context = multiprocessing.get_context('spawn')
    with ProcessPoolExecutor(options.workers, mp_context=context) as pool:  # a dead worker raises
        per_robot = list(pool.map(evaluate_robot, payloads))
    mean = {key: float(np.mean([r[key] for r in per_robot])) for key in per_robot[0]}
    print(f'nominal: {mean["nominal"]:.4f} rad; no_adaptation: {mean["no_adaptation"]:.4f} rad; '
          f'true_model: {mean["true_model"]:.4f} rad')
    for method in ('sysid', 'maml_physics'):
        print(f'{method} by support size: ' + ', '.join(f'{n}: {mean[f"{method}/{n}"]:.4f}'
                                                        for n in SUPPORT))
    for method in METHODS:
        print(f'\n{method}: tracking RMSE (rad), rows support size, columns inner steps')
        print(f'{"support":>8}' + ''.join(f'{k:>9}' for k in STEPS))
        for size in SUPPORT:
            print(f'{size:>8}' + ''.join(f'{mean[f"{method}/{size}/{k}"]:>9.4f}' for k in STEPS))
    write_json(options.json, {'robots': options.robots, 'seed': options.seed,
                              'support': SUPPORT, 'steps': STEPS, 'mean_rmse': mean,
                              'per_robot': per_robot})
    plot(options.plot, mean, options.robots)


if __name__ == '__main__':
    main()
