"""The classical rivals: computed torque with an identified or with the true robot model.

- ``sysid`` is the identification an engineer writes, every link's inertial parameters
  through the standard regressor with delay and lag
  (:mod:`~maml_ros.model.inertial_identification`).
- ``sysid_simple`` is what a controls engineer fits in an afternoon, per joint, by
  least squares on the same support transitions the learned policy adapts on::

      u_j = a_j tau_nom_j + b_j dtau_payload_j + d_j qd_j + f_j tanh(qd_j / eps_j) + c_j

  with ``a, b, d, f >= 0``: ``tau_nom`` the URDF inverse dynamics at the
  hindsight acceleration ``(qd[t+1] - qd[t]) / T``, ``dtau_payload`` the change
  of it for 1 kg more on the payload link. The friction smoothing ``eps_j``
  (from ``FRICTION_EPS``) and the command delay (0..``MAX_DELAY`` control
  steps) are picked by fit residual; no torque lag.
- ``true_model`` is computed torque with the simulated robot's true masses,
  actuator gain, damping, friction and ripple, its command delay and torque lag
  inverted (:mod:`~maml_ros.model.actuator`): the floor of this controller
  structure (simulation only).

Computed torque with an identified model tracks the desired acceleration of the
formulation (same gains as the learned policy), looking ahead over the identified delay
(state and reference extrapolated) and inverting the identified lag. Every one implements
:class:`~maml_ros.online.policy.Policy`, the protocol
:class:`~maml_ros.online.control_loop.ControlLoop` drives, so they are evaluated
through the same loop as the learned policies.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from maml_ros.model.actuator import CommandPipeline
from maml_ros.model.formulation import Formulation
from maml_ros.model.held_out import Prediction, Procedure, judge
from maml_ros.model.inertial_identification import InertialIdentification
from maml_ros.model.outcome import AdaptationOutcome
from maml_ros.model.trained_models import TrainedModels
from maml_ros.model.transitions import Regressed, Transitions
from maml_ros.sim import InverseDynamicsModel, RobotConfig, SimRobot

MAX_DELAY = 4  # control steps
MIN_TRANSITIONS = 10 + MAX_DELAY  # fewest worth fitting 5 parameters per joint on
FRICTION_EPS = (0.02, 0.05, 0.1, 0.2, 0.5)  # rad/s: candidate smoothing of Coulomb friction
SIGN_CONSTRAINED = (0, 1, 2, 3)  # a, b, d, f of each joint's regressors


@dataclass(frozen=True)
class JointModel:
    """Identified parameters, one row per joint: columns ``a, b, d, f, c``; the friction
    smoothing per joint; the command delay (control steps)."""

    params: np.ndarray
    eps: np.ndarray
    delay: int
    retention = 0.0  # no torque lag in this model

    @classmethod
    def nominal(cls, n_joints: int, delay: int = 0) -> JointModel:
        """The URDF model as it is: ``a = 1``, nothing else."""
        params = np.zeros((n_joints, 5))
        params[:, 0] = 1.0
        return cls(params, np.full(n_joints, FRICTION_EPS[0]), delay)

    def physical(self) -> dict[str, list[float | None] | int]:
        """What the parameters say about the robot, per joint: ``a`` is command per N*m, so
        the actuator gain is ``1 / a``, the payload ``b / a`` kg, and so on (None where the
        fit put ``a`` at 0: that joint's torque is not identifiable from the data)."""
        a, b, d, f, c = self.params.T

        def per_torque(values: np.ndarray, digits: int) -> list[float | None]:
            return [round(float(value / scale), digits) if scale > 0 else None
                    for value, scale in zip(values, a, strict=True)]

        return {'actuator_gain': per_torque(np.ones_like(a), 4), 'payload_kg': per_torque(b, 3),
                'viscous_damping': per_torque(d, 4), 'coulomb_friction': per_torque(f, 4),
                'friction_smoothing': self.eps.tolist(), 'offset': c.round(4).tolist(),
                'delay_steps': self.delay}

    def commands(self, regressors: np.ndarray) -> np.ndarray:
        """Predicted commands ``(T, n)`` from :meth:`SystemIdentification.regressors`."""
        return np.einsum('tjk,jk->tj', with_friction(regressors, self.eps), self.params)

    def adopting(self, fitted: JointModel, joints: np.ndarray) -> JointModel:
        """This model with ``fitted``'s parameters on ``joints`` (a mask) and its delay."""
        return JointModel(np.where(joints[:, None], fitted.params, self.params),
                          np.where(joints, fitted.eps, self.eps), fitted.delay)


def with_friction(regressors: np.ndarray, eps: np.ndarray | float) -> np.ndarray:
    """``(T, n, 4)`` regressors ``tau_nom, dtau_payload, qd, 1`` -> ``(T, n, 5)`` with
    ``tanh(qd / eps)`` in the fourth column."""
    friction = np.tanh(regressors[..., 2] / eps)[..., None]
    return np.concatenate([regressors[..., :3], friction, regressors[..., 3:]], axis=-1)


def _nonnegative_least_squares(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``min |design x - target|`` with ``x[SIGN_CONSTRAINED] >= 0``, exactly: the best
    feasible solution over the subsets of constrained terms held at zero (16 for 4)."""
    best, best_cost = np.zeros(design.shape[1]), math.inf
    for zeros in itertools.chain.from_iterable(
            itertools.combinations(SIGN_CONSTRAINED, k) for k in range(len(SIGN_CONSTRAINED) + 1)):
        free = [i for i in range(design.shape[1]) if i not in zeros]
        solution = np.zeros(design.shape[1])
        solution[free] = np.linalg.lstsq(design[:, free], target, rcond=None)[0]
        if np.any(solution[list(SIGN_CONSTRAINED)] < -1e-12):
            continue
        cost = float(np.sum((design @ solution - target) ** 2))
        if cost < best_cost:
            best, best_cost = solution, cost
    return best


@functools.lru_cache(maxsize=4)
def _unit_payload_model(robot: RobotConfig) -> InverseDynamicsModel:
    """The nominal robot with 1 kg on its payload link (one per process and robot)."""
    return InverseDynamicsModel(config=robot, payload_mass=1.0)


class SystemIdentification:
    """Regressors and the least-squares fit of ``sysid_simple`` (module docstring).

    :param formulation: robot and gains (effort interface).
    """

    method = 'sysid_simple'

    def __init__(self, formulation: Formulation) -> None:
        if formulation.robot.command_interface != 'effort':
            raise ValueError('system identification models joint torques: effort interface only')
        self.formulation = formulation
        self.payload = _unit_payload_model(formulation.robot)

    def initial(self, delay: int = 0) -> JointModel:
        """The URDF model as it is: what a robot runs before it is identified."""
        return JointModel.nominal(self.formulation.n_joints, delay)

    @staticmethod
    def physical(model: JointModel) -> dict:
        """What ``model`` says about the robot (:meth:`JointModel.physical`)."""
        return model.physical()

    def regressors(self, q: np.ndarray, qd: np.ndarray, acceleration: np.ndarray) -> np.ndarray:
        """``(T, n, 4)``: ``tau_nom, dtau_payload, qd, 1`` per sample and joint (friction
        goes in with :func:`with_friction`)."""
        q, qd, acceleration = (np.atleast_2d(v) for v in (q, qd, acceleration))
        nominal = self.formulation.nominal(q, qd, acceleration).reshape(qd.shape)
        payload = np.array([self.payload.torques(*row)
                            for row in zip(q, qd, acceleration, strict=True)]) - nominal
        return np.stack([nominal, payload, qd, np.ones_like(qd)], axis=-1)

    def prepare(self, transitions: Transitions) -> Regressed:
        """The regressors of each transition at its hindsight acceleration, computed once
        (:meth:`support` filters them)."""
        n = self.formulation.n_joints
        states, next_states = transitions.states, transitions.next_states
        achieved = (next_states[:, n:] - states[:, n:]) / self.formulation.robot.control_period
        return Regressed(transitions, self.regressors(states[:, :n], states[:, n:], achieved))

    def support(self, transitions: Transitions | Regressed) -> tuple[np.ndarray, np.ndarray]:
        """Regressors of each transition (or prepared ones) and the commands sent at each
        step (what :meth:`fit` and :meth:`residual` take)."""
        prepared = self.prepare(transitions) if isinstance(transitions, Transitions) \
            else transitions
        return prepared.rows, prepared.commands

    def fit(self, support: tuple[np.ndarray, np.ndarray]) -> JointModel:
        """The model (delay and friction smoothing included) with the smallest residual."""
        regressors, commands = support
        n = regressors.shape[1]
        best, best_cost = None, math.inf
        for delay in range(MAX_DELAY + 1):
            # The command acting over step t was sent at t - delay.
            design, target = regressors[delay:], commands[:len(commands) - delay]
            params, eps, cost = np.zeros((n, 5)), np.zeros(n), 0.0
            for j in range(n):
                fits = []
                for candidate in FRICTION_EPS:
                    joint_design = with_friction(design[:, j], candidate)
                    solution = _nonnegative_least_squares(joint_design, target[:, j])
                    fits.append((float(np.sum((joint_design @ solution - target[:, j]) ** 2)),
                                 candidate, solution))
                joint_cost, eps[j], params[j] = min(fits, key=lambda fit: fit[0])
                cost += joint_cost
            if cost / len(target) < best_cost:
                best, best_cost = JointModel(params, eps, delay), cost / len(target)
        return best

    def torque(self, model: JointModel, q: np.ndarray, qd: np.ndarray,
               acceleration: np.ndarray) -> np.ndarray:
        """The command ``model`` says achieves ``acceleration`` at ``(q, qd)``."""
        return model.commands(self.regressors(q, qd, acceleration))[0]

    def predict(self, model: JointModel, transitions: Transitions | Regressed) -> Prediction:
        """The commands ``model`` says ``transitions`` (or prepared ones) needed, each at the
        step it was sent (``delay`` steps before it acted)."""
        regressors, _ = self.support(transitions)
        return Prediction(np.arange(len(transitions) - model.delay),
                          model.commands(regressors[model.delay:]))

    def procedure(self, scale: np.ndarray) -> Procedure[JointModel]:
        """How it fits and predicts, for :func:`~maml_ros.model.held_out.judge` (the support
        loss in units of ``scale``)."""
        return Procedure(fit=lambda prepared: self.fit(self.support(prepared)),
                         predict=self.predict, adopt=JointModel.adopting, prepare=self.prepare,
                         loss=lambda model, prepared: self.residual(
                             model, self.support(prepared), scale))

    def residual(self, model: JointModel, support: tuple[np.ndarray, np.ndarray],
                 scale: np.ndarray) -> float:
        """Mean squared command prediction error of ``model``, in units of ``scale``."""
        regressors, commands = support
        design, target = regressors[model.delay:], commands[:len(commands) - model.delay]
        error = (model.commands(design) - target) / scale
        return float(np.mean(error ** 2))


def computed_torque(formulation: Formulation, torque: Callable, delay: int,
                    pipeline: CommandPipeline, q: np.ndarray, qd: np.ndarray, q_ref: np.ndarray,
                    qd_ref: np.ndarray, qdd_ref: np.ndarray) -> np.ndarray:
    """The command that makes ``torque(q, qd, a)`` act ``delay`` steps from now, ``a`` the
    formulation's desired acceleration then (state and reference extrapolated over the
    delay), the pipeline's lag inverted."""
    lead = delay * formulation.robot.control_period
    if lead:
        q, q_ref, qd_ref = q + lead * qd, q_ref + lead * qd_ref, qd_ref + lead * qdd_ref
    acceleration = formulation.desired_acceleration(q, qd, q_ref, qd_ref, qdd_ref)
    # Velocity terms (friction above all) from the reference: fed back from the noisy
    # measured velocity, an overestimated Coulomb slope is negative damping, and a light
    # wrist goes unstable (measured: 0.77 rad RMSE on one robot, 0.027 from the reference).
    return pipeline.command_for(torque(q, qd_ref, acceleration))


class ModelPolicy:
    """Computed torque with a physical model, in the policy protocol of ControlLoop: the
    model's command for the desired acceleration at the measured position and the reference
    velocity, ``delay`` steps ahead, its torque lag inverted.

    :param models: the checkpoint (formulation, and the output scale of the guard's loss).
    :param torque: ``torque(q, qd, acceleration) -> command`` of the initial model.
    :param identification: fits a new model on support data (``sysid``, ``sysid_simple``);
        None: fixed.
    :param delay: command delay (control steps) the initial model looks ahead over.
    :param retention: torque lag of the initial model, per joint (see
        :class:`~maml_ros.model.actuator.CommandPipeline`), inverted.
    :param on_close: releases what ``torque`` holds.
    """

    def __init__(self, *, models: TrainedModels,
                 torque: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
                 identification: InertialIdentification | SystemIdentification | None = None,
                 delay: int = 0,
                 retention: np.ndarray | float = 0.0,
                 on_close: Callable[[], None] | None = None) -> None:
        self.models, self.identification = models, identification
        self.method = identification.method if identification is not None else None
        self.formulation = models.formulation
        self._initial, self._initial_delay, self._on_close = torque, delay, on_close
        self._initial_retention = retention
        self.pipeline = CommandPipeline(n_joints=self.formulation.n_joints, delay=delay,
                                        retention=retention)
        self.reset()
        self.busy, self.ready = False, True  # identification runs inline
        self.last_outcome: AdaptationOutcome | None = None

    def command(self, q: np.ndarray, qd: np.ndarray, q_ref: np.ndarray, qd_ref: np.ndarray,
                qdd_ref: np.ndarray) -> np.ndarray:
        return computed_torque(self.formulation, self._torque, self.model.delay, self.pipeline,
                               q, qd, q_ref, qd_ref, qdd_ref)

    def hold(self, q: np.ndarray) -> np.ndarray:
        """The model's command that holds posture ``q`` at rest."""
        rest = np.zeros_like(q)
        return self._torque(q, rest, rest)

    def sent(self, command: np.ndarray) -> None:
        """The command that went out: the pipeline's lag is inverted from what it holds."""
        self.pipeline.sent(command)

    def start(self, transitions: Transitions, *, inner_steps: int, inner_lr: float | None = None,
              on_done: Callable[[AdaptationOutcome], None] | None = None) -> str:
        """Identify now (0.2 to 7 s on one core; simulated time stands still meanwhile); the step
        settings of gradient methods do not apply. Judged like them
        (:mod:`~maml_ros.model.held_out`): each joint takes the identified model only if it
        predicts that joint's held-out commands better, and the whole only if the command
        residual did not rise."""
        if self.identification is None:
            return 'this policy does not adapt'
        if len(transitions) < MIN_TRANSITIONS:
            return f'only {len(transitions)} support transitions'
        start = time.perf_counter()
        scale = self.models.meta_policy.output_scale.numpy()
        judged = judge(self.identification.procedure(scale), self.model, transitions)
        before, after = judged.loss_before, judged.loss_after
        reason = judged.held_out.refusal(judged.adopted) or (
            '' if after <= before else f'support loss rose from {before:.4g} to {after:.4g}')
        if not reason:
            self._previous = (self.model, self._torque, self.adapted,
                              self.pipeline.delay, self.pipeline.retention)
            self.model, self.adapted = judged.state, True
            self._torque = self._identified
            self.pipeline.retarget(self.model.delay, self.model.retention)
        self.last_outcome = AdaptationOutcome(
            accepted=not reason, reason=reason, loss_before=before, loss_after=after,
            duration_ms=1e3 * (time.perf_counter() - start), transitions=len(transitions),
            held_out=judged.held_out, kept=judged.kept)
        if on_done is not None:
            on_done(self.last_outcome)
        return ''

    def identified(self) -> dict | None:
        """What the identified model says about the robot (None before identifying)."""
        return self.identification.physical(self.model) if self.adapted else None

    def _identified(self, q: np.ndarray, qd: np.ndarray, acceleration: np.ndarray) -> np.ndarray:
        return self.identification.torque(self.model, q, qd, acceleration)

    def rollback(self, reason: str) -> AdaptationOutcome | None:
        """Back to the model before the last identification, which made the robot do worse
        (``reason``); the last outcome, rolled back (None with nothing to go back to)."""
        if self._previous is None:  # (a swap sets last_outcome too)
            return None
        (self.model, self._torque, self.adapted, delay, retention), self._previous = \
            self._previous, None
        self.pipeline.retarget(delay, retention)
        self.last_outcome = self.last_outcome.rolled_back_because(reason)
        return self.last_outcome

    def reset(self) -> None:
        self.model = (self.identification.initial(self._initial_delay) if self.identification
                      else JointModel.nominal(self.formulation.n_joints, self._initial_delay))
        self._torque, self.adapted = self._initial, False
        self.pipeline.retarget(self._initial_delay, self._initial_retention)
        self._previous: tuple | None = None  # what ran before the last identification

    def wait(self, timeout: float | None = None) -> bool:
        return True

    def close(self, wait: float = 0.0) -> None:
        self.reset()
        if self._on_close is not None:
            self._on_close()


def sysid_policy(models: TrainedModels, *, simple: bool = False) -> ModelPolicy:
    """Computed torque with the URDF model until identified on support data: ``sysid``
    (``simple``: ``sysid_simple``)."""
    identification = SystemIdentification(models.formulation) if simple \
        else inertial_identification(models.formulation.robot)
    return ModelPolicy(models=models, torque=models.formulation.nominal,
                       identification=identification)


@functools.lru_cache(maxsize=4)
def inertial_identification(robot: RobotConfig) -> InertialIdentification:
    """``sysid``'s regressor of ``robot`` (one per process and robot: it loads the URDF
    twice)."""
    return InertialIdentification(robot)


def true_model_policy(models: TrainedModels, robot: SimRobot) -> ModelPolicy:
    """Computed torque with ``robot``'s true dynamics (as set on it now: masses, rotor
    inertia, damping, friction, ripple, gain), its command delay and torque lag inverted."""
    dynamics = robot.dynamics
    truth = InverseDynamicsModel(
        config=robot.config, payload_mass=dynamics.payload_mass,
        link_mass_scale=dynamics.per_element('link_mass_scale', robot.description.n_links))
    gain = robot.actuator_gain

    def torque(q: np.ndarray, qd: np.ndarray, acceleration: np.ndarray) -> np.ndarray:
        return (truth.torques(q, qd, acceleration) + robot.armature * acceleration
                + robot.passive_torque(q, qd)) / gain

    return ModelPolicy(models=models, torque=torque, delay=dynamics.latency_steps,
                       retention=robot.lag_retention, on_close=truth.close)
