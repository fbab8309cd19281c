"""Record on the (simulated) robot, replay on the desk: the adapter's bags and maml-ros-replay."""

import dataclasses
import json
import time
from datetime import datetime, timezone

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rosbags.rosbag2 import Reader
from std_srvs.srv import SetBool

from maml_ros.cli.replay import main as replay_main
from maml_ros.evaluation.replay import replay
from maml_ros.nodes.adapter import AdapterNode
from maml_ros.nodes.pybullet_sim import PybulletSimNode
from maml_ros.ros.bag import OUTCOME, deserialize, read_ticks
from maml_ros.sim import PANDA_HOME

from helpers.adapter_harness import node_status
from helpers.ros_testing import spin_for, spin_until


def record_run(ros_context, executor, folder, **parameters):
    """The adapter records a run of a simulated robot until 1 s after its first adaptation:
    the bag, the adapted state, the outcome."""
    sim = PybulletSimNode(context=ros_context, parameter_overrides=[
        Parameter('dynamics.payload_mass', value=1.5),
        Parameter('dynamics.actuator_gain', value=0.8)])
    node = AdapterNode(context=ros_context, parameter_overrides=[
        Parameter('adaptation_process', value=False), Parameter('record', value=True),
        Parameter('record_dir', value=str(folder)),
        *(Parameter(name, value=value) for name, value in parameters.items())])
    for n in (sim, node):
        executor.add_node(n)
    try:
        assert spin_until(executor, lambda: node.loop.policy.last_outcome is not None, 60.0)
        spin_for(executor, 1.0)  # what follows the support: the held-out part
        assert node_status(node)[2]['recording'] == str(node.recording.bag.path)
        online = node.loop.policy.active_state()
        outcome = node.loop.policy.last_outcome
        bag = node.recording.bag.path
    finally:
        node.destroy_node()  # closes the bag
        sim.destroy_node()
    assert outcome.accepted and (bag / 'metadata.yaml').exists()
    return bag, online, outcome


def recorded_ticks(bag, models):
    ticks = read_ticks(bag, joints=list(models.formulation.robot.joints),
                       command_topic='/effort_controller/commands',
                       outcome_topic='/adapter/adaptation')
    assert len(ticks.outcomes) == 1 and ticks.outcomes[0].transitions == 200
    return ticks


def replay_recorded(ticks, models, method):
    """Replay the window of the bag's first recorded adaptation, as ``--recorded 1`` does."""
    transitions, stamps, _ = ticks.transitions(
        control_period=models.formulation.robot.control_period)
    return replay(transitions, stamps, models, method=method, window=ticks.recorded_window(1))


def test_a_recorded_run_replays_to_the_same_adapted_model(ros_context, executor, tmp_path,
                                                          capsys, models):
    """The adapter records a run of the simulated demo robot; replaying the recorded support
    window adapts to exactly the fit the adapter adapted to on the robot, and the adapted
    checkpoint maml-ros-replay writes runs in the adapter."""
    bag, online, outcome = record_run(ros_context, executor, tmp_path / 'bags')
    ticks = recorded_ticks(bag, models)
    recorded = replay_recorded(ticks, models, 'maml_physics')
    assert recorded.outcome.loss_before == outcome.loss_before
    assert recorded.outcome.loss_after == outcome.loss_after
    np.testing.assert_array_equal(recorded.policy.active_state().theta, online.theta)
    assert recorded.policy.active_state().delay == online.delay
    rms = recorded.held_out_rms()
    assert rms['adapted']['all'] < 0.5 * rms['unadapted']['all']  # it learned the robot

    adapted = tmp_path / 'adapted.safetensors'
    report = tmp_path / 'replay.json'
    assert replay_main([str(bag), '--recorded', '1', '--out', str(adapted),
                        '--json', str(report), '--plot', str(tmp_path / 'replay.png')]) == 0
    printed = capsys.readouterr().out
    assert 'maml_physics adaptation accepted' in printed and 'payload_kg' in printed
    figures = json.loads(report.read_text())
    assert figures['held_out_rms'] == rms and figures['support'] == 200
    assert (tmp_path / 'replay.png').stat().st_size > 10_000
    runs = AdapterNode(context=ros_context, parameter_overrides=[
        Parameter('checkpoint', value=str(adapted)), Parameter('autostart', value=False)])
    try:
        runs.trigger_configure()
        assert runs.loop is not None and runs.loop.policy.active_state().adapted
        payload = runs.loop.policy.models.info['identified']['payload_kg']
        assert payload == recorded.identified['adapted']['payload_kg']
    finally:
        runs.destroy_node()


