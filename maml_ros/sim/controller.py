"""Tracking controllers: the protocol rollouts call, and the nominal computed-torque controller.

Any picklable object with ``command(q, qd, q_ref, qd_ref, qdd_ref)`` (and,
optionally, ``reset()``, called at the start of every task) can drive a
rollout; a learned policy is plugged in the same way. Rollout workers receive
a pickled copy, so controllers must build unpicklable resources (PyBullet
clients, thread pools) lazily, as :class:`NominalController` does.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from maml_ros.sim.dynamics import DynamicsRanges
from maml_ros.sim.gains import derive_gains
from maml_ros.sim.model import InverseDynamicsModel, RobotConfig


@runtime_checkable
class Controller(Protocol):
    """What a rollout needs from a controller (``reset()`` is optional).

    All arguments are arrays over the controlled joints at the same control
    step: the measured state and the reference (position, velocity,
    acceleration). The result is the command in the units of the robot's
    command interface; the robot clamps it to the URDF limits.
    """

    def command(
        self,
        q: np.ndarray,
        qd: np.ndarray,
        q_ref: np.ndarray,
        qd_ref: np.ndarray,
        qdd_ref: np.ndarray,
    ) -> np.ndarray: ...


class NominalController:
    """PD plus inverse dynamics of the nominal (URDF) robot, i.e. computed torque.

    ``effort``: ``tau = ID_nominal(q, qd, qdd_ref + kp (q_ref - q) + kd (qd_ref - qd))``,
    clamped to the effort limits; ID includes gravity and Coriolis terms.
    ``velocity``: ``qd_ref + (kp / kd) (q_ref - q)``. ``position``: ``q_ref``.
    With both gains zero it is pure inverse dynamics (gravity compensation when
    ``qdd_ref`` is zero).

    :param config: the robot (URDF, joints, command interface).
    :param position_gain: ``kp`` (1/s^2), scalar or per joint; default: derived from the
        robot and ``ranges`` (:mod:`maml_ros.sim.gains`).
    :param velocity_gain: ``kd`` (1/s), scalar or per joint; default: derived likewise.
    :param ranges: the robots the derived gains must keep stable (default: the
        default randomization ranges).
    """

    def __init__(
        self,
        *,
        config: RobotConfig | None = None,
        position_gain: float | np.ndarray | None = None,
        velocity_gain: float | np.ndarray | None = None,
        ranges: DynamicsRanges | None = None,
    ) -> None:
        self.config = config if config is not None else RobotConfig()
        if position_gain is None or velocity_gain is None:
            derived = derive_gains(self.config, ranges if ranges is not None
                                   else DynamicsRanges())
        self.position_gain = np.asarray(derived.position_gain if position_gain is None
                                        else position_gain, dtype=float)
        self.velocity_gain = np.asarray(derived.velocity_gain if velocity_gain is None
                                        else velocity_gain, dtype=float)
        if np.any(self.position_gain < 0) or np.any(self.velocity_gain < 0):
            raise ValueError('position_gain and velocity_gain must be >= 0')
        with np.errstate(divide='ignore', invalid='ignore'):
            self._velocity_feedback = np.where(self.velocity_gain > 0,
                                               self.position_gain / self.velocity_gain, 0.0)
        self._model: InverseDynamicsModel | None = None
        self._effort_limit: np.ndarray | None = None

    @property
    def model(self) -> InverseDynamicsModel:
        """The nominal model, built on first use in this process."""
        if self._model is None:
            self._bind_model()
        return self._model

    def reset(self) -> None:
        """Nothing to forget: the controller has no memory between steps."""

    def command(
        self,
        q: np.ndarray,
        qd: np.ndarray,
        q_ref: np.ndarray,
        qd_ref: np.ndarray,
        qdd_ref: np.ndarray,
    ) -> np.ndarray:
        interface = self.config.command_interface
        if interface == 'position':
            return np.array(q_ref, dtype=float)
        if interface == 'velocity':
            return qd_ref + self._velocity_feedback * (q_ref - q)
        if self._model is None:
            self._bind_model()
        # Per-joint float arithmetic: cheaper than numpy for a handful of joints,
        # and it runs once per control step of every rollout.
        qd_list = qd.tolist()
        qdd = [a + kp * (r - x) + kd * (rd - v) for a, kp, r, x, kd, rd, v in zip(
            qdd_ref.tolist(), self._kp, q_ref.tolist(), q.tolist(), self._kd, qd_ref.tolist(),
            qd_list, strict=True)]
        tau = self._model.torques(q.tolist(), qd_list, qdd)
        return np.minimum(np.maximum(tau, -self._effort_limit), self._effort_limit)

    def _bind_model(self) -> None:
        self._model = InverseDynamicsModel.shared(self.config)
        n = self._model.description.n_joints
        self._effort_limit = self._model.description.limits.effort
        self._kp = np.broadcast_to(self.position_gain, (n,)).tolist()
        self._kd = np.broadcast_to(self.velocity_gain, (n,)).tolist()

    def __getstate__(self) -> dict[str, Any]:
        # The PyBullet client cannot cross a process boundary; rebuild it there.
        state = self.__dict__.copy()
        state['_model'] = None
        return state
