"""Bad input into the adapter: dropped or refused with a reason, counted, nothing unsafe out.

Every test runs the node in an :class:`AdapterHarness` (see conftest.py), which
checks the safety invariants at every tick: commands finite, within limits and
rate limits, none while stale, and computed from accepted joint states only.
"""

import json
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from maml_ros.nodes import adapter
from maml_ros.nodes.adapter import AdapterNode
from maml_ros.resources import shipped_checkpoint
from maml_ros.sim import PANDA_HOME

from helpers.adapter_harness import JOINTS, LIMITS, joint_state, node_status
from helpers.ros_testing import refusal

HOME = np.array(PANDA_HOME)


def started(make_harness, **parameters):
    """A harness whose node has accepted one joint state and sent one command."""
    harness = make_harness(**parameters)
    assert harness.joint_state(harness.state())
    assert harness.tick() is not None
    return harness


def with_values(msg, **fields):
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


# name -> (the message, built from the stamp of now; words the reason must contain)
JOINT_STATE_CASES = {
    'fewer positions than names': (lambda t: with_values(joint_state(at=t), position=[0.0] * 6),
                                   '7 names but 6 positions'),
    'no velocities': (lambda t: with_values(joint_state(at=t), velocity=[]), '0 velocities'),
    'NaN position': (lambda t: joint_state(np.where(np.arange(7) == 3, np.nan, HOME), at=t),
                     'non-finite'),
    'inf velocity': (lambda t: joint_state(HOME, [0, 0, np.inf, 0, 0, 0, 0], at=t),
                     'non-finite'),
    'missing controlled joint': (lambda t: joint_state(HOME[:6], names=JOINTS[:6], at=t),
                                 "['panda_joint7'] missing"),
    'empty message': (lambda t: joint_state([], names=[], at=t), 'empty joint state'),
    'duplicate names': (lambda t: joint_state(np.append(HOME, 0.0),
                                              names=JOINTS + ['panda_joint2'], at=t),
                        "duplicate joint names ['panda_joint2']"),
    'zero stamp': (lambda t: joint_state(at=0.0), 'no stamp'),
    'backwards stamp': (lambda t: joint_state(at=t - 5.0), 'not newer'),
    'stamp an hour ahead': (lambda t: joint_state(at=time.time() + 3600), 'ahead of this clock'),
    'huge position': (lambda t: joint_state(np.where(np.arange(7) == 0, 1e6, HOME), at=t),
                      'implausibly large'),
    'huge velocity': (lambda t: joint_state(HOME, np.full(7, 1e9), at=t), 'implausibly large'),
}


@pytest.mark.parametrize('case', JOINT_STATE_CASES)
def test_bad_joint_state_is_dropped_counted_and_not_acted_on(make_harness, case):
    harness = started(make_harness)
    build, reason = JOINT_STATE_CASES[case]
    assert not harness.joint_state(build(harness.stamp))
    assert harness.node.problems.counts['joint_state'] == 1
    assert reason in harness.node.problems.last
    _, _, values = node_status(harness.node)
    assert values['problems_joint_state'] == '1' and reason in values['last_problem']
    commands = [harness.tick() for _ in range(15)]
    assert all(c is not None for c in commands[:8])  # from the last good state (harness checks)
    assert commands[-1] is None  # and the bad message did not count as fresh data


def test_duplicate_stamp_is_dropped(make_harness):
    harness = make_harness()
    first = harness.state()
    assert harness.joint_state(first)
    again = harness.state(HOME + 0.1)
    again.header.stamp = first.header.stamp
    assert not harness.joint_state(again)
    assert 'not newer' in harness.node.problems.last
    assert harness.tick() is not None  # computed from ``first`` (the harness checks)


def test_extra_and_reordered_joints_are_mapped_by_name(make_harness):
    harness = make_harness()
    names = ['panda_finger_joint1'] + JOINTS[::-1] + ['panda_finger_joint2']
    q = np.concatenate([[0.04], HOME[::-1] + 0.05, [np.nan]])  # NaN in a joint not controlled
    assert harness.joint_state(harness.state(q, names=names))
    np.testing.assert_array_equal(harness.accepted[0], HOME + 0.05)
    assert harness.tick() is not None


