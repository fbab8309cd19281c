"""The physics engines that can simulate a robot: PyBullet (training's) and MuJoCo.

Every engine's robot has :class:`~maml_ros.sim.robot.SimRobot`'s interface,
so rollouts, evaluation and the sim nodes take either.
"""

from __future__ import annotations

from maml_ros.sim.dynamics import Dynamics
from maml_ros.sim.model import RobotConfig
from maml_ros.sim.robot import SimRobot

ENGINES: tuple[str, ...] = ('pybullet', 'mujoco')


def check_engine(engine: str) -> None:
    """:raises ValueError: for an engine not in :data:`ENGINES`."""
    if engine not in ENGINES:
        raise ValueError(f'unknown engine {engine!r}; choose from {list(ENGINES)}')


def make_robot(engine: str = 'pybullet', *, config: RobotConfig | None = None,
               dynamics: Dynamics | None = None, seed: int = 0, gui: bool = False,
               armature: float | list[float] = 0.0) -> SimRobot:
    """The robot of ``config`` simulated by ``engine``.

    :param gui: a PyBullet window (PyBullet only).
    :param armature: rotor inertia per joint, kg*m^2 (MuJoCo only: the URDF has none, and
        the PyBullet robot has none either).
    :raises ValueError: for an unknown engine, or an option the engine does not have.
    """
    check_engine(engine)
    if engine == 'pybullet':
        if armature:
            raise ValueError('armature is a MuJoCo option (the PyBullet robot has none)')
        return SimRobot(config=config, dynamics=dynamics, seed=seed, gui=gui)
    from maml_ros.sim.mujoco_robot import MujocoRobot  # only where it is asked for

    if gui:
        raise ValueError('gui is a PyBullet option (the MuJoCo robot has no window)')
    return MujocoRobot(config=config, dynamics=dynamics, seed=seed, armature=armature)
