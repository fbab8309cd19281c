"""The control loop the robot runs, driven on simulated time against PyBullet (no rclpy)."""

import dataclasses
import threading
from unittest.mock import ANY

import numpy as np
import pytest
import torch

from maml_ros.evaluation.tracking import EvalSettings, run_loop
from maml_ros.online.adaptive_policy import AdaptivePolicy
from maml_ros.online.control_loop import (
    MAX_STAMP_LEAD,
    ControlLoop,
    Level,
    LoopSettings,
    stamp_rejection,
)
from maml_ros.sim import PANDA_HOME, Dynamics, SimRobot

from helpers.loop_harness import untrained_models

HEAVY = Dynamics(payload_mass=1.8, actuator_gain=0.85, joint_friction=0.2)
PERIOD = 0.01


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def make_loop(models, clock, **settings):
    policy = AdaptivePolicy(models=models, worker='inline')
    return ControlLoop(policy=policy, settings=LoopSettings(**settings), period=PERIOD,
                       stamp_clock=clock)


def drive(loop, robot, clock, ticks, fed: list | None = None):
    """``ticks`` control periods of the loop closed around ``robot``: the commands sent
    (``fed`` gets the positions the loop was given)."""
    commands = []
    for _ in range(ticks):
        clock.now += PERIOD
        q, qd = robot.measured_state()
        assert loop.joint_state(q, qd, clock.now, clock.now) == ''
        if fed is not None:
            fed.append(q)
        tick = loop.step(clock.now)
        commands.append(tick.command)
        robot.step(tick.command)
    return np.array(commands)


def test_first_command_ramps_in_from_rest_and_every_step_respects_the_rate(models, robot):
    robot.reset()
    clock = Clock()
    loop = make_loop(models, clock, max_command_rate=500.0)
    commands = drive(loop, robot, clock, 30)
    step = 500.0 * PERIOD
    assert np.all(np.abs(commands[0]) <= step + 1e-9)  # from zero effort
    assert np.all(np.abs(np.diff(commands, axis=0)) <= step + 1e-9)
    assert np.all(np.abs(commands) <= loop.command_space.upper + 1e-9)


def test_stale_states_stop_commands_and_the_restart_ramps_in_again(models, robot):
    robot.reset()
    clock = Clock()
    loop = make_loop(models, clock, watchdog_timeout=0.05, max_command_rate=300.0)
    fed = []
    drive(loop, robot, clock, 20, fed)
    q = fed[-1]
    clock.now += 0.06  # no joint state for longer than the watchdog allows:
    stop = loop.step(clock.now)  # one stop command, gravity compensation of the posture ...
    assert stop.stop and loop.stops_sent == 1
    np.testing.assert_allclose(stop.command, np.clip(loop.policy.hold(q), loop.command_space.lower,
                                                      loop.command_space.upper))
    clock.now += PERIOD
    assert loop.step(clock.now) is None  # ... then silence
    assert loop.status(clock.now).level == Level.ERROR
    commands = drive(loop, robot, clock, 3)
    assert np.all(np.abs(commands[0]) <= 300.0 * PERIOD + 1e-9)
    assert loop.status(clock.now).level == Level.OK


def test_the_stamp_lead_tolerance_is_the_documented_second():
    assert MAX_STAMP_LEAD == 1.0  # README: "more than 1 s ahead of this node's clock"


@pytest.mark.parametrize(('stamp', 'reason'), [
    (-1.0, 'not newer'), (0.0, 'not newer'), (MAX_STAMP_LEAD + 0.01, 'ahead of this clock')])
def test_old_repeated_and_future_stamps_are_dropped_with_the_reason(models, stamp, reason):
    clock = Clock()
    loop = make_loop(models, clock)
    q = np.array(models.formulation.robot.home)
    assert loop.joint_state(q, 0 * q, clock.now, clock.now) == ''
    assert reason in loop.joint_state(q, 0 * q, clock.now + stamp, clock.now)
    assert loop.joint_state(q, 0 * q, clock.now + MAX_STAMP_LEAD - 0.01, clock.now) == ''


