"""What the launch file (and ``maml-ros-bringup``) give each node, without launch_ros.

One rule for which checkpoint runs: a choice made explicitly (the
``checkpoint`` launch argument, or a parameter file) wins over the shipped
default. The launch argument is passed only when it is set, after the
parameter file, to both ``meta_trainer`` and the adapter, so that they agree;
an empty argument leaves the file's value (or the default) alone. Overrides
must name the node (rcl lets a file's section of the node win over ``/**``
sections and ``-p`` arguments, whatever their order).
"""

from __future__ import annotations

CHECKPOINT_NODES = ('meta_trainer', 'adapter')  # the nodes with a checkpoint parameter
SIMULATORS = ('pybullet', 'mujoco')  # the sim nodes: <simulator>_sim


def launched_nodes(*, simulator: str = 'pybullet', use_sim: bool = True) -> list[str]:
    """The nodes the launch file starts: the simulator's (unless a real robot is used),
    ``meta_trainer`` and the adapter.

    :raises ValueError: for an unknown simulator.
    """
    if simulator not in SIMULATORS:
        raise ValueError(f'unknown simulator {simulator!r}; choose from {list(SIMULATORS)}')
    return [f'{simulator}_sim'] * use_sim + ['meta_trainer', 'adapter']


def node_parameters(node: str, *, config: str, checkpoint: str = '') -> list[str | dict]:
    """The ``parameters`` of ``node``: the parameter file, then the explicit overrides.

    :param node: the node's name.
    :param config: the parameter file every node reads.
    :param checkpoint: the launch argument; empty: not chosen here.
    """
    overrides: dict[str, str] = {}
    if node == 'meta_trainer':
        overrides['config'] = config  # it trains with the settings of the file it was given
    if checkpoint and node in CHECKPOINT_NODES:
        overrides['checkpoint'] = checkpoint
    return [config, overrides] if overrides else [config]


def log_level_arguments(node: str, level: str) -> list[str]:
    """``--ros-args`` that set the log level of ``node``'s own logger only (``--log-level
    debug`` alone makes rcl and the middleware print thousands of lines a second)."""
    return ['--log-level', f'{node}:={level}']
