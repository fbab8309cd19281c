"""``maml-ros-check-robot``: can this robot description work? Checked before anything trains.

    maml-ros-check-robot --config my_robot.yaml [--no-closed-loop]

Reads the robot (``/**``), the randomization ranges and the reference settings
(``meta_trainer``) of a ROS 2 parameter YAML, then prints the controlled
joints (limits, smallest inertia, derived gain) and one PASS, WARN or FAIL
line per check with what to change (:mod:`maml_ros.sim.robot_check`). Exits 0
when every check passes, 1 when one fails, 2 when the file cannot be read.
``maml-ros-train``, ``meta_trainer`` and the adapter's configure run the same
checks and refuse a robot that fails them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from maml_ros.sim.robot_check import check_robot
from maml_ros.training.config import load_train_config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', type=Path, required=True, help='ROS 2 parameter YAML')
    parser.add_argument('--no-closed-loop', action='store_true',
                        help='only the description checks (no simulation)')
    return parser.parse_args(argv)


def main(args: list[str] | None = None) -> int:
    options = parse_args(args)
    try:
        config = load_train_config(options.config)
    except (OSError, ValueError, TypeError) as error:
        print(f'maml-ros-check-robot: {error}', file=sys.stderr)
        return 2
    report = check_robot(config.robot, ranges=config.ranges, reference=config.reference,
                         closed_loop=not options.no_closed_loop)
    print('\n'.join(report.lines()))
    return 0 if report.passed else 1


if __name__ == '__main__':
    raise SystemExit(main())
