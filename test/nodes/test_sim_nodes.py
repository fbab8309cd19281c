"""The simulated robot nodes over loopback DDS: joint states out, commands in, reset. Both
engines' nodes (``pybullet_sim``, ``mujoco_sim``) pass the same contract tests."""

import re
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from ros_testing import spin_for, spin_until
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from maml_ros.nodes.mujoco_sim import MujocoSimNode
from maml_ros.nodes.pybullet_sim import PybulletSimNode
from maml_ros.ros.spin import StartupError
from maml_ros.sim import PANDA_HOME

SIM_NODES = [PybulletSimNode, MujocoSimNode]


@pytest.fixture(params=SIM_NODES, ids=['pybullet', 'mujoco'])
def ros(request, ros_context, executor):
    sim = request.param(context=ros_context, parameter_overrides=[
        Parameter('command_timeout', value=0.5)])
    probe = rclpy.create_node('probe', context=ros_context)
    executor.add_node(sim)
    executor.add_node(probe)
    states: list[JointState] = []
    probe.create_subscription(JointState, 'joint_states', states.append, 50)
    yield executor, sim, probe, states
    sim.destroy_node()
    probe.destroy_node()


def test_joint_states_flow_stamped_and_named(ros):
    executor, sim, _, states = ros
    assert spin_until(executor, lambda: len(states) >= 20)
    last = states[-1]
    assert list(last.name) == [f'panda_joint{i}' for i in range(1, 8)]
    assert len(last.position) == len(last.velocity) == 7
    stamps = [s.header.stamp.sec + 1e-9 * s.header.stamp.nanosec for s in states]
    assert stamps[0] > 0 and all(b > a for a, b in zip(stamps, stamps[1:], strict=False))


def test_effort_commands_move_the_arm_and_bad_ones_are_dropped(ros):
    executor, sim, probe, states = ros
    publisher = probe.create_publisher(Float64MultiArray, 'effort_controller/commands', 10)
    bad_commands = ([1.0] * 3, [0.0] * 8, [], [float('nan')] + [0.0] * 6,
                    [0.0] * 6 + [float('-inf')])
    for bad in bad_commands:
        publisher.publish(Float64MultiArray(data=bad))
    assert spin_until(executor, lambda: sim.problems.counts['command'] == len(bad_commands))
    assert 'need 7 finite ones' in sim.problems.last
    # Brakes on until the first command: the arm waits at home.
    assert spin_until(executor, lambda: len(states) >= 20)
    np.testing.assert_allclose(states[-1].position, PANDA_HOME, atol=1e-9)
    # One zero command, then silence: zero effort, and the arm falls away from home.
    publisher.publish(Float64MultiArray(data=[0.0] * 7))
    count = len(states)
    assert spin_until(executor, lambda: len(states) >= count + 60)
    sagged = np.abs(np.array(states[-1].position) - PANDA_HOME).max()
    assert sagged > 0.01
    # A large positive effort on joint 2 drives it the other way.
    push = [0.0, 80.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    before = states[-1].position[1]
    for _ in range(30):
        publisher.publish(Float64MultiArray(data=push))
        spin_for(executor, 0.01)
    assert states[-1].position[1] > before + 0.02
    assert list(states[-1].effort) == pytest.approx(push)


def test_reset_service_puts_the_arm_back_home(ros):
    executor, sim, probe, states = ros
    probe.create_publisher(Float64MultiArray, 'effort_controller/commands', 10).publish(
        Float64MultiArray(data=[0.0] * 7))
    assert spin_until(executor, lambda: len(states) >= 30
                      and abs(states[-1].position[1] - PANDA_HOME[1]) > 0.01)
    client = probe.create_client(Trigger, f'{sim.get_name()}/reset')
    assert client.wait_for_service(timeout_sec=5.0)
    future = client.call_async(Trigger.Request())
    assert spin_until(executor, future.done)
    assert future.result().success
    count = len(states)
    assert spin_until(executor, lambda: len(states) > count + 1)
    np.testing.assert_allclose(states[count + 1].position, PANDA_HOME, atol=0.01)


def test_out_of_range_or_mistyped_parameter_is_refused_and_old_value_kept(ros):
    executor, sim, probe, _ = ros
    for count, value in enumerate([-1.0, 11.0, float('nan'), 1, 'slow'], start=1):
        result = sim.set_parameters([Parameter('command_timeout', value=value)])[0]
        assert not result.successful and result.reason
        assert sim.command_timeout == 0.5
        assert sim.problems.counts['parameter'] == count
        assert 'refused to set command_timeout' in sim.problems.last
    assert not sim.set_parameters([Parameter('publish_rate', value=500.0)])[0].successful
    diagnostics = []
    probe.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 10)
    assert spin_until(executor, lambda: diagnostics, timeout=3.0)
    values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
    assert values['problems_parameter'] == '6' and 'publish_rate' in values['last_problem']
    assert sim.set_parameters([Parameter('command_timeout', value=0.2)])[0].successful
    assert sim.command_timeout == 0.2


