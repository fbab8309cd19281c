"""Faults around the adapter: stale data, a dying robot, bad or slow adaptations, lifecycle.

The handler-level tests run in an :class:`AdapterHarness` (conftest.py), which
checks the safety invariants at every tick; the others run the real nodes
over loopback DDS.
"""

import time
from collections import Counter

import numpy as np
import pytest
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from std_msgs.msg import Float64MultiArray

from maml_ros.nodes.adapter import AdapterNode
from maml_ros.nodes.pybullet_sim import PybulletSimNode
from maml_ros.ros import adapter_services

from helpers.adapter_harness import AdapterHarness, assert_safe_commands, node_status
from helpers.ros_testing import diagnostics, spin_for, spin_until


def run(harness, ticks: int, *, feed: bool = True) -> list:
    """``ticks`` control periods, with a fresh joint state before each if ``feed``."""
    commands = []
    for _ in range(ticks):
        if feed:
            assert harness.joint_state(harness.state())
        commands.append(harness.tick())
    return commands


def test_stale_joint_states_stop_commands_until_fresh_data_arrive(make_harness):
    harness = make_harness(watchdog_timeout=0.05)
    assert all(c is not None for c in run(harness, 20))
    last = harness.state()
    assert harness.joint_state(last)
    commands = run(harness, 10, feed=False)
    assert all(c is not None for c in commands[:5])
    # 50 ms without data: one stop command (gravity compensation of the posture), then silence.
    policy = harness.node.loop.policy
    np.testing.assert_allclose(commands[5], policy.hold(np.array(last.position)))
    assert np.abs(commands[5]).max() > 1.0  # holding the Panda's posture takes torque
    assert all(c is None for c in commands[6:])
    level, message, values = node_status(harness.node)
    assert level == DiagnosticStatus.ERROR and message == 'joint states stale'
    assert values['joint_states_stale'] == 'True'
    assert not harness.joint_state(last)  # the old message again is not fresh data
    assert harness.tick() is None
    assert all(c is not None for c in run(harness, 20))  # ramped in from rest (harness checks)
    assert node_status(harness.node)[0] == DiagnosticStatus.OK


def adapt_with(harness, replace_adapt=None) -> object:
    """Collect a full support buffer, then adapt through ~/adapt (``replace_adapt`` stands in
    for MAML.adapt); the outcome."""
    run(harness, harness.node.loop.buffer.capacity + 2)
    learner = harness.node.loop.policy.models.learner
    if replace_adapt is not None:
        original = learner.adapt
        learner.adapt = lambda *args, **kwargs: replace_adapt(original(*args, **kwargs))
    response = harness.adapt_service()  # answers with the outcome
    outcome = harness.node.loop.policy.last_outcome
    on_probation = outcome.accepted and harness.node.loop.settings.probation_window > 0
    note = ('; on probation: 3 s on the robot decide whether it stays (/diagnostics: '
            'probation, rollbacks)') if on_probation else ''
    assert response.success == outcome.accepted
    assert response.message == f'adaptation {outcome}{note}'
    if replace_adapt is not None:
        del learner.adapt
    return outcome


def test_adapt_says_so_when_the_outcome_takes_longer_than_it_waits(make_harness, monkeypatch):
    # Adaptations back to back: none waits for the last one's probation.
    harness = make_harness(support_size=50, auto_adapt=False, adaptation='maml',
                           probation_window=0.0)
    run(harness, 52)
    slow_adapt(harness.node.loop.policy.models.learner, 0.5)
    monkeypatch.setattr(adapter_services, 'ADAPT_ANSWER_TIMEOUT', 0.05)
    response = harness.adapt_service()
    assert (response.success, response.message) == (True, (
        'adaptation still running after 0.05 s; its outcome will be in the log and '
        '/diagnostics'))
    policy = harness.node.loop.policy
    assert policy.busy and policy.wait(30.0) and policy.last_outcome.accepted