def test_the_network_adaptation_replays_to_the_same_weights(ros_context, executor, tmp_path,
                                                             models):
    """With a physics checkpoint too: maml-ros-replay adapts a recorded window by the
    method the adapter used, which the bag says."""
    bag, online, outcome = record_run(ros_context, executor, tmp_path, adaptation='maml')
    ticks = recorded_ticks(bag, models)
    assert ticks.outcomes[0].values['method'] == 'maml' and models.physics is not None
    recorded = replay_recorded(ticks, models, 'maml')
    assert recorded.outcome.loss_after == outcome.loss_after
    replayed = recorded.policy.active_state()
    assert replayed.keys() == online.keys()
    assert all(torch.equal(replayed[name], online[name]) for name in online)
    report = tmp_path / 'replay.json'
    for argv, method in [([], 'maml'), (['--adaptation', 'maml_physics'], 'maml_physics')]:
        assert replay_main([str(bag), '--recorded', '1', '--json', str(report), *argv]) == 0
        assert json.loads(report.read_text())['method'] == method
    assert json.loads(report.read_text())['support_loss_after'] != outcome.loss_after


def test_record_service_starts_and_stops_bags(make_harness, tmp_path):
    harness = make_harness(record_dir=str(tmp_path))
    node = harness.node
    assert node.recording.bag is None and node_status(node)[2]['recording'] == 'off'
    response = node._on_record(SetBool.Request(data=True), SetBool.Response())
    assert response.success and node.get_parameter('record').value
    path = node.recording.bag.path
    assert response.message == f'recording into {path}' and path.parent == tmp_path
    for _ in range(20):
        assert harness.joint_state(harness.state())
        harness.tick()
    response = node._on_record(SetBool.Request(data=False), SetBool.Response())
    assert (response.success, response.message) == (True, 'not recording')
    assert node.recording.bag is None
    with Reader(path) as bag:  # under the topics' resolved names, as ros2 bag records them
        assert set(bag.topics) == {'/joint_states', '/effort_controller/commands',
                                   '/adapter/desired', '/adapter/adaptation'}
    ticks = read_ticks(path, joints=list(node.joints), command_topic='/effort_controller/commands')
    assert len(ticks) == 20
    np.testing.assert_array_equal(ticks.commands[-1], harness.commands[-1])


def test_record_while_recording_keeps_the_bag(make_harness, tmp_path):
    node = make_harness(record_dir=str(tmp_path), record=True).node
    recorder = node.recording.bag
    response = node._on_record(SetBool.Request(data=True), SetBool.Response())
    assert (response.success, response.message) == (True, f'recording into {recorder.path}')
    assert node.recording.bag is recorder and list(tmp_path.iterdir()) == [recorder.path]


def test_bags_go_under_ros_home_by_default_and_the_log_says_where(make_harness, ros_home,
                                                                 capfd):
    """``record_dir`` empty: ``$ROS_HOME/maml_ros/bags``, where ``ROS_HOME`` defaults to
    ``~/.ros`` as in ROS 2; the log names each bag and, when it is closed, what went in."""
    harness = make_harness(record=True)
    recorder = harness.node.recording.bag
    assert recorder.path.parent == ros_home / 'maml_ros' / 'bags'
    for _ in range(5):
        assert harness.joint_state(harness.state())
        harness.tick()
    harness.node._on_record(SetBool.Request(data=False), SetBool.Response())
    assert recorder.written == 15  # each tick: a joint state, a command, a desired state
    time.sleep(0.05)  # let the lines reach stderr
    log = capfd.readouterr().err
    assert f'[adapter]: recording into {recorder.path}\n' in log
    assert f'[adapter]: recorded 15 messages into {recorder.path}\n' in log


