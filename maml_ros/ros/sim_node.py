"""The simulated robot on ros2_control's topics: what ``pybullet_sim`` and ``mujoco_sim`` share.

The two nodes differ only in the physics engine (:mod:`maml_ros.sim.engines`)
and its own parameters. The node advances the robot by one period per tick at
``publish_rate`` and publishes ``/joint_states`` (stamped, measured with the
robot's sensor noise).
Commands arrive as ``std_msgs/Float64MultiArray`` on
``<controller>/commands`` in the order of ``joints``, as a ros2_control
forward command controller takes them; malformed ones are dropped and
counted, and so are refused parameter changes (``/diagnostics``, 1 Hz).
Until the first command arrives (after start-up or ``~/reset``) the physics
does not advance: the arm waits at home like a robot with its brakes on.
Once commanded, without a command for ``command_timeout`` it gets zero
effort or velocity, or holds the position it had then; with
``command_timeout: 0`` it keeps applying the last command, like a ros2_control
forward command controller. ``~/reset`` puts it back at home. A robot that
cannot be simulated (a URDF the engine cannot load, unknown joints, bad
``dynamics.*``) stops the start-up with one line that says why.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from maml_ros.ros.diagnostics import diagnostic_array
from maml_ros.ros.params import ParamSpec, declare_parameters
from maml_ros.ros.problems import Problems, ReportsRejectedParameters
from maml_ros.ros.spin import StartupError
from maml_ros.sim import (
    COMMAND_INTERFACES,
    FACTOR_NAMES,
    PANDA_ARM_JOINTS,
    PANDA_HOME,
    Dynamics,
    RobotConfig,
    SimRobot,
)
from maml_ros.training.config import INERTIA_SOURCES, ROBOT_KEYS, TRAINING_RANGES, robot_config

PARAMETERS = [
    ParamSpec('urdf', 'franka_panda/panda.urdf',
              'URDF file, absolute or relative to pybullet_data', read_only=True),
    ParamSpec('joints', list(PANDA_ARM_JOINTS), 'controlled joints, in command order',
              read_only=True),
    ParamSpec('payload_link', 'panda_hand', 'link that carries the payload', read_only=True),
    ParamSpec('home', list(PANDA_HOME), 'start and reset posture of the joints (rad)',
              read_only=True),
    ParamSpec('command_interface', 'effort', f'one of {list(COMMAND_INTERFACES)}',
              read_only=True),
    ParamSpec('controller', 'effort_controller',
              'commands are read from <controller>/commands', read_only=True),
    ParamSpec('publish_rate', 100.0, 'joint states per second; the physics advances '
              '1/publish_rate per message (Hz)', 1.0, 1000.0, read_only=True),
    ParamSpec('physics_period', 0.001, 'physics time step (s)', 1e-4, 0.01, read_only=True),
    ParamSpec('inertia', 'collision', f'link inertias from {list(INERTIA_SOURCES)}',
              read_only=True),
    ParamSpec('command_timeout', 0.1, 'seconds without a command before zero effort '
              '(or holding position); 0: keep the last command, like a forward command '
              'controller', 0.0, 10.0),
    ParamSpec('dynamics_seed', -1, 'draw a hidden robot from the training ranges with this '
              'seed; -1 uses the dynamics.* values', -1, 2**31 - 1, read_only=True),
] + [ParamSpec(f'dynamics.{name}', float(Dynamics().to_dict()[name]),
               f'the simulated robot: {name} (see maml_ros.sim.Dynamics)', read_only=True)
     for name in FACTOR_NAMES]


class SimNode(ReportsRejectedParameters, Node):
    """The simulated robot; see the module docstring. A subclass names the node, its engine's
    own parameters and how it builds the robot.

    :param name: the node's name.
    :param engine_parameters: the engine's own parameters (beside :data:`PARAMETERS`).
    """

    def __init__(self, name: str, *, engine_parameters: Sequence[ParamSpec] = (),
                 **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.problems = Problems(self.get_logger())
        declare_parameters(self, [*PARAMETERS, *engine_parameters])
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        self.joints = list(value('joints'))
        try:  # a robot that cannot be simulated: one line with the reason (spin_node)
            config = robot_config({name: value(name) for name in ROBOT_KEYS
                                   if name != 'control_period'}
                                  | {'control_period': 1.0 / value('publish_rate')})
            self.robot = self.make_robot(config, value)
            self.robot.set_dynamics(self._dynamics(value))
        except ValueError as error:
            raise StartupError(str(error)) from None
        self.robot.reset()
        self.get_logger().info(f'simulating {config.urdf_path} in {self.robot.engine} with '
                               f'{self.robot.dynamics}')
        self.command_timeout = value('command_timeout')
        self._command: np.ndarray | None = None
        self._command_time = -np.inf
        self._hold: np.ndarray | None = None  # what applies once the command is stale
        topic = f'{value("controller")}/commands'
        self.create_subscription(Float64MultiArray, topic, self._on_command, 10)
        self.joint_states = self.create_publisher(JointState, 'joint_states', 10)
        self.create_service(Trigger, '~/reset', self._on_reset)
        self.add_post_set_parameters_callback(self._on_parameters_set)
        self.create_timer(config.control_period, self._tick)
        self.diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(1.0, self._publish_diagnostics)

    def make_robot(self, config: RobotConfig, value) -> SimRobot:
        """The engine's robot of ``config``; ``value(name)`` reads a parameter."""
        raise NotImplementedError

    def _dynamics(self, value) -> Dynamics:
        """Explicit ``dynamics.*`` values, or a robot drawn with ``dynamics_seed``."""
        seed = value('dynamics_seed')
        if seed < 0:
            return Dynamics.from_dict({name: value(f'dynamics.{name}') for name in FACTOR_NAMES})
        description = self.robot.description
        return TRAINING_RANGES.sample(np.random.default_rng(seed), n_joints=description.n_joints,
                                      n_links=description.n_links)

    def _on_parameters_set(self, parameters) -> None:
        """Accepted changes (rclpy refused out-of-range ones already) take effect now."""
        for parameter in parameters:
            if parameter.name == 'command_timeout':
                self.command_timeout = parameter.value

    def _on_command(self, msg: Float64MultiArray) -> None:
        command = np.asarray(msg.data, dtype=float)
        if command.shape != (len(self.joints),) or not np.all(np.isfinite(command)):
            self.problems.report('command', f'dropped a command with {command.size} values '
                                 f'(need {len(self.joints)} finite ones)')
            return
        self._command, self._command_time, self._hold = command, time.monotonic(), None

    def _fresh(self) -> bool:
        """Whether the last command still applies."""
        return self.command_timeout == 0.0 or \
            time.monotonic() - self._command_time <= self.command_timeout

    def _stale_command(self) -> np.ndarray:
        """Zero effort or velocity, or the position the arm had when the command went stale
        (taken once: taken again at every tick, a compliant servo would creep under gravity)."""
        if self._hold is None:
            self._hold = self.robot.command_space.rest(self.robot.true_state()[0])
        return self._hold

    def _publish_diagnostics(self) -> None:
        commanded = self._command is not None and self._fresh()
        values = {'commanded': str(commanded), **self.problems.values()}
        self.diagnostics.publish(diagnostic_array(
            self, level=DiagnosticStatus.OK, name=f'maml_ros {self.get_name()}',
            message='commanded' if commanded else 'waiting for commands', values=values))

    def _tick(self) -> None:
        if self._command is not None:  # brakes on until the first command
            self.robot.step(self._command if self._fresh() else self._stale_command())
        q, qd = self.robot.measured_state()
        msg = JointState(name=self.joints, position=q.tolist(), velocity=qd.tolist())
        if self.robot.config.command_interface == 'effort':
            msg.effort = self.robot.command_in_force.tolist()
        msg.header.stamp = self.get_clock().now().to_msg()
        self.joint_states.publish(msg)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response
                  ) -> Trigger.Response:
        self.robot.reset()
        self._command, self._command_time, self._hold = None, -np.inf, None
        response.success, response.message = True, 'robot reset to home'
        return response

    def destroy_node(self) -> None:
        self.robot.close()
        super().destroy_node()

