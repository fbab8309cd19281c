"""Closed-loop acceptance: an adaptation that makes the robot do worse is rolled back.

The verdict's rule at its edges (margins, floors, comparable motion, too little to compare
with), and the loop's probation on the simulated Panda with a hand-made fit: one that
compensates a wrist friction the robot does not have, by the sign of the measured velocity,
as a fit that overestimates dry friction does.
"""

import dataclasses
import math

import numpy as np
import pytest

from maml_ros.evaluation.tracking import EvalSettings, run_loop
from maml_ros.model.held_out import HeldOut
from maml_ros.model.model_based import ModelPolicy
from maml_ros.model.outcome import AdaptationOutcome
from maml_ros.online.control_loop import SETTLE_SECONDS, ControlLoop, LoopSettings
from maml_ros.online.probation import (
    CHATTER_FLOOR,
    MIN_BEFORE,
    MOTION_RATIO,
    TRACKING_FLOOR,
    Motion,
    MotionWindow,
    verdict,
)
from maml_ros.sim import Dynamics

WINDOW = 200
CALM = np.full(7, 0.01)


def motion(tracking=0.05, speed=0.3, chatter=CALM, ticks=WINDOW) -> Motion:
    return Motion(tracking=tracking, speed=speed, chatter=np.asarray(chatter, float),
                  ticks=ticks)


def judged(before, after, margin=0.25):
    return verdict(before, after, window_ticks=WINDOW, margin=margin)


@pytest.mark.parametrize('margin', [0.0, 0.25, 1.0])
def test_tracking_worse_beyond_the_margin_and_floor_rolls_back_and_within_it_does_not(margin):
    edge = (1 + margin) * 0.05 + TRACKING_FLOOR
    kept = judged(motion(), motion(tracking=edge * 0.999), margin)
    worse = judged(motion(), motion(tracking=edge * 1.001), margin)
    assert not kept.rollback and kept.reason.startswith('kept after 200 ticks')
    assert worse.rollback
    assert f'tracking {edge * 1.001:.4g} rad against 0.05' in worse.reason
    assert f'margin {margin:.0%}' in worse.reason


def test_better_tracking_is_kept_however_much_better():
    assert not judged(motion(tracking=0.3), motion(tracking=0.001)).rollback


def test_chatter_on_one_joint_rolls_back_and_names_it():
    chatter = CALM.copy()
    chatter[6] = 1.25 * 0.01 + CHATTER_FLOOR + 1e-3
    result = judged(motion(), motion(tracking=0.01, chatter=chatter))
    assert result.rollback and 'chatter on joints [7]' in result.reason
    assert 'tracking' not in result.reason  # it tracks better: only the chatter is worse
    chatter[6] -= 2e-3  # under the floor: not chatter
    assert not judged(motion(), motion(tracking=0.01, chatter=chatter)).rollback


def test_both_worse_are_both_said():
    chatter = CALM + 1.0
    result = judged(motion(), motion(tracking=0.5, chatter=chatter))
    assert result.rollback and 'tracking' in result.reason
    assert 'chatter on joints [1, 2, 3, 4, 5, 6, 7]' in result.reason


@pytest.mark.parametrize('ratio', [1 / (MOTION_RATIO * 1.01), MOTION_RATIO * 1.01])
def test_motion_that_is_not_comparable_is_not_judged(ratio):
    result = judged(motion(speed=0.3), motion(tracking=1.0, speed=0.3 * ratio))
    assert not result.rollback and 'not comparable' in result.reason


def test_motion_at_the_ratio_is_compared():
    assert judged(motion(speed=0.3), motion(tracking=1.0, speed=0.3 * MOTION_RATIO)).rollback
    assert judged(motion(speed=0.3), motion(tracking=1.0, speed=0.3 / MOTION_RATIO)).rollback


def test_too_little_before_the_swap_is_not_judged():
    short = math.ceil(MIN_BEFORE * WINDOW) - 1
    result = judged(motion(ticks=short), motion(tracking=1.0))
    assert not result.rollback and f'{short} ticks before the swap' in result.reason
    assert not judged(None, motion(tracking=1.0)).rollback
    assert judged(motion(ticks=short + 1), motion(tracking=1.0)).rollback