def test_record_set_before_configure_starts_the_bag_at_configure(make_adapter, tmp_path):
    node = make_adapter(autostart=False, record_dir=str(tmp_path))
    assert node.set_parameters([Parameter('record', value=True)])[0].successful
    assert node.recording.bag is None and not any(tmp_path.iterdir())
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert list(tmp_path.iterdir()) == [node.recording.bag.path]


def test_a_record_dir_set_while_running_holds_the_next_bag(make_harness, tmp_path):
    node = make_harness(record_dir=str(tmp_path / 'first')).node
    result = node.set_parameters([Parameter('record_dir', value=str(tmp_path / 'second'))])
    assert result[0].successful
    response = node._on_record(SetBool.Request(data=True), SetBool.Response())
    assert response.success and node.recording.bag.path.parent == tmp_path / 'second'
    node._on_record(SetBool.Request(data=False), SetBool.Response())
    assert [path.name for path in tmp_path.iterdir()] == ['second']


def test_a_bag_is_named_by_its_start_in_utc(make_harness, tmp_path, monkeypatch):
    monkeypatch.setenv('TZ', 'Asia/Kolkata')  # UTC+5:30: no hour there is the UTC hour
    time.tzset()
    try:
        before = datetime.now(timezone.utc)
        node = make_harness(record_dir=str(tmp_path), record=True).node
        after = datetime.now(timezone.utc)
        name = node.recording.bag.path.name
    finally:
        monkeypatch.undo()
        time.tzset()
    started = datetime.strptime(name, 'support_%Y%m%d_%H%M%S_%f').replace(tzinfo=timezone.utc)
    assert before <= started <= after


def test_a_bag_that_cannot_be_written_is_refused_with_the_reason(make_harness, tmp_path):
    (tmp_path / 'file').write_text('')  # record_dir is a file: no bag can go there
    harness = make_harness(record_dir=str(tmp_path / 'file'))
    response = harness.node._on_record(SetBool.Request(data=True), SetBool.Response())
    assert not response.success
    assert response.message.startswith('could not record: record: cannot create the bag')
    assert harness.node.recording.bag is None
    values = node_status(harness.node)[2]
    assert (values['recording'], values['problems_record']) == ('off', '1')
    assert f'could not record: {values["last_problem"]}' == response.message
    for _ in range(3):  # the robot is still controlled
        assert harness.joint_state(harness.state())
        assert harness.tick() is not None


def test_a_refused_record_parameter_is_the_services_answer(make_harness, tmp_path):
    """``~/record`` sets the ``record`` parameter: a refusal of it (by any of the node's
    parameter callbacks) is what the service answers, and nothing starts."""
    node = make_harness(record_dir=str(tmp_path)).node
    node.add_on_set_parameters_callback(lambda parameters: SetParametersResult(
        successful=False, reason='record: not during a test'))
    response = node._on_record(SetBool.Request(data=True), SetBool.Response())
    assert (response.success, response.message) == (False, 'record: not during a test')
    assert node.recording.bag is None and not node.get_parameter('record').value


def test_cleanup_closes_the_bag_and_does_not_start_another(make_harness, tmp_path):
    harness = make_harness(record_dir=str(tmp_path), record=True)
    path = harness.node.recording.bag.path
    for _ in range(5):
        assert harness.joint_state(harness.state())
        harness.tick()
    harness.transition('deactivate', 'cleanup')
    assert harness.node.recording.bag is None and list(tmp_path.iterdir()) == [path]
    ticks = read_ticks(path, joints=list(harness.node.joints),
                       command_topic='/effort_controller/commands')
    assert len(ticks) == 6  # five ticks, and the stop command sent on deactivating


