"""The robot simulated by MuJoCo: a second engine plays the "real" robot (sim-to-sim).

The same URDF as :class:`~maml_ros.sim.robot.SimRobot`, the same joints,
limits, masses and inertias (taken from what PyBullet loaded, so the two
engines agree on the nominal robot), the same command delay, ripple and
sensor noise, and the same interface; but the joint and actuator models are
MuJoCo's own, not the ones training simulated:

- **damping** (``joint_damping``) is MuJoCo's joint damping, integrated
  implicitly at every physics step (``implicitfast``);
- **friction** (``joint_friction``) is MuJoCo's ``frictionloss``: dry friction
  as a constraint that holds a joint at rest, not PyBullet's ``tanh`` torque
  computed once per control period;
- **armature** (rotor inertia reflected through the gearbox, absent from the
  URDF): the ``armature`` argument, kg*m^2 per joint;
- **actuators**: an effort command drives a MuJoCo motor whose output is
  ``actuator_gain`` times its input, limited to the URDF's effort limit
  (``forcerange``); the torque lag (``actuator_lag``) is the motor's own
  first-order filter, integrated at every physics step; a position command is
  the target of a MuJoCo position servo, a velocity command integrated is the
  target of one (``intvelocity``, as a drive's velocity loop with an integral
  term behaves); the servos are critically damped at 50 Hz on the joint's
  smallest inertia, their force limited to the effort limit times
  ``actuator_gain``;
- the joint limits of the URDF are enforced (MuJoCo's limit constraints).

Collision geometry is dropped: the arm moves in free space, as in training.
Joints that are not controlled (the Panda's fingers) are welded at the
position PyBullet holds them at.
"""

from __future__ import annotations

from math import cos, sin
from time import perf_counter

import mujoco
import numpy as np

from maml_ros.sim.dynamics import Dynamics
from maml_ros.sim.model import (
    GRAVITY,
    InverseDynamicsModel,
    RobotConfig,
    RobotDescription,
    urdf_file,
)
from maml_ros.sim.robot import FRICTION_VELOCITY, SimRobot

SERVO_FREQUENCY = 50.0  # Hz: bandwidth of the position and velocity servos on the lightest posture
NO_LAG = 1e-9  # s: the motors' filter time constant when the robot has no torque lag


class MujocoRobot(SimRobot):
    """The robot of ``config`` simulated by MuJoCo; see the module docstring.

    :param config: URDF, joints, command interface and timing.
    :param dynamics: the task's dynamics (nominal by default).
    :param seed: seed of the measurement noise.
    :param armature: rotor inertia per controlled joint (kg*m^2; a scalar for all).
    :raises ValueError: for a URDF MuJoCo cannot load (its message names the element).
    """

    engine = 'mujoco'

    def __init__(self, *, config: RobotConfig | None = None, dynamics: Dynamics | None = None,
                 seed: int = 0, armature: float | list[float] = 0.0) -> None:
        self._armature_setting = armature
        super().__init__(config=config, dynamics=dynamics, seed=seed)

    def _load(self, gui: bool) -> RobotDescription:
        nominal = InverseDynamicsModel.shared(self.config)
        description = nominal.description
        self.armature = _per_joint(self._armature_setting, description.n_joints, 'armature')
        spec = _spec(self.config, description, smallest_inertia=nominal.smallest_inertia(),
                     armature=self.armature)
        try:
            self._model = spec.compile()
        except ValueError as error:
            raise ValueError(f'MuJoCo cannot load {self.config.urdf_path}: {error}') from None
        self._data, self._scratch = mujoco.MjData(self._model), mujoco.MjData(self._model)
        model = self._model
        joints = [model.joint(name) for name in description.joint_names]
        self._qpos = np.array([joint.qposadr[0] for joint in joints])
        self._dof = np.array([joint.dofadr[0] for joint in joints])
        self._bodies = np.array([mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
                                 for name in description.link_names])
        self._nominal_mass = model.body_mass[self._bodies].copy()
        self._nominal_inertia = model.body_inertia[self._bodies].copy()
        return description

    # -- the engine ---------------------------------------------------------

    def _set_engine_dynamics(self, dynamics: Dynamics) -> None:
        d, model = self.description, self._model
        scale = dynamics.per_element('link_mass_scale', d.n_links)
        mass, inertia = self._nominal_mass * scale, self._nominal_inertia * scale[:, None]
        payload = d.payload_link_index
        if dynamics.payload_mass:
            inertia[payload] *= (mass[payload] + dynamics.payload_mass) / mass[payload]
            mass[payload] += dynamics.payload_mass
        model.body_mass[self._bodies], model.body_inertia[self._bodies] = mass, inertia
        self._damping = dynamics.per_element('joint_damping', d.n_joints)
        self._friction = dynamics.per_element('joint_friction', d.n_joints)
        self._inv_friction_velocity = np.full(d.n_joints, 1.0 / FRICTION_VELOCITY)
        model.dof_damping[self._dof] = self._damping
        model.dof_frictionloss[self._dof] = self._friction
        if self._effort:
            lag = dynamics.per_element('actuator_lag', d.n_joints)
            model.actuator_dynprm[:, 0] = np.maximum(lag, NO_LAG)
            model.actuator_gear[:, 0] = self._gain
        else:
            model.actuator_forcerange[:] = np.outer(d.limits.effort * self._gain, [-1.0, 1.0])
        mujoco.mj_setConst(model, self._scratch)  # scratch: the robot's state stays

    def _set_state(self, q: np.ndarray, qd: np.ndarray) -> None:
        mujoco.mj_resetData(self._model, self._data)
        self._data.qpos[self._qpos], self._data.qvel[self._dof] = q, qd
        if self.config.command_interface == 'velocity':
            self._data.act[:] = q  # the servos' targets: where the joints are
        mujoco.mj_forward(self._model, self._data)
        self._started = False

    def _drive(self, command: list[float]) -> None:
        data = self._data
        if not self._started and self._effort:  # the first command fills the lag
            data.act[:] = command
        self._started = True
        data.ctrl[:] = command
        data.qfrc_applied[self._dof] = self._ripple_torque([0.0] * self._n)
        start = perf_counter()
        mujoco.mj_step(self._model, data, nstep=self.config.substeps)
        self.physics_seconds += perf_counter() - start

    def _joint_state(self) -> tuple[list[float], list[float]]:
        return self._data.qpos[self._qpos].tolist(), self._data.qvel[self._dof].tolist()

    def close(self) -> None:
        """Nothing to disconnect: the model lives in this process's memory."""


