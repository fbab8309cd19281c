"""``adapter``: on-robot adaptation and the policy, as a lifecycle node.

A shell over :class:`maml_ros.online.control_loop.ControlLoop` (the loop, its
safety rules and the adaptation schedule): it converts messages, publishes
what the loop returns, and owns the lifecycle, services and parameters
(:data:`maml_ros.ros.params.ADAPTER_PARAMETERS`). Malformed input is dropped,
counted and logged (:mod:`maml_ros.ros.problems`); ``/diagnostics`` reports
the loop's status at 1 Hz in every lifecycle state.

Which checkpoint runs: the ``checkpoint`` parameter when it is set (the
launch argument, a parameter file); otherwise the shipped one, replaced by
each checkpoint ``meta_trainer`` announces. An announcement never replaces a
chosen checkpoint, except the same file rewritten (retrained); the read-only
``active_checkpoint`` parameter names the one that runs.

With ``record`` on (or ``~/record``), everything the adapter receives and sends goes
into a rosbag2 bag as well (:mod:`maml_ros.ros.bag`), with each adaptation's outcome and
support window: ``maml-ros-replay`` adapts from it offline.

Commands stop with one stop command (:meth:`ControlLoop.stop`: the posture held
by gravity compensation, zero velocity or the measured position) on
deactivate, shutdown and stale joint states, because a ros2_control forward
command controller keeps applying the last command it received.
"""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.serialization import serialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from maml_ros.maml.checkpoint import CheckpointError
from maml_ros.online.adaptive_policy import AdaptationOutcome, AdaptivePolicy, warm_up
from maml_ros.online.control_loop import STOP_COMMANDS, ControlLoop, LoopSettings
from maml_ros.resources import shipped_checkpoint
from maml_ros.ros.bag import COMMANDS, JOINT_STATE, OUTCOME, BagError, BagRecorder, outcome_values
from maml_ros.ros.diagnostics import diagnostic_array
from maml_ros.ros.joint_state import JointStateError, joint_state_arrays
from maml_ros.ros.params import (
    ADAPTATION_METHODS,
    ADAPTER_PARAMETERS,
    LOOP_PARAMETERS,
    TRIGGERS,
    declare_parameters,
)
from maml_ros.ros.problems import Problems, ReportsRejectedParameters
from maml_ros.ros.qos import CHECKPOINT_QOS, JOINT_STATE_QOS
from maml_ros.ros.spin import spin_node
from maml_ros.ros.trajectory import trajectory_arrays
from maml_ros.sim.robot_check import require_robot
from maml_ros.training.models import TrainedModels

NO_JOINT_STATES_WARNING = 3.0  # s after activation without a joint state: a warning
ADAPT_ANSWER_TIMEOUT = 5.0  # s that ~/adapt waits for the outcome before it answers
ACK_TIMEOUT = Duration(seconds=0.5)  # for the stop command to reach the controller


class _NextSpin:
    """``await _NextSpin()``: a coroutine callback lets the executor run one more round."""

    def __await__(self):
        yield


