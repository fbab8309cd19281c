"""MuJoCo against PyBullet: physics steps per second and collection throughput, same run.

- ``stepping``: one robot in this process, each engine's :class:`SimRobot`, commanded
  gravity compensation plus a wiggle at every control step (torques set and the state read
  every control step, ``substeps`` physics steps between), no randomization; physics steps
  per second of the whole step, and of the engine's own stepping alone;
- ``collection``: training's collection (random dynamics and references, the nominal
  controller, exploration, in ``--workers`` processes), the same tasks on each engine;
  tasks per second and physics steps per second.

Each measurement is repeated ``--rounds`` times, the engines interleaved, and the best
round counts (noise on a shared machine only slows a round down).

    python bench/engines.py [--tasks 64] [--workers 2] [--rounds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from maml_ros.sim import (
    ENGINES,
    InverseDynamicsModel,
    RobotConfig,
    RolloutCollector,
    RolloutConfig,
    make_robot,
)
from maml_ros.training.config import TRAINING_RANGES

from bench_common import write_json


def stepping(engine: str, control_steps: int) -> dict[str, float]:
    """Physics steps per second of one robot, whole steps and the engine's stepping alone."""
    config = RobotConfig()
    model = InverseDynamicsModel.shared(config)
    home = np.array(config.home)
    wiggle = np.array([4, 4, 3, 3, 1, 1, 0.5])
    with make_robot(engine, config=config) as robot:
        robot.reset()
        start, physics = time.perf_counter(), robot.physics_seconds
        for k in range(control_steps):
            hold = model.torques(home, np.zeros(7), np.zeros(7))
            robot.step(hold + wiggle * np.sin(0.1 * k + np.arange(7)))
        elapsed = time.perf_counter() - start
        physics = robot.physics_seconds - physics
    steps = control_steps * config.substeps
    return {'steps_per_second': steps / elapsed, 'engine_steps_per_second': steps / physics}


def collection(engine: str, tasks: int, workers: int) -> dict[str, float]:
    """Tasks and physics steps per second of training's collection (workers warm)."""
    config = RolloutConfig(ranges=TRAINING_RANGES, engine=engine)
    with RolloutCollector(workers=workers, config=config) as collector:
        collector.collect(range(workers))  # start and warm the workers
        start = time.perf_counter()
        collector.collect(range(1000, 1000 + tasks))
        elapsed = time.perf_counter() - start
    steps = tasks * config.steps * config.robot.substeps
    return {'tasks_per_second': tasks / elapsed, 'steps_per_second': steps / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--tasks', type=int, default=64)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--control-steps', type=int, default=2000)
    parser.add_argument('--json', type=Path,
                        default=Path(__file__).parent / 'results' / 'engines.json')
    options = parser.parse_args()
    rounds: dict[str, dict[str, list[dict]]] = {e: {'stepping': [], 'collection': []}
                                                for e in ENGINES}
    for round_ in range(options.rounds):
        for engine in ENGINES:
            rounds[engine]['stepping'].append(stepping(engine, options.control_steps))
            rounds[engine]['collection'].append(
                collection(engine, options.tasks, options.workers))
        print(f'round {round_ + 1}/{options.rounds} done', flush=True)
    best = {engine: {kind: max(runs, key=lambda r: next(iter(r.values())))
                     for kind, runs in kinds.items()} for engine, kinds in rounds.items()}
    print(f'\n{"engine":<10}{"steps/s (robot)":>17}{"steps/s (engine)":>18}'
          f'{"collection tasks/s":>20}{"steps/s":>12}')
    for engine, figures in best.items():
        step, collect = figures['stepping'], figures['collection']
        print(f'{engine:<10}{step["steps_per_second"]:>17,.0f}'
              f'{step["engine_steps_per_second"]:>18,.0f}'
              f'{collect["tasks_per_second"]:>20.2f}{collect["steps_per_second"]:>12,.0f}')
    ratio = (best['mujoco']['collection']['tasks_per_second']
             / best['pybullet']['collection']['tasks_per_second'])
    print(f'\nMuJoCo collects {ratio:.2f}x as many tasks per second as PyBullet '
          f'({options.workers} workers, {options.tasks} tasks, best of {options.rounds})')
    write_json(options.json, {'settings': vars(options) | {'json': str(options.json)},
                              'best': best, 'rounds': rounds,
                              'collection_ratio_mujoco_over_pybullet': ratio})


if __name__ == '__main__':
    main()
