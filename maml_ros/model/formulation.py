"""The learning problem: a residual inverse-dynamics policy adapted by hindsight.

The policy commands ``nominal(q, qd, a) + residual_theta(features)`` where
``a`` is a desired joint acceleration and ``nominal`` is what the URDF model
says achieves it (computed torque for ``effort``; one-step integration for
``velocity`` and ``position``). The network only learns what the URDF gets
wrong: payload, friction, damping, actuator gain, latency.

At run time ``a`` comes from the reference and PD terms (measured on the
Panda: a goal built from the desired acceleration tracked better than the raw
next reference state)::

    a_des = qdd_ref + kp (q_ref - q) + kd (qd_ref - qd)

Hindsight relabelling for support and training data: the command ``u_t`` that
was sent is the right command for the acceleration that was achieved,
``a_t = (qd_{t+1} - qd_t) / T``, so a transition ``(s_t, u_t, s_{t+1})``
becomes the supervised pair ``features(q_t, qd_t, a_t) -> u_t - nominal``.

Features are ``[q, qd, a, nominal]`` (4n values for n joints). With
``residual=False`` the network is a pure learned inverse model instead:
features ``[q, qd, a]``, output the whole command (measured worse: see
BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maml_ros.sim import DynamicsRanges, InverseDynamicsModel, RobotConfig
from maml_ros.sim.command import CommandSpace
from maml_ros.sim.gains import derive_gains

FEATURES_PER_JOINT = 4


@dataclass(frozen=True, kw_only=True)
class Formulation:
    """Gains and robot of the residual policy (stored in checkpoints).

    :param robot: URDF, joints, command interface and control period.
    :param position_gain: ``kp`` of the desired acceleration (1/s^2), per joint (a scalar
        applies to every joint); default: derived for ``ranges`` (:mod:`maml_ros.sim.gains`).
    :param velocity_gain: ``kd`` of the desired acceleration (1/s), likewise.
    :param residual: learn a residual on the nominal command (True) or the
        whole command (a pure inverse model).
    :param ranges: the robots derived gains must keep stable.
    :param exploration_scale: the unit of exploration noise per joint, in command units;
        default: derived from the joints' inertia at home
        (:meth:`~maml_ros.sim.command.CommandSpace.of`).
    """

    robot: RobotConfig = RobotConfig()
    position_gain: tuple[float, ...] | float | None = None
    velocity_gain: tuple[float, ...] | float | None = None
    residual: bool = True
    ranges: DynamicsRanges = DynamicsRanges()
    exploration_scale: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.exploration_scale is None:
            model = InverseDynamicsModel.shared(self.robot)
            d = model.description
            space = CommandSpace.of(d.limits, self.robot.command_interface,
                                    self.robot.control_period,
                                    inertia=model.inertia_diagonals(d.home)[0])
            object.__setattr__(self, 'exploration_scale', tuple(space.scale.tolist()))
        elif len(self.exploration_scale) != self.n_joints:
            raise ValueError(f'exploration_scale needs {self.n_joints} values, '
                             f'got {self.exploration_scale!r}')
        derived = (derive_gains(self.robot, self.ranges)
                   if self.position_gain is None or self.velocity_gain is None else None)
        for name in ('position_gain', 'velocity_gain'):
            value = getattr(self, name)
            gains = getattr(derived, name) if value is None else value
            try:
                gains = np.broadcast_to(np.asarray(gains, dtype=float), (self.n_joints,))
            except ValueError:
                raise ValueError(f'{name} needs one value or one per joint ({self.n_joints}), '
                                 f'got {value!r}') from None
            if not np.all(np.isfinite(gains)) or np.any(gains < 0):
                raise ValueError(f'{name} must be finite and >= 0, got {value!r}')
            object.__setattr__(self, name, tuple(gains.tolist()))
        object.__setattr__(self, '_kp', np.array(self.position_gain))
        object.__setattr__(self, '_kd', np.array(self.velocity_gain))

    @property
    def n_joints(self) -> int:
        return len(self.robot.joints)

    @property
    def natural_frequency(self) -> tuple[float, ...]:
        """``sqrt(kp)`` per joint (rad/s): what :mod:`maml_ros.sim.gains` chooses."""
        return tuple(np.sqrt(self._kp).tolist())

    @property
    def feature_dim(self) -> int:
        return (FEATURES_PER_JOINT - (not self.residual)) * self.n_joints

    def desired_acceleration(self, q: np.ndarray, qd: np.ndarray, q_ref: np.ndarray,
                             qd_ref: np.ndarray, qdd_ref: np.ndarray) -> np.ndarray:
        """``qdd_ref + kp (q_ref - q) + kd (qd_ref - qd)``; works row-wise on batches."""
        return qdd_ref + self._kp * (q_ref - q) + self._kd * (qd_ref - qd)

    def nominal(self, q: np.ndarray, qd: np.ndarray, acceleration: np.ndarray) -> np.ndarray:
        """The URDF model's command for ``acceleration`` at ``(q, qd)``; rows are samples."""
        period = self.robot.control_period
        interface = self.robot.command_interface
        if interface == 'velocity':
            return qd + acceleration * period
        if interface == 'position':
            return q + qd * period + 0.5 * acceleration * period ** 2
        model = InverseDynamicsModel.shared(self.robot)
        q2, qd2, a2 = (np.atleast_2d(v) for v in (q, qd, acceleration))
        torques = np.array([model.torques(*row) for row in zip(q2, qd2, a2, strict=True)])
        return torques.reshape(np.shape(acceleration))

    def features(self, q: np.ndarray, qd: np.ndarray, acceleration: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        """``(features, nominal)`` for states and accelerations (rows are samples).

        Without ``residual`` the nominal command is zero and not a feature.
        """
        if not self.residual:
            return np.concatenate([q, qd, acceleration], axis=-1), np.zeros_like(acceleration)
        nominal = self.nominal(q, qd, acceleration)
        return np.concatenate([q, qd, acceleration, nominal], axis=-1), nominal

    def hindsight(self, states: np.ndarray, commands: np.ndarray, next_states: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Supervised pairs from transitions: ``(features, residual targets)``.

        :param states: ``(T, 2n)`` measured ``(q, qd)`` at ``t``.
        :param commands: ``(T, n)`` the commands sent at ``t``.
        :param next_states: ``(T, 2n)`` measured ``(q, qd)`` at ``t + 1``.
        """
        n = self.n_joints
        q, qd, next_qd = states[:, :n], states[:, n:], next_states[:, n:]
        achieved = (next_qd - qd) / self.robot.control_period
        features, nominal = self.features(q, qd, achieved)
        return features, commands - nominal
