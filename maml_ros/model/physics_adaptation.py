"""The physics model on the robot: adapt on support transitions, command from the result.

:class:`PhysicsAdaptation` builds the regressors of support transitions and
takes the meta-trained model's preconditioned step
(:meth:`~maml_ros.model.physics_model.PhysicsResidualModel.adapt`): a
:class:`PhysicsFit`. :class:`PhysicsController` commands with a fit, its delay
and lag inverted. :func:`physics_procedure` is how it adapts and predicts (what
:class:`~maml_ros.online.adaptive_policy.AdaptivePolicy` judges and runs off the control
thread for ``maml_physics``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from maml_ros.model.actuator import CommandPipeline
from maml_ros.model.formulation import Formulation
from maml_ros.model.held_out import Prediction, Procedure
from maml_ros.model.held_still import breakaway
from maml_ros.model.model_based import SystemIdentification, computed_torque
from maml_ros.model.physics_model import (
    DAMPING_SCALES,
    DELAYS,
    PHYSICAL_TERMS,
    RETENTIONS,
    PhysicsResidualModel,
    damped_solve,
    physical_regressors,
)
from maml_ros.model.trained_models import TrainedModels
from maml_ros.model.transitions import SMOOTHINGS, Regressed, Transitions

# Terms a passive robot cannot have negative (the command they add opposes motion or gravity).
PASSIVE_TERMS = [PHYSICAL_TERMS.index(t) for t in ('payload', 'viscous', 'coulomb_sharp',
                                                    'coulomb_soft')]
COULOMB_TERMS = [PHYSICAL_TERMS.index(t) for t in ('coulomb_sharp', 'coulomb_soft')]
PINNED = 1e8  # the damping that holds a term at zero
FAMILY_SECONDS = 1.0  # held-out motion it takes to choose the physical terms alone (s)
# A joint that never moved is identified from the torques that held it where its URDF torque
# is at least this many times the friction it was held against (PhysicsAdaptation.fit).
STATIC_MARGIN = 10.0


def window_arrays(identification: SystemIdentification, states: np.ndarray,
                  next_states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Physical regressors and network inputs ``(q, qd, a)`` of consecutive transitions
    (rows of measured states), ``a`` the hindsight acceleration."""
    n = states.shape[-1] // 2
    q, qd = states[:, :n], states[:, n:]
    acceleration = (next_states[:, n:] - qd) / identification.formulation.robot.control_period
    physical = physical_regressors(identification.regressors(q, qd, acceleration))
    return physical, np.concatenate([q, qd, acceleration], axis=-1)



@dataclass(frozen=True)
class PhysicsFit:
    """One adaptation's result: parameters per joint (:data:`PHYSICAL_TERMS`, the harmonics'
    sine then cosine weights, the feature weights), the delay (control steps), the lag per
    joint (retention per step), and the model's wavenumbers per joint ``(n, M)``.
    ``adapted``: fitted on a robot (the next adaptation starts from it), not the URDF model
    a robot runs before its first adaptation. ``kept``: the joints (from 0) the support did
    not identify, which kept the parameters they had (:func:`keep_unidentified`).
    ``smoothing``: the rows of the moving average it was fitted through, and predicts
    through (:func:`physics_procedure`)."""

    theta: np.ndarray
    delay: int
    retention: np.ndarray
    control_period: float
    wavenumbers: np.ndarray
    adapted: bool = True
    kept: tuple[int, ...] = ()
    smoothing: int = 1

    @classmethod
    def from_choice(cls, theta: Tensor, delay: Tensor, lag: Tensor, *, control_period: float,
                    wavenumbers: np.ndarray, smoothing: int) -> PhysicsFit:
        return cls(theta.detach().double().numpy(), DELAYS[int(delay)],
                   np.array(RETENTIONS)[lag.numpy()], control_period, wavenumbers,
                   smoothing=smoothing)

    def adopting(self, fitted: PhysicsFit, joints: np.ndarray) -> PhysicsFit:
        """``fitted`` with this fit's parameters and lag on the joints not in ``joints`` (a
        mask): they keep their model. The delay, shared by all joints, is ``fitted``'s."""
        return dataclasses.replace(
            fitted, theta=np.where(joints[:, None], fitted.theta, self.theta),
            retention=np.where(joints, fitted.retention, self.retention))

    def physical(self) -> dict[str, Any]:
        """What the physical part says about the robot, per joint (None where the torque
        coefficient is not positive: that joint's torque was not identifiable)."""
        a = self.theta[:, 0]

        def per_torque(values: np.ndarray, digits: int) -> list[float | None]:
            return [round(float(value / scale), digits) if scale > 0 else None
                    for value, scale in zip(values, a, strict=True)]

        lag = [round(-1e3 * self.control_period / math.log(r), 1) if r > 0 else 0.0
               for r in self.retention]
        physical = {'actuator_gain': per_torque(np.ones_like(a), 4),
                    'payload_kg': per_torque(self.theta[:, 1], 3),
                    'viscous_damping': per_torque(self.theta[:, 2], 4),
                    'coulomb_friction': per_torque(self.theta[:, 3] + self.theta[:, 4], 4),
                    'delay_steps': self.delay, 'torque_lag_ms': lag,
                    'support_smoothing_ticks': self.smoothing,
                    'not_identified_joints': [j + 1 for j in self.kept]}
        harmonics = self.wavenumbers.shape[1]
        if harmonics:  # the strongest harmonic of each joint: amplitude and period
            first = len(PHYSICAL_TERMS)
            amplitude = np.hypot(self.theta[:, first:first + harmonics],
                                 self.theta[:, first + harmonics:first + 2 * harmonics])
            strongest = amplitude.argmax(1)
            rows = np.arange(len(a))
            physical['ripple_nm'] = per_torque(amplitude[rows, strongest], 4)
            physical['ripple_period_rad'] = [
                round(float(2 * math.pi / k), 4) for k in self.wavenumbers[rows, strongest]]
        return physical


