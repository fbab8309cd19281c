"""``adapter``: on-robot adaptation and the policy, as a lifecycle node.

A shell over :class:`~maml_ros.online.control_loop.ControlLoop` (the loop, its safety
rules, the adaptation schedule): it converts messages, publishes what the loop returns, and
owns the lifecycle and the parameters (:data:`~maml_ros.ros.params.ADAPTER_PARAMETERS`).
Its other duties are mixins from ``ros/``: the services (:mod:`~maml_ros.ros.adapter_services`),
``/diagnostics`` and the outcomes (:mod:`~maml_ros.ros.adapter_reports`), the checkpoint that
runs (:mod:`~maml_ros.ros.checkpoint_following`) and the rejected parameters
(:mod:`~maml_ros.ros.problems`); ``record`` writes a bag (:mod:`~maml_ros.ros.recording`).
Deactivate, shutdown and stale joint states send one stop command (:meth:`ControlLoop.stop`):
a ros2_control forward command controller keeps applying the last command it received.
"""

from __future__ import annotations

import dataclasses
import time

import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from maml_ros.maml.checkpoint import CheckpointError
from maml_ros.online.control_loop import ControlLoop, LoopSettings
from maml_ros.online.policy_choice import CheckpointChoice
from maml_ros.ros.adapter_reports import AdapterReports
from maml_ros.ros.adapter_services import AdapterServices
from maml_ros.ros.bag import COMMANDS, JOINT_STATE, OUTCOME
from maml_ros.ros.checkpoint_following import FollowsCheckpoints
from maml_ros.ros.joint_state import JointStateError, joint_state_arrays
from maml_ros.ros.params import ADAPTER_PARAMETERS, LOOP_PARAMETERS, TRIGGERS, declare_parameters
from maml_ros.ros.problems import Problems, ReportsRejectedParameters
from maml_ros.ros.qos import CHECKPOINT_QOS, JOINT_STATE_QOS
from maml_ros.ros.recording import RecordingSwitch
from maml_ros.ros.spin import spin_node
from maml_ros.ros.trajectory import trajectory_arrays

ACK_TIMEOUT = Duration(seconds=0.5)  # for the stop command to reach the controller