class AdapterNode(ReportsRejectedParameters, LifecycleNode):
    """The on-robot adapter; see the module docstring."""

    #: The clock of the control loop and the watchdog (tests drive it by hand).
    monotonic = staticmethod(time.monotonic)

    def __init__(self, **kwargs) -> None:
        self.loop: ControlLoop | None = None
        self._timer = None
        self.active = False
        self._ticking_on_joint_states = False
        self._setting_active_checkpoint = False
        super().__init__('adapter', **kwargs)
        self.problems = Problems(self.get_logger())
        declare_parameters(self, ADAPTER_PARAMETERS)
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        self.settings = LoopSettings(**{name: value(name) for name in LOOP_PARAMETERS})
        self.checkpoint, self.adapted_checkpoint = value('checkpoint'), value('adapted_checkpoint')
        self.joints, self.interface = list(value('joints')), value('command_interface')
        self.trigger, self.period = value('trigger'), 1.0 / value('control_rate')
        self.controller, self.torch_threads = value('controller'), value('torch_threads')
        self.worker = 'process' if value('adaptation_process') else 'thread'
        self.adaptation, self.stop_command = value('adaptation'), value('stop_command')
        self.record, self.record_dir = value('record'), value('record_dir')
        self.recorder: BagRecorder | None = None
        self.unconfigured = 'not configured yet'  # why there is no loop
        self._activated_at: float | None = None  # until the first joint state after it
        self._ignored_announcements: set[str] = set()
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
        path = self.checkpoint or str(shipped_checkpoint())
        for name, value, choices in [('trigger', self.trigger, TRIGGERS),
                                     ('adaptation', self.adaptation, ADAPTATION_METHODS),
                                     ('stop_command', self.stop_command, STOP_COMMANDS)]:
            if value not in choices:
                return self._refuse(f'parameter {name} must be one of {list(choices)}, '
                                    f'not {value!r}')
        torch.set_num_threads(self.torch_threads)
        try:
            policy = self._policy(path)
        except (CheckpointError, ValueError) as error:
            return self._refuse(str(error))
        trained = policy.models.formulation.robot.control_period
        if abs(self.period - trained) > 1e-9:
            self.get_logger().warn(f'control_rate {1 / self.period:g} Hz is not the checkpoint\'s '
                                   f'{1 / trained:g} Hz: expect worse tracking and rejected '
                                   'adaptations')
        self.loop = ControlLoop(policy=policy, settings=self.settings, period=self.period,
                                stamp_clock=lambda: self.get_clock().now().nanoseconds * 1e-9,
                                on_adapted=self._on_adapted, stop_command=self.stop_command)
        self._running(path)
        self.commands = self.create_lifecycle_publisher(
            Float64MultiArray, f'{self.controller}/commands', 10)
        self.desired = self.create_lifecycle_publisher(JointState, '~/desired', 10)
        # Not ``self._subscriptions``: that is rclpy's own list (destroying from it while
        # iterating over it skipped every second subscription).
        self._loop_subscriptions = [
            self.create_subscription(JointState, 'joint_states', self._on_joint_state,
                                     JOINT_STATE_QOS),
            self.create_subscription(JointTrajectory, '~/reference', self._on_reference, 10),
            self.create_subscription(String, 'meta_trainer/checkpoint', self._on_checkpoint,
                                     CHECKPOINT_QOS)]
        # Not ``self._services``: rclpy's Node keeps its own services (parameters!) there.
        self._trigger_services = [
            self.create_service(Trigger, f'~/{name}', callback) for name, callback in
            [('adapt', self._on_adapt), ('reset_adaptation', self._on_reset),
             ('save_adapted', self._on_save)]]
        self._trigger_services.append(self.create_service(SetBool, '~/record', self._on_record))
        self.unconfigured = ''
        self.get_logger().info(f'configured with {path}')
        self._recording(self.record)
        return TransitionCallbackReturn.SUCCESS

    def _refuse(self, reason: str) -> TransitionCallbackReturn:
        """Stay unconfigured, and say why (the log, ``/diagnostics``)."""
        self.unconfigured = reason
        self.get_logger().error(f'cannot configure: {reason}')
        return TransitionCallbackReturn.FAILURE

    def _policy(self, path: str) -> AdaptivePolicy:
        """The checkpoint at ``path`` as a warmed-up policy.

        :raises CheckpointError: for a bad checkpoint.
        :raises ValueError: for ``adaptation: maml_physics`` and a checkpoint without one,
            or a robot that fails the robot check (``RobotCheckError``).
        """
        models = TrainedModels.load(path, joints=self.joints, command_interface=self.interface)
        form = models.formulation
        report = require_robot(form.robot, ranges=models.ranges, reference=models.reference,
                               natural_frequency=form.natural_frequency)
        for finding in report.findings:
            if finding.status == 'WARN':
                self.get_logger().warn(f'robot check: {finding.message}')
        method = self.adaptation
        if method == 'auto':
            method = 'maml_physics' if models.physics is not None else 'maml'
        # The first adaptation after a switch is not slower: warm up where it will run (a
        # worker process warms itself up).
        warm_up(models, None if self.worker == 'process' else method)
        return AdaptivePolicy(models=models, method=method, worker=self.worker)

    def _running(self, path: str) -> None:
        """``path`` is the checkpoint that runs: ``active_checkpoint`` says so."""
        self.checkpoint_path, self._checkpoint_version = path, _file_version(path)
        self._setting_active_checkpoint = True
        try:
            self.set_parameters([Parameter('active_checkpoint', value=path)])
        finally:
            self._setting_active_checkpoint = False

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
        self._recording(False)
        self.loop.policy.close()
        for publisher in (self.commands, self.desired):
            self.destroy_publisher(publisher)
        for subscription in self._loop_subscriptions:
            self.destroy_subscription(subscription)
        for service in self._trigger_services:
            self.destroy_service(service)
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
        self._recording(False)
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

    def _on_checkpoint(self, msg: String) -> None:
        """A checkpoint announced by meta_trainer: run it unless another one was chosen (see the
        module docstring); validated first."""
        path = msg.data
        if self.checkpoint and not _same_file(path, self.checkpoint):
            if path not in self._ignored_announcements:
                self._ignored_announcements.add(path)
                self.get_logger().info(
                    f'meta_trainer announced {path}; keeping the chosen checkpoint '
                    f'{self.checkpoint} (leave the checkpoint parameter empty to follow '
                    'meta_trainer)')
            return
        if _same_file(path, self.checkpoint_path) and \
                _file_version(path) == self._checkpoint_version:
            self.get_logger().debug(f'meta_trainer announced {path}: running it already')
            return
        try:
            policy = self._policy(path)
        except (CheckpointError, ValueError) as error:
            self.problems.report('checkpoint', f'ignoring {path}: {error}')
            return
        self.loop.switch_policy(policy)
        self._running(path)
        self.get_logger().info(f'switched to the checkpoint {path} (announced by meta_trainer)')


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

    def _on_adapted(self, outcome: AdaptationOutcome) -> None:
        # rclpy ties a severity to each logging call site: one site per severity.
        if outcome.accepted:
            self.get_logger().info(f'adaptation {outcome}')
        else:
            self.get_logger().warn(f'adaptation {outcome}')
        loop = self.loop  # None when cleaned up while it ran
        identified = loop.policy.identified() if outcome.accepted and loop is not None else None
        if identified is not None:
            self.get_logger().debug(f'identified: {identified}')
            if identified['not_identified_joints']:
                self.get_logger().info(
                    f'joints {identified["not_identified_joints"]} keep their previous model: '
                    'this support did not identify their torque (they hardly moved)')
        if loop is not None:
            values = outcome_values(outcome, method=str(loop.policy.method),
                                    identified=identified)
            self._record('~/adaptation', DiagnosticStatus(
                level=DiagnosticStatus.OK if outcome.accepted else DiagnosticStatus.WARN,
                name=self.get_name(), message=f'adaptation {outcome}',
                values=[KeyValue(key=k, value=v) for k, v in values.items()]))

    # -- recording -------------------------------------------------------------

    def _record_topics(self) -> dict[str, tuple[str, str]]:
        """What is recorded: the name used here -> (the resolved topic, its type)."""
        return {'joint_states': (self.resolve_topic_name('joint_states'), JOINT_STATE),
                'commands': (self.resolve_topic_name(f'{self.controller}/commands'), COMMANDS),
                '~/desired': (self.resolve_topic_name('~/desired'), JOINT_STATE),
                '~/adaptation': (self.resolve_topic_name('~/adaptation'), OUTCOME)}

    def _recording(self, on: bool) -> None:
        """Start (a new bag) or stop recording; a bag that cannot be created is a problem
        (counted, in the log and ``/diagnostics``)."""
        if not on:
            recorder, self.recorder = self.recorder, None
            if recorder is not None:
                recorder.close()
                self.get_logger().info(f'recorded {recorder.written} messages into '
                                       f'{recorder.path}')
            return
        if self.recorder is not None or self.loop is None:  # recording, or at configure
            return
        folder = Path(self.record_dir or Path(os.environ.get(
            'ROS_HOME', Path.home() / '.ros')) / 'maml_ros' / 'bags')
        bag = folder / datetime.now(timezone.utc).strftime('support_%Y%m%d_%H%M%S_%f')
        topics = self._record_topics()
        self._topics = {name: topic for name, (topic, _) in topics.items()}
        try:
            self.recorder = BagRecorder(bag, dict(topics.values()))
        except BagError as error:
            self.problems.report('record', str(error))
            return
        self.get_logger().info(f'recording into {self.recorder.path}')

    def _record(self, name: str, msg) -> None:
        recorder = self.recorder  # the adapting thread reads it too
        if recorder is not None:
            recorder.write(self._topics[name], self.get_clock().now().nanoseconds,
                           serialize_message(msg))

    def _publish(self, publisher, name: str, msg) -> None:
        """Publish ``msg``, and record it as ``name`` (see :meth:`_record_topics`)."""
        publisher.publish(msg)
        self._record(name, msg)

    def _on_record(self, request, response):
        """``~/record``: true starts a new bag, false closes it (the ``record`` parameter
        follows)."""
        result = self.set_parameters([Parameter('record', value=request.data)])[0]
        if not result.successful:
            response.success, response.message = False, result.reason
        elif self.recorder is not None:
            response.success, response.message = True, f'recording into {self.recorder.path}'
        else:
            response.success = not request.data
            response.message = 'not recording' if not request.data else \
                f'could not record: {self.problems.last}'
        return response


    async def _on_adapt(self, request, response):
        """Adapt now; the answer is the outcome (the control loop goes on meanwhile)."""
        policy = self.loop.policy
        previous = policy.last_outcome
        reason = self.loop.adapt(self.monotonic())
        if reason:
            response.success, response.message = False, f'not adapting: {reason}'
            return response
        deadline = time.monotonic() + ADAPT_ANSWER_TIMEOUT
        while policy.last_outcome is previous and time.monotonic() < deadline:
            await _NextSpin()
        outcome = policy.last_outcome
        if outcome is previous:
            response.success, response.message = True, (
                f'adaptation still running after {ADAPT_ANSWER_TIMEOUT:g} s; its outcome will '
                'be in the log and /diagnostics')
        else:
            response.success, response.message = outcome.accepted, f'adaptation {outcome}'
        return response

    def _on_reset(self, request, response):
        self.loop.reset_adaptation()
        response.success, response.message = True, 'back to the meta-policy, support cleared'
        return response

    def _on_save(self, request, response):
        path = Path(self.adapted_checkpoint or Path(
            os.environ.get('ROS_HOME', Path.home() / '.ros')) / 'maml_ros' / 'adapted.safetensors')
        policy = self.loop.policy
        try:
            policy.active_models().save(path)
            response.success, response.message = True, (
                f'saved the {"adapted" if policy.adapted else "meta"} policy to {path}')
        except (OSError, CheckpointError) as error:
            response.success, response.message = False, f'could not save {path}: {error}'
        return response

    def _refuse_active_checkpoint(self, parameters) -> SetParametersResult:
        if self._setting_active_checkpoint or all(p.name != 'active_checkpoint'
                                                  for p in parameters):
            return SetParametersResult(successful=True)
        return SetParametersResult(successful=False, reason=(
            'active_checkpoint is read-only: it names the checkpoint that runs (choose one with '
            'the checkpoint parameter)'))

    def _on_parameters_set(self, parameters) -> None:
        """Accepted changes (rclpy refused out-of-range ones already) take effect now."""
        changes = {p.name: p.value for p in parameters}
        self.adapted_checkpoint = changes.get('adapted_checkpoint', self.adapted_checkpoint)
        self.record_dir = changes.get('record_dir', self.record_dir)
        if 'record' in changes:
            self.record = changes['record']
            self._recording(self.record)
        self.settings = dataclasses.replace(self.settings, **{
            name: value for name, value in changes.items() if name in LOOP_PARAMETERS})
        if self.loop is not None:
            self.loop.apply(self.settings)

    def status(self) -> tuple[bytes, str, dict[str, str]]:
        """What ``/diagnostics`` says now: level, message, values (the lifecycle state, the
        loop's figures, what the active physics fit identified, and the problems counted)."""
        if self.loop is None:
            return (DiagnosticStatus.ERROR, f'unconfigured: {self.unconfigured}',
                    {'lifecycle_state': 'unconfigured', **self.problems.values()})
        status = self.loop.status(self.monotonic())
        level, message = bytes([status.level]), status.message
        if not self.active:
            level, message = DiagnosticStatus.OK, 'inactive: not commanding'
        identified = {f'identified {name}': str(value)
                      for name, value in (self.loop.policy.identified() or {}).items()}
        recorder = self.recorder
        recording = {'recording': 'off' if recorder is None else str(recorder.path)}
        if recorder is not None and recorder.error:
            level, message = DiagnosticStatus.WARN, f'{message}; recording failed'
            recording['recording_error'] = recorder.error
        return (level, message, {'lifecycle_state': 'active' if self.active else 'inactive',
                                 'checkpoint': self.checkpoint_path, **status.values, **recording,
                                 **identified, **self.problems.values()})

    def _every_second(self) -> None:
        """``/diagnostics``, and a warning when no joint state came since activation."""
        level, message, values = self.status()
        self.diagnostics.publish(diagnostic_array(self, level=level, name='maml_ros adapter',
                                                  message=message, values=values))
        if self.active and self._activated_at is not None and \
                self.monotonic() - self._activated_at > NO_JOINT_STATES_WARNING:
            self._activated_at = None  # once per activation
            self.problems.report(
                'no_joint_states',
                f'none on {self.resolve_topic_name("joint_states")} for '
                f'{NO_JOINT_STATES_WARNING:g} s since activation: is the robot\'s '
                'joint_state_broadcaster running, and are ROS_DOMAIN_ID and '
                'ROS_AUTOMATIC_DISCOVERY_RANGE the same as the robot\'s?')


def _file_version(path: str) -> tuple[int, int] | None:
    """What changes when a file is rewritten (None: no such file)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def main(args: list[str] | None = None) -> None:
    spin_node(AdapterNode, args, name='adapter')


if __name__ == '__main__':
    main()