def test_loop_adapts_once_the_support_is_full_and_then_stops_exploring(models, robot):
    robot.reset()
    clock = Clock()
    loop = make_loop(models, clock, support_size=50, exploration_std=0.02)
    drive(loop, robot, clock, 51)
    assert loop.policy.adapted and loop.policy.last_outcome.transitions == 50
    # No exploration any more: the command is the policy's, through the safety filter.
    q, qd = robot.measured_state()
    clock.now += PERIOD
    loop.joint_state(q, qd, clock.now, clock.now)
    tick = loop.step(clock.now)
    q_ref, qd_ref, qdd_ref = loop._builtin.sample(clock.now - loop._builtin_start)
    np.testing.assert_allclose(tick.command, np.clip(
        loop.policy.command(q, qd, q_ref, qd_ref, qdd_ref), loop.command_space.lower,
        loop.command_space.upper), rtol=0, atol=1e-9)


def test_support_records_the_commands_sent_after_the_safety_filter(models, robot):
    robot.reset()
    clock = Clock()
    loop = make_loop(models, clock, support_size=30, auto_adapt=False, max_command_rate=100.0)
    commands = drive(loop, robot, clock, 31)
    np.testing.assert_array_equal(loop.buffer.transitions().commands, commands[:30])


def test_evaluation_adapts_exactly_as_the_robot_does_on_the_same_support(models, robot):
    """The evaluation's run and the adaptation the node starts (``AdaptivePolicy.adapt``, in
    its worker) give the same weights from the same support transitions."""
    policy = AdaptivePolicy(models=models, worker='inline')
    support = []
    start = policy.start
    policy.start = lambda transitions, **kwargs: (support.append(transitions),
                                                  start(transitions, **kwargs))[1]
    run = run_loop(policy, HEAVY, seed=3, settings=EvalSettings(track_steps=20), robot=robot)
    assert run.outcome.accepted and len(support) == 1 and len(support[0]) == 200
    on_robot = AdaptivePolicy(models=models, worker='thread')
    outcome = on_robot.adapt(support[0], inner_steps=5)
    assert outcome.accepted and outcome.loss_after == run.outcome.loss_after
    for name, tensor in on_robot.active_state().items():
        assert torch.equal(tensor, policy.active_state()[name]), name


@pytest.mark.parametrize('interface', ['effort', 'velocity', 'position'])
def test_every_command_interface_ramps_in_from_rest_within_its_limits_and_rates(interface):
    """Per-joint rates (a slow wrist) and each interface's own limits and rest command."""
    models = untrained_models(interface)
    clock = Clock()
    loop = ControlLoop(policy=AdaptivePolicy(models=models, worker='inline'),
                       settings=LoopSettings(auto_adapt=False, watchdog_timeout=0.05),
                       period=PERIOD, stamp_clock=clock)
    rate = np.array([3.0, 3.0, 3.0, 3.0, 1.0, 1.0, 0.5])
    loop.safety.set_max_rate(rate)
    space = loop.command_space
    with SimRobot(config=models.formulation.robot, dynamics=HEAVY) as robot:
        robot.reset()
        fed = []
        for gap in (False, True):
            if gap:  # joint states stop: the stop command, silence, a fresh ramp-in from rest
                clock.now += 0.06
                stop = loop.step(clock.now)
                if interface == 'effort':  # gravity compensation of the posture
                    np.testing.assert_allclose(stop.command, loop.policy.hold(fed[-1]))
                else:  # zero velocity, or the measured position
                    np.testing.assert_array_equal(stop.command, space.rest(fed[-1]))
                clock.now += PERIOD
                assert loop.step(clock.now) is None
            q = robot.measured_state()[0]
            commands = drive(loop, robot, clock, 40, fed)
            rest = q if interface == 'position' else np.zeros(7)  # hold still, do nothing
            assert np.all(np.abs(commands[0] - rest) <= rate * PERIOD + 1e-9)
            assert np.all(np.abs(np.diff(commands, axis=0)) <= rate * PERIOD + 1e-9)
            assert np.all(commands >= space.lower - 1e-9) and np.all(commands <= space.upper + 1e-9)
    if interface == 'position':  # rest is where the joint is: far from zero at home
        assert np.abs(rest).max() > 1.0


