"""What the README calls runtime-tunable takes effect at once; a new checkpoint really runs; the
services do and answer what they say."""

import numpy as np
import pytest
import torch
from rclpy.parameter import Parameter
from std_msgs.msg import String
from std_srvs.srv import Trigger

from maml_ros.model.trained_models import TrainedModels
from maml_ros.resources import shipped_checkpoint
from maml_ros.sim import PANDA_HOME

from helpers.adapter_harness import node_status

HOME = np.array(PANDA_HOME)


def drive(harness, ticks: int, q=HOME) -> list:
    """``ticks`` control periods, a fresh joint state at ``q`` before each."""
    commands = []
    for _ in range(ticks):
        assert harness.joint_state(harness.state(q))
        commands.append(harness.tick())
    return commands


def test_a_lower_max_command_rate_set_while_running_limits_the_next_commands(make_harness):
    harness = make_harness()
    drive(harness, 20)
    assert harness.node.set_parameters([Parameter('max_command_rate', value=50.0)])[0].successful
    # The robot measured 0.4 rad away from home: the policy wants a large change at once.
    commands = np.array(drive(harness, 20, q=HOME + 0.4))
    steps = np.abs(np.diff(commands, axis=0))
    assert np.isclose(steps.max(), 50.0 * harness.period)  # the new limit binds (the harness
    # has checked every step against it)


def test_a_shorter_watchdog_timeout_set_while_running_stops_commands_sooner(make_harness,
                                                                           capfd):
    harness = make_harness()
    drive(harness, 10)
    assert harness.node.set_parameters([Parameter('watchdog_timeout', value=0.025)])[0].successful
    assert harness.tick() is not None  # the last joint state is 20 ms old
    assert harness.node.loop.stops_sent == 0
    capfd.readouterr()
    harness.tick()  # 30 ms: stale under the new timeout (0.1 s before): the stop command ...
    assert harness.node.loop.stops_sent == 1
    assert ('[adapter]: joint states stale: sent the stop command (gravity compensation) and '
            'stopped commanding until they are fresh again') in capfd.readouterr().err
    assert harness.tick() is None  # ... and silence


def test_each_tick_publishes_the_reference_it_tracks_under_the_joint_states_header(
        make_harness):
    harness = make_harness()
    node = harness.node
    ticks, desired = [], []
    step, publish = node.loop.step, node.desired.publish
    node.loop.step = lambda now: ticks.append(step(now)) or ticks[-1]
    node.desired.publish = lambda msg: (desired.append(msg), publish(msg))
    states = []
    for _ in range(30):
        states.append(harness.state())
        assert harness.joint_state(states[-1])
        harness.tick()
    assert len(desired) == len(ticks) == 30
    for state, tick, msg in zip(states, ticks, desired, strict=True):
        assert msg.header == state.header and list(msg.name) == list(harness.node.joints)
        assert list(msg.position) == tick.q_ref.tolist()
        assert list(msg.velocity) == tick.qd_ref.tolist()
    assert np.abs(ticks[-1].qd_ref).max() > 0.0  # the built-in reference moves


def test_inner_lr_scales_the_adaptation(make_harness):
    """inner_lr 0 leaves the weights as they were; the default changes them."""
    states = {}
    for inner_lr in (0.0, 0.1):
        harness = make_harness(support_size=30, inner_lr=inner_lr, adaptation='maml')
        drive(harness, 31, q=HOME + 0.05)
        policy = harness.node.loop.policy
        assert policy.wait(30.0) and policy.last_outcome is not None
        states[inner_lr] = (policy.active_state(), policy.models.meta_policy.state_dict())
    unchanged, meta = states[0.0]
    assert all(torch.equal(unchanged[name], meta[name]) for name in meta)
    adapted, meta = states[0.1]
    assert any(not torch.equal(adapted[name], meta[name]) for name in meta)


def test_a_checkpoint_from_meta_trainer_replaces_the_models_that_run(make_harness, tmp_path):
    harness = make_harness()
    drive(harness, 5)
    before = harness.node.loop.policy
    copy = tmp_path / 'retrained.safetensors'
    models = TrainedModels.load(shipped_checkpoint())
    with torch.no_grad():
        models.meta_policy.head.bias += 1.0  # a different policy, same robot
    models.save(copy)
    harness.node._on_checkpoint(String(data=str(copy)))
    policy = harness.node.loop.policy
    assert policy is not before and harness.node.choice.running == str(copy)
    assert torch.equal(policy.models.meta_policy.head.bias, models.meta_policy.head.bias)
    harness.attach()
    assert all(command is not None for command in drive(harness, 5))