def trajectory(names=JOINTS, points=((HOME + 0.1, 1.0),)) -> JointTrajectory:
    def duration(seconds):
        return Duration(sec=int(seconds // 1), nanosec=int(round(seconds % 1 * 1e9)))
    return JointTrajectory(joint_names=list(names), points=[
        JointTrajectoryPoint(positions=[float(x) for x in q], time_from_start=duration(t))
        for q, t in points])


REFERENCE_CASES = {
    'wrong joint names': (trajectory(names=['elbow'] * 7), 'not the controlled joints'),
    'non-monotonic time_from_start': (trajectory(points=[(HOME, 1.0), (HOME + 0.1, 0.5)]),
                                      'strictly increasing'),
    'empty trajectory': (trajectory(points=()), 'no points'),
    'positions for fewer joints': (trajectory(points=[(HOME[:5], 1.0)]), '5 positions'),
    'NaN position': (trajectory(points=[(np.full(7, np.nan), 1.0)]), 'non-finite'),
}


@pytest.mark.parametrize('case', REFERENCE_CASES)
def test_bad_reference_is_dropped_with_the_reason_and_counted(make_harness, case):
    harness = started(make_harness)
    msg, reason = REFERENCE_CASES[case]
    harness.node._on_reference(msg)
    assert harness.node.problems.counts['reference'] == 1
    assert reason in harness.node.problems.last
    assert harness.node.loop.reference is None
    harness.joint_state(harness.state())
    assert harness.tick() is not None


def test_reference_before_any_joint_state_is_dropped(make_harness):
    harness = make_harness()
    harness.node._on_reference(trajectory())
    assert harness.node.loop.reference is None
    assert 'no joint state yet' in harness.node.problems.last


def test_reference_outside_the_limits_is_clamped_warned_and_followed(make_harness, capfd):
    harness = started(make_harness)
    far = np.where(np.arange(7) % 2 == 0, LIMITS.upper + 1.0, LIMITS.lower - 1.0)
    msg = trajectory(points=[(far, 0.5), (HOME, 0.51)])  # and a 10 ms dash back home
    capfd.readouterr()
    harness.node._on_reference(msg)
    time.sleep(0.05)  # let the lines reach stderr
    assert '[adapter]: tracking a 0.5 s reference trajectory' in capfd.readouterr().err
    assert harness.node.problems.counts['reference_clamped'] == 1
    assert harness.node.problems.last == (
        'reference_clamped: waypoints beyond the limits were clamped')
    reference = harness.node.loop.reference
    assert reference is not None and reference.clamped
    for t in np.linspace(0.0, 0.6, 121):
        q, qd, _ = reference.sample(t)
        assert np.all(q >= LIMITS.lower) and np.all(q <= LIMITS.upper)
        assert np.all(np.abs(qd) <= LIMITS.velocity)
    for _ in range(60):
        harness.joint_state(harness.state())
        harness.tick()


RUNTIME_PARAMETERS = {  # name -> values to refuse (below range, above range, wrong type)
    'support_size': [9, 5001, 200.0, '200'],
    'inner_steps': [-1, 101, 5.0],
    'inner_lr': [-0.1, 10.5, 1, 'fast'],
    'exploration_std': [-0.01, 0.21, 0],
    'readapt_period': [-1.0, 3601.0, True],
    'max_command_rate': [0.0, 2e6, float('nan'), 100],
    'watchdog_timeout': [0.0, 10.5, float('inf'), 1],
    'auto_adapt': [1, 'yes'],
    'adapted_checkpoint': [3, ['a.safetensors']],
    'control_rate': [200.0],  # read-only
    'joints': [['a', 'b']],  # read-only
}


def effective(node):
    """What the node acts on, beyond the parameter values."""
    loop = node.loop
    return (loop.buffer.capacity, loop.safety.max_rate.tolist(), loop.watchdog.timeout)


@pytest.mark.parametrize('name', RUNTIME_PARAMETERS)
def test_out_of_range_or_mistyped_parameter_is_refused_old_value_kept(make_harness, name):
    harness = started(make_harness)
    node = harness.node
    before, acting = node.get_parameter(name).value, effective(node)
    for count, value in enumerate(RUNTIME_PARAMETERS[name], start=1):
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful and result.reason, value
        assert node.get_parameter(name).value == before and effective(node) == acting
        assert node.problems.counts['parameter'] == count
        assert f'refused to set {name}' in node.problems.last
    assert node_status(node)[2]['problems_parameter'] == str(count)
    assert harness.tick() is not None


def test_parameter_refused_through_the_ros_service(ros_context):
    node = AdapterNode(context=ros_context)
    client_node = rclpy.create_node('param_client', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    for n in (node, client_node):
        executor.add_node(n)
    try:
        client = AsyncParameterClient(client_node, 'adapter')
        assert client.wait_for_services(timeout_sec=5.0)
        future = client.set_parameters([Parameter('support_size', value=3)])
        executor.spin_until_future_complete(future, timeout_sec=5.0)
        result = future.result().results[0]
        assert not result.successful and 'support_size' in result.reason
        assert node.get_parameter('support_size').value == 200
        assert node.problems.counts['parameter'] == 1
    finally:
        executor.shutdown()
        client_node.destroy_node()
        node.destroy_node()


# -- checkpoints ---------------------------------------------------------------

class CreatesMarker:
    """Unpickling this runs code: it creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def edited_checkpoint(path: Path, **changes) -> None:
    """The shipped checkpoint, with metadata ``changes``, written to ``path``."""
    with safe_open(shipped_checkpoint(), framework='pt') as reader:
        metadata = json.loads(reader.metadata()['maml_ros'])
    save_file(load_file(shipped_checkpoint()), path,
              metadata={'maml_ros': json.dumps({**metadata, **changes})})


def heavy_checkpoint(path: Path, **reference) -> None:
    """The shipped checkpoint trained, it says, for payloads up to 7 kg: along the default
    references that asks 100% of panda_joint6's effort limit, along slow ones 76%."""
    with safe_open(shipped_checkpoint(), framework='pt') as reader:
        ranges = json.loads(reader.metadata()['maml_ros'])['randomization']
    edited_checkpoint(path, randomization={**ranges, 'payload_mass': [0.0, 7.0]},
                      **({'reference': reference} if reference else {}))


def bad_checkpoint(case: str, path: Path) -> str:
    """Write a bad checkpoint of kind ``case`` to ``path``; the words the error must contain."""
    shipped = shipped_checkpoint().read_bytes()
    if case == 'missing file':
        return 'does not exist'
    if case == 'truncated':
        path.write_bytes(shipped[:len(shipped) // 2])
        return 'truncated or corrupt'
    if case == 'random bytes':
        path.write_bytes(np.random.default_rng(0).bytes(4096))
        return 'truncated or corrupt'
    if case == 'other joints':
        edited_checkpoint(path, joints=JOINTS[::-1])
        return 'joints'
    if case == 'other command interface':
        edited_checkpoint(path, command_interface='position')
        return "'position' interface, not 'effort'"
    if case == 'unknown format version':
        edited_checkpoint(path, format_version=99)
        return 'unknown checkpoint format version 99'
    if case == 'gains the robot cannot follow':
        with safe_open(shipped_checkpoint(), framework='pt') as reader:
            formulation = json.loads(reader.metadata()['maml_ros'])['formulation']
        edited_checkpoint(path, formulation={**formulation, 'position_gain': 144.0 ** 2,
                                             'velocity_gain': 2 * 144.0})
        return 'the nominal controller cannot drive the nominal robot'
    if case == 'a payload range the robot cannot carry':
        heavy_checkpoint(path)
        return 'FAIL references'
    assert case == 'pickle payload'
    path.write_bytes(pickle.dumps({'weights': CreatesMarker(path.with_name('pwned'))}))
    return 'truncated or corrupt'


CHECKPOINT_CASES = ['missing file', 'truncated', 'random bytes', 'other joints',
                    'other command interface', 'unknown format version', 'pickle payload',
                    'gains the robot cannot follow', 'a payload range the robot cannot carry']


@pytest.mark.parametrize('name, value, choices', [
    ('trigger', 'sometimes', "['timer', 'joint_states']"),
    ('adaptation', 'psychic', "['auto', 'maml_physics', 'maml']"),
    ('stop_command', 'brake', "['gravity', 'zero']")])
def test_an_unknown_choice_leaves_the_node_unconfigured_with_the_choices(ros_context, capfd,
                                                                         name, value, choices):
    node = AdapterNode(context=ros_context, parameter_overrides=[Parameter(name, value=value)])
    try:
        assert node._state_machine.current_state[1] == 'unconfigured'
        time.sleep(0.05)  # let the log line reach stderr
        assert (f'[adapter]: cannot configure: {name} must be one of {choices}, '
                f'not {value!r}') in capfd.readouterr().err
    finally:
        node.destroy_node()


@pytest.mark.parametrize('case', CHECKPOINT_CASES)
def test_bad_checkpoint_at_configure_leaves_the_node_unconfigured(ros_context, tmp_path,
                                                                  capfd, case):
    path = tmp_path / 'bad.safetensors'
    reason = bad_checkpoint(case, path)
    node = AdapterNode(context=ros_context, parameter_overrides=[
        Parameter('checkpoint', value=str(path))])
    try:
        assert node._state_machine.current_state[1] == 'unconfigured'
        assert node.loop is None
        time.sleep(0.05)  # let the log line reach stderr
        log = capfd.readouterr().err
        assert 'cannot configure' in log and reason in log
        assert not (tmp_path / 'pwned').exists()
    finally:
        node.destroy_node()


def test_the_robot_check_at_configure_judges_the_checkpoints_references(ros_context,
                                                                         tmp_path):
    """The 7 kg checkpoint that fails along the default references (a case above) configures
    when it was trained along slow ones."""
    path = tmp_path / 'heavy_slow.safetensors'
    heavy_checkpoint(path, velocity_fraction=0.1, max_amplitude=0.1)
    node = AdapterNode(context=ros_context, parameter_overrides=[
        Parameter('checkpoint', value=str(path))])
    try:
        assert node._state_machine.current_state[1] == 'active'
        models = node.loop.policy.models
        assert (models.ranges.payload_mass, models.reference.velocity_fraction) == ((0.0, 7.0), 0.1)
    finally:
        node.destroy_node()


@pytest.mark.parametrize('case', CHECKPOINT_CASES)
def test_bad_checkpoint_from_meta_trainer_is_ignored_and_control_goes_on(make_harness,
                                                                         tmp_path, case):
    harness = started(make_harness)
    node = harness.node
    models = node.loop.policy.models
    path = tmp_path / 'bad.safetensors'
    reason = bad_checkpoint(case, path)
    node._on_checkpoint(String(data=str(path)))
    assert node.loop.policy.models is models and node.choice.running != str(path)
    assert node.problems.counts['checkpoint'] == 1 and reason in node.problems.last
    assert not (tmp_path / 'pwned').exists()
    harness.joint_state(harness.state())
    assert harness.tick() is not None


def test_the_program_refuses_a_parameter_out_of_range_in_one_line(restore_handlers, capfd):
    """``ros2 run maml_ros adapter --ros-args -p support_size:=1``: exit status 1, one line."""
    line = refusal(adapter.main, ['--ros-args', '-p', 'support_size:=1'], capfd)
    assert '[adapter]: cannot start: ' in line
    assert 'Parameter support_size out of range. Min: 10' in line