def test_status_reports_each_figure_and_its_level(models, robot):
    robot.reset()
    clock = Clock()
    loop = make_loop(models, clock, support_size=30, auto_adapt=False, watchdog_timeout=0.05)
    drive(loop, robot, clock, 12)
    status = loop.status(clock.now)
    assert (status.level, status.message) == (Level.OK, 'collecting')
    values = status.values
    assert values['state'] == 'collecting' and values['support_fill'] == '11/30'
    assert values['commands_sent'] == '12' and values['stops_sent'] == '0'
    assert values['joint_states_stale'] == 'False' and values['support_chain_breaks'] == '0'
    assert 'support_loss_before' not in values and 'tracking_rmse_adapted' not in values
    drive(loop, robot, clock, 120)  # past the ramp-in: tracking is scored
    assert loop.status(clock.now).values['tracking_rmse_meta_policy'] == \
        f"{loop.tracking_rmse()['meta_policy']:.6g}"
    assert loop.adapt(clock.now) == ''  # inline: done
    values = loop.status(clock.now).values
    outcome = loop.policy.last_outcome
    assert values['state'] == 'adapted' and values['last_adaptation'] == 'accepted'
    assert values['support_loss_before'] == f'{outcome.loss_before:.6g}'
    assert values['support_loss_after'] == f'{outcome.loss_after:.6g}'
    assert values['adaptation_ms'] == f'{outcome.duration_ms:.1f}'
    clock.now += 0.06  # stale
    assert loop.step(clock.now).stop
    status = loop.status(clock.now)
    assert (status.level, status.message) == (Level.ERROR, 'joint states stale')
    assert status.values['joint_states_stale'] == 'True' and status.values['stops_sent'] == '1'


def test_the_adapted_policy_is_scored_from_a_second_after_it_took_over(models, robot):
    """As the evaluation's settle_steps: the recovery from the meta-policy's error is not
    the adapted policy's tracking."""
    robot.reset()
    clock = Clock()
    loop = make_loop(models, clock, support_size=30, auto_adapt=False)
    drive(loop, robot, clock, 120)
    assert loop.adapt(clock.now) == ''
    squares = []
    for _ in range(150):
        clock.now += PERIOD
        q, qd = robot.measured_state()
        assert loop.joint_state(q, qd, clock.now, clock.now) == ''
        tick = loop.step(clock.now)
        robot.step(tick.command)
        squares.append(np.mean((q - tick.q_ref) ** 2))
    scored = loop.tracking_rmse()['adapted']
    # 100 ticks of 10 ms (101 where the sum of the clock's steps falls short of 1 s)
    assert any(scored == pytest.approx(np.sqrt(np.mean(squares[first:])), rel=1e-9)
               for first in (100, 101))
    assert scored != pytest.approx(np.sqrt(np.mean(squares)), rel=1e-3)


def test_a_rejected_adaptation_is_a_warning(models, robot):
    robot.reset()
    clock = Clock()
    loop = make_loop(models, clock, support_size=30, auto_adapt=False, inner_lr=1e4)
    drive(loop, robot, clock, 40)
    assert loop.adapt(clock.now) == ''
    status = loop.status(clock.now)
    assert not loop.policy.last_outcome.accepted
    assert status.level == Level.WARN and status.message == 'collecting; last adaptation rejected'
    assert status.values['last_adaptation'] == f'rejected: {loop.policy.last_outcome.reason}'


