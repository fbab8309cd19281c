"""The control loop the robot runs, on an injected clock: the adapter node, the simulator
and the evaluation all drive this one.

Per joint state (:meth:`ControlLoop.joint_state`): stamps must increase and
may not lead the stamp clock by more than ``MAX_STAMP_LEAD``; an accepted
state feeds the watchdog. Per tick (:meth:`ControlLoop.step`):

1. stale or missing joint states: one stop command (:meth:`ControlLoop.stop`),
   then none; the support chain breaks and the next command ramps in from
   rest;
2. after activation or stale data, the command ramps in from rest (zero
   effort or velocity, or the measured position) along a built-in reference
   that fades in from where the robot is;
3. the reference (one given with :meth:`set_reference`, else the built-in
   one) and the active policy give a command; exploration noise is added
   while collecting support (until the first adaptation, or always when
   re-adapting periodically);
4. the safety filter clamps it to the limits and ``max_command_rate``; the
   command sent is recorded in the support buffer with the joint state it
   was computed from;
5. with ``support_size`` transitions the policy adapts (``auto_adapt``, then
   every ``readapt_period`` seconds if set);
6. an adaptation swapped in is on probation for ``probation_window`` seconds
   (after ``SETTLE_SECONDS``): if the robot tracks worse or its commands chatter
   more than in the same time before the swap, beyond ``probation_margin``
   (:mod:`~maml_ros.online.probation`), the loop rolls back to the model before
   it and clears the support (the same fit is never tried again). No
   adaptation starts while one is on probation.

Nothing here knows ROS: the node converts messages and publishes what
:meth:`step` returns and what :meth:`status` reports.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from maml_ros.model.outcome import AdaptationOutcome
from maml_ros.online.loop_stats import LoopStats
from maml_ros.online.policy import Policy
from maml_ros.online.probation import Motion, MotionWindow, verdict
from maml_ros.online.safety import SafetyFilter, Watchdog
from maml_ros.online.support_buffer import SupportBuffer
from maml_ros.online.waypoints import WaypointReference
from maml_ros.sim.command import EXPLORATION_STD, CommandSpace
from maml_ros.sim.model import InverseDynamicsModel
from maml_ros.sim.reference import ReferenceConfig, random_sines

MAX_STAMP_LEAD = 1.0  # joint states stamped further ahead of the stamp clock are faults (s)
RAMP_SECONDS = 1.0  # after a ramp-in (and the built-in reference's fade-in): not scored
SETTLE_SECONDS = 1.0  # after the policy changes: the recovery from the last one's error is
# not scored (as the evaluation's settle_steps)


@dataclass(kw_only=True)
class LoopSettings:
    """What can be tuned while the loop runs (the adapter node's runtime parameters).

    :param support_size: support transitions to adapt on (the sliding window).
    :param inner_steps: gradient steps per adaptation.
    :param inner_lr: inner learning rate; learned rates are scaled by
        ``inner_lr`` / the checkpoint's.
    :param exploration_std: exploration noise while collecting, a fraction of the
        command scale (:class:`~maml_ros.sim.command.CommandSpace`).
    :param readapt_period: seconds between re-adaptations on the sliding window; 0:
        adapt once.
    :param max_command_rate: largest command change per second (command units/s).
    :param watchdog_timeout: joint states older than this stop commands (s).
    :param auto_adapt: adapt once ``support_size`` transitions are collected.
    :param probation_window: seconds an adaptation is watched on the robot, against as long
        before it, before it is trusted (:mod:`~maml_ros.online.probation`); 0: never
        rolled back.
    :param probation_margin: how much worse (a fraction) tracking or chatter may get in
        the probation window before the adaptation is rolled back.
    """

    support_size: int = 200
    inner_steps: int = 5
    inner_lr: float = 0.1
    exploration_std: float = EXPLORATION_STD
    readapt_period: float = 0.0
    max_command_rate: float = 2000.0
    watchdog_timeout: float = 0.1
    auto_adapt: bool = True
    probation_window: float = 2.0
    probation_margin: float = 0.25


class Level(enum.IntEnum):
    """Severity of the loop's status (the values of diagnostic_msgs' levels)."""

    OK = 0
    WARN = 1
    ERROR = 2


def stamp_rejection(stamp: float, previous: float, clock: float) -> str:
    """Why a joint state stamped ``stamp`` is dropped after one stamped ``previous``, received
    when the stamp clock read ``clock`` ('' when it is not)."""
    if stamp <= previous:
        return f'stamp {stamp:.9f} is not newer than the previous one ({previous:.9f})'
    lead = stamp - clock
    if lead > MAX_STAMP_LEAD:
        return f'stamp is {lead:.3g} s ahead of this clock'
    return ''


STOP_COMMANDS = ('gravity', 'zero')  # what the last command of an effort robot holds


@dataclass(frozen=True)
class Tick:
    """What one tick sends: the safe command, and the reference it tracks. ``stop``: the
    final command before going silent (:meth:`ControlLoop.stop`)."""

    command: np.ndarray
    q_ref: np.ndarray
    qd_ref: np.ndarray
    stop: bool = False


@dataclass(frozen=True)
class Status:
    level: Level
    message: str
    values: dict[str, str]


class ControlLoop:
    """See the module docstring.

    :param policy: the policy and its adaptation.
    :param settings: the tunable settings (apply changes with :meth:`apply`).
    :param period: the control period (s).
    :param stamp_clock: now, on the clock joint-state stamps use (s).
    :param seed: seed of the exploration noise.
    :param on_adapted: called with each adaptation's outcome (from the adapting thread), its
        ``window_end`` set.
    :param stop_command: what the stop command of an effort robot holds: ``gravity``, the
        active model's torque that holds the last measured posture at rest; ``zero``.
    """

    def __init__(self, *, policy: Policy, settings: LoopSettings, period: float,
                 stamp_clock: Callable[[], float], seed: int = 0,
                 on_adapted: Callable[[AdaptationOutcome], None] | None = None,
                 stop_command: str = 'gravity') -> None:
        if stop_command not in STOP_COMMANDS:
            raise ValueError(f'stop_command must be one of {list(STOP_COMMANDS)}, '
                             f'not {stop_command!r}')
        self.stop_command = stop_command
        robot = policy.models.formulation.robot
        self.limits = InverseDynamicsModel.shared(robot).description.limits
        self.command_space = CommandSpace.of(self.limits, robot.command_interface, period
                                             ).with_scale(policy.models.formulation.exploration_scale)
        self.policy, self.settings, self.period = policy, settings, period
        self.stamp_clock, self.on_adapted = stamp_clock, on_adapted
        n = len(self.limits.effort)
        self.safety = SafetyFilter(lower=self.command_space.lower,
                                   upper=self.command_space.upper,
                                   max_rate=settings.max_command_rate, period=period)
        self.watchdog = Watchdog(timeout=settings.watchdog_timeout)
        self.buffer = SupportBuffer(capacity=settings.support_size, n_joints=n,
                                    control_period=period)
        self.stats = LoopStats(period=period)
        self.commands_sent = self.stops_sent = 0
        self._rng = np.random.default_rng(seed)
        self._latest: tuple[np.ndarray, np.ndarray, float] | None = None
        self._last_stamp = -math.inf
        self._builtin = self._builtin_start = None  # built where the robot is, when first needed
        self._reference, self._reference_start = None, 0.0  # set_reference()
        self._last_adaptation = -math.inf
        self._ramp_in = True  # the next command starts from rest (after start, pause, stale)
        self._ramped_in_at = math.inf  # when the last ramp-in started
        # Squared tracking error sums and counts of the initial policy and the adapted one.
        self._tracking = {'meta_policy': [0.0, 0], 'adapted': [0.0, 0]}
        self._scored_adapted, self._switched_at = False, -math.inf  # the policy scored, since
        # Probation: the recent ticks of the model running, and the window before its swap.
        self._recent = MotionWindow(self._window_ticks(settings))
        self._seen_outcome, self._swapped_at = policy.last_outcome, -math.inf
        self._before: Motion | None = None  # the window before the swap on probation
        self.on_probation, self.rollbacks, self.probation_verdict = False, 0, ''

    # -- settings --------------------------------------------------------------

    def _window_ticks(self, settings: LoopSettings) -> int:
        """Ticks of a probation window: three at least (a second difference needs them)."""
        return max(3, round(settings.probation_window / self.period))

    def apply(self, settings: LoopSettings) -> None:
        """Use these settings from the next tick on."""
        self.buffer.resize(settings.support_size)
        self._recent.resize(self._window_ticks(settings))
        if settings.probation_window <= 0 and self.on_probation:  # turned off: trusted now
            self.on_probation, self._before = False, None
            self.probation_verdict = 'kept: probation was turned off before its verdict'
        self.safety.set_max_rate(settings.max_command_rate)
        self.watchdog.set_timeout(settings.watchdog_timeout)
        self.settings = settings

    # -- data in ---------------------------------------------------------------

    def joint_state(self, q: np.ndarray, qd: np.ndarray, stamp: float, now: float) -> str:
        """Take a joint state (in joint order) stamped ``stamp``, received at ``now``
        (monotonic): '' when accepted, else why it was dropped."""
        reason = stamp_rejection(stamp, self._last_stamp, self.stamp_clock())
        if reason:
            return reason
        self._last_stamp = stamp
        self._latest = (q, qd, stamp)
        self.watchdog.feed(now)
        return ''

    def tick_due(self, now: float) -> bool:
        """Whether a tick driven by joint states may run now (at most two per period)."""
        return now - self.stats.last_tick >= self.period / 2

    def waypoints(self, times: np.ndarray, positions: np.ndarray,
                  velocities: np.ndarray | None) -> WaypointReference:
        """A reference through these waypoints from the robot's current state, clamped to the
        limits.

        :raises ValueError: before any joint state, or for malformed waypoints.
        """
        if self._latest is None:
            raise ValueError('no joint state yet to start it from')
        return WaypointReference(times=times, positions=positions, velocities=velocities,
                                 start=self._latest[:2], lower=self.limits.lower,
                                 upper=self.limits.upper, max_velocity=self.limits.velocity)

    @property
    def reference(self):
        """The reference given with :meth:`set_reference` (None: the built-in one)."""
        return self._reference

    def set_reference(self, reference, now: float) -> None:
        """Track ``reference`` (anything with ``sample(t) -> (q, qd, qdd)``) from ``now``;
        None: back to the built-in one."""
        self._reference, self._reference_start = reference, now

    # -- the tick --------------------------------------------------------------

    def step(self, now: float) -> Tick | None:
        """One control tick at ``now`` (monotonic): the command to send, or None."""
        self.stats.tick(now)
        if self._latest is None or self.watchdog.stale(now):
            if self._ramp_in:  # silent already
                return None
            q = self._latest[0]
            return Tick(command=self.stop(), q_ref=q, qd_ref=np.zeros_like(q), stop=True)
        q, qd, stamp = self._latest
        if self._ramp_in:  # activated, or fresh data after stale data:
            self.safety.reset(self.command_space.rest(q))  # ramp in from rest,
            self._builtin, self._ramp_in = None, False  # along a reference from the robot
            self._ramped_in_at = now
        if self._reference is not None:
            q_ref, qd_ref, qdd_ref = self._reference.sample(now - self._reference_start)
        else:
            if self._builtin is None:
                self._builtin, self._builtin_start = self._builtin_reference(q), now
            q_ref, qd_ref, qdd_ref = self._builtin.sample(now - self._builtin_start)
        own = self.policy.command(q, qd, q_ref, qd_ref, qdd_ref)
        command = own
        if self._exploring():
            command = own + self.command_space.exploration(
                self._rng, self.settings.exploration_std)
        safe = self.safety(command)
        self.policy.sent(safe)
        self.stats.command(self.stamp_clock() - stamp)
        self.commands_sent += 1
        self._note_swap(now)
        if self.policy.adapted != self._scored_adapted:
            self._scored_adapted, self._switched_at = self.policy.adapted, now
        ramped_in = now - self._ramped_in_at >= RAMP_SECONDS
        if ramped_in and now - self._switched_at >= SETTLE_SECONDS:
            total = self._tracking['adapted' if self._scored_adapted else 'meta_policy']
            total[0] += float(np.sum((q - q_ref) ** 2))
            total[1] += q.size
        if ramped_in and now - self._swapped_at >= SETTLE_SECONDS:
            self._recent.add(q, q_ref, qd_ref, own / self.command_space.scale)
            self._judge(now)
        self.buffer.record(stamp, np.concatenate([q, qd]), safe)
        self._maybe_adapt(now)
        return Tick(command=safe, q_ref=q_ref, qd_ref=qd_ref)

    def stop(self) -> np.ndarray | None:
        """The command that leaves the robot safe when commands stop (deactivation, shutdown,
        stale joint states), for a controller that keeps applying the last one: the last
        measured position, zero velocity, or for effort the active model's torque holding the
        last measured posture at rest (``stop_command='gravity'``) or zero. None when nothing
        was sent since the last stop. The loop pauses (:meth:`pause`)."""
        if self._ramp_in or self._latest is None:
            return None
        q = self._latest[0]
        space = self.command_space
        hold = self.stop_command == 'gravity' and space.interface == 'effort'
        # Clamped like every command: a joint measured past its limit is held at the limit.
        command = np.clip(self.policy.hold(q) if hold else space.rest(q), space.lower,
                          space.upper)
        self.pause()
        self.stops_sent += 1
        return command

    @property
    def stop_description(self) -> str:
        """What :meth:`stop` sends, in words."""
        interface = self.command_space.interface
        if interface != 'effort':
            return 'zero velocity' if interface == 'velocity' else 'the measured position'
        return 'gravity compensation' if self.stop_command == 'gravity' else 'zero effort'

    def pause(self) -> None:
        """No command this tick (inactive, or stale data): no transition spans the gap, and the
        next command ramps in from rest."""
        self.buffer.break_chain()
        self._ramp_in = True

    def _exploring(self) -> bool:
        return self.settings.exploration_std > 0 and (
            not self.policy.adapted or self.settings.readapt_period > 0)

    def _builtin_reference(self, q: np.ndarray):
        """A smooth test trajectory that fades in from posture ``q`` (kept off the limits)."""
        return random_sines(np.random.default_rng(0), limits=self.limits, home=q,
                            config=ReferenceConfig(center_spread=0.0))

    # -- adaptation --------------------------------------------------------------

    def _maybe_adapt(self, now: float) -> None:
        if self.policy.busy or not self.policy.ready or not self.buffer.full:
            return
        first = (not self.policy.adapted and self.settings.auto_adapt
                 and self._last_adaptation == -math.inf)
        again = (self.settings.readapt_period > 0
                 and now - self._last_adaptation >= self.settings.readapt_period)
        if first or again:
            self.adapt(now)

    def adapt(self, now: float) -> str:
        """Adapt on the support collected so far: '' when started, else why not."""
        if self.on_probation:
            return 'the last adaptation is on probation on the robot until its verdict'
        previous, self._last_adaptation = self._last_adaptation, now  # before an inline one ends
        on_done = self.on_adapted
        if on_done is not None and len(self.buffer):
            end = float(self.buffer.stamps()[-1])
            on_done = lambda outcome: self.on_adapted(  # noqa: E731
                dataclasses.replace(outcome, window_end=end))
        reason = self.policy.start(self.buffer.transitions(),
                                   inner_steps=self.settings.inner_steps,
                                   inner_lr=self.settings.inner_lr, on_done=on_done)
        if reason:
            self._last_adaptation = previous
        return reason

    def reset_adaptation(self) -> None:
        """Back to the initial policy, support cleared."""
        self.policy.reset()
        self._start_afresh()

    def switch_policy(self, policy: Policy) -> None:
        """Run ``policy`` from now on (a new checkpoint); the old one is stopped."""
        self.policy.close()
        self.policy = policy
        self._start_afresh()

    def _start_afresh(self) -> None:
        """A new model and no support: nothing on probation, nothing to compare it with."""
        self.buffer.clear()
        self._last_adaptation = -math.inf
        self.on_probation, self._before, self._seen_outcome = False, None, self.policy.last_outcome
        self._recent.clear()

    # -- probation ---------------------------------------------------------------

    def _note_swap(self, now: float) -> None:
        """An adaptation swapped in since the last tick goes on probation against the
        ticks before it."""
        outcome = self.policy.last_outcome
        if outcome is self._seen_outcome:
            return
        self._seen_outcome = outcome
        if outcome is None or not outcome.accepted:
            return
        self._swapped_at = now
        self._before = self._recent.motion()
        self.on_probation = self.settings.probation_window > 0
        self._recent.clear()

    def _judge(self, now: float) -> None:
        """At the end of a probation window: keep the adaptation, or roll it back."""
        if not self.on_probation or len(self._recent) < self._window_ticks(self.settings):
            return
        judged = verdict(self._before, self._recent.motion(),
                         window_ticks=self._window_ticks(self.settings),
                         margin=self.settings.probation_margin)
        self.on_probation, self._before, self.probation_verdict = False, None, judged.reason
        if not judged.rollback:
            return
        outcome = self.policy.rollback(judged.reason)
        if outcome is None:
            return
        self.rollbacks += 1
        self._seen_outcome, self._swapped_at = outcome, now
        self.buffer.clear()  # the next adaptation is fitted on new support
        self._recent.clear()
        if self.on_adapted is not None:
            self.on_adapted(outcome)

    # -- reporting ---------------------------------------------------------------

    def tracking_rmse(self) -> dict[str, float]:
        """Tracking RMSE (rad, measured positions) of the initial and the adapted policy,
        leaving out the first ``RAMP_SECONDS`` after each ramp-in and the first
        ``SETTLE_SECONDS`` after the policy changes (an adaptation, a reset)."""
        return {policy: math.sqrt(squares / count)
                for policy, (squares, count) in self._tracking.items() if count}

    def status(self, now: float, *, active: bool = True) -> Status:
        """Severity, a one-line message and the figures (what the active physics fit
        identified among them), for diagnostics; ``active`` False: the loop is not
        commanding (its owner paused it), which is no fault."""
        outcome = self.policy.last_outcome
        state = 'adapting' if self.policy.busy else 'adapted' if self.policy.adapted \
            else 'collecting'
        stale = self.watchdog.stale(now)
        rejected = outcome is not None and not outcome.accepted
        if self.on_probation:
            state += '; on probation'
        level = Level.ERROR if stale else Level.WARN if rejected else Level.OK
        values = {'state': state, 'support_fill': f'{len(self.buffer)}/{self.buffer.capacity}',
                  'support_chain_breaks': str(self.buffer.broken),
                  'commands_sent': str(self.commands_sent), 'stops_sent': str(self.stops_sent),
                  'joint_states_stale': str(stale), 'rollbacks': str(self.rollbacks),
                  **self.stats.report(now)}
        for policy, rmse in self.tracking_rmse().items():
            values[f'tracking_rmse_{policy}'] = f'{rmse:.6g}'
        if outcome is not None:
            values.update({'support_loss_before': f'{outcome.loss_before:.6g}',
                           'support_loss_after': f'{outcome.loss_after:.6g}',
                           'adaptation_ms': f'{outcome.duration_ms:.1f}',
                           'last_adaptation': outcome.verdict})
            values.update({name: json.dumps(value) for name, value in outcome.judged().items()})
        if self.probation_verdict:
            values['probation'] = self.probation_verdict
        values.update({f'identified {name}': str(value)
                       for name, value in (self.policy.identified() or {}).items()})
        message = 'joint states stale' if stale else \
            f'{state}; last adaptation {"rolled back" if outcome.rolled_back else "rejected"}' \
            if rejected else state
        if not active:
            level, message = Level.OK, 'inactive: not commanding'
        return Status(level, message, values)