def test_adapt_says_the_adaptation_is_on_probation_and_refuses_another_meanwhile(make_harness):
    harness = make_harness(support_size=50, auto_adapt=False, adaptation='maml')
    outcome = adapt_with(harness)  # (it checks the answer says "on probation")
    assert outcome.accepted
    run(harness, 1)  # the loop takes the swap in at its next tick
    assert 'on probation' in node_status(harness.node)[1]
    response = harness.adapt_service()
    assert (response.success, response.message) == (False, (
        'not adapting: the last adaptation is on probation on the robot until its verdict'))


@pytest.mark.parametrize('corrupt, reason', [
    (lambda params: {k: torch.full_like(v, float('nan')) for k, v in params.items()},
     'not finite'),
    (lambda params: {k: v + 0.5 * torch.randn(v.shape, generator=torch.Generator().manual_seed(i))
                     for i, (k, v) in enumerate(params.items())},  # seeded: always the same
     'support loss rose'),
])
def test_bad_adaptation_is_rejected_previous_policy_stays_diagnostics_say_why(
        make_harness, corrupt, reason):
    # Adaptations back to back: none waits for the last one's probation.
    harness = make_harness(support_size=50, auto_adapt=False, adaptation='maml',
                           probation_window=0.0)
    first = adapt_with(harness)
    assert first.accepted, first.reason
    adapted = harness.node.loop.policy.active_state()
    outcome = adapt_with(harness, corrupt)
    assert not outcome.accepted and reason in outcome.reason
    assert harness.node.loop.policy.adapted
    for name, value in harness.node.loop.policy.active_state().items():
        assert torch.equal(value, adapted[name])
    level, message, values = node_status(harness.node)
    assert level == DiagnosticStatus.WARN and 'last adaptation rejected' in message
    assert values['last_adaptation'].startswith('rejected: ') and reason in values[
        'last_adaptation']
    assert 'held_out_rms_after' not in values  # 50 transitions: too few to judge by
    assert all(c is not None for c in run(harness, 10))


def slow_adapt(learner, seconds: float):
    """Make ``learner.adapt`` a real adaptation that takes ``seconds``: computed, then asleep
    for the rest (asleep, it holds no GIL: how much an adaptation's computation in a thread
    slows a loop in the same process is why ``adaptation_process`` is the default, not a
    question for a timed test)."""
    original = learner.adapt

    def adapt(*args, **kwargs):
        deadline = time.monotonic() + seconds
        result = original(*args, **kwargs)
        time.sleep(max(0.0, deadline - time.monotonic()))
        return result

    learner.adapt = adapt


def test_deactivate_during_adaptation_then_cleanup_and_configure_again(make_harness):
    # Adaptations back to back: none waits for the last one's probation.
    harness = make_harness(support_size=50, auto_adapt=False, adaptation='maml',
                           probation_window=0.0)
    run(harness, 52)
    slow_adapt(harness.node.loop.policy.models.learner, 0.5)
    assert harness.node.loop.adapt(harness.now) == ''
    harness.transition('deactivate')
    assert harness.node.loop.policy.busy
    assert all(c is None for c in run(harness, 5))  # inactive: nothing out
    assert harness.node.loop.policy.wait(30.0)
    assert harness.node.loop.policy.last_outcome.accepted  # finished while inactive
    harness.transition('activate')
    assert all(c is not None for c in run(harness, 5))
    # A cleanup while an adaptation runs drops its result; configure starts from scratch.
    slow_adapt(harness.node.loop.policy.models.learner, 0.5)
    policy = harness.node.loop.policy
    policy.reset()
    run(harness, 52)
    assert harness.node.loop.adapt(harness.now) == ''
    harness.transition('deactivate', 'cleanup')
    assert harness.node.loop is None
    assert policy.wait(30.0)
    assert not policy.last_outcome.accepted and 'reset' in policy.last_outcome.reason
    harness.transition('configure', 'activate')
    assert not harness.node.loop.policy.adapted and len(harness.node.loop.buffer) == 0
    assert all(c is not None for c in run(harness, 60))