def test_ticks_driven_by_joint_states_run_at_most_twice_a_period(models, robot):
    robot.reset()
    clock = Clock()
    loop = make_loop(models, clock)
    drive(loop, robot, clock, 1)
    assert not loop.tick_due(clock.now + 0.49 * PERIOD)
    assert loop.tick_due(clock.now + 0.51 * PERIOD)


def test_applied_settings_take_effect_at_once(models, robot):
    robot.reset()
    clock = Clock()
    loop = make_loop(models, clock, support_size=100)
    drive(loop, robot, clock, 20)
    loop.apply(LoopSettings(support_size=10, max_command_rate=1.0, watchdog_timeout=0.015))
    assert loop.buffer.capacity == 10 and len(loop.buffer) == 10
    before = loop.step(clock.now + PERIOD).command  # the last state is 10 ms old: fresh
    after = drive(loop, robot, clock, 1)[0]
    assert np.abs(after - before).max() <= 1.0 * PERIOD + 1e-9
    clock.now += 0.02  # 20 ms: stale under the new timeout
    assert loop.step(clock.now).stop


def test_reset_and_a_new_policy_start_the_adaptation_over(models, robot):
    robot.reset()
    clock = Clock()
    loop = make_loop(models, clock, support_size=20)
    drive(loop, robot, clock, 21)
    assert loop.policy.adapted
    loop.reset_adaptation()
    assert not loop.policy.adapted and len(loop.buffer) == 0
    drive(loop, robot, clock, 21)  # adapts again once the support is full
    assert loop.policy.adapted
    old = loop.policy
    loop.switch_policy(AdaptivePolicy(models=models, worker='inline'))
    assert loop.policy is not old and not loop.policy.adapted and len(loop.buffer) == 0
    drive(loop, robot, clock, 21)
    assert loop.policy.adapted


def test_exploration_uses_the_checkpoint_exploration_scale(models):
    scale = tuple(float(k + 1) for k in range(7))
    scaled = dataclasses.replace(models, formulation=dataclasses.replace(
        models.formulation, exploration_scale=scale))
    loop = make_loop(scaled, Clock())
    np.testing.assert_array_equal(loop.command_space.scale, scale)
    noise = loop.command_space.exploration(np.random.default_rng(0), 0.1, 4000)
    np.testing.assert_allclose(noise.std(0), 0.1 * np.array(scale), rtol=0.06)


def test_the_stop_command_is_clamped_into_the_limits_like_every_command():
    """A position robot measured past a limit (joint 4 above its 0 rad upper limit) is held
    at the limit, not commanded where it was measured."""
    clock = Clock()
    loop = make_loop(untrained_models('position'), clock)
    q = np.array(PANDA_HOME)
    q[3] = 0.3
    q[0] = loop.limits.lower[0] - 0.2
    clock.now += PERIOD
    assert loop.joint_state(q, np.zeros(7), clock.now, clock.now) == ''
    assert loop.step(clock.now) is not None
    stop = loop.stop()
    assert stop[3] == loop.command_space.upper[3] == loop.limits.upper[3]
    assert stop[0] == loop.command_space.lower[0] == loop.limits.lower[0]
    np.testing.assert_array_equal(stop[1:3], q[1:3])
    np.testing.assert_array_equal(stop[4:], q[4:])


def test_waypoints_start_from_the_latest_joint_state_within_the_limits_and_speeds(models):
    clock = Clock()
    loop = make_loop(models, clock)
    lower, upper, speed = loop.limits.lower, loop.limits.upper, loop.limits.velocity
    times = np.array([1.0, 2.0])
    positions = np.stack([upper + 1.0, lower - 1.0])  # beyond the limits
    velocities = np.stack([10 * speed, np.zeros(7)])  # beyond the joints' speeds
    with pytest.raises(ValueError, match='^no joint state yet to start it from$'):
        loop.waypoints(times, positions, velocities)
    q, qd = np.array(PANDA_HOME), np.full(7, 0.1)
    clock.now += PERIOD
    assert loop.joint_state(q, qd, clock.now, clock.now) == ''
    reference = loop.waypoints(times, positions, velocities)
    start, first = reference.sample(0.0), reference.sample(1.0)
    np.testing.assert_allclose(start[0], q)
    np.testing.assert_allclose(start[1], qd)
    np.testing.assert_allclose(first[0], upper)
    np.testing.assert_allclose(first[1], speed)
    np.testing.assert_allclose(reference.sample(2.0)[0], lower)


