"""Adaptation latency on the robot: inner steps x support size, p50 and p99.

The shipped checkpoint adapts to support data from a simulated robot it was
not trained on (a 500-step rollout of the meta-policy with exploration; the
first N transitions for smaller supports). Two figures per cell:

- ``maml``: ``MAML.adapt`` alone (the gradient steps);
- ``online``: ``AdaptivePolicy.adapt``, what the adapter node waits for: the
  hindsight relabelling, the gradient steps, the support loss before and after
  (the divergence guard) and the swap.

Each grid runs with 1 torch thread (the adapter node's default,
``torch_threads``) and with 2. Goal: 5 steps on 500 transitions <= 20 ms p50
on 2 cores.

Then the physics model (``maml_physics``, the adapter's default): the whole
adaptation (:func:`~maml_ros.online.adaptive_policy.adapt_weights`: the
regressors, the step with the cross-validated damping, the same step on each half
of the support to judge it on the other (:mod:`~maml_ros.model.held_out`), the
support loss before and after) on one core. Goal: 200 transitions <= 20 ms p50.

    python bench/adaptation_latency.py [--threads 1 2] [--repeats 50] [--json PATH]
"""

from __future__ import annotations

import argparse
import itertools
import time
from functools import partial
from pathlib import Path

import torch

from maml_ros.model.adaptation import maml_adapt
from maml_ros.model.physics_adaptation import PhysicsAdaptation
from maml_ros.model.trained_models import TrainedModels
from maml_ros.model.transitions import Transitions
from maml_ros.online.adaptive_policy import PHYSICS, AdaptivePolicy, adapt_weights
from maml_ros.resources import shipped_checkpoint
from maml_ros.sim import Dynamics, RolloutConfig, Task, run_task

from bench_common import percentiles, write_json

STEPS = (1, 5, 10)
SUPPORT = (100, 200, 500)
ROBOT = Dynamics(payload_mass=2.0, actuator_gain=0.8, joint_friction=0.3, joint_damping=0.2)


def timed_ms(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(1e3 * (time.perf_counter() - start))
    return samples


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--repeats', type=int, default=50)
    parser.add_argument('--json', type=Path,
                        default=Path('bench/results/adaptation_latency.json'))
    options = parser.parse_args(args)
    models = TrainedModels.load(shipped_checkpoint())
    models.warm_up()
    adapter = AdaptivePolicy(models=models)
    config = RolloutConfig(robot=models.formulation.robot, steps=max(SUPPORT),
                           exploration_std=0.02)
    rollout = run_task(Task(7, ROBOT), config=config, controller=adapter)
    rows = []
    print(f'{"threads":>7} {"steps":>5} {"support":>7} {"maml p50":>9} {"maml p99":>9} '
          f'{"online p50":>11} {"online p99":>11}   (ms)')
    for threads, steps, size in itertools.product(options.threads, STEPS, SUPPORT):
        torch.set_num_threads(threads)
        transitions = Transitions(rollout.states[:size], rollout.issued_commands[:size],
                                  rollout.next_states[:size])
        x, y = models.formulation.hindsight(transitions.states, transitions.commands,
                                            transitions.next_states)
        support = (torch.as_tensor(x, dtype=torch.float32),
                   torch.as_tensor(y, dtype=torch.float32))
        maml = timed_ms(partial(maml_adapt, models.learner, support, steps=steps),
                        options.repeats)
        online = timed_ms(partial(adapter.adapt, transitions, inner_steps=steps),
                          options.repeats)
        row = {'torch_threads': threads, 'inner_steps': steps, 'support': size,
               'maml_p50_ms': percentiles(maml, 50)[0], 'maml_p99_ms': percentiles(maml, 99)[0],
               'online_p50_ms': percentiles(online, 50)[0],
               'online_p99_ms': percentiles(online, 99)[0]}
        rows.append(row)
        print(f'{threads:>7} {steps:>5} {size:>7} {row["maml_p50_ms"]:>9.2f} '
              f'{row["maml_p99_ms"]:>9.2f} '
              f'{row["online_p50_ms"]:>11.2f} {row["online_p99_ms"]:>11.2f}')
    for goal in (r for r in rows if r['inner_steps'] == 5 and r['support'] == 500):
        p50 = goal['online_p50_ms']
        print(f'goal: 5 steps on 500 transitions <= 20 ms p50 ({goal["torch_threads"]} '
              f'threads): online p50 {p50:.2f} ms -> {"met" if p50 <= 20 else "missed"}')
    physics = physics_latency(models, rollout, options.repeats)
    write_json(options.json, {'robot': ROBOT.to_dict(), 'repeats': options.repeats,
                              'rows': rows, 'physics': physics})


def physics_latency(models: TrainedModels, rollout, repeats: int) -> list[dict]:
    """p50/p99 of one physics-model adaptation per support size, one torch thread."""
    torch.set_num_threads(1)
    initial = PhysicsAdaptation(models.formulation, models.physics).initial()
    rows = []
    print(f'\nphysics model, 1 thread: {"support":>7} {"p50":>7} {"p99":>7}   (ms)')
    for size in (25,) + SUPPORT:
        transitions = Transitions(rollout.states[:size], rollout.issued_commands[:size],
                                  rollout.next_states[:size])
        p50, p99 = percentiles(timed_ms(partial(adapt_weights, models, PHYSICS, initial,
                                                transitions, inner_steps=1, lr_scale=1.0),
                                        repeats), 50, 99)
        rows.append({'support': size, 'p50_ms': p50, 'p99_ms': p99})
        print(f'{"":>24} {size:>7} {p50:>7.2f} {p99:>7.2f}')
    goal = next(row for row in rows if row['support'] == 200)['p50_ms']
    print(f'goal: 200 transitions <= 20 ms p50 on one core: {goal:.2f} ms -> '
          f'{"met" if goal <= 20 else "missed"}')
    return rows


if __name__ == '__main__':
    main()