@pytest.mark.parametrize('in_process', [False, True], ids=['thread', 'worker process'])
def test_slow_adaptation_never_delays_the_control_loop(ros_context, executor, in_process):
    """Back-to-back slow adaptations: in a thread, MAML.adapt taking 0.5 s; in the worker
    process (which this process cannot patch), 100 gradient steps each."""
    node = AdapterNode(context=ros_context, parameter_overrides=[
        Parameter('autostart', value=False), Parameter('support_size', value=30),
        Parameter('readapt_period', value=0.01), Parameter('adaptation_process', value=in_process),
        Parameter('inner_steps', value=100 if in_process else 5),
        Parameter('probation_window', value=0.0),  # back to back: no probation between
        Parameter('adaptation', value='maml')])
    sim = PybulletSimNode(context=ros_context)
    ticks = []  # (time, adapting)
    tick = node._tick
    node._tick = lambda: (ticks.append((time.monotonic(), node.loop.policy.busy)), tick())
    node.trigger_configure()
    if not in_process:
        slow_adapt(node.loop.policy.models.learner, 0.5)
    node.trigger_activate()
    executor.add_node(node)
    executor.add_node(sim)
    try:  # the first adaptation waits for the worker process to start: not measured
        assert spin_until(executor, lambda: node.loop.policy.last_outcome is not None, 120.0)
        ticks.clear()
        spin_for(executor, 1.5)
        times, adapting = (np.array(column) for column in zip(*ticks, strict=True))
        intervals = np.diff(times)[adapting[1:]]  # those that end in a tick while adapting
        adapting_ms = node.loop.policy.last_outcome.duration_ms
        print(f'ticks while adapting: {len(intervals)}, interval max '
              f'{1e3 * intervals.max():.1f} ms, p99 {1e3 * np.quantile(intervals, 0.99):.1f} ms; '
              f'an adaptation takes {adapting_ms:.0f} ms')
        assert len(intervals) >= 50  # the loop went on ticking while it adapted ...
        # ... and no tick waited for an adaptation (how late ticks are under load is a
        # benchmark's business: bench/control_loop.py)
        assert intervals.max() < 0.5e-3 * adapting_ms
    finally:
        node.loop.policy.wait(10.0)
        node.destroy_node()
        sim.destroy_node()


def test_the_adapter_keeps_running_when_the_robot_dies_and_comes_back(ros_context, executor):
    node = AdapterNode(context=ros_context)
    probe = rclpy.create_node('probe', context=ros_context)
    received = []  # (time, command)
    probe.create_subscription(Float64MultiArray, 'effort_controller/commands',
                              lambda msg: received.append((time.monotonic(), msg.data)), 100)
    sim = PybulletSimNode(context=ros_context)
    for n in (node, probe, sim):
        executor.add_node(n)
    try:
        spin_for(executor, 1.0)
        assert len(received) > 50
        executor.remove_node(sim)
        sim.destroy_node()  # the robot dies
        died = time.monotonic()
        spin_for(executor, 0.5)
        assert max(t for t, _ in received) < died + 0.2  # silent after watchdog_timeout
        assert node_status(node)[0] == DiagnosticStatus.ERROR
        assert node._state_machine.current_state[1] == 'active'
        count = len(received)
        sim = PybulletSimNode(context=ros_context)  # and comes back
        executor.add_node(sim)
        spin_for(executor, 1.0)
        assert len(received) > count + 50
        # Ramped in from rest after the silence, and safe throughout.
        step = node.get_parameter('max_command_rate').value * node.period
        assert_safe_commands(received, step=step, gap=0.2)
        assert node_status(node)[0] == DiagnosticStatus.OK
    finally:
        for n in (node, probe, sim):
            n.destroy_node()