class PhysicsAdaptation:
    """The physics model's adaptation, in the identification protocol of
    :class:`~maml_ros.model.model_based.ModelPolicy` (which runs it and inverts the
    identified delay and lag).

    :param formulation: robot and gains (effort interface).
    :param model: the meta-trained prior, damping and feature network.
    """

    def __init__(self, formulation: Formulation, model: PhysicsResidualModel) -> None:
        self.formulation, self.model = formulation, model.eval()
        self.identification = SystemIdentification(formulation)
        self.period = formulation.robot.control_period

    def initial(self, *, adapted: bool = False) -> PhysicsFit:
        """What a robot commands with before its first adaptation: the URDF model (torque
        coefficient 1, nothing else, no delay or lag), the controller the training data were
        collected with. The first adaptation starts from the meta-learned prior. (A stiffer
        start, the prior itself, made robots beyond the training ranges oscillate while they
        collected their support.)

        :param adapted: the model's prior is a fit adapted on this robot (a checkpoint saved
            by the adapter): command with it, and build on it.
        """
        theta = self.model.prior.detach().double().numpy()
        if not adapted:
            theta = np.zeros_like(theta)
            theta[:, 0] = 1.0
        return PhysicsFit(theta, 0, np.zeros(self.formulation.n_joints), self.period,
                          self.model.wavenumbers(), adapted=adapted)

    def _design(self, physical: np.ndarray, inputs: np.ndarray) -> Tensor:
        """``Phi`` in float64: the step's normal equations are solved in double precision."""
        with torch.no_grad():
            return self.model.design(torch.as_tensor(physical, dtype=torch.float32),
                                     torch.as_tensor(inputs, dtype=torch.float32)).double()

    def prepare(self, transitions: Transitions, smoothing: int = 1) -> Regressed:
        """``Phi`` of each transition, computed once, to be fitted and predicted through a
        moving average over ``smoothing`` rows (1: none)."""
        physical, inputs = window_arrays(self.identification, transitions.states,
                                         transitions.next_states)
        return Regressed(transitions, self._design(physical, inputs), smoothing)

    def support(self, transitions: Transitions | Regressed, smoothing: int = 1
                ) -> tuple[Tensor, Tensor]:
        """``Phi`` and the commands sent of consecutive transitions through a moving average
        over ``smoothing`` rows (prepared ones: through theirs)."""
        prepared = self.prepare(transitions, smoothing) \
            if isinstance(transitions, Transitions) else transitions
        design, commands = prepared.smoothed()
        return design, torch.as_tensor(commands)

    def fit(self, prepared: Transitions | Regressed, start: PhysicsFit | None = None
            ) -> PhysicsFit:
        """One Gauss-Newton step on the support (raw, or prepared: through its moving
        average), from the prior or from ``start`` (where it is an adapted fit).

        The step picks the delay and lags (:meth:`~PhysicsResidualModel.choose`); then a
        two-fold cross-validation (fit on the first half of the support, predict the second,
        and back; all joints together) picks the model among :meth:`candidates`: the learned
        damping scaled by each factor of :data:`DAMPING_SCALES` (a robot the prior does not
        describe gets less of its pull), with the learned residual or, on a support of at
        least twice :data:`FAMILY_SECONDS`, with the physical terms alone. (Choosing between
        the two on 50 and 100 transitions made in-range tracking worse: 0.038 and 0.027 rad
        against 0.027 and 0.022. Measured on 20 robots in range with the checkpoint before
        the harmonics, picking per joint, or picking per joint whether to use the features,
        did worse: 0.045 and 0.044 rad against 0.039.)
        """
        if isinstance(prepared, Transitions):
            prepared = self.prepare(prepared)
        design, commands = self.support(prepared)
        model = self.model
        prior = model.prior if start is None or not start.adapted else torch.as_tensor(
            start.theta, dtype=design.dtype)
        delay, lag = model.choose(design, commands, prior)
        with torch.no_grad():
            priors, damping = self.candidates(prior.to(design.dtype))
            half = design.shape[0] // 2
            best = 0  # too few transitions to hold any out: the learned model and damping
            if half > 2 * max(DELAYS):
                folds = ((slice(0, half), slice(half, None)), (slice(half, None), slice(0, half)))
                errors = torch.cat([(torch.sub(*model.predict(
                    design[test], commands[test], model.refit(
                        design[train], commands[train], delay, lag, priors, damping),
                    delay, lag)) ** 2).mean(-2) for train, test in folds], -1)  # (C, rows)
                scales = len(DAMPING_SCALES)
                best = int(errors[:scales].mean(-1).argmin())
                alone = scales + int(errors[scales:].mean(-1).argmin())
                # The physical terms alone when each half spans a second of motion and they
                # predict better by more than one standard error: on a shorter support the
                # choice between families is noise, and costs more than one between dampings.
                gain = errors[best] - errors[alone]
                if half >= round(FAMILY_SECONDS / self.period) and \
                        gain.mean() > gain.std() / math.sqrt(gain.numel()):
                    best = alone
            theta, held = held_friction(model, design, commands, delay, lag, passive_refit(
                model, design, commands, delay, lag, priors[best], damping[best]))
            fit = PhysicsFit.from_choice(theta, delay, lag, control_period=self.period,
                                         wavenumbers=self.model.wavenumbers(),
                                         smoothing=prepared.smoothing)
            return self._held_at_rest(fit, design, held.numpy(), start or self.initial())

    def _held_at_rest(self, fit: PhysicsFit, design: Tensor, held: np.ndarray,
                      running: PhysicsFit) -> PhysicsFit:
        """``fit`` with each joint that never moved and whose URDF torque (RMS over the
        support) is under :data:`STATIC_MARGIN` times the friction it was held against
        (``held``, command units) back on the ``running`` fit's parameters and lag, with at
        least that friction, and listed as not identified: the torques that held it are
        mostly friction's reaction, not its model. (The demo robot's wrist in MuJoCo: 0.01
        N*m of URDF torque against 0.05-0.17 held; fitted on them, a gain of 3.1, and
        tracking went from 0.071 to 0.119 rad.) A joint whose posture takes more (a
        shoulder against gravity) is identified at rest. With no joint identified, the
        running delay too (shared by all joints: the fit's, chosen on friction's reaction,
        made the next adaptation's support loss rise on a robot that never moved)."""
        never = (self.model.moving(design).sum(-1) == 0).numpy()
        scale = self.model.output_scale.double().numpy()
        torque = np.sqrt(np.mean((design[..., 0].numpy() * scale) ** 2, axis=0))
        weak = never & (torque < STATIC_MARGIN * held)
        if not weak.any():
            return fit
        if weak.all():  # nothing identified: the running model, at least that friction
            fit = dataclasses.replace(fit, delay=running.delay)
        theta = np.where(weak[:, None], running.theta, fit.theta)
        missing = np.maximum(held - theta[:, COULOMB_TERMS].sum(-1), 0.0)
        theta[:, COULOMB_TERMS[0]] += np.where(weak, missing, 0.0)
        return dataclasses.replace(fit, theta=theta,
                                   retention=np.where(weak, running.retention, fit.retention),
                                   kept=tuple(int(j) for j in np.flatnonzero(weak)))

    def candidates(self, prior: Tensor) -> tuple[Tensor, Tensor]:
        """The priors and dampings ``(C, n, P)`` the cross-validation chooses from: the learned
        model (``prior``, the learned damping times each of :data:`DAMPING_SCALES`; the
        first is the learned damping itself), then the physical terms alone (the residual
        pinned at zero) with the same dampings.

        The second family is the classical model with a meta-learned prior. The learned
        residual's prior is a torque the robots of the training ranges have in common; the
        demo robot (3 kg beyond the 2 kg of the ranges) does not have it: with the residual
        the best step tracked 0.0090 rad, with the physical terms alone 0.0011 (``sysid``
        0.0020).
        """
        learned = self.model.log_precision.exp().to(prior.dtype)
        damping = learned * torch.tensor(DAMPING_SCALES, dtype=prior.dtype)[:, None, None]
        physical = self.model.physical
        alone, zero = damping.clone(), prior.clone()
        alone[..., physical:], zero[..., physical:] = PINNED, 0.0
        return (torch.cat([prior.expand_as(damping), zero.expand_as(alone)]),
                torch.cat([damping, alone]))

    def predict(self, fit: PhysicsFit, transitions: Transitions | Regressed) -> Prediction:
        """The commands ``fit`` says ``transitions`` (or prepared ones) needed, each at the
        step it was sent (its delay and lag accounted for, through the prepared ones' moving
        average or its own; the first :data:`DELAYS` rows have too little history to
        predict)."""
        design, commands = self.support(transitions, fit.smoothing)
        lag = torch.as_tensor([RETENTIONS.index(r) for r in fit.retention])
        with torch.no_grad():
            predicted, _ = self.model.predict(design, commands, torch.as_tensor(fit.theta),
                                              torch.tensor(fit.delay), lag)
        rows = np.arange(max(DELAYS), len(transitions)) - fit.delay
        return Prediction(rows, predicted.numpy().T * self.model.output_scale.double().numpy())

    def residual(self, fit: PhysicsFit, transitions: Transitions | Regressed) -> float:
        """Mean squared error, in command-scale units, of the commands ``fit`` predicts (as
        :meth:`predict`) against the commands sent."""
        design, _ = self.support(transitions, fit.smoothing)
        lag = torch.as_tensor([RETENTIONS.index(r) for r in fit.retention])
        with torch.no_grad():
            return float(self.model.loss(design, torch.as_tensor(transitions.commands),
                                         torch.as_tensor(fit.theta), torch.tensor(fit.delay),
                                         lag))

    def torque(self, fit: PhysicsFit, q: np.ndarray, qd: np.ndarray,
               acceleration: np.ndarray) -> np.ndarray:
        """The command in force that achieves ``acceleration`` at ``(q, qd)``."""
        q, qd, acceleration = (np.atleast_2d(v) for v in (q, qd, acceleration))
        physical = physical_regressors(self.identification.regressors(q, qd, acceleration))
        design = self._design(physical, np.concatenate([q, qd, acceleration], axis=-1))
        scale = self.model.output_scale.double().numpy()
        return np.einsum('jp,jp->j', design.numpy()[0], fit.theta) * scale



