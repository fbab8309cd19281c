"""``maml-ros-log-to-bag``: a robot's plain log (time, q, q̇, τ) as a bag maml-ros-replay reads.

    maml-ros-log-to-bag LOG BAG [--joints J1 J2 ...] [--checkpoint CKPT]
        [--command-topic /effort_controller/commands]

LOG is a CSV file (header: ``time``, ``position_1..n``, ``velocity_1..n``,
``effort_1..n``) or a ``.npz`` file (``time``, ``position``, ``velocity``, ``effort``);
s, rad, rad/s, N·m. BAG is written as an effort-controlled ros2_control robot records one,
at the checkpoint's control period: joint states, and the measured torque as each tick's
command (:mod:`maml_ros.ros.log_bag`). Then ``maml-ros-replay BAG`` adapts on a window of
it and judges the model on the rest. Exit status 2 for unusable input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from maml_ros.maml.checkpoint import CheckpointError
from maml_ros.model.trained_models import TrainedModels
from maml_ros.resources import shipped_checkpoint
from maml_ros.ros.bag import BagError
from maml_ros.ros.log_bag import LogError, PlainLog, write_log_bag


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('log', type=Path)
    parser.add_argument('bag', type=Path, help='the bag folder to create')
    parser.add_argument('--checkpoint', type=Path,
                        help="whose joints and control period (default: the shipped one)")
    parser.add_argument('--joints', nargs='+', help="the log's joints in column order "
                        "(default: the checkpoint's)")
    parser.add_argument('--joint-states', default='/joint_states')
    parser.add_argument('--command-topic', default='/effort_controller/commands')
    options = parser.parse_args(args)
    try:
        robot = TrainedModels.load(options.checkpoint or shipped_checkpoint()).formulation.robot
        joints = options.joints or list(robot.joints)
        log = PlainLog.load(options.log)
        ticks = write_log_bag(log, options.bag, joints=joints, period=robot.control_period,
                              joint_state_topic=options.joint_states,
                              command_topic=options.command_topic)
    except (LogError, BagError, CheckpointError) as error:
        print(f'maml-ros-log-to-bag: {error}', file=sys.stderr)
        return 2
    dropped = len(log.times) - len(log.without_repeats().times)
    print(f'{options.log}: {len(log.times)} samples over {log.times[-1] - log.times[0]:.2f} s '
          f'({dropped} repeated rows dropped) -> {ticks} ticks at '
          f'{1 / robot.control_period:g} Hz in {options.bag}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
