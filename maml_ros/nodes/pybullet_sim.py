"""``pybullet_sim``: the robot simulated by PyBullet (the engine training uses), on
ros2_control's topics.

The node's contract (joint states, commands, ``command_timeout``, ``~/reset``,
``dynamics.*``, ``/diagnostics``) is :mod:`maml_ros.ros.sim_node`'s; its own
parameter is ``gui``.
"""

from __future__ import annotations

from maml_ros.ros.params import ParamSpec
from maml_ros.ros.sim_node import SimNode
from maml_ros.ros.spin import spin_node
from maml_ros.sim import RobotConfig, SimRobot, make_robot

PYBULLET_PARAMETERS = [
    ParamSpec('gui', False, 'show the robot in a PyBullet window (needs a display)',
              read_only=True),
]


class PybulletSimNode(SimNode):
    """The simulated robot on PyBullet; see :mod:`maml_ros.ros.sim_node`."""

    def __init__(self, **kwargs) -> None:
        super().__init__('pybullet_sim', engine_parameters=PYBULLET_PARAMETERS, **kwargs)

    def make_robot(self, config: RobotConfig, value) -> SimRobot:
        return make_robot('pybullet', config=config, gui=value('gui'))


def main(args: list[str] | None = None) -> None:
    spin_node(PybulletSimNode, args, name='pybullet_sim')


if __name__ == '__main__':
    main()
