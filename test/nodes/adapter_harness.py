"""An adapter node driven by hand, with the safety invariants checked at every tick.

:class:`AdapterHarness` calls the node's message handlers directly (the
transport adds nothing to what a handler does with a message), runs its
control loop one tick at a time on a fake clock, and checks every command the
node publishes:

- finite and within the command limits of the URDF;
- within ``max_command_rate x period`` of the previous command, or of rest
  (zero effort) for the first command after activation or stale data;
- none while inactive or while the joint states are stale, and one at every
  tick otherwise;
- computed from the last joint state the node accepted, never from a
  message it dropped.
"""

import time

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import JointState

from maml_ros.nodes.adapter import AdapterNode
from maml_ros.sim import PANDA_ARM_JOINTS, PANDA_HOME, InverseDynamicsModel, RobotConfig

JOINTS = list(PANDA_ARM_JOINTS)
LIMITS = InverseDynamicsModel.shared(RobotConfig()).description.limits


def stamp(seconds: float) -> Time:
    sec = int(seconds)
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def joint_state(q=PANDA_HOME, qd=None, *, names=JOINTS, at: float | None = None) -> JointState:
    """A JointState of ``names`` stamped ``at`` (default: now)."""
    msg = JointState(name=list(names), position=[float(x) for x in q],
                     velocity=[float(x) for x in (np.zeros(len(q)) if qd is None else qd)])
    msg.header.stamp = stamp(time.time() if at is None else at)
    return msg


class AdapterHarness:
    """See the module docstring. ``node`` is active; its own timer is removed."""

    def __init__(self, node: AdapterNode) -> None:
        self.node = node
        self.now = 1000.0  # the fake monotonic clock
        node.monotonic = lambda: self.now
        # Stamps follow the fake clock, from 1000 s ago (fake time runs ahead of real time).
        self._epoch = time.time() - 1000.0 - self.now
        self.timeout = node.value('watchdog_timeout')
        self.commands: list[np.ndarray] = []
        self.accepted: tuple[np.ndarray, np.ndarray] | None = None  # the last accepted state
        self._fresh_at: float | None = None
        self._after_gap = True  # the next command ramps in from rest
        self._policy_inputs: list[tuple[np.ndarray, np.ndarray]] = []
        self.attach()

    def attach(self) -> None:
        """Take over the node's loop and watch its output (again after configure/activate)."""
        node = self.node
        self.period = node.period
        if node._timer is not None:
            node.destroy_timer(node._timer)
            node._timer = None
        publisher, policy = node.commands, node.loop.policy
        if 'publish' not in vars(publisher):  # not yet wrapped
            publish = publisher.publish

            def record(msg):  # what goes out: a lifecycle publisher drops while inactive
                if publisher.is_activated:
                    self.commands.append(np.array(msg.data))
                publish(msg)

            publisher.publish = record
        if 'command' not in vars(policy):  # record the state every command is computed from
            command = policy.command
            policy.command = lambda q, qd, *reference: (
                self._policy_inputs.append((q.copy(), qd.copy())), command(q, qd, *reference))[1]

    def transition(self, *names: str) -> None:
        """Lifecycle transitions by name ('deactivate', 'cleanup', 'configure', ...)."""
        for name in names:
            getattr(self.node, f'trigger_{name}')()
            self._after_gap = True
        if self.node.loop is not None:
            self.attach()

    @property
    def stamp(self) -> float:
        """The stamp of a joint state measured now (seconds)."""
        return self._epoch + self.now

    def state(self, q=PANDA_HOME, qd=None, *, names=JOINTS) -> JointState:
        """A joint state measured now."""
        return joint_state(q, qd, names=names, at=self.stamp)

    @property
    def active(self) -> bool:
        return self.node._state_machine.current_state[1] == 'active'

    def joint_state(self, msg: JointState) -> bool:
        """Deliver ``msg``; True if the node accepted it (did not count it as a problem)."""
        problems = self.node.problems.counts['joint_state']
        self.node._on_joint_state(msg)
        accepted = self.node.problems.counts['joint_state'] == problems
        if accepted:
            index = {name: i for i, name in enumerate(msg.name)}
            self.accepted = (np.array([msg.position[index[j]] for j in JOINTS]),
                             np.array([msg.velocity[index[j]] for j in JOINTS]))
            self._fresh_at = self.now
        return accepted

    def tick(self, periods: int = 1) -> np.ndarray | None:
        """Advance the clock ``periods`` control periods and run one tick: its command, if any."""
        self.now += periods * self.period
        count, inputs = len(self.commands), len(self._policy_inputs)
        if self.active:
            self.node._tick()
        published = len(self.commands) > count
        stale = self._fresh_at is None or self.now - self._fresh_at > self.timeout
        assert published == (self.active and not stale), (
            f'published={published} while active={self.active}, stale={stale}')
        if not published:
            self._after_gap = True
            return None
        assert len(self.commands) == count + 1
        command = self.commands[-1]
        assert np.all(np.isfinite(command))
        assert np.all(command >= -LIMITS.effort - 1e-9) and np.all(command <= LIMITS.effort + 1e-9)
        previous = np.zeros(len(JOINTS)) if self._after_gap else self.commands[-2]
        step = self.node.value('max_command_rate') * self.period
        assert np.all(np.abs(command - previous) <= step + 1e-9), (command, previous, step)
        self._after_gap = False
        assert len(self._policy_inputs) == inputs + 1
        for used, accepted in zip(self._policy_inputs[-1], self.accepted, strict=True):
            np.testing.assert_array_equal(used, accepted)
        return command


def assert_safe_commands(commands: list, *, step: float, gap: float) -> None:
    """The invariants on commands received over DDS as ``(time, data)``: finite, within the
    effort limits, and within ``step`` of the previous command, or of rest (zero) after a
    silence longer than ``gap`` seconds."""
    previous_time, previous = -np.inf, None
    for received, data in commands:
        command = np.asarray(data)
        assert np.all(np.isfinite(command)) and np.all(np.abs(command) <= LIMITS.effort + 1e-9)
        start = previous is None or received - previous_time > gap
        reference = np.zeros_like(command) if start else previous
        assert np.all(np.abs(command - reference) <= step + 1e-9), (command, reference)
        previous_time, previous = received, command



def node_status(node: AdapterNode) -> tuple[bytes, str, dict[str, str]]:
    """What the node's next ``/diagnostics`` message will say: level, message, values."""
    status = node.loop.status(node.monotonic())
    return bytes([status.level]), status.message, {**status.values, **node.problems.values()}
