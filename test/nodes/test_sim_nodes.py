"""The simulated robot nodes over loopback DDS: joint states out, commands in, reset. Both
engines' nodes (``pybullet_sim``, ``mujoco_sim``) pass the same contract tests."""

import re
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from maml_ros.nodes import mujoco_sim, pybullet_sim
from maml_ros.nodes.mujoco_sim import MujocoSimNode
from maml_ros.nodes.pybullet_sim import PybulletSimNode
from maml_ros.ros.spin import StartupError
from maml_ros.sim import PANDA_HOME, Dynamics
from maml_ros.training.config import TRAINING_RANGES

from helpers.ros_testing import diagnostics, refusal, spin_for, spin_until

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
    assert sim.problems.last.endswith('dropped a command with 7 values (need 7 finite ones)')
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
    assert future.result().success and future.result().message == 'robot reset to home'
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
    values = {kv.key: kv.value for kv in diagnostics(executor, probe, sim.get_name())[0].values}
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


@pytest.mark.parametrize('node', SIM_NODES)
def test_publish_rate_sets_the_period_the_physics_advances_per_message(ros_context, node):
    sim = node(context=ros_context, parameter_overrides=[Parameter('publish_rate', value=50.0)])
    try:
        assert sim.robot.config.control_period == 0.02
    finally:
        sim.destroy_node()


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


def test_diagnostics_say_whether_commands_are_in_force(ros):
    executor, sim, probe, _ = ros
    (status,) = diagnostics(executor, probe, sim.get_name())
    assert status.name == f'maml_ros {sim.get_name()}' and status.level == b'\x00'
    assert status.message == 'waiting for commands'
    assert {kv.key: kv.value for kv in status.values}['commanded'] == 'False'
    timers = [(timer.timer_period_ns, timer.callback) for timer in sim.timers]
    assert (1_000_000_000, sim._publish_diagnostics) in timers  # at 1 Hz
    publisher = probe.create_publisher(Float64MultiArray, 'effort_controller/commands', 10)
    timer = probe.create_timer(0.05, lambda: publisher.publish(Float64MultiArray(data=[0.0] * 7)))
    commanded = diagnostics(executor, probe, sim.get_name(), 2)[-1]
    assert commanded.message == 'commanded'
    assert {kv.key: kv.value for kv in commanded.values}['commanded'] == 'True'
    probe.destroy_timer(timer)  # silence for longer than command_timeout (0.5 s)
    silent = diagnostics(executor, probe, sim.get_name(), 2)[-1]
    assert silent.message == 'waiting for commands'


@pytest.mark.parametrize('node', SIM_NODES)
def test_dynamics_seed_draws_a_hidden_robot_from_the_training_ranges(ros_context, node):
    """``dynamics_seed >= 0``: the robot drawn from the training ranges with that seed, whatever
    the ``dynamics.*`` values say."""
    def hidden_robot(seed: int) -> dict:
        sim = node(context=ros_context, parameter_overrides=[
            Parameter('dynamics_seed', value=seed), Parameter('dynamics.payload_mass', value=2.5)])
        try:
            description = sim.robot.description
            return sim.robot.dynamics.to_dict(), TRAINING_RANGES.sample(
                np.random.default_rng(seed), n_joints=description.n_joints,
                n_links=description.n_links).to_dict()
        finally:
            sim.destroy_node()

    (first, expected_first), (seventh, expected_seventh) = hidden_robot(0), hidden_robot(7)
    assert (first, seventh) == (expected_first, expected_seventh)
    assert first != seventh and Dynamics(payload_mass=2.5).to_dict() not in (first, seventh)


@pytest.mark.parametrize('node', SIM_NODES)
def test_the_position_interface_holds_the_arm_where_it_is_without_commands(
        ros_context, executor, node):
    """Position commands move the arm; without one for ``command_timeout`` it holds where it
    is (not home, not zero); joint states carry no effort."""
    sim = node(context=ros_context, parameter_overrides=[
        Parameter('command_interface', value='position'),
        Parameter('controller', value='position_controller'),
        Parameter('command_timeout', value=0.2)])
    probe = rclpy.create_node('probe', context=ros_context)
    states: list[JointState] = []
    probe.create_subscription(JointState, 'joint_states', states.append, 50)
    publisher = probe.create_publisher(Float64MultiArray, 'position_controller/commands', 10)
    target = np.array(PANDA_HOME) + [0.0, 0.0, 0.0, 0.3, 0.0, 0.0, 0.0]
    try:
        for each in (sim, probe):
            executor.add_node(each)
        for _ in range(100):
            publisher.publish(Float64MultiArray(data=target.tolist()))
            spin_for(executor, 0.01)
        moved = np.array(states[-1].position)
        assert moved[3] > PANDA_HOME[3] + 0.2 and list(states[-1].effort) == []
        spin_for(executor, 1.0)  # five times command_timeout without a command
        np.testing.assert_allclose(states[-1].position, moved, atol=0.02)
    finally:
        for each in (sim, probe):
            each.destroy_node()


@pytest.mark.parametrize('node', SIM_NODES)
def test_destroying_the_node_closes_its_robot_and_says_what_it_simulates(ros_context, capfd,
                                                                         node):
    capfd.readouterr()
    sim = node(context=ros_context)
    engine = sim.robot.engine
    assert re.search(rf'\[{sim.get_name()}\]: simulating \S+panda\.urdf in {engine} with '
                     r'Dynamics\(', capfd.readouterr().err)
    closed = []
    close = sim.robot.close
    sim.robot.close = lambda: (closed.append(True), close())
    sim.destroy_node()
    assert closed == [True]


@pytest.mark.parametrize('module', [pybullet_sim, mujoco_sim])
def test_the_program_refuses_a_parameter_out_of_range_in_one_line(restore_handlers, capfd,
                                                                   module):
    """``ros2 run maml_ros pybullet_sim --ros-args -p publish_rate:=5000.0``: exit status 1,
    one line."""
    line = refusal(module.main, ['--ros-args', '-p', 'publish_rate:=5000.0'], capfd)
    assert f'[{module.__name__.rsplit(".", 1)[1]}]: cannot start: ' in line
    assert 'Parameter publish_rate out of range Min: 1.0, Max: 1000.0' in line
