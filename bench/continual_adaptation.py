"""Continual re-adaptation: how many re-adaptations the guard rejects, and whether tracking holds.

The shipped checkpoint on the demo robot (`config/adapt.yaml`'s simulated
robot: 3 kg payload, 70% actuator gain, 0.4 N*m friction, 0.2 damping),
through the evaluation's closed loop (the adapter's ControlLoop on simulated
time) with ``readapt_period`` 1 s for ``--minutes`` of simulated time: the
first adaptation after 200 transitions, then one every second on the sliding
window, with exploration throughout (as the node does when re-adapting).
Prints the share of rejected re-adaptations and the tracking RMSE after the
first adaptation and in the last minute.

    python bench/continual_adaptation.py [--minutes 5] [--method maml_physics] [--json PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from maml_ros.evaluation.tracking import EvalSettings, method_policy, run_loop
from maml_ros.model.trained_models import TrainedModels
from maml_ros.resources import shipped_checkpoint
from maml_ros.sim import Dynamics, SimRobot

from bench_common import write_json

DEMO_ROBOT = Dynamics(payload_mass=3.0, actuator_gain=0.7, joint_friction=0.4, joint_damping=0.2)
TICKS_PER_SECOND = 100


def window_rmse(run, start: int, stop: int) -> float:
    error = run.true_positions[start:stop] - run.reference_positions[start:stop]
    return float(np.sqrt(np.mean(error ** 2)))


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--minutes', type=float, default=5.0)
    parser.add_argument('--seed', type=int, default=7)
    parser.add_argument('--method', choices=('maml_physics', 'maml'), default='maml_physics',
                        help="what adapts (the adapter's default: maml_physics)")
    parser.add_argument('--json', type=Path,
                        default=Path('bench/results/continual_adaptation.json'))
    options = parser.parse_args(args)
    torch.set_num_threads(1)
    models = TrainedModels.load(shipped_checkpoint())
    models.warm_up()
    ticks = int(options.minutes * 60 * TICKS_PER_SECOND)
    settings = EvalSettings(settle_steps=0, track_steps=ticks - 201, readapt_period=1.0)
    with SimRobot(config=models.formulation.robot) as robot:
        policy = method_policy(models, options.method, DEMO_ROBOT, seed=options.seed,
                               settings=settings, robot=robot)
        run = run_loop(policy, DEMO_ROBOT, seed=options.seed, settings=settings, robot=robot)
    outcomes = run.outcomes
    rejected = [o for o in outcomes[1:] if not o.accepted]
    first = window_rmse(run, 201, 201 + 10 * TICKS_PER_SECOND)
    last = window_rmse(run, ticks - 60 * TICKS_PER_SECOND, ticks)
    print(f'{options.method}, {options.minutes:g} min on the demo robot, readapt_period 1 s: '
          f'{len(outcomes)} adaptations, {len(rejected)} of {len(outcomes) - 1} re-adaptations '
          f'rejected ({100 * len(rejected) / max(1, len(outcomes) - 1):.1f}%)')
    print(f'tracking RMSE: {first:.4f} rad in the 10 s after the first adaptation, '
          f'{last:.4f} rad in the last minute')
    for reason in sorted({o.reason.split(' from ')[0] for o in rejected}):
        print(f'  rejected: {reason}')
    write_json(options.json, {
        'method': options.method, 'minutes': options.minutes, 'adaptations': len(outcomes),
        'rejected': len(rejected),
        'rmse_after_first': first, 'rmse_last_minute': last,
        'support_loss': [[o.loss_before, o.loss_after, o.accepted] for o in outcomes]})


if __name__ == '__main__':
    main()
