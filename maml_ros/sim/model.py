"""The robot as PyBullet loads it: configuration, joint facts from the URDF, nominal model.

Every PyBullet call names its ``physicsClientId``: several clients (the
randomized robot, the nominal model) live in one process.

Choices that silently change results (each one met in practice):

- Inertias: by default PyBullet computes them from the collision meshes; the
  Panda URDF in ``pybullet_data`` only has placeholder inertias (0.1 kg*m^2
  everywhere), so ``use_urdf_inertia`` stays off for it.
- Every link gets PyBullet's default 0.04 linear/angular damping, which inverse
  dynamics does not see; it is set to 0 and damping is modelled explicitly.
- PyBullet applies a URDF's ``<dynamics damping=...>`` (not its ``friction``),
  explicitly, at every physics step: on a light joint it diverges (the xArm6
  declares 1 N*m*s/rad on a 0.0002 kg*m^2 wrist: the nominal robot could not
  hold its home posture). It is set to 0 too; what the URDF declares stays in
  :attr:`RobotDescription.urdf_damping` and ``urdf_friction`` for the checks,
  and the randomization ranges say how much damping and friction to simulate.
- ``calculateInverseDynamics`` and ``calculateMassMatrix`` keep the masses of
  their first call, so the nominal model is a separate client whose masses are
  never changed.
- Movable joints that are not controlled (the Panda fingers) are held by
  position motors, and still count as degrees of freedom for inverse dynamics.
- PyBullet gives a link without ``<inertial>`` a mass of 1 kg and an inertia of
  1 kg*m^2 (it warns "No inertial data for link, using mass=1"); the URDF
  convention (Pinocchio, Drake, KDL, MuJoCo) makes it massless, and so does
  :func:`load_robot`, from the URDF's own text (:func:`urdf_links`).
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pybullet_data

from maml_ros.sim.quiet_pybullet import pybullet

CommandInterface = Literal['effort', 'position', 'velocity']
COMMAND_INTERFACES: tuple[str, ...] = ('effort', 'position', 'velocity')

PANDA_ARM_JOINTS: tuple[str, ...] = tuple(f'panda_joint{i}' for i in range(1, 8))
# A relaxed, elbow-up posture well inside every joint limit.
PANDA_HOME: tuple[float, ...] = (0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785)
GRAVITY = -9.81


@dataclass(frozen=True, kw_only=True)
class RobotConfig:
    """Which robot to simulate and how to drive it (everything but its dynamics).

    :param urdf_path: URDF file, absolute or relative to ``pybullet_data``.
    :param joints: names of the controlled joints, in command order.
    :param payload_link: link that carries the payload mass; it must have mass.
    :param home: nominal posture of the controlled joints; ``None`` for the middle
        of the joint limits.
    :param command_interface: ``'effort'`` (N*m), ``'position'`` (rad) or ``'velocity'`` (rad/s).
    :param control_period: seconds between commands (a whole number of physics periods).
    :param physics_period: seconds per physics step.
    :param use_urdf_inertia: take inertias from the URDF instead of the collision meshes.
    """

    urdf_path: str = 'franka_panda/panda.urdf'
    joints: tuple[str, ...] = PANDA_ARM_JOINTS
    payload_link: str = 'panda_hand'
    home: tuple[float, ...] | None = PANDA_HOME
    command_interface: CommandInterface = 'effort'
    control_period: float = 0.01
    physics_period: float = 0.001
    use_urdf_inertia: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, 'joints', tuple(self.joints))
        if self.home is not None:
            object.__setattr__(self, 'home', tuple(float(x) for x in self.home))
            if len(self.home) != len(self.joints):
                raise ValueError(f'home has {len(self.home)} values for {len(self.joints)} joints')
        if self.command_interface not in COMMAND_INTERFACES:
            raise ValueError(f'command_interface must be one of {COMMAND_INTERFACES}, '
                             f'got {self.command_interface!r}')
        if not (self.physics_period > 0 and self.control_period > 0):
            raise ValueError('control_period and physics_period must be > 0')
        ratio = self.control_period / self.physics_period
        if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
            raise ValueError(f'control_period {self.control_period} is not a whole number '
                             f'of physics periods {self.physics_period}')

    @property
    def substeps(self) -> int:
        """Physics steps per control step."""
        return round(self.control_period / self.physics_period)


@dataclass(frozen=True)
class JointLimits:
    """Limits of the controlled joints from the URDF (arrays in joint order)."""

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


@dataclass(frozen=True)
class RobotDescription:
    """What the URDF says about the robot, as read back from PyBullet."""

    joint_names: tuple[str, ...]
    joint_indices: tuple[int, ...]
    limits: JointLimits
    home: np.ndarray
    held_indices: tuple[int, ...]
    held_positions: tuple[float, ...]
    held_efforts: tuple[float, ...]
    # Movable joints in PyBullet's degree-of-freedom order, as inverse dynamics wants them,
    # and where each controlled joint sits in that order.
    movable_indices: tuple[int, ...]
    controlled_dofs: tuple[int, ...]
    link_names: tuple[str, ...]
    payload_link_index: int
    link_masses: np.ndarray
    link_inertias: np.ndarray
    #: Each link's inertial frame in its link frame: position and quaternion (x, y, z, w).
    link_inertial_positions: np.ndarray
    link_inertial_orientations: np.ndarray
    #: What the URDF declares per controlled joint (``<dynamics damping friction>``);
    #: not simulated as such (see the module docstring).
    urdf_damping: np.ndarray
    urdf_friction: np.ndarray

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    @property
    def n_links(self) -> int:
        return len(self.link_names)


def urdf_file(urdf_path: str) -> Path:
    """The one rule for where a robot's URDF is: an absolute path as given, a relative one
    inside ``pybullet_data`` (so a checkpoint names the same file on every machine)."""
    path = Path(urdf_path)
    return path if path.is_absolute() else Path(pybullet_data.getDataPath()) / path


@dataclass(frozen=True)
class UrdfLink:
    """What a URDF's text says of one link: whether it declares ``<inertial>`` (without it
    the link is massless) and ``<collision>`` geometry."""

    inertial: bool
    collision: bool


def urdf_links(urdf: Path) -> dict[str, UrdfLink]:
    """Every link of the URDF at ``urdf``, by name, as its text declares it.

    :raises ValueError: when it is not well-formed XML.
    """
    try:
        root = ElementTree.parse(urdf).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise ValueError(f'cannot read {urdf}: {error}') from None
    return {link.get('name'): UrdfLink(inertial=link.find('inertial') is not None,
                                       collision=link.find('collision') is not None)
            for link in root.iter('link')}


def load_robot(config: RobotConfig, *, gui: bool = False) -> tuple[int, int, RobotDescription]:
    """Connect a client (DIRECT, or a GUI window), load the robot, read its joints.

    Controlled joints are left with their velocity motors disabled (force 0) so
    that torques act alone; other movable joints are held at fixed positions.

    :returns: ``(client_id, body_id, description)``.
    :raises ValueError: for unknown joint or link names, a massless payload link,
        or a controlled joint without velocity/effort limits.
    """
    cid = pybullet.connect(pybullet.GUI if gui else pybullet.DIRECT)
    if cid < 0:
        raise RuntimeError('PyBullet could not connect (a GUI needs a display)')
    try:
        body = _load(cid, config)
        description = _describe(cid, body, config)
    except Exception:
        pybullet.disconnect(physicsClientId=cid)
        raise
    for link in (-1, *range(description.n_links)):
        pybullet.changeDynamics(body, link, linearDamping=0.0, angularDamping=0.0,
                                physicsClientId=cid)
        if link >= 0:
            pybullet.changeDynamics(body, link, jointDamping=0.0, physicsClientId=cid)
    pybullet.setJointMotorControlArray(
        body, description.joint_indices, pybullet.VELOCITY_CONTROL,
        forces=[0.0] * description.n_joints, physicsClientId=cid)
    if description.held_indices:
        pybullet.setJointMotorControlArray(
            body, description.held_indices, pybullet.POSITION_CONTROL,
            targetPositions=description.held_positions, forces=description.held_efforts,
            physicsClientId=cid)
    return cid, body, description


def set_link_masses(cid: int, body: int, description: RobotDescription, *,
                    link_mass_scale: np.ndarray, payload_mass: float) -> None:
    """Scale every link's mass and inertia and put ``payload_mass`` on the payload link
    (its inertia grows with it: the payload is taken as distributed like the link).
    ``changeDynamics(mass=)`` alone would leave the inertia as it was."""
    for link in range(description.n_links):
        mass = description.link_masses[link] * link_mass_scale[link]
        inertia = description.link_inertias[link] * link_mass_scale[link]
        if mass <= 0:
            continue  # massless frames (panda_link8) stay massless
        if link == description.payload_link_index:
            inertia = inertia * (mass + payload_mass) / mass
            mass += payload_mass
        pybullet.changeDynamics(body, link, mass=mass, localInertiaDiagonal=inertia.tolist(),
                                physicsClientId=cid)


def _load(cid: int, config: RobotConfig) -> int:
    pybullet.setGravity(0.0, 0.0, GRAVITY, physicsClientId=cid)
    # One stepSimulation call per control step runs `substeps` physics steps of
    # physics_period inside Bullet; applied joint torques persist across them
    # (Bullet clears them once per call), which equals re-sending TORQUE_CONTROL
    # before every 1 ms step (pinned by a test) without the per-step Python cost.
    pybullet.setPhysicsEngineParameter(
        fixedTimeStep=config.control_period, numSubSteps=config.substeps,
        deterministicOverlappingPairs=1, physicsClientId=cid)
    flags = pybullet.URDF_USE_INERTIA_FROM_FILE if config.use_urdf_inertia else 0
    urdf = urdf_file(config.urdf_path)
    if not urdf.is_file():
        raise ValueError(f'URDF not found: {config.urdf_path!r} (a relative path is taken '
                         f'inside pybullet_data; give an absolute path for your own robot)')
    try:
        body = pybullet.loadURDF(str(urdf), useFixedBase=True, flags=flags,
                                 physicsClientId=cid)
    except pybullet.error as error:  # it says no more than "Cannot load URDF file."
        raise ValueError(f'PyBullet cannot load {urdf}: {error} (check that it is well-formed '
                         'URDF and that every mesh it names exists)') from None
    declared = urdf_links(urdf)
    links = {-1: pybullet.getBodyInfo(body, physicsClientId=cid)[0].decode()}
    links |= {j: pybullet.getJointInfo(body, j, physicsClientId=cid)[12].decode()
              for j in range(pybullet.getNumJoints(body, physicsClientId=cid))}
    for index, name in links.items():
        if name in declared and not declared[name].inertial:  # PyBullet made it 1 kg
            pybullet.changeDynamics(body, index, mass=0.0, localInertiaDiagonal=[0.0] * 3,
                                    physicsClientId=cid)
    return body


def _describe(cid: int, body: int, config: RobotConfig) -> RobotDescription:
    infos = [pybullet.getJointInfo(body, j, physicsClientId=cid)
             for j in range(pybullet.getNumJoints(body, physicsClientId=cid))]
    by_name = {info[1].decode(): info for info in infos}
    unknown = [name for name in config.joints if name not in by_name]
    if unknown:
        raise ValueError(f'joints {unknown} are not in {config.urdf_path}; it has {list(by_name)}')
    movable = [info for info in infos if info[2] != pybullet.JOINT_FIXED]
    movable_indices = tuple(info[0] for info in movable)
    controlled = [by_name[name] for name in config.joints]
    if any(info[2] == pybullet.JOINT_FIXED for info in controlled):
        raise ValueError(f'controlled joints must be movable: {config.joints}')
    lower, upper, velocity, effort = (np.empty(len(controlled)) for _ in range(4))
    for k, info in enumerate(controlled):
        low, high = info[8], info[9]
        # Continuous joints report low > high: give them one turn for references.
        lower[k], upper[k] = (low, high) if low < high else (-math.pi, math.pi)
        velocity[k], effort[k] = info[11], info[10]
        if velocity[k] <= 0 or effort[k] <= 0:
            raise ValueError(f'joint {config.joints[k]} needs velocity and effort limits '
                             f'in the URDF, got {velocity[k]} and {effort[k]}')
    home = np.array(config.home) if config.home is not None else 0.5 * (lower + upper)
    if np.any(home < lower) or np.any(home > upper):
        raise ValueError(f'home {home.tolist()} is outside the joint limits')
    held = [info for info in movable if info[1].decode() not in config.joints]
    links = [info[12].decode() for info in infos]
    if config.payload_link not in links:
        raise ValueError(f'payload link {config.payload_link!r} not in {links}')
    dyn = [pybullet.getDynamicsInfo(body, j, physicsClientId=cid) for j in range(len(infos))]
    masses = np.array([d[0] for d in dyn])
    payload_index = links.index(config.payload_link)
    if masses[payload_index] <= 0:
        raise ValueError(f'payload link {config.payload_link!r} has no mass; '
                         'put the payload on a link with mass (e.g. panda_hand)')
    return RobotDescription(
        joint_names=tuple(config.joints),
        joint_indices=tuple(info[0] for info in controlled),
        limits=JointLimits(lower=lower, upper=upper, velocity=velocity, effort=effort),
        home=home,
        held_indices=tuple(info[0] for info in held),
        held_positions=tuple(_hold_position(info) for info in held),
        held_efforts=tuple(max(info[10], 1.0) for info in held),
        movable_indices=movable_indices,
        controlled_dofs=tuple(movable_indices.index(info[0]) for info in controlled),
        link_names=tuple(links),
        payload_link_index=payload_index,
        link_masses=masses,
        link_inertias=np.array([d[2] for d in dyn]),
        link_inertial_positions=np.array([d[3] for d in dyn]),
        link_inertial_orientations=np.array([d[4] for d in dyn]),
        urdf_damping=np.array([info[6] for info in controlled]),
        urdf_friction=np.array([info[7] for info in controlled]),
    )


def _hold_position(info: tuple) -> float:
    low, high = info[8], info[9]
    return 0.5 * (low + high) if low < high else 0.0


class InverseDynamicsModel:
    """The nominal robot (URDF dynamics) in its own client, for inverse dynamics.

    Its masses are set once, before the first inverse-dynamics call, and never
    changed, so ``calculateInverseDynamics`` stays right. Not picklable: build it
    where it is used (``shared`` keeps one nominal model per process).

    :param config: the robot; only the URDF, joints, home and inertia choice matter.
    :param link_mass_scale: per-link mass factors of a robot other than the nominal one.
    :param payload_mass: a payload on the payload link (kg).
    """

    _shared: ClassVar[dict[tuple[int, RobotConfig], InverseDynamicsModel]] = {}

    def __init__(self, *, config: RobotConfig, link_mass_scale: np.ndarray | None = None,
                 payload_mass: float = 0.0) -> None:
        self.config = config
        self._client, self._body, self.description = load_robot(config)
        d = self.description
        if link_mass_scale is not None or payload_mass:
            set_link_masses(self._client, self._body, d, payload_mass=payload_mass,
                            link_mass_scale=np.ones(d.n_links) if link_mass_scale is None
                            else np.asarray(link_mass_scale, float))
        self._full_q = np.zeros(len(d.movable_indices))
        for index, position in zip(d.held_indices, d.held_positions, strict=True):
            self._full_q[d.movable_indices.index(index)] = position
        self._dofs = np.array(d.controlled_dofs)
        prefix = d.controlled_dofs == tuple(range(d.n_joints))
        self._tail = self._full_q[d.n_joints:].tolist() if prefix else None
        self._zeros = [0.0] * (len(self._full_q) - d.n_joints)
        self._smallest_inertia: np.ndarray | None = None

    @classmethod
    def shared(cls, config: RobotConfig) -> InverseDynamicsModel:
        """One model per process and configuration (loading a URDF takes ~0.1-0.3 s)."""
        key = (os.getpid(), config)
        if key not in cls._shared:
            cls._shared[key] = cls(config=config)
        return cls._shared[key]

    def torques(self, q: Sequence[float], qd: Sequence[float], qdd: Sequence[float]) -> np.ndarray:
        """Torques of the controlled joints that produce ``qdd`` at ``(q, qd)``, with gravity.

        Arguments are per controlled joint (arrays or lists).
        """
        if self._tail is not None:
            # Controlled joints first (the usual case): extend lists, no scatter.
            tau = pybullet.calculateInverseDynamics(
                self._body, list(q) + self._tail, list(qd) + self._zeros,
                list(qdd) + self._zeros, physicsClientId=self._client)
            return np.array(tau[:len(self._dofs)])
        full_q, full_qd, full_qdd = (self._full_q.copy(), np.zeros_like(self._full_q),
                                     np.zeros_like(self._full_q))
        full_q[self._dofs], full_qd[self._dofs], full_qdd[self._dofs] = q, qd, qdd
        tau = pybullet.calculateInverseDynamics(
            self._body, full_q.tolist(), full_qd.tolist(), full_qdd.tolist(),
            physicsClientId=self._client)
        return np.asarray(tau)[self._dofs]

    def inertia_diagonals(self, postures: np.ndarray) -> np.ndarray:
        """The mass-matrix diagonal of the controlled joints at each posture (rows)."""
        rows = []
        for posture in np.atleast_2d(postures):
            full_q = self._full_q.copy()
            full_q[self._dofs] = posture
            mass = pybullet.calculateMassMatrix(self._body, full_q.tolist(),
                                                physicsClientId=self._client)
            rows.append(np.diag(np.asarray(mass))[self._dofs])
        return np.array(rows)

    def smallest_inertia(self, samples: int = 256) -> np.ndarray:
        """Per controlled joint, the smallest mass-matrix diagonal over random postures inside
        the limits (fixed seed)."""
        if self._smallest_inertia is None:
            d = self.description
            rng = np.random.default_rng(0)
            postures = [rng.uniform(d.limits.lower, d.limits.upper) for _ in range(samples)]
            self._smallest_inertia = self.inertia_diagonals(np.array(postures)).min(axis=0)
        return self._smallest_inertia

    def inertia_lower_bound(self) -> np.ndarray:
        """:meth:`smallest_inertia` times 0.8, for postures between the samples. Used only to
        keep explicitly integrated passive torques stable."""
        return 0.8 * self.smallest_inertia()

    def close(self) -> None:
        """Disconnect the client (idempotent)."""
        if self._client is not None and pybullet.isConnected(physicsClientId=self._client):
            pybullet.disconnect(physicsClientId=self._client)
        self._client = None
