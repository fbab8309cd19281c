"""The identification an engineer writes: every link's inertial parameters through the
standard regressor, friction per joint, a ridge toward the URDF.

The rigid-body torque is linear in the links' inertial parameters:
``tau = Y(q, qd, qdd) pi``, with ``Y`` the joint torque regressor of Pinocchio (10
parameters per moving body: mass, first moment, inertia about the joint frame's origin;
``computeJointTorqueRegressor``). Beside it, per joint, viscous and Coulomb friction and an
offset (``F(qd) phi``). The prior is the URDF as the product's own model reads it (the
masses, inertias and inertial frames PyBullet uses, so that ``Y pi_0`` is the nominal
model's torque; fingers and other joints that are not controlled are locked where the
simulator holds them) and no friction.

:meth:`InertialIdentification.fit` is ridge regression toward that prior, every column
scaled to torque units, its weight chosen by 2-fold cross-validation inside the support
window (each half predicts the other). Each transition's torque is the mean torque over its
control period, so the regressor is taken at the period's midpoint: mean position and
velocity, and as acceleration the velocity change over the period, from velocities
smoothed over five ticks (the raw difference of measured velocities at 100 Hz is mostly
noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pinocchio

from maml_ros.model.transitions import Transitions, centred_mean
from maml_ros.sim.model import GRAVITY, RobotConfig, load_robot, urdf_file
from maml_ros.sim.quiet_pybullet import pybullet

COULOMB_VELOCITY = 0.02  # rad/s: the Coulomb term's smoothing, tanh(qd / this)
RIDGES = np.logspace(-6, 2, 17)  # the ridge weights cross-validation chooses from
SMOOTHING = 5  # ticks of the moving average over velocities before differencing


@dataclass(frozen=True)
class InertialFit:
    """Identified parameters: ``theta`` (the bodies' 10 each, then per joint viscous,
    Coulomb, offset) and the ridge weight chosen."""

    theta: np.ndarray
    ridge: float


class InertialIdentification:
    """The regressor of ``config``'s robot (module docstring).

    :param config: the robot: its URDF, controlled joints and inertia choice.
    """

    def __init__(self, config: RobotConfig) -> None:
        self.config = config
        full = pinocchio.buildModelFromUrdf(str(urdf_file(config.urdf_path)))
        held = _set_simulator_inertias(full, config)
        locked = [full.getJointId(name) for name in held]
        reference = pinocchio.neutral(full)
        for name, position in held.items():
            reference[full.joints[full.getJointId(name)].idx_q] = position
        self.model = pinocchio.buildReducedModel(full, locked, reference)
        self.model.gravity.linear = np.array([0.0, 0.0, GRAVITY])
        names = [self.model.names[j] for j in range(1, self.model.njoints)]
        if names != list(config.joints):
            raise ValueError(f'the controlled joints {list(config.joints)} are not the URDF\'s '
                             f'chain in order (its movable joints: {names})')
        self.data = self.model.createData()
        self.n_joints = len(names)
        inertial = np.concatenate([self.model.inertias[j].toDynamicParameters()
                                   for j in range(1, self.model.njoints)])
        self.prior = np.concatenate([inertial, np.zeros(3 * self.n_joints)])

    def regressor(self, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray) -> np.ndarray:
        """``(n, P)``: the torque of each joint is this row times ``theta``."""
        rigid = pinocchio.computeJointTorqueRegressor(self.model, self.data, q, qd, qdd)
        friction = np.zeros((self.n_joints, 3 * self.n_joints))
        for joint in range(self.n_joints):
            friction[joint, 3 * joint:3 * joint + 3] = (
                qd[joint], np.tanh(qd[joint] / COULOMB_VELOCITY), 1.0)
        return np.concatenate([rigid, friction], axis=1)

    def design(self, transitions: Transitions, period: float) -> np.ndarray:
        """``(T * n, P)``: the regressor at each transition's midpoint (module docstring)."""
        n = self.n_joints
        q = (transitions.states[:, :n] + transitions.next_states[:, :n]) / 2
        qd = (transitions.states[:, n:] + transitions.next_states[:, n:]) / 2
        qdd = filtered_acceleration(transitions, period)
        return np.concatenate([self.regressor(*row) for row in zip(q, qd, qdd, strict=True)])

    def fit(self, transitions: Transitions, period: float) -> InertialFit:
        """Ridge toward the prior; its weight by 2-fold cross-validation (module docstring)."""
        design, torque = self.design(transitions, period), transitions.commands.reshape(-1)
        half = (len(transitions) // 2) * self.n_joints
        folds = [(slice(0, half), slice(half, None)), (slice(half, None), slice(0, half))]
        scale = np.sqrt(np.mean(design ** 2, axis=0)) + 1e-9

        def error(ridge: float) -> float:
            return sum(np.mean((design[test] @ self._solve(design[train], torque[train],
                                                           scale, ridge) - torque[test]) ** 2)
                       for train, test in folds)

        ridge = min(RIDGES, key=error)
        return InertialFit(self._solve(design, torque, scale, ridge), float(ridge))

    def _solve(self, design: np.ndarray, torque: np.ndarray, scale: np.ndarray,
               ridge: float) -> np.ndarray:
        rows = len(torque)
        normal = design.T @ design / rows + ridge * np.diag(scale ** 2)
        step = np.linalg.solve(normal, design.T @ (torque - design @ self.prior) / rows)
        return self.prior + step

    def predict(self, fit: InertialFit | None, transitions: Transitions,
                period: float) -> np.ndarray:
        """``(T, n)``: the torques ``fit`` (None: the prior) says each transition needed."""
        theta = self.prior if fit is None else fit.theta
        return (self.design(transitions, period) @ theta).reshape(-1, self.n_joints)


def filtered_acceleration(transitions: Transitions, period: float) -> np.ndarray:
    """``(T, n)``: each transition's velocity change over its period, divided by it, from
    velocities smoothed over :data:`SMOOTHING` ticks of each unbroken run of transitions."""
    n = transitions.states.shape[1] // 2
    acceleration = np.empty((len(transitions), n))
    for run in transitions.runs():
        velocity = np.concatenate([transitions.states[run, n:],
                                   transitions.next_states[run.stop - 1:run.stop, n:]])
        acceleration[run] = np.diff(centred_mean(velocity, SMOOTHING), axis=0) / period
    return acceleration


def _set_simulator_inertias(model: pinocchio.Model, config: RobotConfig) -> dict[str, float]:
    """Give ``model``'s bodies the inertial parameters PyBullet simulates ``config`` with (its
    links' masses, diagonal inertias and inertial frames); the movable joints it holds, and
    where."""
    client, body, description = load_robot(config)
    try:
        held = {pybullet.getJointInfo(body, index, physicsClientId=client)[1].decode(): position
                for index, position in zip(description.held_indices, description.held_positions,
                                           strict=True)}
    finally:
        pybullet.disconnect(client)
    inertias = {joint: pinocchio.Inertia.Zero() for joint in range(model.njoints)}
    for link, name in enumerate(description.link_names):
        frame = model.frames[model.getFrameId(name)]
        rotation = pinocchio.Quaternion(*np.roll(description.link_inertial_orientations[link], 1)
                                        ).toRotationMatrix()
        inertia = pinocchio.Inertia(float(description.link_masses[link]),
                                    description.link_inertial_positions[link],
                                    rotation @ np.diag(description.link_inertias[link])
                                    @ rotation.T)
        inertias[frame.parentJoint] += frame.placement.act(inertia)
    for joint in range(1, model.njoints):
        model.inertias[joint] = inertias[joint]
    return held
