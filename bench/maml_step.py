"""Milliseconds per MAML meta-step: vmap vs per-task loop, second vs first order.

The shape of the robot problem: an MLP 28-256-256-7 (Panda: state + goal
features in, 7 joint commands out), 5 inner steps, 200 support and 200 query
transitions per task, meta-batches of 16/64/256 tasks. A meta-step is the
meta-loss, its backward pass and an Adam step. Also times ``MAML.adapt``
(5 steps on 200 transitions), the deployment path, and what exact
second-order gradients through ``nn.LayerNorm`` cost under vmap (PyTorch's
own batching rule is faster but wrong; ``maml_ros/maml/vmap_rules.py``). Runs
on the CPU, and on CUDA too when a GPU is present.

    python bench/maml_step.py [--batches 16 64 256] [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.functional import mse_loss

from maml_ros.maml import MAML
from maml_ros.maml.vmap_rules import ExactUnderVmap

from bench_common import machine

IN, HIDDEN, OUT = 28, 256, 7
SUPPORT = QUERY = 200
INNER_STEPS = 5


def policy_mlp(layer_norm: bool = False) -> nn.Module:
    norm = [nn.LayerNorm(HIDDEN)] if layer_norm else []
    return nn.Sequential(nn.Linear(IN, HIDDEN), nn.Tanh(), *norm, nn.Linear(HIDDEN, HIDDEN),
                         nn.Tanh(), nn.Linear(HIDDEN, OUT))


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_ms(fn, device: torch.device, repeats: int) -> list[float]:
    """Wall-clock milliseconds of ``fn()`` after one warm-up call, ``repeats`` times."""
    fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(1e3 * (time.perf_counter() - start))
    return times


def task_data(tasks: int, samples: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(tasks)
    x = torch.randn(tasks, samples, IN, generator=generator)
    y = torch.randn(tasks, samples, OUT, generator=generator)
    return x.to(device), y.to(device)


def meta_step_ms(tasks: int, *, first_order: bool, vectorize: bool, device: torch.device,
                 repeats: int, layer_norm: bool = False) -> float:
    """Median milliseconds of one meta-step (meta-loss, backward, Adam)."""
    torch.manual_seed(0)
    maml = MAML(policy_mlp(layer_norm), inner_lr=0.01, inner_steps=INNER_STEPS,
                first_order=first_order, vectorize=vectorize).to(device)
    optimizer = torch.optim.Adam(maml.parameters(), lr=1e-3)
    support, query = task_data(tasks, SUPPORT, device), task_data(tasks, QUERY, device)

    def step() -> None:
        optimizer.zero_grad()
        maml.meta_loss(support, query, mse_loss).backward()
        optimizer.step()

    return statistics.median(time_ms(step, device, repeats))


def adapt_ms(device: torch.device, repeats: int) -> dict[str, float]:
    """p50/p99 milliseconds of ``MAML.adapt``: 5 steps on 200 transitions."""
    maml = MAML(policy_mlp(), inner_lr=0.01, inner_steps=INNER_STEPS).to(device)
    x, y = task_data(1, SUPPORT, device)
    times = sorted(time_ms(lambda: maml.adapt((x[0], y[0]), mse_loss), device, repeats))
    return {'p50': statistics.median(times), 'p99': times[min(len(times) - 1,
                                                             int(0.99 * len(times)))]}


def gradient_error(device: torch.device, tasks: int = 16) -> dict[str, float]:
    """Relative error of the second- and first-order meta-gradients on ``device`` (float32,
    vmap) against the CPU's in float64: the figures are worth nothing if this is large."""
    errors = {}
    for first_order in (False, True):
        gradients = []
        for where, dtype in ((device, torch.float32), (torch.device('cpu'), torch.float64)):
            torch.manual_seed(0)
            maml = MAML(policy_mlp(), inner_lr=0.01, inner_steps=INNER_STEPS,
                        first_order=first_order).to(where, dtype)
            support, query = (tuple(t.to(dtype) for t in task_data(tasks, n, where))
                              for n in (SUPPORT, QUERY))
            maml.meta_loss(support, query, mse_loss).backward()
            gradients.append(torch.cat([p.grad.flatten().double().cpu()
                                        for p in maml.parameters()]))
        errors['first' if first_order else 'second'] = float(
            (gradients[0] - gradients[1]).norm() / gradients[1].norm())
    print(f'meta-gradient on {device} (float32) against the CPU in float64, {tasks} tasks: '
          f'relative error {errors["second"]:.1e} second order, {errors["first"]:.1e} first order')
    return errors