@pytest.mark.parametrize('node', SIM_NODES)
def test_the_package_yaml_configures_the_simulated_robot(private_ros_domain, node):
    config = Path(__file__).resolve().parents[2] / 'config' / 'adapt.yaml'
    context = rclpy.Context()
    rclpy.init(context=context, args=['--ros-args', '--params-file', str(config)])
    try:
        sim = node(context=context)
        dynamics = sim.robot.dynamics
        assert (dynamics.payload_mass, dynamics.actuator_gain) == (3.0, 0.7)
        assert sim.robot.config.control_period == pytest.approx(0.01)
        assert sim.get_parameter('command_interface').value == 'effort'
        sim.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_without_commands_for_command_timeout_it_falls_back_to_zero_effort(ros):
    executor, sim, probe, _ = ros
    publisher = probe.create_publisher(Float64MultiArray, 'effort_controller/commands', 10)
    push = [0.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    publisher.publish(Float64MultiArray(data=push))
    assert spin_until(executor, lambda: sim.robot.command_in_force[1] != 0.0)
    assert list(sim.robot.command_in_force) == pytest.approx(push)  # applied, until ...
    spin_for(executor, 0.6)  # ... command_timeout (0.5 s) without a command
    assert np.all(sim.robot.command_in_force == 0.0)
    # command_timeout 0: the last command stays in force, like a forward command controller.
    assert sim.set_parameters([Parameter('command_timeout', value=0.0)])[0].successful
    publisher.publish(Float64MultiArray(data=push))
    assert spin_until(executor, lambda: sim.robot.command_in_force[1] != 0.0)
    spin_for(executor, 1.0)
    assert list(sim.robot.command_in_force) == pytest.approx(push)


@pytest.mark.parametrize('config', ['adapt.yaml', 'xarm6.yaml'])
def test_both_simulators_play_the_same_robot_in_the_shipped_files(config):
    sections = yaml.safe_load((Path(__file__).resolve().parents[2] / 'config' / config)
                              .read_text())
    pybullet, mujoco = (sections[f'{engine}_sim']['ros__parameters']
                        for engine in ('pybullet', 'mujoco'))
    assert mujoco.pop('armature') and pybullet.pop('gui', False) is False
    assert pybullet == mujoco


@pytest.mark.parametrize('node, override, says', [
    (PybulletSimNode, ('joints', ['panda_joint1', 'nope']), 'home has 7 values for 2 joints'),
    (MujocoSimNode, ('urdf', '/no/such.urdf'), 'URDF not found'),
    (MujocoSimNode, ('armature', [0.1, 0.2]), 'armature needs one finite value >= 0, or 7'),
    (MujocoSimNode, ('armature', [-0.1]), 'armature needs one finite value >= 0'),
    (PybulletSimNode, ('urdf', '/no/such.urdf'), 'URDF not found'),
    (MujocoSimNode, ('dynamics.payload_mass', -1.0), 'payload_mass must be >= 0'),
])
def test_a_robot_that_cannot_be_simulated_is_refused_with_the_reason(ros_context, node,
                                                                    override, says):
    with pytest.raises(StartupError, match=re.escape(says)):
        node(context=ros_context, parameter_overrides=[Parameter(override[0], value=override[1])])
