"""Rollout collection: the local process pool against Ray, same tasks, same run.

- ``local pool`` and ``ray local``: training's collection (random dynamics and
  references, the nominal controller, exploration, 500 steps per task) of the same
  ``--tasks`` tasks with ``--workers`` processes or actors on this machine, workers warm;
  tasks per second, best of ``--rounds`` interleaved rounds.
- ``ray, 2 nodes``: a two-node cluster on loopback (a head and a worker node, one
  CPU each, ``ray.cluster_utils.Cluster``), the same tasks: the chunks each node ran.
- ``overhead``: milliseconds per call of an actor method that does nothing (the cost
  Ray adds per chunk; one chunk holds several tasks).

    python bench/ray_collection.py [--tasks 64] [--workers 2] [--rounds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from maml_ros.sim import RolloutCollector, RolloutConfig
from maml_ros.training.config import TRAINING_RANGES
from maml_ros.training.ray_collection import RayCollector

from bench_common import write_json

CONFIG = RolloutConfig(ranges=TRAINING_RANGES)


def tasks_per_second(collector, tasks: int, seed: int) -> float:
    start = time.perf_counter()
    collector.collect(range(seed, seed + tasks))
    return tasks / (time.perf_counter() - start)


@ray.remote(num_cpus=0)
class Nothing:
    def call(self) -> None:
        return None


def overhead_ms(calls: int = 500) -> float:
    """Milliseconds per actor call that does nothing, calls in sequence."""
    actor = Nothing.remote()
    ray.get(actor.call.remote())
    start = time.perf_counter()
    for _ in range(calls):
        ray.get(actor.call.remote())
    ray.kill(actor)
    return 1e3 * (time.perf_counter() - start) / calls


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--tasks', type=int, default=64)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--json', type=Path, default=Path('bench/results/ray_collection.json'))
    options = parser.parse_args(args)
    quiet = lambda line: None  # noqa: E731
    rates: dict[str, list[float]] = {'local pool': [], 'ray local': []}
    with RolloutCollector(workers=options.workers, config=CONFIG) as pool, \
            RayCollector(address='local', workers=options.workers, config=CONFIG,
                         log=quiet) as on_ray:
        for collector in (pool, on_ray):
            collector.collect(range(options.workers))  # start and warm the workers
        for round_ in range(options.rounds):
            for name, collector in (('local pool', pool), ('ray local', on_ray)):
                rates[name].append(tasks_per_second(collector, options.tasks,
                                                    1000 * (round_ + 1)))
                print(f'round {round_ + 1}: {name:<10} {rates[name][-1]:6.2f} tasks/s',
                      flush=True)
        overhead = overhead_ms()
    print(f'ray: {overhead:.2f} ms per actor call that does nothing')

    cluster = Cluster(initialize_head=True, head_node_args={
        'num_cpus': 1, 'node_ip_address': '127.0.0.2', 'include_dashboard': False})
    cluster.add_node(num_cpus=1, node_ip_address='127.0.0.2')
    try:
        with RayCollector(address=cluster.address, config=CONFIG, log=quiet) as two_nodes:
            two_nodes.collect(range(2))
            two_nodes.chunks_by_node.clear()
            two = [tasks_per_second(two_nodes, options.tasks, 1000 * (r + 1))
                   for r in range(options.rounds)]
            per_node = sorted(two_nodes.chunks_by_node.values())
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(f'ray, 2 nodes of 1 CPU: {max(two):.2f} tasks/s; chunks per node {per_node}')

    best = {name: max(values) for name, values in rates.items()}
    print(f'\n{"backend":<24} {"tasks/s":>8} {"vs pool":>8}')
    for name, rate in (*best.items(), ('ray, 2 nodes of 1 CPU', max(two))):
        print(f'{name:<24} {rate:>8.2f} {rate / best["local pool"]:>7.2f}x')
    write_json(options.json, {
        'tasks': options.tasks, 'workers': options.workers, 'rounds': options.rounds,
        'tasks_per_second': {**rates, 'ray two nodes': two}, 'best': best,
        'two_node_chunks_per_node': per_node, 'ray_call_overhead_ms': overhead})


if __name__ == '__main__':
    main()