def test_a_window_measures_tracking_reference_speed_and_chatter():
    window = MotionWindow(4)
    assert window.motion() is None
    q_ref, zeros = np.zeros(2), np.zeros(2)
    for tick in range(6):  # the last four: errors 0.1/0.3, speeds 1/3, joint 2 alternating
        window.add(np.array([0.1, 0.3]), q_ref, np.array([1.0, 3.0]),
                   np.array([2.0, (-1.0) ** tick]))
    figures = window.motion()
    assert figures.ticks == 4 and len(window) == 4
    assert figures.tracking == pytest.approx(math.sqrt((0.01 + 0.09) / 2))
    assert figures.speed == pytest.approx(math.sqrt((1 + 9) / 2))
    np.testing.assert_allclose(figures.chatter, [0.0, 4.0])  # 1 - 2 * (-1) + 1
    window.resize(2)  # the newest two stay
    assert len(window) == 2 and window.motion() is None
    window.resize(5)
    window.add(zeros, q_ref, zeros, zeros)
    assert window.motion().ticks == 3  # commands (2, 1), (2, -1), (0, 0)
    np.testing.assert_allclose(window.motion().chatter, [2.0, 3.0])


class HandMadeFit:
    """Computed torque with the URDF model (:class:`ModelPolicy`); its "adaptation" adds
    ``friction`` N*m on the wrist by the sign of the measured velocity: a Coulomb friction
    compensation the robot has no friction for."""

    method = 'hand_made'

    def __init__(self, models, friction: float) -> None:
        self.urdf = ModelPolicy(models=models, torque=models.formulation.nominal)
        self.models, self.friction = models, friction
        self.adapted, self.busy, self.ready = False, False, True
        self.last_outcome: AdaptationOutcome | None = None

    def command(self, q, qd, q_ref, qd_ref, qdd_ref):
        command = self.urdf.command(q, qd, q_ref, qd_ref, qdd_ref)
        if self.adapted:
            command[6] += self.friction * np.sign(qd[6])
        return command

    def start(self, transitions, *, on_done=None, **_):
        self.adapted = True
        held_out = HeldOut(before=np.ones((2, 7)), after=np.full((2, 7), 0.5),
                           rows=np.array([90, 90]))
        self.last_outcome = AdaptationOutcome(accepted=True, reason='', loss_before=1.0,
                                              loss_after=0.5, duration_ms=0.0,
                                              transitions=len(transitions), held_out=held_out)
        if on_done is not None:
            on_done(self.last_outcome)
        return ''

    def rollback(self, reason):
        self.adapted = False
        self.last_outcome = self.last_outcome.rolled_back_because(reason)
        return self.last_outcome

    def __getattr__(self, name):  # hold, sent, identified, reset, wait, close
        return getattr(self.urdf, name)


#: The robot the URDF describes, without friction: the fit's compensation is all wrong.
FRICTIONLESS = Dynamics(payload_mass=0.0, actuator_gain=1.0, joint_friction=0.0,
                        joint_damping=0.0)
SUPPORT = 200


def probation_run(models, robot, friction, **change):
    settings = EvalSettings(support_size=SUPPORT, settle_steps=100, track_steps=400, **change)
    policy = HandMadeFit(models, friction)
    return policy, run_loop(policy, FRICTIONLESS, seed=5, settings=settings, robot=robot)


def test_a_fit_that_makes_the_wrist_chatter_is_rolled_back_within_the_window(models, robot):
    policy, run = probation_run(models, robot, friction=3.0)
    swap, rollback = run.outcomes
    assert swap.accepted and not swap.rolled_back
    assert rollback.rolled_back and not rollback.accepted and 'chatter on joints [' in \
        rollback.reason and '7' in rollback.reason.split('chatter on joints [')[1].split(']')[0]
    assert str(rollback).startswith('rolled back after 200 ticks on the robot')
    assert not policy.adapted and run.rollbacks == 1
    # Back on the URDF model: the wrist's commands are as calm after as before the swap.
    period = models.formulation.robot.control_period
    verdict_tick = SUPPORT + round(SETTLE_SECONDS / period) + 200
    wrist = np.abs(np.diff(np.array(run.commands)[:, 6], n=2))
    assert wrist[verdict_tick + 100:].max() < 0.2 * wrist[SUPPORT + 100:verdict_tick].max()


