"""rclpy works in this environment: a JointState crosses loopback DDS."""

import os
import time

import rclpy
import rclpy.executors
from rclpy.node import Node
from sensor_msgs.msg import JointState


def test_joint_state_round_trip_over_loopback_dds(private_ros_domain):
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = Node('smoke_test', context=context)
        assert node.get_parameter('use_sim_time').value is False
        received: list[JointState] = []
        node.create_subscription(JointState, 'joint_states', received.append, 10)
        publisher = node.create_publisher(JointState, 'joint_states', 10)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        sent = JointState(name=['panda_joint1', 'panda_joint2'], position=[0.5, -1.25],
                          velocity=[0.0, 2.0], effort=[])
        sent.header.stamp = node.get_clock().now().to_msg()
        deadline = time.monotonic() + 10.0
        while not received and time.monotonic() < deadline:
            publisher.publish(sent)
            executor.spin_once(timeout_sec=0.05)
        assert received, 'no JointState came back over DDS within 10 s'
        got = received[0]
        assert list(got.name) == ['panda_joint1', 'panda_joint2']
        assert list(got.position) == [0.5, -1.25]
        assert list(got.velocity) == [0.0, 2.0]
        assert got.header.stamp == sent.header.stamp
        assert context.get_domain_id() == private_ros_domain
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