def test_a_tick_driven_by_joint_states_may_run_exactly_half_a_period_after_the_last(models):
    clock = Clock()
    loop = ControlLoop(policy=AdaptivePolicy(models=models, worker='inline'),
                       settings=LoopSettings(), period=0.5, stamp_clock=clock)
    clock.now = 1.0
    assert loop.joint_state(np.array(PANDA_HOME), np.zeros(7), 1.0, 1.0) == ''
    assert loop.step(1.0) is not None
    assert loop.tick_due(1.25) and not loop.tick_due(1.2499)


@pytest.mark.parametrize('interface, stop_command', [('effort', 'zero'),
                                                      ('velocity', 'gravity')])
def test_a_stop_that_holds_nothing_is_the_interface_rest(interface, stop_command):
    """Zero effort, or zero velocity however ``stop_command`` is set (gravity compensation is
    a torque: only an effort robot can take it). Each stop is counted, and a second stop
    without a command between them sends nothing."""
    clock = Clock()
    loop = ControlLoop(policy=AdaptivePolicy(models=untrained_models(interface), worker='inline'),
                       settings=LoopSettings(), period=PERIOD, stamp_clock=clock,
                       stop_command=stop_command)
    q = np.array(PANDA_HOME)
    for stops in (1, 2):
        clock.now += PERIOD
        assert loop.joint_state(q, np.zeros(7), clock.now, clock.now) == ''
        assert loop.step(clock.now) is not None
        np.testing.assert_array_equal(loop.stop(), np.zeros(7))
        assert loop.stop() is None
        assert loop.stops_sent == stops


def test_the_builtin_reference_fades_in_from_where_the_robot_is(models):
    """At rest at the measured posture, then the same smooth motion on every run."""
    runs = []
    for _ in range(2):
        clock = Clock()
        loop = make_loop(models, clock)
        q = np.array(PANDA_HOME) + 0.05
        ticks = []
        for _ in range(50):
            clock.now += PERIOD
            assert loop.joint_state(q, np.zeros(7), clock.now, clock.now) == ''
            ticks.append(loop.step(clock.now))
        np.testing.assert_allclose(ticks[0].q_ref, q)
        np.testing.assert_allclose(ticks[0].qd_ref, 0.0)
        runs.append(np.array([tick.q_ref for tick in ticks]))
    assert np.abs(runs[0][-1] - runs[0][0]).max() > 1e-4  # it moves
    np.testing.assert_array_equal(runs[0], runs[1])


def test_status_says_adapting_while_an_adaptation_runs(models, robot):
    robot.reset()
    clock = Clock()
    release = threading.Event()
    loop = ControlLoop(policy=AdaptivePolicy(models=models, worker='thread'),
                       settings=LoopSettings(support_size=20), period=PERIOD,
                       stamp_clock=clock, on_adapted=lambda outcome: release.wait(30.0))
    drive(loop, robot, clock, 21)  # the support is full: the adaptation starts
    try:
        assert loop.policy.busy
        assert loop.status(clock.now).values['state'] == 'adapting'
    finally:
        release.set()
    assert loop.policy.wait(30.0)
    assert loop.status(clock.now).values['state'] == 'adapted'