def passive_refit(model: PhysicsResidualModel, design: Tensor, commands: Tensor, delay: Tensor,
                  lag: Tensor, prior: Tensor, precision: Tensor) -> Tensor:
    """:meth:`~PhysicsResidualModel.refit`, with the payload, damping and friction held at
    zero where the step made them negative, the other terms refitted (an active set).

    A negative friction pushes a joint along its motion: on the xArm6's last joint (0.0002
    kg*m^2, barely excited by its support) an unconstrained step identified -0.12 N*m and
    ran it 2-6 rad off; ``sysid`` constrains the same signs.
    """
    gram, rhs = model.normal_equations(design, commands, delay, lag)
    theta = damped_solve(gram, rhs, prior, precision).squeeze(-1)
    prior, precision = prior.clone(), precision.expand_as(theta).clone()
    for _ in PASSIVE_TERMS:
        negative = theta[..., PASSIVE_TERMS] < 0
        if not negative.any():
            break
        passive_prior = prior[..., PASSIVE_TERMS]
        passive_prior[negative] = 0.0
        prior[..., PASSIVE_TERMS] = passive_prior
        passive_precision = precision[..., PASSIVE_TERMS]
        passive_precision[negative] = PINNED
        precision[..., PASSIVE_TERMS] = passive_precision
        theta = damped_solve(gram, rhs, prior, precision).squeeze(-1)
    return theta


