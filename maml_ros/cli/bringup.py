"""``maml-ros-bringup``: the launch file's nodes for pip-only installs.

Starts each node in its own process with the same parameter YAML, as
``ros2 launch maml_ros adapt.launch.py`` would (physics and the control loop
must not share one interpreter lock), and stops them all on Ctrl-C or as soon
as one of them exits. Ctrl-C or SIGTERM stops them all, once.

    maml-ros-bringup [--config PATH] [--checkpoint PATH] [--simulator pybullet|mujoco]
        [--no-sim]

``--checkpoint`` is the launch file's ``checkpoint:=``: it goes to
``meta_trainer`` and the adapter and wins over the parameter file;
``--simulator`` is its ``simulator:=`` and ``--no-sim`` its ``use_sim:=false``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from maml_ros.resources import default_config
from maml_ros.ros.launch_params import SIMULATORS, launched_nodes, node_parameters
from maml_ros.stop_signals import ignore_signals, stop_on_signals

DEFAULT_CONFIG = default_config()


def node_command(node: str, config: Path, folder: Path, checkpoint: str = '') -> list[str]:
    """How to start one node (``python -m maml_ros.nodes.<node>``) with the parameters the
    launch file gives it; overrides go into a file of ``folder`` under the node's name."""
    arguments = []
    for parameters in node_parameters(node, config=str(config), checkpoint=checkpoint):
        if not isinstance(parameters, str):
            path = folder / f'{node}.yaml'
            path.write_text(yaml.safe_dump({node: {'ros__parameters': parameters}}))
            parameters = str(path)
        arguments += ['--params-file', parameters]
    return [sys.executable, '-m', f'maml_ros.nodes.{node}', '--ros-args', *arguments]


class Bringup:
    """Node processes that live and die together.

    :param nodes: node module names under ``maml_ros.nodes``.
    :param config: the parameter YAML every node gets.
    :param env: environment for the processes (default: this one).
    :param checkpoint: the checkpoint to run (the launch argument); empty: the file's.
    """

    def __init__(self, *, nodes: Sequence[str], config: Path,
                 env: dict[str, str] | None = None, checkpoint: str | Path = '') -> None:
        if not config.is_file():
            raise FileNotFoundError(f'parameter file {config} does not exist')
        self._overrides = tempfile.TemporaryDirectory(prefix='maml_ros_bringup_')
        folder = Path(self._overrides.name)
        self.processes = {node: subprocess.Popen(node_command(node, config, folder,
                                                              str(checkpoint)), env=env)
                          for node in nodes}

    def exited(self) -> dict[str, int]:
        """Nodes that have exited, with their return codes."""
        return {node: p.returncode for node, p in self.processes.items()
                if p.poll() is not None}

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT every node (as Ctrl-C would), then SIGKILL what is left after ``timeout``."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._overrides.cleanup()


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', type=Path, default=DEFAULT_CONFIG)
    parser.add_argument('--checkpoint', default='',
                        help='checkpoint to run (wins over the parameter file)')
    parser.add_argument('--simulator', choices=SIMULATORS, default='pybullet',
                        help='the engine that simulates the robot (default: pybullet)')
    parser.add_argument('--no-sim', action='store_true', help='a real robot: no simulator')
    options = parser.parse_args(args)
    if os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE') is None:
        print('maml-ros-bringup: ROS_AUTOMATIC_DISCOVERY_RANGE is not set; DDS discovery '
              'may leave this machine (set it to LOCALHOST to keep it here)', file=sys.stderr)
    nodes = launched_nodes(simulator=options.simulator, use_sim=not options.no_sim)
    stop_on_signals()
    try:
        bringup = Bringup(nodes=nodes, config=options.config, checkpoint=options.checkpoint)
    except FileNotFoundError as error:
        print(f'maml-ros-bringup: {error}', file=sys.stderr)
        return 2
    try:
        while not bringup.exited():
            time.sleep(0.2)
        print(f'maml-ros-bringup: {bringup.exited()} exited; stopping the others',
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        ignore_signals()
        bringup.stop()


if __name__ == '__main__':
    raise SystemExit(main())