class Spy:
    """An inline AdaptivePolicy that records what the loop asks of it: each command it
    computed and was sent, and each adaptation it was asked to start (``refuse``: reasons to
    give the first starts)."""

    def __init__(self, models, *, ready: bool = True, refuse: tuple[str, ...] = ()):
        self.inner = AdaptivePolicy(models=models, worker='inline')
        self.ready, self.refuse = ready, list(refuse)
        self.commanded, self.sent_commands, self.starts = [], [], []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def command(self, *args):
        self.commanded.append(self.inner.command(*args))
        return self.commanded[-1]

    def sent(self, command):
        self.sent_commands.append(command)
        self.inner.sent(command)

    def start(self, transitions, **kwargs):
        self.starts.append(kwargs | {'transitions': len(transitions)})
        return self.refuse.pop(0) if self.refuse else self.inner.start(transitions, **kwargs)

    def explored(self) -> list[bool]:
        """Per tick, whether exploration changed the command that went out."""
        return [not np.array_equal(commanded, sent)
                for commanded, sent in zip(self.commanded, self.sent_commands, strict=True)]


def spy_loop(models, clock, policy, *, period=0.25, **settings):
    """A loop on exactly representable times (period 0.25 s) whose outcomes are kept."""
    outcomes = []
    settings = {'max_command_rate': 1e6, 'watchdog_timeout': 1.0, **settings}
    loop = ControlLoop(policy=policy, settings=LoopSettings(**settings), period=period,
                       stamp_clock=clock, on_adapted=outcomes.append, seed=7)
    return loop, outcomes


def feed(loop, clock, ticks, period=0.25, q=None):
    """``ticks`` ticks with the robot held at ``q`` (home by default); the ticks sent."""
    q = np.array(PANDA_HOME) if q is None else q
    sent = []
    for _ in range(ticks):
        clock.now += period
        assert loop.joint_state(q, np.zeros(7), clock.now, clock.now) == ''
        sent.append(loop.step(clock.now))
    return sent


def test_readaptation_runs_every_readapt_period_and_exploration_goes_on(models):
    clock = Clock()
    clock.now = 0.0
    policy = Spy(models)
    loop, outcomes = spy_loop(models, clock, policy, support_size=10, readapt_period=0.5,
                              probation_window=0.0)  # (probation holds re-adaptation: below)
    feed(loop, clock, 20)
    # Full after 11 states (10 transitions): adapted at 2.75 s, then every 0.5 s exactly.
    assert [outcome.window_end for outcome in outcomes] == [2.75, 3.25, 3.75, 4.25, 4.75]
    assert [start['inner_steps'] for start in policy.starts] == [5] * 5
    assert all(policy.explored())  # before and after adapting


def test_without_readaptation_exploration_stops_once_adapted(models):
    clock = Clock()
    clock.now = 0.0
    policy = Spy(models)
    loop, outcomes = spy_loop(models, clock, policy, support_size=10, inner_steps=3,
                              inner_lr=0.05)
    feed(loop, clock, 20)
    assert len(outcomes) == 1 and outcomes[0].window_end == 2.75
    assert policy.starts == [{'inner_steps': 3, 'inner_lr': 0.05, 'on_done': ANY,
                              'transitions': 10}]
    assert policy.explored() == [True] * 11 + [False] * 9


def test_a_refused_adaptation_is_tried_again_on_the_next_tick(models):
    clock = Clock()
    clock.now = 0.0
    policy = Spy(models, refuse=('the worker is still starting',))
    loop, outcomes = spy_loop(models, clock, policy, support_size=10)
    feed(loop, clock, 12)
    assert len(policy.starts) == 2 and len(outcomes) == 1


def test_a_policy_that_is_not_ready_is_not_asked_to_adapt(models):
    clock = Clock()
    policy = Spy(models, ready=False)
    loop, _ = spy_loop(models, clock, policy, support_size=10)
    feed(loop, clock, 15)
    assert policy.starts == []