def held_friction(model: PhysicsResidualModel, design: Tensor, commands: Tensor, delay: Tensor,
                  lag: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
    """``theta`` with the Coulomb friction of each joint held still over most of the support
    at least the torque it was held against (:func:`~maml_ros.model.held_still.breakaway`;
    the sharp term takes what is missing): the moving rows the fit was made on do not
    identify it. And that torque per joint (command units; 0 on joints that moved)."""
    sliding = theta.clone()
    sliding[..., COULOMB_TERMS] = 0.0
    predicted, sent = model.predict(design, commands, sliding, delay, lag)
    scale = model.output_scale.to(theta.dtype)
    held = torch.as_tensor(breakaway((sent - predicted).numpy(), model.moving(design).numpy())
                           ) * scale  # command units
    missing = (held - theta[..., COULOMB_TERMS].sum(-1)).clamp_min(0.0)
    theta = theta.clone()
    theta[..., COULOMB_TERMS[0]] += missing
    return theta, held


def physics_procedure(models: TrainedModels, active: PhysicsFit, *, inner_steps: int = 1,
                      lr_scale: float = 1.0) -> Procedure[PhysicsFit]:
    """How the physics model adapts from ``active`` and predicts, for
    :func:`~maml_ros.model.held_out.judge`.

    The step starts from the active fit (a re-adaptation builds on what the robot has
    learned). It is exact for a model linear in its parameters, so ``inner_steps`` above 1
    add nothing and 0 takes none; ``lr_scale`` scales it (1: the whole step; 0: none).
    """
    adaptation = PhysicsAdaptation(models.formulation, models.physics)

    def fit(prepared: Regressed) -> PhysicsFit:
        if inner_steps == 0 or lr_scale == 0:
            return active
        fit = adaptation.fit(prepared, start=active)
        if lr_scale != 1.0:
            fit = dataclasses.replace(fit, theta=active.theta + lr_scale * (fit.theta -
                                                                           active.theta))
        return keep_unidentified(fit, active)

    return Procedure(fit=fit, predict=adaptation.predict, prepare=adaptation.prepare,
                     variants=lambda prepared: [dataclasses.replace(prepared, smoothing=width)
                                                for width in SMOOTHINGS],
                     loss=adaptation.residual,
                     adopt=PhysicsFit.adopting,
                     scale=models.physics.output_scale.double().numpy())


def keep_unidentified(fit: PhysicsFit, active: PhysicsFit) -> PhysicsFit:
    """``fit`` with the joints whose torque coefficient it put at or below zero back on the
    active fit's parameters and lag: no actuator turns a command into no torque or the
    opposite one, so the support did not determine their torque (a joint that friction held
    still while the others moved), and the others need not wait for it."""
    kept = fit.theta[:, 0] <= 0
    if not kept.any():
        return fit
    return dataclasses.replace(fit, theta=np.where(kept[:, None], active.theta, fit.theta),
                               retention=np.where(kept, active.retention, fit.retention),
                               kept=tuple(sorted(set(fit.kept) | {int(j) for j in
                                                                  np.flatnonzero(kept)})))


class PhysicsController:
    """Computed torque with a fit (see :func:`~maml_ros.model.model_based.computed_torque`).

    :param adaptation: the model and its regressors.
    :param fit: the parameters, delay and lag to command with.
    :param pipeline: the commands sent so far (shared by successive controllers).
    """

    def __init__(self, *, adaptation: PhysicsAdaptation, fit: PhysicsFit,
                 pipeline: CommandPipeline) -> None:
        self.adaptation, self.state, self.pipeline = adaptation, fit, pipeline
        pipeline.retarget(fit.delay, fit.retention)

    def command(self, q: np.ndarray, qd: np.ndarray, q_ref: np.ndarray, qd_ref: np.ndarray,
                qdd_ref: np.ndarray) -> np.ndarray:
        return computed_torque(self.adaptation.formulation, self._torque, self.state.delay,
                               self.pipeline, q, qd, q_ref, qd_ref, qdd_ref)

    def hold(self, q: np.ndarray) -> np.ndarray:
        """The command that holds posture ``q`` at rest, once in force (held, so no lag to
        invert)."""
        zeros = np.zeros_like(q)
        return self._torque(q, zeros, zeros)

    def _torque(self, q: np.ndarray, qd: np.ndarray, acceleration: np.ndarray) -> np.ndarray:
        return self.adaptation.torque(self.state, q, qd, acceleration)
