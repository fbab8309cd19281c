"""``maml-ros-train``: meta-train a policy across randomized simulations of a robot.

    maml-ros-train --config config/adapt.yaml --out runs/panda.safetensors \\
        [--device cuda] [--workers N] [--ray local|auto|HOST:PORT] [--seed S] [--force]

``--ray`` collects the rollouts on Ray (``pip install .[ray]``): ``local``
starts a private Ray on this machine, ``auto`` joins the cluster that
``ray start --head`` started here, ``HOST:PORT`` the one at that address.

It first checks the robot as ``maml-ros-check-robot`` does and refuses to train
one that fails (``--force`` trains anyway).

Writes the checkpoint, ``<out>.csv`` (validation log) and ``<out>.png``
(learning curves). Settings come from the ``meta_trainer`` section of the
YAML; ``--set name=value`` overrides any of them (e.g. ``--set tasks=500``).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import yaml

from maml_ros.sim.robot_check import check_robot
from maml_ros.stop_signals import stop_on_signals
from maml_ros.training.collector import CollectionError
from maml_ros.training.config import load_train_config
from maml_ros.training.meta_train import meta_train


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', type=Path, required=True, help='ROS 2 parameter YAML')
    parser.add_argument('--out', type=Path, required=True, help='checkpoint to write')
    parser.add_argument('--device', choices=['cpu', 'cuda'], help='where meta-steps run')
    parser.add_argument('--workers', type=int, help='rollout worker processes')
    parser.add_argument('--ray', metavar='ADDRESS',
                        help='collect on Ray: local, auto or HOST:PORT of a running cluster')
    parser.add_argument('--seed', type=int)
    parser.add_argument('--force', action='store_true',
                        help='train even when the robot check fails')
    parser.add_argument('--set', action='append', default=[], metavar='NAME=VALUE',
                        help='override one training setting (YAML value syntax)')
    return parser.parse_args(argv)


def main(args: list[str] | None = None) -> int:
    options = parse_args(args)
    overrides = {'device': options.device, 'workers': options.workers, 'seed': options.seed,
                 'ray_address': options.ray}
    for item in options.set:
        name, separator, value = item.partition('=')
        if not separator:
            print(f'--set needs NAME=VALUE, got {item!r}', file=sys.stderr)
            return 2
        overrides[name.strip()] = yaml.safe_load(value)
    try:
        config = load_train_config(options.config, **overrides)
    except (OSError, ValueError, TypeError) as error:
        print(f'maml-ros-train: {error}', file=sys.stderr)
        return 2
    if config.device.startswith('cuda'):
        import torch
        if not torch.cuda.is_available():
            print('maml-ros-train: --device cuda but no CUDA device is available',
                  file=sys.stderr)
            return 2
    if config.ray_address and importlib.util.find_spec('ray') is None:
        print('maml-ros-train: --ray needs Ray, an optional extra: pip install .[ray]',
              file=sys.stderr)
        return 2
    report = check_robot(config.robot, ranges=config.ranges, reference=config.reference)
    print('\n'.join(report.lines()))
    if not report.passed and not options.force:
        print('maml-ros-train: the robot check failed (above); fix the configuration, or '
              'train anyway with --force', file=sys.stderr)
        return 1
    stop_on_signals()  # Ctrl-C or SIGTERM: the workers (and a local Ray) are stopped
    try:
        meta_train(config, out=options.out)
    except KeyboardInterrupt:
        print('maml-ros-train: stopped; the checkpoint, if any, is the best validated before',
              file=sys.stderr)
        return 130
    except CollectionError as error:  # Ray could not be joined, or lost every worker
        print(f'maml-ros-train: {error}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