def test_a_full_disk_while_recording_is_a_warning_and_the_robot_stays_controlled(
        make_harness, tmp_path):
    harness = make_harness(record_dir=str(tmp_path), record=True)
    recorder = harness.node.recording.bag

    def full(*args):
        raise OSError(28, 'No space left on device')

    recorder._writer.write = full
    for _ in range(3):
        assert harness.joint_state(harness.state())
        assert harness.tick() is not None
    deadline = time.monotonic() + 10.0
    while not recorder.error and time.monotonic() < deadline:  # the writer's thread
        time.sleep(0.01)
    level, message, values = node_status(harness.node)
    assert level == DiagnosticStatus.WARN and message.endswith('; recording failed')
    assert values['recording_error'] == (
        f'writing {recorder.path} failed: [Errno 28] No space left on device')
    assert (values['lifecycle_state'], values['recording']) == ('active', str(recorder.path))
    assert all(command is not None for command in [harness.tick() for _ in range(3)])


@pytest.mark.parametrize('argv, message', [
    (['missing_bag'], 'does not exist'),
    (['{bag}', '--support-size', '5000'], 'fewer than the 5000 asked for'),
    (['{bag}', '--recorded', '2'], 'the bag records 0 adaptations, not 2'),
])
def test_replay_refuses_what_it_cannot_use(tmp_path, capsys, argv, message, make_harness):
    harness = make_harness(record_dir=str(tmp_path), record=True)
    for _ in range(60):
        assert harness.joint_state(harness.state())
        harness.tick()
    bag = harness.node.recording.bag.path
    harness.node.recording.switch(False, '')
    assert replay_main([arg.format(bag=bag) for arg in argv]) == 2
    assert message in capsys.readouterr().err


def test_the_recorded_outcome_carries_what_an_accepted_physics_fit_identified(
        make_harness, tmp_path, capfd):
    """And the log names the joints the support did not identify (here only joint 1 moves);
    a rejected outcome carries nothing identified. The log has each outcome."""
    harness = make_harness(record_dir=str(tmp_path), record=True, support_size=50,
                           auto_adapt=False)
    node = harness.node
    home = np.array(PANDA_HOME)
    for k in range(52):
        assert harness.joint_state(harness.state(home + np.r_[0.3 * np.sin(0.2 * k),
                                                               np.zeros(6)]))
        harness.tick()
    capfd.readouterr()
    assert harness.adapt_service().success and node.loop.policy.wait(30.0)  # and recorded
    identified = node.loop.policy.identified()
    assert identified['not_identified_joints']
    outcome = node.loop.policy.last_outcome
    refused = dataclasses.replace(outcome, accepted=False, reason='support loss rose')
    node._on_adapted(refused)
    path = node.recording.bag.path
    node._on_record(SetBool.Request(data=False), SetBool.Response())
    time.sleep(0.05)  # let the lines reach stderr
    log = capfd.readouterr().err.splitlines()
    assert (f'joints {identified["not_identified_joints"]} keep their previous model: this '
            'support did not identify their torque (they hardly moved)') in log[1]
    assert [line.split(' ', 1)[0] for line in log if '[adapter]: adaptation ' in line] == [
        '[INFO]', '[WARN]']  # the severity by outcome, and the outcome in words:
    assert log[0].endswith(f'[adapter]: adaptation {outcome}')
    assert log[2].endswith(f'[adapter]: adaptation {refused}')
    accepted, rejected = read_ticks(path, joints=list(node.joints),
                                    command_topic='/effort_controller/commands',
                                    outcome_topic='/adapter/adaptation').outcomes
    assert json.loads(accepted.values['identified']) == json.loads(json.dumps(identified))
    assert not rejected.accepted and 'identified' not in rejected.values
    with Reader(path) as bag:  # each one a DiagnosticStatus from the adapter, its level by outcome
        statuses = [deserialize(raw, OUTCOME) for connection, _, raw in bag.messages()
                    if connection.topic == '/adapter/adaptation']
    assert [(s.level, s.name, s.message) for s in statuses] == [
        (0, 'adapter', f'adaptation {outcome}'),  # OK
        (1, 'adapter', f'adaptation {refused}')]  # WARN
