"""A ControlLoop fed messages by hand, with the safety invariants checked at every tick.

:class:`LoopHarness` does what the adapter node does with a message (convert it
with :mod:`maml_ros.ros.joint_state` / :mod:`maml_ros.ros.trajectory`, hand it
to the loop) without rclpy, runs the loop one tick at a time on a fake clock,
and checks every command (:class:`SafetyInvariants`):

- finite and within the command limits of the URDF (of the loop's command
  interface: effort, velocity or position);
- within ``max_command_rate x period`` of the previous command, or of rest
  (zero effort or velocity, the measured position clamped into the limits) for
  the first command after a start or stale data;
- one at every tick while the joint states are fresh; none while they are
  stale, except one stop command (finite, within the limits) on the first
  stale tick after commands;
- computed from the last joint state the loop accepted, never from a
  message it dropped.
"""

import collections
import copy
import time

import numpy as np
import torch
from builtin_interfaces.msg import Time
from sensor_msgs.msg import JointState

from maml_ros.maml import MAML
from maml_ros.maml.policy import PolicyNet
from maml_ros.model.formulation import Formulation
from maml_ros.model.trained_models import TrainedModels
from maml_ros.online.adaptive_policy import AdaptivePolicy
from maml_ros.online.control_loop import ControlLoop, LoopSettings
from maml_ros.ros.joint_state import JointStateError, joint_state_arrays
from maml_ros.ros.trajectory import trajectory_arrays
from maml_ros.sim import (
    PANDA_ARM_JOINTS,
    PANDA_HOME,
    DynamicsRanges,
    InverseDynamicsModel,
    RobotConfig,
)
from maml_ros.sim.command import CommandSpace

JOINTS = list(PANDA_ARM_JOINTS)
LIMITS = InverseDynamicsModel.shared(RobotConfig()).description.limits
EFFORT = CommandSpace.of(LIMITS, 'effort', 0.01)


def stamp(seconds: float) -> Time:
    sec = int(seconds)
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def joint_state(q=PANDA_HOME, qd=None, *, names=JOINTS, at: float | None = None) -> JointState:
    """A JointState of ``names`` stamped ``at`` (default: now)."""
    msg = JointState(name=list(names), position=[float(x) for x in q],
                     velocity=[float(x) for x in (np.zeros(len(q)) if qd is None else qd)])
    msg.header.stamp = stamp(time.time() if at is None else at)
    return msg


class SafetyInvariants:
    """Checks each tick's command against the invariants of the module docstring.

    :param timeout: the watchdog timeout (s).
    :param max_rate: a callable giving the current ``max_command_rate``.
    :param period: the control period (s).
    :param space: the commands' limits and rest (default: the Panda's efforts).
    """

    def __init__(self, *, timeout, max_rate, period, space: CommandSpace = EFFORT) -> None:
        self.timeout, self.max_rate, self.period = timeout, max_rate, period
        self.space = space
        self.commands: list[np.ndarray] = []
        self.accepted: tuple[np.ndarray, np.ndarray] | None = None  # the last accepted state
        self.policy_inputs: list[tuple[np.ndarray, np.ndarray]] = []
        self.fresh_at: float | None = None
        self.after_gap = True  # the next command ramps in from rest

    def watch(self, policy: AdaptivePolicy) -> None:
        """Record the state every command of ``policy`` is computed from."""
        if 'command' not in vars(policy):
            command = policy.command
            policy.command = lambda q, qd, *reference: (
                self.policy_inputs.append((q.copy(), qd.copy())), command(q, qd, *reference))[1]

    def accept(self, msg: JointState, now: float) -> None:
        """The loop accepted ``msg`` at ``now``: commands must come from it from now on."""
        index = {name: i for i, name in enumerate(msg.name)}
        self.accepted = (np.array([msg.position[index[j]] for j in JOINTS]),
                         np.array([msg.velocity[index[j]] for j in JOINTS]))
        self.fresh_at = now

    def check(self, *, now: float, active: bool, published: bool, inputs: int) -> None:
        """After a tick at ``now``: ``published`` says whether a command went out."""
        stale = self.fresh_at is None or now - self.fresh_at > self.timeout()
        if published and active and stale:  # the stop command, once, computed from no input
            assert not self.after_gap, 'a second command while the joint states are stale'
            self.check_limits(self.commands[-1])
            assert len(self.policy_inputs) == inputs
            self.after_gap = True
            return
        assert published == (active and not stale), (
            f'published={published} while active={active}, stale={stale}')
        if not published:
            self.after_gap = True
            return
        command = self.commands[-1]
        self.check_limits(command)
        previous = np.clip(self.space.rest(self.accepted[0]), self.space.lower,
                           self.space.upper) if self.after_gap else self.commands[-2]
        step = self.max_rate() * self.period
        assert np.all(np.abs(command - previous) <= step + 1e-9), (command, previous, step)
        self.after_gap = False
        assert len(self.policy_inputs) == inputs + 1
        for used, accepted in zip(self.policy_inputs[-1], self.accepted, strict=True):
            np.testing.assert_array_equal(used, accepted)


    def check_limits(self, command: np.ndarray) -> None:
        assert np.all(np.isfinite(command))
        assert np.all(command >= self.space.lower - 1e-9)
        assert np.all(command <= self.space.upper + 1e-9)


