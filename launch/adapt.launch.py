"""Start maml_ros: the simulated robot (optional), the meta-trainer and the adapter.

    ros2 launch maml_ros adapt.launch.py [use_sim:=true] [simulator:=pybullet|mujoco]
        [config:=PATH] [checkpoint:=PATH] [log_level:=info]

Every node reads the same parameter file (``config/adapt.yaml`` by default).
Which checkpoint runs: ``checkpoint:=PATH`` when given (to the meta-trainer and
the adapter both), else the file's ``checkpoint`` values, else the shipped one
(:mod:`maml_ros.ros.launch_params`). ``log_level`` applies to these nodes'
own loggers, not to rcl or the middleware. With ``use_sim:=false`` the adapter
talks to the real robot's ``/joint_states`` and ``<controller>/commands`` (a
ros2_control forward command controller); otherwise ``simulator`` chooses the
engine that plays the robot (``pybullet_sim``, the engine of training, or
``mujoco_sim``). The adapter is a lifecycle node
whose ``autostart`` parameter takes it to active by itself. Without launch_ros
(pip-only installs), ``maml-ros-bringup`` starts the same nodes with the same
file.
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import evaluate_condition_expression
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

from maml_ros.ros.launch_params import (
    SIMULATORS,
    launched_nodes,
    log_level_arguments,
    node_parameters,
)


def nodes(context: LaunchContext) -> list:
    """The nodes, with the launch arguments' values (an empty one chooses nothing)."""
    value = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    config, checkpoint, level = value('config'), value('checkpoint'), value('log_level')

    def options(name: str) -> dict:
        # With a namespace, launch_ros writes the overrides for this node by name: a '/**'
        # section would lose to the parameter file's section of the node.
        return {'package': 'maml_ros', 'executable': name, 'name': name, 'namespace': '',
                'output': 'screen', 'ros_arguments': log_level_arguments(name, level),
                'parameters': node_parameters(name, config=config, checkpoint=checkpoint)}

    use_sim = evaluate_condition_expression(context, [LaunchConfiguration('use_sim')])
    return [(LifecycleNode if name == 'adapter' else Node)(**options(name))
            for name in launched_nodes(simulator=value('simulator'), use_sim=use_sim)]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument('use_sim', default_value='true',
                              description='start a simulated robot in place of the real one'),
        DeclareLaunchArgument('simulator', default_value='pybullet',
                              choices=list(SIMULATORS),
                              description='the engine that simulates the robot: pybullet '
                              "(training's) or mujoco"),
        DeclareLaunchArgument(
            'config', description='parameter file of every node',
            default_value=PathJoinSubstitution(
                [FindPackageShare('maml_ros'), 'config', 'adapt.yaml'])),
        DeclareLaunchArgument('checkpoint', default_value='',
                              description='policy checkpoint; empty: the parameter file\'s, '
                              'else the shipped one'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='debug, info, warn, error or fatal (these nodes only)'),
        OpaqueFunction(function=nodes),
    ])
