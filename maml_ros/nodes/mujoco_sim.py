"""``mujoco_sim``: the robot simulated by MuJoCo, on ros2_control's topics: a second engine
plays the real robot, the policy trained in PyBullet meets joint, friction and actuator
models it has not seen (sim-to-sim).

The node's contract (joint states, commands, ``command_timeout``, ``~/reset``,
``dynamics.*``, ``/diagnostics``) is :mod:`maml_ros.ros.sim_node`'s, the same
as ``pybullet_sim``'s. What MuJoCo simulates differently is listed in
:mod:`maml_ros.sim.mujoco_robot`; its own parameter is ``armature``, the rotor
inertia the URDF does not state.
"""

from __future__ import annotations

from maml_ros.ros.params import ParamSpec
from maml_ros.ros.sim_node import SimNode
from maml_ros.ros.spin import spin_node
from maml_ros.sim import RobotConfig, SimRobot, make_robot

MUJOCO_PARAMETERS = [
    ParamSpec('armature', [0.0], 'rotor inertia reflected to each joint (kg*m^2): one value '
              'for every joint, or one per joint', read_only=True),
]


class MujocoSimNode(SimNode):
    """The simulated robot on MuJoCo; see :mod:`maml_ros.ros.sim_node`."""

    def __init__(self, **kwargs) -> None:
        super().__init__('mujoco_sim', engine_parameters=MUJOCO_PARAMETERS, **kwargs)

    def make_robot(self, config: RobotConfig, value) -> SimRobot:
        armature = list(value('armature'))
        return make_robot('mujoco', config=config,
                          armature=armature[0] if len(armature) == 1 else armature)


def main(args: list[str] | None = None) -> None:
    spin_node(MujocoSimNode, args, name='mujoco_sim')


if __name__ == '__main__':
    main()