class AdapterNode(ReportsRejectedParameters, AdapterServices, AdapterReports, FollowsCheckpoints,
                  LifecycleNode):
    """The on-robot adapter; see the module docstring."""

    #: The clock of the control loop and the watchdog (tests drive it by hand).
    monotonic = staticmethod(time.monotonic)

    def __init__(self, **kwargs) -> None:
        self.loop: ControlLoop | None = None
        self._timer, self.active, self._ticking_on_joint_states = None, False, False
        super().__init__('adapter', **kwargs)
        self.problems = Problems(self.get_logger())
        declare_parameters(self, ADAPTER_PARAMETERS)
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        self.settings = LoopSettings(**{name: value(name) for name in LOOP_PARAMETERS})
        self.choice = CheckpointChoice(value('checkpoint'))
        self.joints, self.interface = list(value('joints')), value('command_interface')
        self.trigger, self.period = value('trigger'), 1.0 / value('control_rate')
        self.controller, self.torch_threads = value('controller'), value('torch_threads')
        self.worker = 'process' if value('adaptation_process') else 'thread'
        self.adaptation, self.stop_command = value('adaptation'), value('stop_command')
        self.adapted_checkpoint, self.record_dir = value('adapted_checkpoint'), value('record_dir')
        self.recording = RecordingSwitch(topics={
            'joint_states': (self.resolve_topic_name('joint_states'), JOINT_STATE),
            'commands': (self.resolve_topic_name(f'{self.controller}/commands'), COMMANDS),
            '~/desired': (self.resolve_topic_name('~/desired'), JOINT_STATE),
            '~/adaptation': (self.resolve_topic_name('~/adaptation'), OUTCOME)},
            logger=self.get_logger(), problems=self.problems)
        self.unconfigured = 'not configured yet'  # why there is no loop
        self._activated_at: float | None = None  # until the first joint state after it
        self.add_on_set_parameters_callback(self._refuse_active_checkpoint)
        self.add_post_set_parameters_callback(self._on_parameters_set)
        # In every lifecycle state: an unconfigured adapter says why.
        self.diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(1.0, self._every_second)
        if value('autostart') and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Load and check the checkpoint, build the loop, create the communication.
        FAILURE on a bad checkpoint or setting: the node stays unconfigured and says why."""
        path = self.choice.first()
        torch.set_num_threads(self.torch_threads)
        try:
            if self.trigger not in TRIGGERS:
                raise ValueError(f'trigger must be one of {list(TRIGGERS)}, not {self.trigger!r}')
            policy = self._load_policy(path)
            self.loop = ControlLoop(policy=policy, settings=self.settings, period=self.period,
                                    stamp_clock=lambda: self.get_clock().now().nanoseconds * 1e-9,
                                    on_adapted=self._on_adapted, stop_command=self.stop_command)
        except (CheckpointError, ValueError) as error:
            self.unconfigured = str(error)
            self.get_logger().error(f'cannot configure: {error}')
            return TransitionCallbackReturn.FAILURE
        self._running(path)
        self.commands = self.create_lifecycle_publisher(
            Float64MultiArray, f'{self.controller}/commands', 10)
        self.desired = self.create_lifecycle_publisher(JointState, '~/desired', 10)
        # Not ``self._subscriptions`` nor ``self._services``: rclpy's own lists.
        self._loop_subscriptions = [
            self.create_subscription(JointState, 'joint_states', self._on_joint_state,
                                     JOINT_STATE_QOS),
            self.create_subscription(JointTrajectory, '~/reference', self._on_reference, 10),
            self.create_subscription(String, 'meta_trainer/checkpoint', self._on_checkpoint,
                                     CHECKPOINT_QOS)]
        self._trigger_services = self.create_adapter_services()
        self.unconfigured = ''
        self.get_logger().info(f'configured with {path}')
        self.recording.switch(self.get_parameter('record').value, self.record_dir)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Start ticking (the command ramps in from rest, along a reference from the robot)."""
        if self.trigger == 'timer':
            self._timer = self.create_timer(self.period, self._tick)
        result = super().on_activate(state)  # enables the publishers
        self._ticking_on_joint_states = self.trigger == 'joint_states'
        self.active, self._activated_at = True, self.monotonic()
        self.get_logger().debug('activated: commands go to '
                                f'{self.resolve_topic_name(self.controller + "/commands")}')
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stop commanding (:meth:`_stop_commanding`)."""
        self._stop_commanding('deactivated')
        return super().on_deactivate(state)  # disables the publishers

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Drop the loop, the policy, publishers, subscriptions and services; close the bag."""
        self.recording.switch(False, '')
        self.loop.policy.close()
        for destroy, entities in ((self.destroy_publisher, (self.commands, self.desired)),
                                  (self.destroy_subscription, self._loop_subscriptions),
                                  (self.destroy_service, self._trigger_services)):
            for entity in entities:
                destroy(entity)
        self.loop, self.unconfigured = None, 'cleaned up'
        self.get_logger().debug('cleaned up')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Shut down while active: as deactivate (finalized is not destroyed yet, and joint
        states still arrive: it commands nothing)."""
        if self.active:
            self._stop_commanding('shut down')
            return super().on_deactivate(state)
        return TransitionCallbackReturn.SUCCESS

    def _stop_commanding(self, why: str) -> None:
        """Send the stop command and stop ticking; no support transition spans the pause."""
        self._send_stop(why)
        self.loop.pause()
        self._ticking_on_joint_states, self.active = False, False
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def destroy_node(self) -> None:
        """Send the stop command when active; wait for a running adaptation (a process that
        exits under one aborts)."""
        if self.loop is not None:
            if self.active:
                self._send_stop('shutting down')
            self.loop.policy.close(wait=10.0)
        self.recording.switch(False, '')
        super().destroy_node()

    def _send_stop(self, why: str) -> None:
        """The loop's stop command, once, waiting (briefly) until the controller has it."""
        command = self.loop.stop()
        if command is None:  # nothing sent since the last stop
            return
        self._publish(self.commands, 'commands', Float64MultiArray(data=command.tolist()))
        self.commands.wait_for_all_acked(ACK_TIMEOUT)
        self.get_logger().info(f'{why}: sent the stop command ({self.loop.stop_description}) '
                               'and stopped commanding')

    def _on_joint_state(self, msg: JointState) -> None:
        now = self.monotonic()
        self._record('joint_states', msg)  # as received, like ros2 bag record
        self._activated_at = None  # joint states do arrive
        try:
            reason = self.loop.joint_state(*joint_state_arrays(msg, self.joints), now)
        except JointStateError as error:
            reason = str(error)
        if reason:
            self.problems.report('joint_state', reason)
            return
        self._latest_header = msg.header  # the desired state is stamped like it
        if self._ticking_on_joint_states and self.loop.tick_due(now):
            self._tick()

    def _on_reference(self, msg: JointTrajectory) -> None:
        """Track this trajectory from now on (from the robot's state; clamped to limits)."""
        try:
            reference = self.loop.waypoints(*trajectory_arrays(msg, self.joints))
        except ValueError as error:
            self.problems.report('reference', str(error))
            return
        if reference.clamped:
            self.problems.report('reference_clamped', 'waypoints beyond the limits were clamped')
        self.loop.set_reference(reference, self.monotonic())
        self.get_logger().info(f'tracking a {reference.duration:.1f} s reference trajectory')

    def _tick(self) -> None:
        tick = self.loop.step(self.monotonic())
        if tick is None:
            return
        if tick.stop:
            self.get_logger().warn('joint states stale: sent the stop command '
                                   f'({self.loop.stop_description}) and stopped commanding '
                                   'until they are fresh again')
        self._publish(self.commands, 'commands', Float64MultiArray(data=tick.command.tolist()))
        self._publish(self.desired, '~/desired', JointState(
            header=self._latest_header, name=self.joints, position=tick.q_ref.tolist(),
            velocity=tick.qd_ref.tolist()))

    def _record(self, name: str, msg) -> None:
        self.recording.record(name, self.get_clock().now().nanoseconds, msg)

    def _publish(self, publisher, name: str, msg) -> None:
        """Publish ``msg``, and record it as ``name``."""
        publisher.publish(msg)
        self._record(name, msg)

    def _on_parameters_set(self, parameters) -> None:
        """Accepted changes (rclpy refused out-of-range ones already) take effect now."""
        changes = {p.name: p.value for p in parameters}
        self.adapted_checkpoint = changes.get('adapted_checkpoint', self.adapted_checkpoint)
        self.record_dir = changes.get('record_dir', self.record_dir)
        if 'record' in changes and self.loop is not None:  # before configure: at configure
            self.recording.switch(changes['record'], self.record_dir)
        self.settings = dataclasses.replace(self.settings, **{
            name: value for name, value in changes.items() if name in LOOP_PARAMETERS})
        if self.loop is not None:
            self.loop.apply(self.settings)


def main(args: list[str] | None = None) -> None:
    spin_node(AdapterNode, args, name='adapter')


if __name__ == '__main__':
    main()
