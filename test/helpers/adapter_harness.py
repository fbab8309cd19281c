"""An adapter node driven by hand, with the safety invariants checked at every tick.

:class:`AdapterHarness` calls the node's message handlers directly (the
transport adds nothing to what a handler does with a message), runs its
control loop one tick at a time on a fake clock, and checks every command the
node publishes with the invariants of ``helpers/loop_harness.py`` (which
runs them on the bare ControlLoop); none may go out while the node is inactive.
"""

import time

import numpy as np
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from maml_ros.nodes.adapter import AdapterNode

from helpers.loop_harness import (
    JOINTS,
    LIMITS,
    FakeTime,
    SafetyInvariants,
    joint_state,
)

__all__ = ['JOINTS', 'LIMITS', 'AdapterHarness', 'assert_safe_commands', 'joint_state',
           'node_status']


class AdapterHarness(FakeTime):
    """See the module docstring. ``node`` is active; its own timer is removed."""

    def __init__(self, node: AdapterNode) -> None:
        super().__init__()
        self.node = node
        node.monotonic = lambda: self.now
        self.invariants = SafetyInvariants(
            timeout=lambda: node.get_parameter('watchdog_timeout').value,
            max_rate=lambda: node.get_parameter('max_command_rate').value, period=node.period)
        self.attach()

    def attach(self) -> None:
        """Take over the node's loop and watch its output (again after configure/activate)."""
        node = self.node
        self.period = node.period
        if node._timer is not None:
            node.destroy_timer(node._timer)
            node._timer = None
        publisher = node.commands
        if 'publish' not in vars(publisher):  # not yet wrapped
            publish = publisher.publish

            def record(msg):  # what goes out: a lifecycle publisher drops while inactive
                if publisher.is_activated:
                    self.commands.append(np.array(msg.data))
                publish(msg)

            publisher.publish = record
        self.invariants.watch(node.loop.policy)

    def adapt_service(self) -> Trigger.Response:
        """Call ``~/adapt`` as the executor would: its coroutine resumed until it answers, which
        it must do at the first resumption after the outcome came."""
        policy = self.node.loop.policy
        previous = policy.last_outcome
        coroutine = self.node._on_adapt(Trigger.Request(), Trigger.Response())
        late = 0  # resumptions since the outcome came
        while True:
            late += policy.last_outcome is not previous
            try:
                coroutine.send(None)
            except StopIteration as answered:
                assert late <= 1, f'~/adapt answered {late} resumptions after the outcome'
                return answered.value
            time.sleep(0.001)  # the adaptation runs in another thread

    def transition(self, *names: str) -> None:
        """Lifecycle transitions by name ('deactivate', 'cleanup', 'configure', ...)."""
        for name in names:
            getattr(self.node, f'trigger_{name}')()
            self.invariants.after_gap = True
        if self.node.loop is not None:
            self.attach()

    @property
    def active(self) -> bool:
        return self.node._state_machine.current_state[1] == 'active'

    def joint_state(self, msg: JointState) -> bool:
        """Deliver ``msg``; True if the node accepted it (did not count it as a problem)."""
        problems = self.node.problems.counts['joint_state']
        self.node._on_joint_state(msg)
        accepted = self.node.problems.counts['joint_state'] == problems
        if accepted:
            self.invariants.accept(msg, self.now)
        return accepted

    def tick(self, periods: int = 1) -> np.ndarray | None:
        """Advance the clock ``periods`` control periods and run one tick: its command, if any."""
        self.now += periods * self.period
        count, inputs = len(self.commands), len(self.invariants.policy_inputs)
        if self.active:
            self.node._tick()
        published = len(self.commands) > count
        if published:
            assert len(self.commands) == count + 1
        self.invariants.check(now=self.now, active=self.active, published=published,
                              inputs=inputs)
        return self.commands[-1] if published else None


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
    return node.status()
