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

from maml_ros.sim import InverseDynamicsModel, RobotConfig
from maml_ros.sim.controller import DEFAULT_NATURAL_FREQUENCY

FEATURES_PER_JOINT = 4


@dataclass(frozen=True, kw_only=True)
class Formulation:
    """Gains and robot of the residual policy (stored in checkpoints).

    :param robot: URDF, joints, command interface and control period.
    :param position_gain: ``kp`` of the desired acceleration (1/s^2).
    :param velocity_gain: ``kd`` of the desired acceleration (1/s).
    :param residual: learn a residual on the nominal command (True) or the
        whole command (a pure inverse model).
    """

    robot: RobotConfig = RobotConfig()
    position_gain: float = DEFAULT_NATURAL_FREQUENCY ** 2
    velocity_gain: float = 2 * DEFAULT_NATURAL_FREQUENCY
    residual: bool = True

    @property
    def n_joints(self) -> int:
        return len(self.robot.joints)

    @property
    def feature_dim(self) -> int:
        return (FEATURES_PER_JOINT - (not self.residual)) * self.n_joints

    def desired_acceleration(self, q: np.ndarray, qd: np.ndarray, q_ref: np.ndarray,
                             qd_ref: np.ndarray, qdd_ref: np.ndarray) -> np.ndarray:
        """``qdd_ref + kp (q_ref - q) + kd (qd_ref - qd)``; works row-wise on batches."""
        return qdd_ref + self.position_gain * (q_ref - q) + self.velocity_gain * (qd_ref - qd)

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
