"""Peak memory of a second-order MAML meta-step against meta-batch size and inner steps.

The problem of ``maml_step.py`` (MLP 28-256-256-7, 200 + 200 samples per
task, vmap). Each configuration runs in a fresh process: its peak RSS
(``VmHWM``) during one meta-step (meta-loss, backward, Adam) minus its RSS just
before, so the figure is what the meta-step itself needs. On CUDA (when a GPU
is present) ``torch.cuda.max_memory_allocated`` is reported the same way.

    python bench/meta_step_memory.py [--batches 16 64 256] [--steps 1 5 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from torch.nn.functional import mse_loss

from maml_ros.maml import MAML

from bench_common import write_json
from maml_step import QUERY, SUPPORT, policy_mlp, task_data


def rss_mb(field: str) -> float:
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(f'{field}:'):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f'no {field} in /proc/self/status')


def one_meta_step(tasks: int, steps: int, device: str) -> dict[str, float]:
    """Run in a fresh process: the memory one meta-step needs (MB)."""
    device = torch.device(device)
    torch.manual_seed(0)
    maml = MAML(policy_mlp(), inner_lr=0.01, inner_steps=steps, first_order=False).to(device)
    optimizer = torch.optim.Adam(maml.parameters(), lr=1e-3)
    support, query = task_data(tasks, SUPPORT, device), task_data(tasks, QUERY, device)
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    baseline = rss_mb('VmRSS')
    optimizer.zero_grad()
    maml.meta_loss(support, query, mse_loss).backward()
    optimizer.step()
    result = {'peak_rss_increase_mb': rss_mb('VmHWM') - baseline}
    if device.type == 'cuda':
        torch.cuda.synchronize()
        result['cuda_peak_mb'] = (torch.cuda.max_memory_allocated() - before) / 2**20
    return result


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batches', type=int, nargs='+', default=[16, 64, 256])
    parser.add_argument('--steps', type=int, nargs='+', default=[1, 5, 10])
    parser.add_argument('--json', type=Path, default=Path('bench/results/meta_step_memory.json'))
    parser.add_argument('--child', nargs=3, metavar=('TASKS', 'STEPS', 'DEVICE'),
                        help=argparse.SUPPRESS)
    options = parser.parse_args(args)
    if options.child:
        tasks, steps, device = options.child
        print(json.dumps(one_meta_step(int(tasks), int(steps), device)))
        return
    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    rows = []
    print(f'second-order meta-step, MLP 28-256-256-7, {SUPPORT}+{QUERY} samples per task')
    print(f'{"device":>6} {"tasks":>6} {"steps":>6} {"peak RSS +MB":>13} {"CUDA peak MB":>13}')
    for device in devices:
        for tasks in options.batches:
            for steps in options.steps:
                output = subprocess.run(
                    [sys.executable, __file__, '--child', str(tasks), str(steps), device],
                    check=True, capture_output=True, text=True).stdout
                row = {'device': device, 'tasks': tasks, 'inner_steps': steps,
                       **json.loads(output.strip().splitlines()[-1])}
                rows.append(row)
                cuda = row.get('cuda_peak_mb')
                print(f'{device:>6} {tasks:>6} {steps:>6} {row["peak_rss_increase_mb"]:>13.0f} '
                      f'{"-" if cuda is None else f"{cuda:.0f}":>13}', flush=True)
    write_json(options.json, {'rows': rows})


if __name__ == '__main__':
    main()
