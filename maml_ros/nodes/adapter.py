"""``adapter``: on-robot adaptation and the policy, as a lifecycle node.

A shell over :class:`maml_ros.online.control_loop.ControlLoop` (the loop, its
safety rules and the adaptation schedule): it converts messages, publishes
what the loop returns, and owns the lifecycle, services and parameters
(:data:`maml_ros.ros.params.ADAPTER_PARAMETERS`). Malformed input is dropped,
counted and logged (:mod:`maml_ros.ros.problems`); ``/diagnostics`` reports
the loop's status at 1 Hz.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from maml_ros.maml.checkpoint import CheckpointError
from maml_ros.online.adaptive_policy import AdaptationOutcome, AdaptivePolicy
from maml_ros.online.control_loop import ControlLoop, LoopSettings
from maml_ros.resources import shipped_checkpoint
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
from maml_ros.training.models import TrainedModels


class AdapterNode(ReportsRejectedParameters, LifecycleNode):
    """The on-robot adapter; see the module docstring."""

    #: The clock of the control loop and the watchdog (tests drive it by hand).
    monotonic = staticmethod(time.monotonic)

    def __init__(self, **kwargs) -> None:
        self.loop: ControlLoop | None = None
        self._timer = None
        self._ticking_on_joint_states = False
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
        self.adaptation = value('adaptation')
        self.add_post_set_parameters_callback(self._on_parameters_set)
        if value('autostart') and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()


    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Load and check the checkpoint, build the loop, create the communication.
        FAILURE on a bad checkpoint or trigger: the node stays unconfigured and says why."""
        path = self.checkpoint or str(shipped_checkpoint())
        if self.trigger not in TRIGGERS:
            self.get_logger().error(f'cannot configure: trigger must be one of {list(TRIGGERS)}, '
                                    f'not {self.trigger!r}')
            return TransitionCallbackReturn.FAILURE
        if self.adaptation not in ADAPTATION_METHODS:
            self.get_logger().error('cannot configure: adaptation must be one of '
                                    f'{list(ADAPTATION_METHODS)}, not {self.adaptation!r}')
            return TransitionCallbackReturn.FAILURE
        torch.set_num_threads(self.torch_threads)
        try:
            policy = self._policy(path)
        except (CheckpointError, ValueError) as error:
            self.get_logger().error(f'cannot configure: {error}')
            return TransitionCallbackReturn.FAILURE
        trained = policy.models.formulation.robot.control_period
        if abs(self.period - trained) > 1e-9:
            self.get_logger().warn(f'control_rate {1 / self.period:g} Hz is not the checkpoint\'s '
                                   f'{1 / trained:g} Hz: expect worse tracking and rejected '
                                   'adaptations')
        self.loop = ControlLoop(policy=policy, settings=self.settings, period=self.period,
                                stamp_clock=lambda: self.get_clock().now().nanoseconds * 1e-9,
                                on_adapted=self._on_adapted)
        self.checkpoint_path = path
        self.commands = self.create_lifecycle_publisher(
            Float64MultiArray, f'{self.controller}/commands', 10)
        self.diagnostics = self.create_lifecycle_publisher(DiagnosticArray, '/diagnostics', 10)
        self.desired = self.create_lifecycle_publisher(JointState, '~/desired', 10)
        self._subscriptions = [
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
        self._diagnostics_timer = self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f'configured with {path}')
        return TransitionCallbackReturn.SUCCESS

    def _policy(self, path: str) -> AdaptivePolicy:
        """The checkpoint at ``path`` as a warmed-up policy.

        :raises CheckpointError: for a bad checkpoint.
        :raises ValueError: for ``adaptation: maml_physics`` and a checkpoint without one.
        """
        models = TrainedModels.load(path, joints=self.joints, command_interface=self.interface)
        method = self.adaptation
        if method == 'auto':
            method = 'maml_physics' if models.physics is not None else 'maml'
        policy = AdaptivePolicy(models=models, method=method, worker=self.worker)
        models.warm_up()
        return policy

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Start ticking (the command ramps in from rest, along a reference from the robot)."""
        if self.trigger == 'timer':
            self._timer = self.create_timer(self.period, self._tick)
        result = super().on_activate(state)  # enables the publishers
        self._ticking_on_joint_states = self.trigger == 'joint_states'
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stop ticking; no support transition spans the pause."""
        self._ticking_on_joint_states = False
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        self.loop.pause()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Drop the loop, the policy, publishers, subscriptions and services."""
        self.loop.policy.close()
        for publisher in (self.commands, self.diagnostics, self.desired):
            self.destroy_publisher(publisher)
        for subscription in self._subscriptions:
            self.destroy_subscription(subscription)
        for service in self._trigger_services:
            self.destroy_service(service)
        self.destroy_timer(self._diagnostics_timer)
        self.loop = None
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        """Wait for a running adaptation first: a process that exits under one aborts."""
        if self.loop is not None:
            self.loop.policy.close(wait=10.0)
        super().destroy_node()


    def _on_joint_state(self, msg: JointState) -> None:
        now = self.monotonic()
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
        """A new checkpoint from meta_trainer: validate it, then start over with it."""
        if msg.data == self.checkpoint_path:
            return
        try:
            policy = self._policy(msg.data)
        except (CheckpointError, ValueError) as error:
            self.problems.report('checkpoint', f'ignoring {msg.data}: {error}')
            return
        self.loop.switch_policy(policy)
        self.checkpoint_path = msg.data
        self.get_logger().info(f'switched to the checkpoint {msg.data}')


    def _tick(self) -> None:
        tick = self.loop.step(self.monotonic())
        if tick is None:
            return
        self.commands.publish(Float64MultiArray(data=tick.command.tolist()))
        self.desired.publish(JointState(header=self._latest_header, name=self.joints,
                                        position=tick.q_ref.tolist(),
                                        velocity=tick.qd_ref.tolist()))

    def _on_adapted(self, outcome: AdaptationOutcome) -> None:
        # rclpy ties a severity to each logging call site: one site per severity.
        if outcome.accepted:
            self.get_logger().info(f'adaptation {outcome}')
        else:
            self.get_logger().warn(f'adaptation {outcome}')


    def _on_adapt(self, request, response):
        reason = self.loop.adapt(self.monotonic())
        response.success, response.message = not reason, reason or 'adaptation started'
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

    def _on_parameters_set(self, parameters) -> None:
        """Accepted changes (rclpy refused out-of-range ones already) take effect now."""
        changes = {p.name: p.value for p in parameters}
        self.adapted_checkpoint = changes.get('adapted_checkpoint', self.adapted_checkpoint)
        self.settings = dataclasses.replace(self.settings, **{
            name: value for name, value in changes.items() if name in LOOP_PARAMETERS})
        if self.loop is not None:
            self.loop.apply(self.settings)

    def status(self) -> tuple[bytes, str, dict[str, str]]:
        """What ``/diagnostics`` says now: level, message, values (the loop's, what the active
        physics fit identified, and the problems counted)."""
        status = self.loop.status(self.monotonic())
        identified = {f'identified {name}': str(value)
                      for name, value in (self.loop.policy.identified() or {}).items()}
        return (bytes([status.level]), status.message,
                {**status.values, **identified, **self.problems.values()})

    def _publish_diagnostics(self) -> None:
        level, message, values = self.status()
        self.diagnostics.publish(diagnostic_array(self, level=level, name='maml_ros adapter',
                                                  message=message, values=values))


def main(args: list[str] | None = None) -> None:
    spin_node(AdapterNode, args)


if __name__ == '__main__':
    main()