def layer_norm_cost(device: torch.device, batches: list[int], repeats: int) -> list[dict]:
    """Second-order meta-steps of the MLP with a LayerNorm: loop, vmap with PyTorch's
    (wrong) rule, vmap with the exact decomposition MAML uses."""
    print(f'\nsecond order with nn.LayerNorm({HIDDEN}) after the first layer, on {device}')
    print(f'{"tasks":>6} {"loop ms":>10} {"vmap, wrong":>12} {"vmap, exact":>12} {"cost":>7}')
    rows = []
    for tasks in batches:
        times = {}
        for name, vectorize, replacements in (('loop', False, ExactUnderVmap.replacements),
                                              ('wrong', True, {}),
                                              ('exact', True, ExactUnderVmap.replacements)):
            saved, ExactUnderVmap.replacements = ExactUnderVmap.replacements, replacements
            try:
                times[name] = meta_step_ms(tasks, first_order=False, vectorize=vectorize,
                                           device=device, repeats=repeats, layer_norm=True)
            finally:
                ExactUnderVmap.replacements = saved
        cost = times['exact'] / times['wrong'] - 1
        rows.append({'tasks': tasks, 'loop_ms': times['loop'], 'vmap_wrong_ms': times['wrong'],
                     'vmap_exact_ms': times['exact'], 'exact_cost': cost})
        print(f'{tasks:>6} {times["loop"]:>10.1f} {times["wrong"]:>12.1f} '
              f'{times["exact"]:>12.1f} {100 * cost:>+6.0f}%', flush=True)
    return rows


def run(device: torch.device, batches: list[int], repeats: int) -> dict:
    rows = []
    print(f'\nmeta-step on {device} ({torch.get_num_threads()} threads on CPU), '
          f'MLP {IN}-{HIDDEN}-{HIDDEN}-{OUT}, {INNER_STEPS} inner steps, '
          f'{SUPPORT}+{QUERY} samples/task')
    print(f'{"order":>7} {"tasks":>6} {"loop ms":>10} {"vmap ms":>10} {"speed-up":>9}')
    for first_order in (False, True):
        order = 'first' if first_order else 'second'
        for tasks in batches:
            loop = meta_step_ms(tasks, first_order=first_order, vectorize=False, device=device,
                                repeats=repeats)
            vmapped = meta_step_ms(tasks, first_order=first_order, vectorize=True,
                                   device=device, repeats=repeats)
            rows.append({'order': order, 'tasks': tasks, 'loop_ms': loop, 'vmap_ms': vmapped,
                         'speedup': loop / vmapped})
            print(f'{order:>7} {tasks:>6} {loop:>10.1f} {vmapped:>10.1f} {loop / vmapped:>8.2f}x',
                  flush=True)
    errors = gradient_error(device)
    adapt = adapt_ms(device, repeats=max(20, 10 * repeats))
    print(f'adapt: {INNER_STEPS} steps on {SUPPORT} transitions: p50 {adapt["p50"]:.2f} ms, '
          f'p99 {adapt["p99"]:.2f} ms')
    return {'device': str(device), 'meta_step': rows, 'adapt_ms': adapt,
            'gradient_relative_error': errors,
            'layer_norm': layer_norm_cost(device, batches, repeats)}


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batches', type=int, nargs='+', default=[16, 64, 256])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--json', type=Path, default=Path('bench/results/maml_step.json'))
    options = parser.parse_args(args)
    devices = [torch.device('cpu')]
    if torch.cuda.is_available():
        devices.append(torch.device('cuda'))
    results = {
        'machine': machine(),
        'runs': [run(device, options.batches, options.repeats) for device in devices],
    }
    options.json.parent.mkdir(parents=True, exist_ok=True)
    options.json.write_text(json.dumps(results, indent=2))
    print(f'\nwritten to {options.json}')


if __name__ == '__main__':
    main()