def test_inner_lr_scales_the_physics_step(make_harness):
    """The physics model's step, scaled by inner_lr: 0 keeps the model the robot ran before
    (the URDF's), the default moves off it, and the diagnostics name what was identified."""
    fits = {}
    for inner_lr in (0.0, 0.1):
        harness = make_harness(support_size=30, inner_lr=inner_lr)
        initial = harness.node.loop.policy.active_state().theta
        drive(harness, 31, q=HOME + 0.05)
        policy = harness.node.loop.policy
        assert policy.wait(30.0) and policy.last_outcome is not None
        fits[inner_lr] = (policy.active_state().theta, initial)
    unchanged, initial = fits[0.0]
    assert np.array_equal(unchanged, initial)
    assert np.array_equal(initial[:, 0], np.ones(7)) and not initial[:, 1:].any()  # URDF
    adapted, initial = fits[0.1]
    assert not np.allclose(adapted, initial)
    values = node_status(harness.node)[2]
    assert values['identified delay_steps'] in {'0', '1', '2', '3', '4'}
    assert len(values['identified actuator_gain'].split(',')) == 7


def test_save_adapted_without_a_path_saves_under_ros_home(make_harness, ros_home):
    """``adapted_checkpoint`` empty: ``$ROS_HOME/maml_ros/adapted.safetensors``, where
    ``ROS_HOME`` defaults to ``~/.ros`` as in ROS 2."""
    expected = ros_home / 'maml_ros' / 'adapted.safetensors'
    node = make_harness(adapted_checkpoint='').node
    response = node._on_save(Trigger.Request(), Trigger.Response())
    assert (response.success, response.message) == (True, f'saved the meta policy to {expected}')
    saved, running = TrainedModels.load(expected), node.loop.policy.models
    assert saved.info['adapted'] is False  # before adapting: the checkpoint as it is
    assert torch.equal(saved.physics.prior, running.physics.prior)


def test_changing_another_parameter_keeps_the_adapted_checkpoint_path(make_harness, tmp_path):
    path = tmp_path / 'adapted.safetensors'
    node = make_harness(adapted_checkpoint=str(path)).node
    assert node.set_parameters([Parameter('max_command_rate', value=50.0)])[0].successful
    response = node._on_save(Trigger.Request(), Trigger.Response())
    assert (response.success, response.message) == (True, f'saved the meta policy to {path}')


def test_reset_adaptation_answers_what_it_did(make_harness):
    harness = make_harness(support_size=20, auto_adapt=False)
    for _ in range(25):
        assert harness.joint_state(harness.state())
        harness.tick()
    response = harness.node._on_reset(Trigger.Request(), Trigger.Response())
    assert (response.success, response.message) == (
        True, 'back to the meta-policy, support cleared')
    assert len(harness.node.loop.buffer) == 0


def test_an_adaptation_asked_for_restarts_the_readapt_period(make_harness):
    """``~/adapt`` at time t: the next re-adaptation on the sliding window is due
    ``readapt_period`` after t, not after the one before."""
    harness = make_harness(support_size=20, readapt_period=0.5, probation_window=0.0)
    policy = harness.node.loop.policy
    started, start = [], policy.start

    def record(*args, **kwargs):
        started.append(harness.now)
        return start(*args, **kwargs)

    policy.start = record
    drive(harness, 51)  # the first, once the support is full, and 0.3 s more
    assert policy.wait(30.0) and len(started) == 1
    asked = harness.now
    assert harness.adapt_service().success and started[-1] == asked
    while harness.now < asked + 0.6:
        assert policy.wait(30.0)  # never busy: due is due
        drive(harness, 1)
    assert len(started) == 3 and started[2] - asked == pytest.approx(0.5, abs=0.011)


def test_configure_says_what_runs_and_what_to_expect(make_harness, capfd):
    """The checkpoint it configured with, the robot check's warnings, a control rate that is not
    the checkpoint's; the torch threads it was given."""
    threads = torch.get_num_threads()
    capfd.readouterr()
    try:
        make_harness(control_rate=50.0, torch_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    log = capfd.readouterr().err
    assert f'[adapter]: configured with {shipped_checkpoint()}' in log
    assert "[adapter]: control_rate 50 Hz is not the checkpoint's 100 Hz: expect worse " \
        'tracking and rejected adaptations' in log
    assert '[adapter]: robot check: panda_joint7: friction and ripple up to 0.6 N*m' in log
    make_harness()  # at the checkpoint's rate
    assert 'control_rate' not in capfd.readouterr().err


@pytest.mark.parametrize('process', [True, False])
def test_adaptation_process_chooses_where_the_adaptation_runs(make_harness, process):
    policy = make_harness(adaptation_process=process).node.loop.policy
    assert policy.worker == ('process' if process else 'thread')