def _per_joint(value: float | list[float], count: int, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    array = np.full(count, float(array)) if array.ndim == 0 else array
    if array.shape != (count,) or not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f'{name} needs one finite value >= 0, or {count} of them; got {value!r}')
    return array


def _spec(config: RobotConfig, description: RobotDescription, *, smallest_inertia: np.ndarray,
          armature: np.ndarray) -> mujoco.MjSpec:
    """The URDF as a MuJoCo model: PyBullet's inertias, no geometry, MuJoCo actuators."""
    try:
        spec = mujoco.MjSpec.from_file(str(urdf_file(config.urdf_path)))
    except ValueError as error:
        raise ValueError(f'MuJoCo cannot load {config.urdf_path}: {error}') from None
    spec.compiler.fusestatic = False
    spec.compiler.inertiafromgeom = mujoco.mjtInertiaFromGeom.mjINERTIAFROMGEOM_FALSE
    spec.option.timestep = config.physics_period
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.gravity = [0.0, 0.0, GRAVITY]
    spec.option.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT
    for element in [*spec.geoms, *spec.meshes]:
        spec.delete(element)
    for k, name in enumerate(description.link_names):
        body = spec.body(name)
        if body is None:
            raise ValueError(f'MuJoCo did not load link {name!r} of {config.urdf_path}')
        x, y, z, w = description.link_inertial_orientations[k]
        body.explicitinertial = True
        body.mass = description.link_masses[k]
        body.ipos, body.iquat = description.link_inertial_positions[k], [w, x, y, z]
        body.inertia, body.fullinertia = description.link_inertias[k], [np.nan] * 6
    held = dict(zip((description.link_names[i] for i in description.held_indices),
                    description.held_positions, strict=True))
    welded = set()
    for joint in list(spec.joints):
        body = joint.parent
        if joint.name in config.joints:
            joint.armature = armature[config.joints.index(joint.name)]
            joint.solref_friction = [2 * config.physics_period, 1.0]  # the stiffest stable
        elif body.name in held:
            welded.add(joint.name)
            _weld(spec, joint, held[body.name])
    for equality in list(spec.equalities):  # a URDF's mimic joints
        if {equality.name1, equality.name2} & welded:
            spec.delete(equality)
    interface = config.command_interface
    kp = smallest_inertia * (2 * np.pi * SERVO_FREQUENCY) ** 2  # on the lightest posture
    kv = 2 * np.sqrt(kp * smallest_inertia)  # critically damped there
    for k, name in enumerate(config.joints):
        actuator = spec.add_actuator(name=name, target=name,
                                     trntype=mujoco.mjtTrn.mjTRN_JOINT)
        limits = description.limits
        if interface == 'effort':
            actuator.set_to_motor()
            actuator.dyntype = mujoco.mjtDyn.mjDYN_FILTEREXACT
            actuator.dynprm[0] = NO_LAG
            actuator.ctrlrange = [-limits.effort[k], limits.effort[k]]
        elif interface == 'position':
            actuator.set_to_position(kp=kp[k], kv=kv[k])
            actuator.ctrlrange = [limits.lower[k], limits.upper[k]]
        else:  # the velocity, integrated, is the target of a position servo
            actuator.set_to_intvelocity(kp=kp[k], kv=kv[k])
            actuator.ctrlrange = [-limits.velocity[k], limits.velocity[k]]
        actuator.ctrllimited = actuator.forcelimited = True
        actuator.forcerange = [-limits.effort[k], limits.effort[k]]
    return spec


def _weld(spec: mujoco.MjSpec, joint: mujoco.MjsJoint, position: float) -> None:
    """Remove ``joint``, its body fixed where the joint held it at ``position``."""
    body, axis = joint.parent, np.asarray(joint.axis, dtype=float)
    if joint.type == mujoco.mjtJoint.mjJNT_SLIDE:
        rotation = np.empty(9)
        mujoco.mju_quat2Mat(rotation, np.asarray(body.quat, dtype=float))
        body.pos = np.asarray(body.pos) + rotation.reshape(3, 3) @ axis * position
    else:
        axis = axis / np.linalg.norm(axis)
        turn = np.concatenate([[cos(position / 2)], sin(position / 2) * axis])
        quat = np.empty(4)
        mujoco.mju_mulQuat(quat, np.asarray(body.quat, dtype=float), turn)
        body.quat = quat
    spec.delete(joint)