def test_a_harmless_fit_is_kept_and_probation_off_keeps_any(models, robot):
    policy, run = probation_run(models, robot, friction=0.0)
    assert [outcome.rolled_back for outcome in run.outcomes] == [False]
    assert policy.adapted
    policy, run = probation_run(models, robot, friction=3.0, probation_window=0.0)
    assert [outcome.rolled_back for outcome in run.outcomes] == [False]
    assert policy.adapted


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def test_no_adaptation_starts_on_probation_and_the_rolled_back_support_is_not_reused(models):
    """On probation no adaptation may start; after a roll-back the next one adapts only on
    support collected after it."""
    clock, outcomes = Clock(), []
    period = 0.01
    policy = HandMadeFit(models, friction=0.0)
    loop = ControlLoop(policy=policy, settings=LoopSettings(
        support_size=100, auto_adapt=False, probation_window=0.5, max_command_rate=1e6,
        watchdog_timeout=1.0), period=period, stamp_clock=clock, on_adapted=outcomes.append)
    home = np.array(models.formulation.robot.home)

    def ticks(n, q=home):
        for _ in range(n):
            clock.now += period
            loop.joint_state(q, np.zeros(7), clock.now, clock.now)
            loop.step(clock.now)

    ticks(200)  # 1 s of ramp-in, then 1 s to compare with
    assert loop.adapt(clock.now) == '' and len(outcomes) == 1
    ticks(1)  # the swap is noticed at the next tick
    status = loop.status(clock.now)
    assert loop.on_probation and 'on probation' in status.message
    assert status.values['held_out_rms_after'] == '[0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]'
    assert 'probation' not in status.values  # no verdict yet
    assert loop.adapt(clock.now) == ('the last adaptation is on probation on the robot until '
                                     'its verdict')
    ticks(round((SETTLE_SECONDS + 0.5) / period) - 5)
    assert len(outcomes) == 1 and loop.on_probation
    ticks(10, q=home + 0.5)  # it tracks half a radian off: rolled back at the verdict
    assert [o.rolled_back for o in outcomes] == [False, True] and not loop.on_probation
    assert not policy.adapted
    status = loop.status(clock.now)
    assert 'last adaptation rolled back' in status.message and status.values['rollbacks'] == '1'
    assert status.values['last_adaptation'].startswith('rolled back after 50 ticks')
    assert 'tracking' in outcomes[1].reason
    assert status.values['probation'] == outcomes[1].reason
    ticks(20)
    assert loop.adapt(clock.now) == ''  # on the support since the roll-back only
    assert outcomes[2].accepted and outcomes[2].transitions < 30  # ticks since it: < 30


@pytest.mark.parametrize('window', [0.0, 0.01])
def test_probation_turned_off_or_shortened_while_on_it(models, window):
    """Off: the adaptation is trusted at once; a window shorter than three ticks still
    judges (on three)."""
    clock, period = Clock(), 0.01
    loop = ControlLoop(policy=HandMadeFit(models, friction=0.0), settings=LoopSettings(
        support_size=100, auto_adapt=False, max_command_rate=1e6, watchdog_timeout=1.0),
        period=period, stamp_clock=clock)
    home = np.array(models.formulation.robot.home)
    for tick in range(400):
        clock.now += period
        loop.joint_state(home, np.zeros(7), clock.now, clock.now)
        loop.step(clock.now)
        if tick == 200:
            assert loop.adapt(clock.now) == ''
        if tick == 202:
            assert loop.on_probation
            loop.apply(dataclasses.replace(loop.settings, probation_window=window))
            assert loop.on_probation == (window > 0)
    assert not loop.on_probation
    if window == 0:
        assert loop.policy.adapted
        assert loop.probation_verdict == 'kept: probation was turned off before its verdict'
    else:  # (this robot stays at home while the reference moves: either verdict will do)
        assert 'after 3 ticks on the robot' in loop.probation_verdict
