"""``adapter``: on-robot adaptation and the policy, as a lifecycle node.

- configure: load and validate the checkpoint against ``joints`` and
  ``command_interface``; create publishers, subscriptions and services.
- activate: start the control loop: a timer at ``control_rate``, or a tick on
  each fresh joint state (``trigger``).
- deactivate: stop commanding (the robot's own timeout takes over).
- cleanup: drop the policy and the communication.

Every tick: the latest ``/joint_states`` (mapped by joint name) and the
built-in reference give the policy's command, plus bounded exploration noise
while collecting support; the safety filter clamps it to the URDF limits and
``max_command_rate``; it is published on ``<controller>/commands`` and
recorded in the support buffer. When the buffer holds ``support_size``
transitions (``auto_adapt``) or on ``~/adapt``, the adapter adapts in a
worker process (``adaptation_process``; or a thread) and swaps the result in
if its support loss did not rise.
Stale joint states (``watchdog_timeout``) stop commands until fresh data
arrive; after activation and after stale data the command ramps in from rest
(zero effort or velocity, or the measured position) at ``max_command_rate``.
Malformed input is dropped, counted and logged (:mod:`maml_ros.ros.problems`).
``/diagnostics`` reports the state at 1 Hz, with the loop's rate, period
jitter and latency (:mod:`maml_ros.online.loop_stats`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from maml_ros.maml.checkpoint import CheckpointError
from maml_ros.online.adapter import OnlineAdapter
from maml_ros.online.loop_stats import LoopStats
from maml_ros.online.safety import SafetyFilter, Watchdog
from maml_ros.online.support_buffer import SupportBuffer
from maml_ros.online.trajectory import TrajectoryReference
from maml_ros.resources import shipped_checkpoint
from maml_ros.ros.diagnostics import diagnostic_array
from maml_ros.ros.joint_state import JointStateError, joint_state_arrays
from maml_ros.ros.params import ParamSpec, check_parameters, declare_parameters
from maml_ros.ros.problems import Problems, ReportsRejectedParameters
from maml_ros.ros.qos import CHECKPOINT_QOS, JOINT_STATE_QOS
from maml_ros.ros.spin import spin_node
from maml_ros.ros.trajectory import trajectory_arrays
from maml_ros.sim import COMMAND_INTERFACES, PANDA_ARM_JOINTS, InverseDynamicsModel
from maml_ros.sim.reference import ReferenceConfig, random_reference
from maml_ros.training.models import TrainedModels

REFERENCE_SECONDS = 600.0  # length of the built-in test trajectory (held at its end) ...
REFERENCE_SAMPLES = 60_000  # ... and at most this many samples (its memory at high rates)
TRIGGERS = ('timer', 'joint_states')
MAX_STAMP_LEAD = 1.0  # joint states stamped further ahead of this node's clock are faults (s)

PARAMETERS = [
    ParamSpec('checkpoint', '', 'policy checkpoint (.safetensors); empty: the shipped one',
              read_only=True),
    ParamSpec('joints', list(PANDA_ARM_JOINTS), 'controlled joints, in command order',
              read_only=True),
    ParamSpec('command_interface', 'effort', f'one of {list(COMMAND_INTERFACES)}',
              read_only=True),
    ParamSpec('controller', 'effort_controller', 'commands go to <controller>/commands',
              read_only=True),
    ParamSpec('control_rate', 100.0, 'control loop rate (Hz)', 1.0, 1000.0, read_only=True),
    ParamSpec('trigger', 'timer', "what starts a control tick: 'timer' (every 1/control_rate) "
              "or 'joint_states' (each fresh joint state, at most two per period: the lowest "
              "latency; control_rate must then match the joint-state rate)", read_only=True),
    ParamSpec('torch_threads', 1, 'CPU threads for the policy and adaptation; more speed up '
              'adaptation but compete with the control loop for cores', 1, 256, read_only=True),
    ParamSpec('adaptation_process', True, 'adapt in a worker process (no GIL contention with '
              'the control loop); false: in a thread of this one', read_only=True),
    ParamSpec('autostart', True, 'configure and activate by itself', read_only=True),
    ParamSpec('auto_adapt', True, 'adapt once support_size transitions are collected'),
    ParamSpec('support_size', 200, 'support transitions to adapt on', 10, 5000),
    ParamSpec('inner_steps', 5, 'gradient steps per adaptation', 0, 100),
    ParamSpec('inner_lr', 0.1, 'inner learning rate; learned rates are scaled by '
              'inner_lr / the checkpoint inner_lr', 0.0, 10.0),
    ParamSpec('exploration_std', 0.02, 'exploration noise while collecting, a fraction of '
              'the command limit', 0.0, 0.2),
    ParamSpec('readapt_period', 0.0, 'seconds between re-adaptations on the sliding '
              'window; 0: adapt once', 0.0, 3600.0),
    ParamSpec('max_command_rate', 2000.0, 'largest command change per second (command '
              'units/s)', 1e-3, 1e6),
    ParamSpec('adapted_checkpoint', '', 'where ~/save_adapted writes; empty: '
              '$ROS_HOME/maml_ros/adapted.safetensors (ROS_HOME defaults to ~/.ros)'),
    ParamSpec('watchdog_timeout', 0.1, 'joint states older than this stop commands (s)',
              0.001, 10.0),
]


class AdapterNode(ReportsRejectedParameters, LifecycleNode):
    """The on-robot adapter; see the module docstring."""

    #: The clock of the control loop and the watchdog (tests drive it by hand).
    monotonic = staticmethod(time.monotonic)

    def __init__(self, **kwargs) -> None:
        self.adapter: OnlineAdapter | None = None
        self.models: TrainedModels | None = None
        self._timer = None
        self._ticking_on_joint_states = False
        super().__init__('adapter', **kwargs)
        self.problems = Problems(self.get_logger())
        declare_parameters(self, PARAMETERS)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if self.get_parameter('autostart').value and \
                self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def value(self, name: str):
        return self.get_parameter(name).value

    # -- lifecycle -----------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Load and validate the checkpoint, create the communication. FAILURE on a bad
        checkpoint (the node stays unconfigured and says why)."""
        path = self.value('checkpoint') or str(shipped_checkpoint())
        self.joints = joints = list(self.value('joints'))
        if self.value('trigger') not in TRIGGERS:
            self.get_logger().error(f'cannot configure: trigger must be one of {list(TRIGGERS)}, '
                                    f'not {self.value("trigger")!r}')
            return TransitionCallbackReturn.FAILURE
        try:
            self.models = TrainedModels.load(path, joints=joints,
                                             command_interface=self.value('command_interface'))
        except CheckpointError as error:
            self.get_logger().error(f'cannot configure: {error}')
            return TransitionCallbackReturn.FAILURE
        formulation = self.models.formulation
        limits = InverseDynamicsModel.shared(formulation.robot).description.limits
        interface = formulation.robot.command_interface
        self.command_limits = {'effort': (-limits.effort, limits.effort),
                               'velocity': (-limits.velocity, limits.velocity),
                               'position': (limits.lower, limits.upper)}[interface]
        # Exploration in the units training used (see maml_ros.sim.RolloutConfig).
        self.exploration_scale = {'effort': limits.effort, 'velocity': limits.velocity,
                                  'position': limits.velocity / self.value('control_rate')
                                  }[interface]
        self.period = 1.0 / self.value('control_rate')
        torch.set_num_threads(self.value('torch_threads'))
        trained = formulation.robot.control_period
        if abs(self.period - trained) > 1e-9:
            self.get_logger().warn(
                f'control_rate {1 / self.period:g} Hz differs from the checkpoint\'s '
                f'{1 / trained:g} Hz: the policy and its adaptation assume the checkpoint\'s '
                'period, so expect worse tracking and rejected adaptations')
        self.rest = (lambda q: q) if interface == 'position' else np.zeros_like
        self.adapter = OnlineAdapter(models=self.models,
                                     process=self.value('adaptation_process'))
        self.buffer = SupportBuffer(capacity=self.value('support_size'), n_joints=len(joints),
                                    control_period=self.period)
        self.safety = SafetyFilter(lower=self.command_limits[0], upper=self.command_limits[1],
                                   max_rate=self.value('max_command_rate'), period=self.period)
        self.watchdog = Watchdog(timeout=self.value('watchdog_timeout'))
        self.limits = limits
        self.reference = None  # built from the robot's posture when control starts
        self.trajectory: TrajectoryReference | None = None  # from ~/reference
        self._trajectory_start = 0.0
        self.models.warm_up()
        self._rng = np.random.default_rng(0)
        self._commands_sent = 0
        self.loop_stats = LoopStats(period=self.period)
        # Squared tracking error sums and counts of the meta-policy and the adapted one.
        self._tracking = {'meta_policy': [0.0, 0], 'adapted': [0.0, 0]}
        self._latest: tuple[np.ndarray, np.ndarray, float] | None = None
        self._latest_header = None  # the header of the joint state in self._latest
        self._last_stamp = -np.inf
        self.commands = self.create_lifecycle_publisher(
            Float64MultiArray, f'{self.value("controller")}/commands', 10)
        self.diagnostics = self.create_lifecycle_publisher(DiagnosticArray, '/diagnostics', 10)
        self.desired = self.create_lifecycle_publisher(JointState, '~/desired', 10)
        self._subscription = self.create_subscription(
            JointState, 'joint_states', self._on_joint_state, JOINT_STATE_QOS)
        self._reference_subscription = self.create_subscription(
            JointTrajectory, '~/reference', self._on_reference, 10)
        self.checkpoint_path = path
        self._checkpoint_subscription = self.create_subscription(
            String, 'meta_trainer/checkpoint', self._on_checkpoint, CHECKPOINT_QOS)
        # Not ``self._services``: rclpy's Node keeps its own services (parameters!) there.
        self._trigger_services = [
            self.create_service(Trigger, f'~/{name}', callback) for name, callback in
            [('adapt', self._on_adapt), ('reset_adaptation', self._on_reset),
             ('save_adapted', self._on_save)]]
        self._diagnostics_timer = self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f'configured with {path}')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Start the control loop (the built-in reference starts where the robot is)."""
        self._last_adaptation = -np.inf
        self.safety.reset()
        if self.value('trigger') == 'timer':
            self._timer = self.create_timer(self.period, self._tick)
        result = super().on_activate(state)  # enables the publishers
        self._ticking_on_joint_states = self.value('trigger') == 'joint_states'
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stop commanding; the support chain is broken so no transition spans the pause."""
        self._ticking_on_joint_states = False
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        self.buffer.break_chain()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Drop the policy, publishers, subscription and services."""
        if self.adapter is not None:
            self.adapter.reset()
            self.adapter.close()
        self.destroy_publisher(self.commands)
        self.destroy_publisher(self.diagnostics)
        self.destroy_publisher(self.desired)
        self.destroy_subscription(self._subscription)
        self.destroy_subscription(self._checkpoint_subscription)
        self.destroy_subscription(self._reference_subscription)
        for service in self._trigger_services:
            self.destroy_service(service)
        self.destroy_timer(self._diagnostics_timer)
        self.adapter = self.models = None
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        """Wait for a running adaptation first: a process that exits under one aborts."""
        if self.adapter is not None:
            self.adapter.reset()
            self.adapter.wait(10.0)
            self.adapter.close()
        super().destroy_node()

    # -- data in -----------------------------------------------------------

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            q, qd, stamp = joint_state_arrays(msg, self.joints)
        except JointStateError as error:
            self.problems.report('joint_state', str(error))
            return
        if stamp <= self._last_stamp:
            self.problems.report('joint_state', f'stamp {stamp:.9f} is not newer than the '
                                 f'previous one ({self._last_stamp:.9f})')
            return
        lead = stamp - self.get_clock().now().nanoseconds * 1e-9
        if lead > MAX_STAMP_LEAD:
            self.problems.report('joint_state', f'stamp is {lead:.3g} s ahead of this clock')
            return
        self._last_stamp = stamp
        self._latest, self._latest_header = (q, qd, stamp), msg.header
        now = self.monotonic()
        self.watchdog.feed(now)
        if self._ticking_on_joint_states and now - self.loop_stats.last_tick >= self.period / 2:
            self._tick()

    def _on_reference(self, msg: JointTrajectory) -> None:
        """Track this trajectory from now on (from the robot's state; clamped to limits)."""
        if self._latest is None:
            self.problems.report('reference', 'no joint state yet to start it from')
            return
        try:
            times, positions, velocities = trajectory_arrays(msg, self.joints)
            trajectory = TrajectoryReference(
                times=times, positions=positions, velocities=velocities,
                start=self._latest[:2], lower=self.limits.lower, upper=self.limits.upper,
                max_velocity=self.limits.velocity)
        except ValueError as error:
            self.problems.report('reference', str(error))
            return
        if trajectory.clamped:
            self.problems.report('reference_clamped', 'positions or velocities outside the '
                                 'joint limits were clamped')
        self.trajectory, self._trajectory_start = trajectory, self.monotonic()
        self.get_logger().info(f'tracking a {trajectory.duration:.1f} s reference trajectory')

    def _on_checkpoint(self, msg: String) -> None:
        """A new checkpoint from meta_trainer: validate it, then start over with it."""
        if msg.data == self.checkpoint_path:
            return
        try:
            models = TrainedModels.load(msg.data, joints=self.joints,
                                        command_interface=self.value('command_interface'))
        except CheckpointError as error:
            self.problems.report('checkpoint', f'ignoring {msg.data}: {error}')
            return
        adapter = OnlineAdapter(models=models, process=self.value('adaptation_process'))
        models.warm_up()
        self.adapter.reset()
        self.adapter.close()
        self.models, self.adapter, self.checkpoint_path = models, adapter, msg.data
        self.buffer.clear()
        self._last_adaptation = -np.inf
        self.get_logger().info(f'switched to the checkpoint {msg.data}')

    # -- the control loop --------------------------------------------------

    def _tick(self) -> None:
        now = self.monotonic()
        self.loop_stats.tick(now)
        if self._latest is None or self.watchdog.stale(now):
            self.buffer.break_chain()
            self.safety.reset()  # the robot's own command timeout has taken over
            return
        q, qd, stamp = self._latest
        if self.safety.previous is None:  # activated, or fresh data after stale data:
            self.safety.reset(self.rest(q))  # ramp in from rest,
            self.reference = None  # along a reference that starts where the robot is
        if self.reference is None:
            self.reference = self._builtin_reference(q)
            self._start_time = now
        step = min(int((now - self._start_time) / self.period), self.reference.steps)
        if self.trajectory is not None:
            q_ref, qd_ref, qdd_ref = self.trajectory.sample(now - self._trajectory_start)
        else:
            ref = self.reference
            q_ref, qd_ref, qdd_ref = (ref.positions[step], ref.velocities[step],
                                      ref.accelerations[step])
        command = self.adapter.command(q, qd, q_ref, qd_ref, qdd_ref)
        std = self.value('exploration_std')
        if std > 0 and (not self.adapter.adapted or self.value('readapt_period') > 0):
            noise = np.clip(self._rng.standard_normal(len(command)) * std, -2.5 * std, 2.5 * std)
            command = command + noise * self.exploration_scale
        safe = self.safety(command)
        self.commands.publish(Float64MultiArray(data=safe.tolist()))
        self.loop_stats.command(self.get_clock().now().nanoseconds * 1e-9 - stamp)
        self._commands_sent += 1
        self._record_tracking(q, q_ref, qd_ref, after_ramp=step * self.period >= 1.0)
        self.buffer.record(stamp, np.concatenate([q, qd]), safe)
        self._maybe_adapt(now)

    def _builtin_reference(self, q: np.ndarray):
        """A smooth test trajectory that fades in from posture ``q`` (kept off the limits)."""
        return random_reference(np.random.default_rng(0), limits=self.limits, home=q,
                                steps=min(int(REFERENCE_SECONDS / self.period), REFERENCE_SAMPLES),
                                control_period=self.period,
                                config=ReferenceConfig(center_spread=0.0))

    def _record_tracking(self, q: np.ndarray, q_ref: np.ndarray, qd_ref: np.ndarray, *,
                         after_ramp: bool) -> None:
        """Publish what is being tracked (stamped as the joint state it was compared with);
        sum the tracking error of the active policy."""
        self.desired.publish(JointState(header=self._latest_header,
                                        name=self.joints,
                                        position=q_ref.tolist(), velocity=qd_ref.tolist()))
        if after_ramp:  # the first second fades the motion in from rest
            total = self._tracking['adapted' if self.adapter.adapted else 'meta_policy']
            total[0] += float(np.sum((q - q_ref) ** 2))
            total[1] += q.size

    def _maybe_adapt(self, now: float) -> None:
        if self.adapter.busy or not self.buffer.full:
            return
        readapt = self.value('readapt_period')
        first = not self.adapter.adapted and self.value('auto_adapt') and \
            self._last_adaptation == -np.inf
        again = readapt > 0 and now - self._last_adaptation >= readapt
        if first or again:
            self._start_adaptation(now)

    def _start_adaptation(self, now: float) -> bool:
        base = self.models.learner.base_inner_lr
        scale = self.value('inner_lr') / base if base > 0 else 1.0
        started = self.adapter.start(self.buffer.transitions(),
                                     inner_steps=self.value('inner_steps'), lr_scale=scale,
                                     on_done=self._on_adapted)
        if started:
            self._last_adaptation = now
        return started

    def _on_adapted(self, outcome) -> None:
        figures = (f'support loss {outcome.loss_before:.4g} -> {outcome.loss_after:.4g} on '
                   f'{outcome.transitions} transitions in {outcome.duration_ms:.1f} ms')
        # rclpy ties a severity to each logging call site: one site per severity.
        if outcome.accepted:
            self.get_logger().info(f'adaptation accepted; {figures}')
        else:
            self.get_logger().warn(f'adaptation rejected: {outcome.reason}; {figures}')

    # -- services, parameters, diagnostics -----------------------------------

    def _on_adapt(self, request, response):
        started = self._start_adaptation(self.monotonic())
        response.success = started
        response.message = 'adaptation started' if started else (
            'an adaptation is running' if self.adapter.busy else
            f'only {len(self.buffer)} support transitions')
        return response

    def _on_reset(self, request, response):
        self.adapter.reset()
        self.buffer.clear()
        self._last_adaptation = -np.inf
        response.success, response.message = True, 'back to the meta-policy, support cleared'
        return response

    def _on_save(self, request, response):
        path = Path(self.value('adapted_checkpoint') or Path(
            os.environ.get('ROS_HOME', Path.home() / '.ros')) / 'maml_ros' / 'adapted.safetensors')
        try:
            self.adapter.active_models().save(path)
        except (OSError, CheckpointError) as error:
            response.success, response.message = False, f'could not save {path}: {error}'
            return response
        response.success = True
        response.message = (f'saved the {"adapted" if self.adapter.adapted else "meta"} '
                            f'policy to {path}')
        return response

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        verdict = check_parameters(PARAMETERS, parameters)
        if not verdict.successful:
            return verdict
        for parameter in parameters:
            if self.adapter is None:
                continue
            if parameter.name == 'support_size':
                self.buffer.resize(parameter.value)
            elif parameter.name == 'max_command_rate':
                self.safety.set_max_rate(parameter.value)
            elif parameter.name == 'watchdog_timeout':
                self.watchdog.set_timeout(parameter.value)
        return verdict

    def status(self) -> tuple[int, str, dict[str, str]]:
        """Diagnostic level, message and values."""
        outcome = self.adapter.last_outcome
        state = 'adapting' if self.adapter.busy else 'adapted' if self.adapter.adapted \
            else 'collecting'
        stale = self.watchdog.stale(self.monotonic())
        rejected = outcome is not None and not outcome.accepted
        level = DiagnosticStatus.ERROR if stale else DiagnosticStatus.WARN if rejected else \
            DiagnosticStatus.OK
        values = {'state': state, 'support_fill': f'{len(self.buffer)}/{self.buffer.capacity}',
                  'commands_sent': str(self._commands_sent),
                  'joint_states_stale': str(stale),
                  **self.loop_stats.report(self.monotonic()), **self.problems.values()}
        for policy, (squares, count) in self._tracking.items():
            if count:
                values[f'tracking_rmse_{policy}'] = f'{np.sqrt(squares / count):.6g}'
        if outcome is not None:
            values.update({'support_loss_before': f'{outcome.loss_before:.6g}',
                           'support_loss_after': f'{outcome.loss_after:.6g}',
                           'adaptation_ms': f'{outcome.duration_ms:.1f}',
                           'last_adaptation': 'accepted' if outcome.accepted
                           else f'rejected: {outcome.reason}'})
        message = 'joint states stale' if stale else \
            f'{state}; last adaptation rejected' if rejected else state
        return level, message, values

    def _publish_diagnostics(self) -> None:
        level, message, values = self.status()
        self.diagnostics.publish(diagnostic_array(self, level=level, name='maml_ros adapter',
                                                  message=message, values=values))


def main(args: list[str] | None = None) -> None:
    spin_node(AdapterNode, args)


if __name__ == '__main__':
    main()
