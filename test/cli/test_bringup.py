"""maml-ros-bringup's process group: nodes in their own processes, stopped together."""

import os
import signal
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from maml_ros.cli.bringup import DEFAULT_CONFIG, Bringup, node_command
from maml_ros.nodes.meta_trainer import MetaTrainerNode


def test_nodes_run_in_their_own_processes_and_stop_together(private_ros_domain):
    bringup = Bringup(nodes=['pybullet_sim', 'adapter'], config=DEFAULT_CONFIG,
                      env=dict(os.environ))
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        pids = {p.pid for p in bringup.processes.values()}
        assert len(pids) == 2 and os.getpid() not in pids
        node = rclpy.create_node('probe', context=context)
        states, commands = [], []
        node.create_subscription(JointState, 'joint_states', states.append, 10)
        node.create_subscription(Float64MultiArray, 'effort_controller/commands',
                                 commands.append, 10)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + 60.0
        while (len(states) < 10 or len(commands) < 10) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            assert not bringup.exited(), bringup.exited()
        assert len(states) >= 10 and len(commands) >= 10
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
        bringup.processes['pybullet_sim'].send_signal(signal.SIGINT)  # one node dies ...
        deadline = time.monotonic() + 20.0
        while 'pybullet_sim' not in bringup.exited() and time.monotonic() < deadline:
            time.sleep(0.1)
        bringup.stop()  # ... and the rest is stopped cleanly, without SIGKILL
    assert bringup.exited() == {'pybullet_sim': 0, 'adapter': 0}


def test_meta_trainer_trains_with_the_parameter_file_it_was_started_with(private_ros_domain,
                                                                          tmp_path):
    """The file's own ``meta_trainer.config: ""`` must not win over bringup's override."""
    command = node_command('meta_trainer', DEFAULT_CONFIG, tmp_path)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = MetaTrainerNode(context=context, cli_args=command[command.index('--ros-args'):])
        assert node.get_parameter('config').value == str(DEFAULT_CONFIG)
        assert node.config == DEFAULT_CONFIG
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