def test_exploration_is_the_same_for_the_same_seed(models):
    commands = []
    for seed in (7, 7, 8):
        clock = Clock()
        loop = ControlLoop(policy=AdaptivePolicy(models=models, worker='inline'),
                           settings=LoopSettings(max_command_rate=1e6), period=PERIOD,
                           stamp_clock=clock, seed=seed)
        commands.append(np.array([tick.command for tick in feed(loop, clock, 5, PERIOD)]))
    np.testing.assert_array_equal(commands[0], commands[1])
    assert not np.array_equal(commands[0], commands[2])


def test_the_stop_after_stale_states_tracks_the_last_measured_posture(models):
    clock = Clock()
    loop = make_loop(models, clock, watchdog_timeout=0.05)
    q = np.array(PANDA_HOME) + 0.01
    feed(loop, clock, 3, PERIOD, q)
    clock.now += 0.06
    tick = loop.step(clock.now)
    assert tick.stop
    np.testing.assert_array_equal(tick.q_ref, q)
    np.testing.assert_array_equal(tick.qd_ref, np.zeros(7), strict=True)


def test_a_reference_is_sampled_from_when_it_was_set(models):
    class Ramp:
        def sample(self, t):
            return np.full(7, t), np.ones(7), np.zeros(7)

    clock = Clock()
    loop = make_loop(models, clock)
    loop.set_reference(Ramp(), 100.005)
    tick = feed(loop, clock, 1, PERIOD)[0]
    np.testing.assert_allclose(tick.q_ref, clock.now - 100.005)


def test_latency_is_the_joint_states_age_when_its_command_goes_out(models):
    clock = Clock()
    loop = make_loop(models, clock)
    for _ in range(3):
        clock.now += PERIOD
        assert loop.joint_state(np.array(PANDA_HOME), np.zeros(7), clock.now - 0.004,
                                clock.now) == ''
        loop.step(clock.now)
    report = loop.stats.report(clock.now)
    assert float(report['latency_p50_ms']) == pytest.approx(4.0, abs=1e-3)


def test_tracking_is_scored_from_a_second_after_the_ramp_in(models):
    """Ticks at 0.25 s: a ramp-in at 0.25 s, so the ticks from 1.25 s on count."""
    clock = Clock()
    clock.now = 0.0
    loop, _ = spy_loop(models, clock, Spy(models), exploration_std=0.0, auto_adapt=False)
    q = np.array(PANDA_HOME)
    ticks = feed(loop, clock, 12, q=q)
    errors = np.array([tick.q_ref - q for tick in ticks[4:]])
    assert loop.tracking_rmse() == {'meta_policy': pytest.approx(np.sqrt(np.mean(errors ** 2)))}


def test_the_adapted_policy_is_scored_from_a_second_after_it_took_over_exactly(models):
    clock = Clock()
    clock.now = 0.0
    loop, outcomes = spy_loop(models, clock, Spy(models), exploration_std=0.0,
                              support_size=10)
    q = np.array(PANDA_HOME)
    ticks = feed(loop, clock, 20, q=q)
    assert outcomes[0].window_end == 2.75  # adapted in the tick at 2.75 s: in force at 3.0
    errors = np.array([tick.q_ref - q for tick in ticks[15:]])  # from 4.0 s
    assert loop.tracking_rmse()['adapted'] == pytest.approx(np.sqrt(np.mean(errors ** 2)))


def test_a_joint_state_exactly_a_second_ahead_is_taken():
    assert stamp_rejection(101.0, 99.0, 100.0) == ''
    assert stamp_rejection(101.5, 99.0, 100.0) == 'stamp is 1.5 s ahead of this clock'


def test_an_unknown_stop_command_is_refused_with_the_choices(models):
    with pytest.raises(ValueError) as refusal:
        ControlLoop(policy=AdaptivePolicy(models=models, worker='inline'),
                    settings=LoopSettings(), period=PERIOD, stamp_clock=Clock(),
                    stop_command='brake')
    assert str(refusal.value) == "stop_command must be one of ['gravity', 'zero'], not 'brake'"
