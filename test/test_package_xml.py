"""Every dependency key in package.xml resolves with rosdep (issue: `rosdep install` failed)."""

import xml.etree.ElementTree as ElementTree
from pathlib import Path

# Keys checked against ros/rosdistro's rosdep files (2026-08) and the Jazzy packages this one
# uses. A key not listed here must be looked up there before it is added to package.xml.
ROSDEP_KEYS = {'python3-torch', 'python3-pybullet-pip', 'python3-yaml', 'python3-numpy',
               'python3-tqdm', 'python3-matplotlib', 'python3-pytest', 'python3-hypothesis',
               'python3-mujoco-pip', 'python3-rosbags-pip', 'python3-onnxruntime-pip'}
ROS_PACKAGES = {'rclpy', 'sensor_msgs', 'std_msgs', 'std_srvs', 'trajectory_msgs',
                'diagnostic_msgs', 'lifecycle_msgs', 'launch', 'launch_ros',
                'pinocchio'}  # the rigid-body library, a ROS package (pip: pin)


def test_every_dependency_key_resolves():
    package = ElementTree.parse(Path(__file__).resolve().parents[1] / 'package.xml').getroot()
    keys = {element.text.strip() for element in package
            if element.tag.endswith('depend') and element.text}
    assert keys, 'package.xml declares no dependencies'
    assert keys <= ROSDEP_KEYS | ROS_PACKAGES, keys - ROSDEP_KEYS - ROS_PACKAGES
