"""What the adapter tells: ``/diagnostics`` at 1 Hz, and each adaptation's outcome.

:class:`AdapterReports` is a mixin of the adapter node: :meth:`status` is what
``/diagnostics`` says in every lifecycle state (an unconfigured adapter says why), with a
warning when no joint state arrived since activation; :meth:`_on_adapted` logs each
adaptation's outcome (with the joints that kept their model) and records it on
``~/adaptation``. It uses the node's ``loop``, ``active``, ``unconfigured``, ``choice``,
``recording``, ``problems``, ``diagnostics`` (the publisher), ``monotonic``, ``_record``
and ``_activated_at`` (the activation time until a joint state arrives).
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus

from maml_ros.model.outcome import AdaptationOutcome
from maml_ros.ros.diagnostics import diagnostic_array
from maml_ros.ros.recording import outcome_status

NO_JOINT_STATES_WARNING = 3.0  # s after activation without a joint state: a warning


class AdapterReports:
    """``/diagnostics`` and the adaptation outcomes; see the module docstring."""

    def status(self) -> tuple[bytes, str, dict[str, str]]:
        """What ``/diagnostics`` says now: level, message, values (the lifecycle state, the
        checkpoint, the loop's figures, the recording and the problems counted)."""
        if self.loop is None:
            return (DiagnosticStatus.ERROR, f'unconfigured: {self.unconfigured}',
                    {'lifecycle_state': 'unconfigured', **self.problems.values()})
        status = self.loop.status(self.monotonic(), active=self.active)
        level, message, recording = bytes([status.level]), status.message, self.recording.values()
        if 'recording_error' in recording:
            level, message = DiagnosticStatus.WARN, f'{message}; recording failed'
        return (level, message, {'lifecycle_state': 'active' if self.active else 'inactive',
                                 'checkpoint': self.choice.running, **status.values, **recording,
                                 **self.problems.values()})

    def _every_second(self) -> None:
        """``/diagnostics``, and a warning when no joint state came since activation."""
        self.diagnostics.publish(diagnostic_array(self, name='maml_ros adapter', **dict(zip(
            ('level', 'message', 'values'), self.status(), strict=True))))
        if self.active and self._activated_at is not None and \
                self.monotonic() - self._activated_at > NO_JOINT_STATES_WARNING:
            self._activated_at = None  # once per activation
            self.problems.report(
                'no_joint_states',
                f'none on {self.resolve_topic_name("joint_states")} for '
                f'{NO_JOINT_STATES_WARNING:g} s since activation: is the robot\'s '
                'joint_state_broadcaster running, and are ROS_DOMAIN_ID and '
                'ROS_AUTOMATIC_DISCOVERY_RANGE the same as the robot\'s?')

    def _on_adapted(self, outcome: AdaptationOutcome) -> None:
        # rclpy ties a severity to each logging call site: one site per severity.
        if outcome.accepted:
            self.get_logger().info(f'adaptation {outcome}')
        else:
            self.get_logger().warn(f'adaptation {outcome}')
        loop = self.loop  # None when cleaned up while it ran
        if loop is None:
            return
        identified = loop.policy.identified() if outcome.accepted else None
        if identified is not None:
            self.get_logger().debug(f'identified: {identified}')
            if identified['not_identified_joints']:
                self.get_logger().info(
                    f'joints {identified["not_identified_joints"]} keep their previous model: '
                    'this support did not identify their torque (they hardly moved)')
        self._record('~/adaptation', outcome_status(
            outcome, name=self.get_name(), method=str(loop.policy.method), identified=identified))