def test_joint_state_trigger_ticks_once_per_fresh_joint_state(make_harness):
    harness = make_harness(trigger='joint_states')
    assert harness.node._timer is None  # no timer: only joint states start ticks
    for _ in range(20):
        harness.now += harness.period
        assert harness.joint_state(harness.state())
    assert len(harness.commands) == 20
    harness.now += 0.3 * harness.period  # a second one within half a period: no extra tick
    assert harness.joint_state(harness.state())
    assert len(harness.commands) == 20
    step = harness.node.get_parameter('max_command_rate').value * harness.period
    assert abs(harness.commands[0]).max() <= step + 1e-9  # ramped in from rest
    assert max(abs(b - a).max() for a, b in zip(harness.commands, harness.commands[1:],
                                                strict=False)) <= step + 1e-9
    harness.transition('deactivate')
    assert len(harness.commands) == 21  # the stop command ...
    harness.now += harness.period
    assert harness.joint_state(harness.state())
    assert len(harness.commands) == 21  # ... then, inactive, nothing


def test_no_joint_states_after_activation_is_reported_once_naming_the_topic(make_harness):
    harness = make_harness()
    harness.transition('deactivate', 'activate')  # activated on the harness's clock
    harness.now += 2.9
    harness.node._every_second()
    assert harness.node.problems.counts['no_joint_states'] == 0
    harness.now += 0.2  # 3.1 s since activation, not a joint state
    harness.node._every_second()
    harness.now += 1.0
    harness.node._every_second()
    problems = harness.node.problems
    assert problems.counts['no_joint_states'] == 1  # once per activation
    assert problems.last == (
        "no_joint_states: none on /joint_states for 3 s since activation: is the robot's "
        'joint_state_broadcaster running, and are ROS_DOMAIN_ID and '
        "ROS_AUTOMATIC_DISCOVERY_RANGE the same as the robot's?")
    harness.transition('deactivate', 'activate')
    assert harness.joint_state(harness.state())  # they do arrive this time
    harness.now += 5.0
    harness.node._every_second()
    assert problems.counts['no_joint_states'] == 1


def test_diagnostics_say_why_in_every_lifecycle_state(ros_context, executor, tmp_path):
    missing = tmp_path / 'missing.safetensors'
    node = AdapterNode(context=ros_context, parameter_overrides=[
        Parameter('checkpoint', value=str(missing)), Parameter('adaptation_process', value=False)])
    probe = rclpy.create_node('probe', context=ros_context)
    try:
        for n in (node, probe):
            executor.add_node(n)
        (status,) = diagnostics(executor, probe, 'maml_ros adapter')  # unconfigured, yet publishing
        assert status.level == DiagnosticStatus.ERROR
        assert status.message.startswith('unconfigured: ') and str(missing) in status.message
        node.choice.chosen = ''  # the shipped one: configure, and stay inactive
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        (status,) = diagnostics(executor, probe, 'maml_ros adapter')
        values = {kv.key: kv.value for kv in status.values}
        assert status.level == DiagnosticStatus.OK
        assert status.message == 'inactive: not commanding'
        assert values['lifecycle_state'] == 'inactive'
        assert values['checkpoint'] == node.get_parameter('active_checkpoint').value
    finally:
        for n in (node, probe):
            n.destroy_node()


def test_an_adapter_not_configured_yet_says_so_each_second(make_adapter):
    """Without ``autostart``: unconfigured, and ``/diagnostics`` at 1 Hz says so (its timer
    is the node's only one until activation)."""
    node = make_adapter(autostart=False)
    (timer,) = node.timers
    assert (timer.timer_period_ns, timer.callback) == (1_000_000_000, node._every_second)
    level, message, values = node_status(node)
    assert (level, message) == (DiagnosticStatus.ERROR, 'unconfigured: not configured yet')
    assert values['lifecycle_state'] == 'unconfigured'
    result = node.set_parameters([Parameter('active_checkpoint', value='/tmp/x')])[0]
    assert not result.successful and 'read-only' in result.reason


