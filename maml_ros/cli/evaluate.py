"""``maml-ros-evaluate``: closed-loop tracking of every method on held-out robots.

    maml-ros-evaluate --checkpoint PATH [--dynamics name=value,...] [--tasks N]
        [--support 200 [25 50 ...]] [--steps 5] [--seed S] [--engine pybullet|mujoco]
        [--json OUT] [--plot OUT]

With ``--dynamics`` it evaluates those exact dynamics; otherwise ``--tasks``
robots drawn inside the training ranges and as many beyond them (seeded),
reported apart. Several ``--support`` sizes sweep them (the same robots for
each). Prints a table of tracking RMSE (rad) per method and group: its ratio
to ``true_model`` and on how many robots it beats ``sysid``. ``--engine mujoco``
simulates the evaluated robots with MuJoCo (its own joint, friction and actuator
models) instead of PyBullet, which the checkpoint was trained in: sim-to-sim.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import yaml

from maml_ros.evaluation.tracking import METHODS, EvalSettings, evaluate_tasks, summarize
from maml_ros.maml.checkpoint import CheckpointError
from maml_ros.model.trained_models import TrainedModels
from maml_ros.sim import ENGINES, Dynamics, InverseDynamicsModel


def parse_dynamics(text: str) -> Dynamics:
    """``payload_mass=3,actuator_gain=0.6`` -> ``Dynamics`` (values in YAML syntax)."""
    values = {}
    for item in filter(None, (part.strip() for part in text.split(','))):
        name, separator, value = item.partition('=')
        if not separator:
            raise ValueError(f'--dynamics needs name=value items, got {item!r}')
        values[name.strip()] = yaml.safe_load(value)
    return Dynamics.from_dict(values)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', type=Path, required=True)
    parser.add_argument('--dynamics', help='exact dynamics, e.g. payload_mass=3,actuator_gain=0.6')
    parser.add_argument('--tasks', type=int, default=10, help='robots per group (default 10)')
    parser.add_argument('--groups', nargs='+', default=['in_range', 'out_of_range'],
                        choices=GROUPS, help='which groups of robots (default: in and out of '
                        'range)')
    parser.add_argument('--support', type=int, nargs='+', default=[200],
                        help='support transitions (several: a sweep)')
    parser.add_argument('--steps', type=int, default=5, help='adaptation steps')
    parser.add_argument('--track-steps', type=int, default=500, help='scored control steps')
    parser.add_argument('--methods', nargs='+', choices=METHODS,
                        help='default: all (maml_physics where the checkpoint has one)')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--engine', choices=ENGINES, default='pybullet',
                        help='the physics engine of the evaluated robots (default: pybullet, '
                        "training's)")
    parser.add_argument('--workers', type=int)
    parser.add_argument('--json', type=Path, help='write the results here')
    parser.add_argument('--plot', type=Path, help='write a PNG of tracking before/after here')
    return parser.parse_args(argv)


GROUPS = ('in_range', 'out_of_range', 'delay_and_lag')


def robot_groups(models: TrainedModels, options: argparse.Namespace) -> dict[str, list[Dynamics]]:
    """The robots of each group, drawn from one seeded stream in a fixed order: ``in_range``
    (inside the training ranges), ``out_of_range`` (every factor pushed beyond),
    ``delay_and_lag`` (inside, with 1-2 steps of delay and a lag of at least 5 ms)."""
    if options.dynamics:
        return {'given': [parse_dynamics(options.dynamics)]}
    description = InverseDynamicsModel.shared(models.formulation.robot).description
    sizes = {'n_joints': description.n_joints, 'n_links': description.n_links}
    rng = np.random.default_rng(options.seed)
    ranges = models.ranges
    lag = ranges.bounds('actuator_lag', description.n_joints)
    delayed = dataclasses.replace(ranges, latency_steps=(1, 2), actuator_lag=tuple(
        tuple(np.maximum(bound, 0.005).tolist()) for bound in lag))
    draw = {'in_range': lambda: ranges.sample(rng, **sizes),
            'out_of_range': lambda: ranges.sample_beyond(rng, **sizes),
            'delay_and_lag': lambda: delayed.sample(rng, **sizes)}
    robots = {group: [draw[group]() for _ in range(options.tasks)] for group in GROUPS}
    return {group: robots[group] for group in options.groups}


def print_table(name: str, results: list[dict[str, dict]]) -> dict[str, dict[str, float]]:
    """Per method: mean RMSE, its ratio to ``true_model`` (the floor), on how many robots
    it beats ``sysid``, the adaptation time, and on how many robots the loop rolled an
    adaptation back; returns the summary, ``beats_sysid`` and ``rolled_back_robots`` added."""
    summary = summarize(results)
    floor = summary.get('true_model', {}).get('rmse')
    print(f'\n{name} ({len(results)} robots)')
    print(f'{"method":<22}{"RMSE (rad)":>12}{"/ true_model":>14}{"beats sysid":>13}'
          f'{"adapt ms":>10}{"rolled back":>13}')
    for method, figures in summary.items():
        ratio = f'{figures["rmse"] / floor:.1f}x' if floor else '-'
        beats = '-'
        if 'sysid' in summary and method != 'sysid':
            figures['beats_sysid'] = sum(r[method]['rmse'] < r['sysid']['rmse'] for r in results)
            beats = f'{figures["beats_sysid"]}/{len(results)}'
        adapt = f'{figures["adapt_ms"]:.1f}' if 'adapt_ms' in figures else '-'
        rolled = '-'
        if 'rolled_back' in figures:
            figures['rolled_back_robots'] = sum(r[method].get('rolled_back', 0) > 0
                                                for r in results)
            rolled = f'{figures["rolled_back_robots"]}/{len(results)}'
        print(f'{method:<22}{figures["rmse"]:>12.4f}{ratio:>14}{beats:>13}{adapt:>10}'
              f'{rolled:>13}')
    return summary


def main(args: list[str] | None = None) -> int:
    options = parse_args(args)
    try:
        models = TrainedModels.load(options.checkpoint)
        methods = options.methods or [method for method in METHODS
                                      if method != 'maml_physics' or models.physics is not None]
        if 'maml_physics' in methods and models.physics is None:
            raise ValueError(f'{options.checkpoint} has no physics model: retrain it, or leave '
                             'maml_physics out of --methods')
        groups = robot_groups(models, options)
        sweep = {size: EvalSettings(support_size=size, inner_steps=options.steps,
                                    track_steps=options.track_steps, methods=tuple(methods),
                                    engine=options.engine)
                 for size in options.support}
    except (CheckpointError, ValueError) as error:
        print(f'maml-ros-evaluate: {error}', file=sys.stderr)
        return 2
    report: dict = {}
    for size, settings in sweep.items():
        for group, robots in groups.items():
            results = evaluate_tasks(models, robots, seed=options.seed, settings=settings,
                                     workers=options.workers)
            name = group if len(sweep) == 1 else f'{group}, support {size}'
            summary = print_table(name, results)
            report[name] = {'summary': summary, 'support': size, 'tasks': [
                {'dynamics': d.to_dict(), **r} for d, r in zip(robots, results, strict=True)]}
    main_group = next(iter(report))
    settings = sweep[options.support[0]]
    output = {**report[main_group]['summary'], 'groups': report,
              'settings': {'support': options.support, 'steps': options.steps,
                           'seed': options.seed, 'checkpoint': str(options.checkpoint),
                           'engine': options.engine}}
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(output, indent=2))
    if options.plot:
        from maml_ros.evaluation.plots import plot_tracking
        plot_tracking(options.plot, models, next(iter(groups.values()))[0], settings=settings,
                      seed=options.seed)
        print(f'plot written to {options.plot}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
