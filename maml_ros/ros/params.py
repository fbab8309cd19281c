"""Parameters declared once per node: name, default, description, range, read-only.

A node lists its parameters as :class:`ParamSpec` rows and calls
:func:`declare_parameters`; ranges go into the descriptors, so ``ros2 param
describe`` shows them and rclpy itself refuses an out-of-range, wrongly typed
or read-only value before any callback of the node runs (the node reports
refusals with :class:`maml_ros.ros.problems.ReportsRejectedParameters`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
)
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

from maml_ros.online.control_loop import LoopSettings
from maml_ros.ros.spin import StartupError
from maml_ros.sim import COMMAND_INTERFACES, PANDA_ARM_JOINTS


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a node.

    :param name: parameter name.
    :param default: default value; its type is the parameter's type.
    :param description: what it means, with units.
    :param low: smallest allowed value (numbers only).
    :param high: largest allowed value (numbers only).
    :param read_only: True when a change needs a restart.
    """

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    read_only: bool = False

    def descriptor(self) -> ParameterDescriptor:
        descriptor = ParameterDescriptor(name=self.name, description=self.description,
                                         read_only=self.read_only)
        if self.low is not None and self.high is not None:
            if isinstance(self.default, bool) or not isinstance(self.default, (int, float)):
                raise TypeError(f'{self.name}: a range needs a numeric default')
            if isinstance(self.default, int):
                descriptor.integer_range = [IntegerRange(
                    from_value=int(self.low), to_value=int(self.high), step=0)]
            else:
                descriptor.floating_point_range = [FloatingPointRange(
                    from_value=float(self.low), to_value=float(self.high), step=0.0)]
        return descriptor


    def how_to_write(self) -> str:
        """How a value of this parameter is written on the command line or in YAML."""
        if isinstance(self.default, bool):
            return 'write true or false'
        if isinstance(self.default, float):
            return 'write a number with a decimal point (1.0, not 1)'
        if isinstance(self.default, int):
            return 'write a whole number'
        if isinstance(self.default, list):
            return 'write a list, e.g. [a, b]'
        return "write a string (quote it, e.g. '123', if it looks like a number)"


def declare_parameters(node, specs: Iterable[ParamSpec]) -> None:
    """Declare every parameter of ``specs`` on ``node`` with its descriptor.

    :raises StartupError: for an override of the wrong type or out of range, in one line
        with the fix.
    """
    for spec in specs:
        try:
            node.declare_parameter(spec.name, spec.default, spec.descriptor())
        except InvalidParameterTypeException as error:
            reason = str(error).removesuffix(f': {spec.name}')  # rclpy appends the name
            raise StartupError(f'{reason}; {spec.how_to_write()}') from None
        except InvalidParameterValueException as error:
            raise StartupError(str(error).removesuffix(f': {spec.name}')) from None


# -- the adapter node's parameters ------------------------------------------

TRIGGERS = ('timer', 'joint_states')
LOOP = LoopSettings()  # the defaults of the runtime-tunable parameters

ADAPTER_PARAMETERS = [
    ParamSpec('checkpoint', '', 'policy checkpoint (.safetensors); empty: the shipped one, then '
              'each one meta_trainer announces', read_only=True),
    ParamSpec('active_checkpoint', '', 'read-only, set by the adapter: the checkpoint that '
              'runs'),
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
    ParamSpec('adaptation', 'auto', "what adapts: 'maml_physics' (the meta-learned physics "
              "model: gain, payload, friction, delay and lag per joint, and a learned residual), "
              "'maml' (the meta-learned network) or 'auto' (maml_physics where the checkpoint "
              "has one)", read_only=True),
    ParamSpec('adaptation_process', True, 'adapt in a worker process (no GIL contention with '
              'the control loop); false: in a thread of this one', read_only=True),
    ParamSpec('stop_command', 'gravity', "what the last command before going silent "
              "(deactivate, shutdown, stale joint states) holds on an effort robot: 'gravity' "
              "(the active model's torque holding the measured posture) or 'zero'; velocity "
              "robots get zero, position robots the measured position", read_only=True),
    ParamSpec('autostart', True, 'configure and activate by itself', read_only=True),
    ParamSpec('auto_adapt', LOOP.auto_adapt, 'adapt once support_size transitions are collected'),
    ParamSpec('support_size', LOOP.support_size, 'support transitions to adapt on', 10, 5000),
    ParamSpec('inner_steps', LOOP.inner_steps, 'gradient steps per adaptation (maml_physics '
              'takes its one exact step unless this is 0)', 0, 100),
    ParamSpec('inner_lr', LOOP.inner_lr, 'inner learning rate; learned rates (and the physics '
              'step) are scaled by inner_lr / the checkpoint inner_lr', 0.0, 10.0),
    ParamSpec('exploration_std', LOOP.exploration_std, 'exploration noise while collecting, a '
              'share of the checkpoint\'s per-joint exploration scale', 0.0, 0.2),
    ParamSpec('readapt_period', LOOP.readapt_period, 'seconds between re-adaptations on the '
              'sliding window; 0: adapt once', 0.0, 3600.0),
    ParamSpec('probation_window', LOOP.probation_window, 'seconds an adaptation is watched on '
              'the robot (after 1 s of settling) against as long before it; worse tracking or '
              'more chatter rolls it back; 0: never rolled back', 0.0, 60.0),
    ParamSpec('probation_margin', LOOP.probation_margin, 'how much worse (a fraction) tracking '
              'or command chatter may get on probation before the adaptation is rolled back',
              0.0, 10.0),
    ParamSpec('max_command_rate', LOOP.max_command_rate, 'largest command change per second '
              '(command units/s)', 1e-3, 1e6),
    ParamSpec('adapted_checkpoint', '', 'where ~/save_adapted writes; empty: '
              '$ROS_HOME/maml_ros/adapted.safetensors (ROS_HOME defaults to ~/.ros)'),
    ParamSpec('watchdog_timeout', LOOP.watchdog_timeout, 'joint states older than this stop '
              'commands (s)', 0.001, 10.0),
    ParamSpec('record', False, 'record joint states, commands, the reference and each '
              "adaptation's outcome into a new rosbag2 (MCAP) bag in record_dir while true "
              '(also ~/record)'),
    ParamSpec('record_dir', '', 'where recorded bags go (one support_<UTC time> bag per '
              'recording); empty: $ROS_HOME/maml_ros/bags'),
]
#: The adapter parameters that are :class:`LoopSettings` (runtime-tunable).
LOOP_PARAMETERS = {field.name for field in fields(LoopSettings)}