def test_a_configured_adapter_ticks_on_joint_states_only_once_activated(make_adapter):
    node = make_adapter(autostart=False, trigger='joint_states')
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    harness = AdapterHarness(node)
    for activated in (False, True):
        if activated:
            harness.transition('activate')
        for _ in range(5):
            harness.now += harness.period
            assert harness.joint_state(harness.state())
        assert node.loop.commands_sent == len(harness.commands) == 5 * activated


def test_each_transition_undoes_what_its_counterpart_made(make_adapter):
    """Publishers, subscriptions and services: configure makes them, cleanup destroys every
    one, and configuring again makes the same set, not a second one; activate makes the
    control timer, deactivate destroys it, and so does shutting down from active (a finalized
    node is not destroyed yet: it commands nothing)."""
    node = make_adapter(autostart=False)

    def entities() -> Counter:
        return Counter([('publisher', p.topic_name) for p in node.publishers]
                       + [('subscription', s.topic_name) for s in node.subscriptions]
                       + [('service', s.srv_name) for s in node.services]
                       + [('timer', t.timer_period_ns) for t in node.timers])

    bare = entities()
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    configured = entities()
    assert configured - bare == Counter({
        ('publisher', '/effort_controller/commands'): 1, ('publisher', '/adapter/desired'): 1,
        ('subscription', '/joint_states'): 1, ('subscription', '/adapter/reference'): 1,
        ('subscription', '/meta_trainer/checkpoint'): 1, ('service', '~/adapt'): 1,
        ('service', '~/reset_adaptation'): 1, ('service', '~/save_adapted'): 1,
        ('service', '~/record'): 1})
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert entities() - configured == Counter({('timer', 10_000_000): 1})  # 100 Hz
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert entities() == configured and not node.active
    assert node_status(node)[1] == 'inactive: not commanding'
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert entities() == bare
    _, message, values = node_status(node)
    assert (message, values['lifecycle_state']) == ('unconfigured: cleaned up', 'unconfigured')
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert entities() == configured
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_shutdown() == TransitionCallbackReturn.SUCCESS  # as deactivate
    assert entities() == configured and not node.active
    assert not node.commands.is_activated and not node.desired.is_activated


@pytest.mark.parametrize('leave, why', [('trigger_deactivate', 'deactivated'),
                                         ('trigger_shutdown', 'shut down'),
                                         ('destroy_node', 'shutting down')])
def test_leaving_active_sends_the_stop_command_once_and_says_so(make_harness, capfd, leave,
                                                                 why):
    harness = make_harness()
    for _ in range(5):
        assert harness.joint_state(harness.state())
        assert harness.tick() is not None
    sent = len(harness.commands)
    capfd.readouterr()
    getattr(harness.node, leave)()
    assert len(harness.commands) == sent + 1
    harness.node.destroy_node()  # no second stop
    assert len(harness.commands) == sent + 1
    time.sleep(0.05)  # let the line reach stderr
    assert (f'[adapter]: {why}: sent the stop command (gravity compensation) and stopped '
            'commanding') in capfd.readouterr().err


def test_a_node_shut_down_while_active_commands_nothing_after_its_stop(make_harness):
    """Finalized is not destroyed: joint states still arrive (here they trigger the ticks),
    but none makes a command after the stop command."""
    harness = make_harness(trigger='joint_states')
    node = harness.node
    for _ in range(5):
        harness.now += node.period
        assert harness.joint_state(harness.state())
    sent = len(harness.commands)
    assert sent == 5
    assert node.trigger_shutdown() == TransitionCallbackReturn.SUCCESS
    for _ in range(20):
        harness.now += node.period
        harness.joint_state(harness.state())
    assert len(harness.commands) == sent + 1  # the stop command, and nothing after it
