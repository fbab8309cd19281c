"""Domain-randomized simulated robots, PyBullet and MuJoCo (no rclpy).

- :mod:`~maml_ros.sim.dynamics`: one task's :class:`Dynamics`, the
  :class:`DynamicsRanges` tasks are drawn from, in-range checks, out-of-range draws;
- :mod:`~maml_ros.sim.model`: :class:`RobotConfig`, joint facts from the URDF,
  the nominal :class:`InverseDynamicsModel`;
- :mod:`~maml_ros.sim.robot`: :class:`SimRobot`, the randomized robot itself;
- :mod:`~maml_ros.sim.mujoco_robot`: the same robot simulated by MuJoCo (sim-to-sim), and
  :mod:`~maml_ros.sim.engines`: :func:`make_robot` for either engine;
- :mod:`~maml_ros.sim.reference`: smooth random reference trajectories;
- :mod:`~maml_ros.sim.controller`: the :class:`Controller` protocol and the
  nominal computed-torque controller;
- :mod:`~maml_ros.sim.rollout`: one task's rollout, parallel collection,
  closed-loop tracking evaluation;
- :mod:`~maml_ros.sim.robot_check`: whether a URDF makes a robot the project can train;
- :mod:`~maml_ros.sim.throughput`: bare versus collection physics throughput.
"""

from maml_ros.sim.controller import Controller, NominalController
from maml_ros.sim.dynamics import FACTOR_NAMES, Dynamics, DynamicsRanges
from maml_ros.sim.engines import ENGINES, check_engine, make_robot
from maml_ros.sim.model import (
    COMMAND_INTERFACES,
    PANDA_ARM_JOINTS,
    PANDA_HOME,
    CommandInterface,
    InverseDynamicsModel,
    JointLimits,
    RobotConfig,
    RobotDescription,
)
from maml_ros.sim.reference import ReferenceConfig, ReferenceTrajectory, random_reference
from maml_ros.sim.robot import SimRobot
from maml_ros.sim.rollout import (
    Rollout,
    RolloutCollector,
    RolloutConfig,
    Task,
    collect_rollouts,
    evaluate_tracking,
    run_task,
)
from maml_ros.sim.throughput import ThroughputReport, measure_throughput

__all__ = [
    'COMMAND_INTERFACES',
    'ENGINES',
    'FACTOR_NAMES',
    'PANDA_ARM_JOINTS',
    'PANDA_HOME',
    'CommandInterface',
    'Controller',
    'Dynamics',
    'DynamicsRanges',
    'InverseDynamicsModel',
    'JointLimits',
    'NominalController',
    'ReferenceConfig',
    'ReferenceTrajectory',
    'RobotConfig',
    'RobotDescription',
    'Rollout',
    'RolloutCollector',
    'RolloutConfig',
    'SimRobot',
    'Task',
    'check_engine',
    'ThroughputReport',
    'collect_rollouts',
    'evaluate_tracking',
    'make_robot',
    'measure_throughput',
    'random_reference',
    'run_task',
]