class FakeTime:
    """A fake monotonic clock from 1000 s, joint states stamped on it, and the invariants'
    record of what went out. Subclasses set ``self.invariants``."""

    invariants: SafetyInvariants

    def __init__(self) -> None:
        self.now = 1000.0  # the fake monotonic clock
        # Stamps follow the fake clock, from 1000 s ago (fake time runs ahead of real time).
        self._epoch = time.time() - 1000.0 - self.now

    @property
    def stamp(self) -> float:
        """The stamp of a joint state measured now (seconds)."""
        return self._epoch + self.now

    def state(self, q=PANDA_HOME, qd=None, *, names=JOINTS) -> JointState:
        """A joint state measured now."""
        return joint_state(q, qd, names=names, at=self.stamp)

    @property
    def commands(self) -> list[np.ndarray]:
        return self.invariants.commands

    @property
    def accepted(self):
        return self.invariants.accepted


class LoopHarness(FakeTime):
    """See the module docstring.

    :param models: the loaded checkpoint.
    :param settings: the loop's settings.
    """

    def __init__(self, models, settings: LoopSettings | None = None) -> None:
        super().__init__()
        self.loop = ControlLoop(policy=AdaptivePolicy(models=models, worker='inline'),
                                settings=settings or LoopSettings(), period=0.01,
                                stamp_clock=time.time)
        self.problems: collections.Counter[str] = collections.Counter()
        self.last_problem = ''
        self.invariants = SafetyInvariants(
            timeout=lambda: self.loop.settings.watchdog_timeout,
            max_rate=lambda: self.loop.settings.max_command_rate, period=self.loop.period,
            space=self.loop.command_space)
        self.invariants.watch(self.loop.policy)

    def _problem(self, kind: str, reason: str) -> None:
        self.problems[kind] += 1
        self.last_problem = reason

    def joint_state(self, msg: JointState) -> bool:
        """Deliver ``msg`` as the node does; True if the loop accepted it."""
        try:
            reason = self.loop.joint_state(*joint_state_arrays(msg, JOINTS), self.now)
        except JointStateError as error:
            reason = str(error)
        if reason:
            self._problem('joint_state', reason)
            return False
        self.invariants.accept(msg, self.now)
        return True

    def reference(self, msg) -> bool:
        """Deliver a JointTrajectory as the node does; True if the loop tracks it now."""
        try:
            reference = self.loop.waypoints(*trajectory_arrays(msg, JOINTS))
        except ValueError as error:
            self._problem('reference', str(error))
            return False
        self.loop.set_reference(reference, self.now)
        return True

    def tick(self, periods: int = 1) -> np.ndarray | None:
        """Advance the clock ``periods`` control periods and run one tick: its command, if any."""
        self.now += periods * self.loop.period
        inputs = len(self.invariants.policy_inputs)
        tick = self.loop.step(self.now)
        if tick is not None:
            self.commands.append(tick.command)
        self.invariants.check(now=self.now, active=True, published=tick is not None,
                              inputs=inputs)
        return tick.command if tick is not None else None


def untrained_models(interface: str) -> TrainedModels:
    """A policy for ``interface`` whose network outputs zero: the nominal controller."""
    formulation = Formulation(robot=RobotConfig(command_interface=interface))
    net = PolicyNet(input_dim=formulation.feature_dim, output_dim=7, hidden=(8,))
    torch.nn.init.zeros_(net.head.weight)
    torch.nn.init.zeros_(net.head.bias)
    return TrainedModels(formulation=formulation, learner=MAML(net, inner_lr=0.1),
                         pooled=copy.deepcopy(net),
                         ranges=DynamicsRanges(), baselines={'finetune_lr': 0.1, 'ridge': 1.0})
