"""Simulation throughput: bare ``stepSimulation`` vs. full randomized collection.

Same worker processes, same run, 1 and 2 workers (see maml_ros/sim/throughput.py
for what each figure counts). Goal: collection >= 80% of bare stepping.

    python bench/sim_throughput.py [--rounds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from maml_ros.sim import measure_throughput


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--json', type=Path, default=Path('bench/results/sim_throughput.json'))
    options = parser.parse_args(args)
    rows = []
    print(f'{"workers":>7} {"bare":>10} {"bare free":>10} {"collection":>11} '
          f'{"ctrl steps/s":>13} {"vs free":>8} {"in physics":>11}   (physics steps/s)')
    for workers in options.workers:
        report = measure_throughput(workers=workers, rounds=options.rounds)
        rows.append({**dataclasses.asdict(report), 'ratio': report.ratio,
                     'control_steps_per_second': report.collection_control_steps_per_second})
        print(f'{workers:>7} {report.bare_steps_per_second:>10.0f} '
              f'{report.bare_free_steps_per_second:>10.0f} '
              f'{report.collection_steps_per_second:>11.0f} '
              f'{report.collection_control_steps_per_second:>13.0f} {report.ratio:>8.2f} '
              f'{report.physics_share:>11.2f}', flush=True)
    options.json.parent.mkdir(parents=True, exist_ok=True)
    options.json.write_text(json.dumps(rows, indent=2))
    print(f'written to {options.json}')


if __name__ == '__main__':
    main()
