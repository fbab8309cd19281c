"""Start maml_ros: the simulated robot (optional), the meta-trainer and the adapter.

    ros2 launch maml_ros adapt.launch.py [use_sim:=true] [config:=PATH]
        [checkpoint:=PATH] [log_level:=info]

Every node reads the same parameter file (``config/adapt.yaml`` by default).
With ``use_sim:=false`` the adapter talks to the real robot's
``/joint_states`` and ``<controller>/commands`` (a ros2_control forward
command controller). The adapter is a lifecycle node whose ``autostart``
parameter takes it to active by itself. Without launch_ros (pip-only
installs), ``maml-ros-bringup`` starts the same nodes with the same file.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    config = LaunchConfiguration('config')
    ros_arguments = ['--log-level', LaunchConfiguration('log_level')]
    return LaunchDescription([
        DeclareLaunchArgument('use_sim', default_value='true',
                              description='start pybullet_sim in place of the real robot'),
        DeclareLaunchArgument(
            'config', description='parameter file of every node',
            default_value=PathJoinSubstitution(
                [FindPackageShare('maml_ros'), 'config', 'adapt.yaml'])),
        DeclareLaunchArgument('checkpoint', default_value='',
                              description='policy checkpoint; empty: the shipped one'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='debug, info, warn, error or fatal'),
        Node(package='maml_ros', executable='pybullet_sim', name='pybullet_sim',
             parameters=[config], ros_arguments=ros_arguments, output='screen',
             condition=IfCondition(LaunchConfiguration('use_sim'))),
        Node(package='maml_ros', executable='meta_trainer', name='meta_trainer',
             parameters=[config], ros_arguments=ros_arguments, output='screen'),
        LifecycleNode(package='maml_ros', executable='adapter', name='adapter', namespace='',
                      parameters=[config, {'checkpoint': LaunchConfiguration('checkpoint')}],
                      ros_arguments=ros_arguments, output='screen'),
    ])
