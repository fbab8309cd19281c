"""The rival an engineer writes (``sysid``): every link's inertial parameters through the
standard regressor, a payload, friction, ripple, delay and lag per joint, a ridge toward
the URDF, a mass matrix kept positive definite.

The rigid-body torque is linear in the links' inertial parameters: ``tau = Y(q, qd, qdd)
pi``, with ``Y`` the joint torque regressor of Pinocchio (10 parameters per moving body:
mass, first moment, inertia about the joint frame's origin; ``computeJointTorqueRegressor``).
Beside it a payload's mass (1 kg on the payload link, distributed like the link, is a
direction of ``pi``: ``Y pi_payload``), and per joint ``j``: a scale on the URDF's own
torque of that joint (an actuator whose gain is not the one assumed: ``Y pi`` alone cannot
scale one joint's torque), the rotor's inertia (armature: it moves with the joint alone, so
no link's parameters hold it), viscous friction, Coulomb friction of three smoothing widths
(:data:`COULOMB_WIDTHS`), an offset, and a ripple periodic in the joint's position. So each
joint's torque in force is ``e_j = Phi_j theta``, ``theta`` shared by all joints::

    Phi_j = [Y_j, Y_j pi_payload,  tau_urdf_j, qdd_j, qd_j, tanh(qd_j / 0.02),
             tanh(qd_j / 0.1), tanh(qd_j / 0.5), 1, sin(k_j q_j), cos(k_j q_j)
             (the last nine in joint j's block)]

The prior ``theta_0`` is the URDF as the product's own model reads it (the masses, inertias
and inertial frames PyBullet uses, so that ``Y pi_0`` is the nominal model's torque;
fingers and other joints that are not controlled are locked where the simulator holds
them), nothing else. Each transition's torque is the mean over its control period, so its
regressor is taken at the period's midpoint: mean position and velocity, and the velocity
change over the period as acceleration. The raw difference of measured velocities is
mostly noise on a real robot: the support may be fitted through a centred moving average
of its rows and commands alike (:data:`~maml_ros.model.transitions.SMOOTHINGS`, chosen by
the held-out judgement, as for the physics model).

The command sent reaches the joint ``d`` steps later through a first-order lag keeping
``r_j`` per step, as in :mod:`~maml_ros.model.physics_model`: ``u_j[t - d] = (e_j[t] - r_j
e_j[t-1]) / (1 - r_j)``, linear in ``theta`` too. The delay (all joints) and each joint's
lag are the candidates with the smallest residual, and the controller inverts both
(:class:`~maml_ros.model.model_based.ModelPolicy`). Each joint's ripple wavenumber ``k_j``
is found by a period search on the residual (:meth:`InertialIdentification._search`).

:meth:`InertialIdentification.fit` is weighted least squares (each joint's rows over its
held-out error, as identification weighs joints by their noise) with a ridge toward
``theta_0`` in each parameter's physical scale (:data:`LIGHTEST`, :data:`REACH`,
:data:`JOINT_SCALES`). Cross-validation inside the support (each contiguous half predicts
the other) chooses the ridge's weight, one for all parameters or the bodies held at the
URDF's shape and a weight on the rest, and whether the ripple goes in. The fit's mass matrix
must stay positive definite where the robot works (:meth:`~InertialIdentification.consistent`):
the least pull beyond the chosen one that makes it so is taken. Payload, rotor inertia and
friction that come out negative are held at zero (an active set). Each joint's rows are
fitted where it moved (a joint that never moved: every row, its friction left out); a joint
dry friction held still over most of the support gets at least the friction it was held
against (:mod:`~maml_ros.model.held_still`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pinocchio
import torch

from maml_ros.model.held_out import Prediction, Procedure
from maml_ros.model.held_still import breakaway, fitted_design, fitted_rows, moving
from maml_ros.model.physics_model import (
    DELAYS,
    RETENTIONS,
    WAVENUMBERS,
    PhysicsResidualModel,
)
from maml_ros.model.transitions import SMOOTHINGS, Regressed, Transitions
from maml_ros.sim.model import GRAVITY, RobotConfig, load_robot, urdf_file
from maml_ros.sim.quiet_pybullet import pybullet

RIDGES = np.logspace(-6, 2, 9)  # the ridge weights cross-validation chooses from, for each group
CHOICE_RIDGE = 1e-6  # the ridge weight the delay and lags are chosen with
# Coulomb friction's smoothing widths (rad/s), one column each: a joint's friction is
# their positive combination. A joint that chatters on a sign of its velocity is given a
# wider one than 0.02 by its drivers or its simulator (the PyBullet robot widens it on light
# joints: 0.4 rad/s on a wrist with 0.2 N*m), and one width for all joints fits those badly.
COULOMB_WIDTHS = (0.02, 0.1, 0.5)
JOINT_TERMS = ('urdf_torque', 'armature', 'viscous', *(f'coulomb_{v:g}' for v in COULOMB_WIDTHS),
               'offset', 'ripple_sin', 'ripple_cos')
OFFSET = JOINT_TERMS.index('offset')
VISCOUS = JOINT_TERMS.index('viscous')
RIPPLE = JOINT_TERMS.index('ripple_sin')
# The ripple's wavenumbers the period search tries (rad^-1): periods from 3.1 to 0.2 rad,
# 3% apart (a joint that moves 1 rad drifts a quarter period at the grid's worst).
WAVENUMBER_GRID = np.geomspace(*WAVENUMBERS, 96)
PASSIVE = tuple(range(1, OFFSET))  # joint terms no robot has negative: armature, friction
PINNED = 1e8  # the ridge weight that holds a term at zero
# The ridge pulls each parameter toward the URDF in its own physical scale (not its column's
# size in the data: a parameter the support hardly excites would move freely, and make the
# mass matrix indefinite where the robot goes next): a body's mass (at least LIGHTEST kg)
# and its first moments and inertias over REACH m; the payload 1 kg; per joint, in
# JOINT_TERMS order, the URDF-torque scale 1, rotor inertia 0.1 kg*m^2, friction and offset
# 1 N*m (s/rad for viscous), the ripple 1 N*m.
LIGHTEST, REACH = 0.1, 0.1
JOINT_SCALES = (1.0, 0.1, 1.0, *[1.0] * len(COULOMB_WIDTHS), 1.0, 1.0, 1.0)
# Physical consistency: postures drawn within WORKSPACE rad of home (and the limits), where
# an identified model's mass matrix must keep every direction above INERTIA_FLOOR of the
# URDF's smallest one. A least-squares fit determines the combinations of parameters the
# support excites; the others drift, and a controller that inverts the mass matrix commands
# the wrong way where it is not positive definite (the demo robot tracked 0.07 rad, against
# 0.002 before the reference left the support's postures).
CONSISTENCY_POSTURES = 64
WORKSPACE = 0.7
INERTIA_FLOOR = 0.01


@dataclass(frozen=True)
class InertialFit:
    """Identified parameters ``theta`` ``(n, P)`` (joint ``j``'s torque is its regressor row
    times ``theta[j]``: one shared vector, but a joint the judgement keeps on its model has
    that model's), the delay (control steps), each joint's lag (retention per step) and
    ripple wavenumber (rad^-1; 0: none), the moving average fitted through (rows), and the
    ridge weights (on the bodies' parameters, on the rest)."""

    theta: np.ndarray
    delay: int
    retention: np.ndarray
    wavenumbers: np.ndarray
    smoothing: int = 1
    ridge: tuple[float, float] = (0.0, 0.0)

    def adopting(self, fitted: InertialFit, joints: np.ndarray) -> InertialFit:
        """``fitted`` with this fit's parameters, lag and ripple on the joints not in
        ``joints`` (a mask). The delay, shared by all joints, is ``fitted``'s."""
        return dataclasses.replace(
            fitted, theta=np.where(joints[:, None], fitted.theta, self.theta),
            **{name: np.where(joints, getattr(fitted, name), getattr(self, name))
               for name in ('retention', 'wavenumbers')})


class InertialIdentification:
    """The regressor of ``config``'s robot and its identification (module docstring).

    :param config: the robot: its URDF, controlled joints, payload link and inertia choice.
    """

    method = 'sysid'

    def __init__(self, config: RobotConfig) -> None:
        if config.command_interface != 'effort':
            raise ValueError('system identification models joint torques: effort interface only')
        self.config = config
        full = pinocchio.buildModelFromUrdf(str(urdf_file(config.urdf_path)))
        held, payload = _set_simulator_inertias(full, config)
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
        self.n_joints = n = len(names)
        self.rigid = 10 * n  # the bodies' parameters come first, then the payload's mass
        #: 1.0 on each joint's own friction columns (viscous, Coulomb), ``(n, 1, P)``.
        self._friction = np.zeros((n, 1, self.rigid + 1 + len(JOINT_TERMS) * n))
        for joint in range(n):
            first = self.rigid + 1 + len(JOINT_TERMS) * joint
            self._friction[joint, 0, first + VISCOUS:first + OFFSET] = 1.0
        inertial = np.concatenate([self.model.inertias[j].toDynamicParameters()
                                   for j in range(1, self.model.njoints)])
        self.prior = np.concatenate([inertial, np.zeros(1 + len(JOINT_TERMS) * n)])
        mass = np.maximum(inertial[::10], LIGHTEST)
        #: Each parameter's scale, in which the ridge pulls toward the prior: a body's mass,
        #: its first moments over REACH and inertias over REACH squared; JOINT_SCALES.
        self.scales = np.concatenate([
            (mass[:, None] * np.array([1.0] + [REACH] * 3 + [REACH ** 2] * 6)).ravel(), [1.0],
            np.tile(JOINT_SCALES, n)])
        frame = self.model.frames[self.model.getFrameId(config.payload_link)]
        #: The bodies' parameters of 1 kg on the payload link, distributed like the link
        #: (as the simulator puts a payload there).
        self.unit_payload = np.zeros(self.rigid)
        body = 10 * (frame.parentJoint - 1)
        self.unit_payload[body:body + 10] = frame.placement.act(payload).toDynamicParameters()
        self.period = config.control_period
        home = np.array(config.home) if config.home is not None else pinocchio.neutral(
            self.model)
        postures = np.random.default_rng(0).uniform(
            np.maximum(self.model.lowerPositionLimit, home - WORKSPACE),
            np.minimum(self.model.upperPositionLimit, home + WORKSPACE),
            (CONSISTENCY_POSTURES, n))
        rest = np.zeros_like(postures)
        gravity = self.regressors(postures, rest, rest)
        #: (postures, n, n, P): column k of the mass matrix, row j, is this row times theta[j].
        self._inertia_rows = np.stack([self.regressors(postures, rest, np.tile(unit, (
            len(postures), 1))) - gravity for unit in np.eye(n)], axis=1)
        self._inertia_floor = INERTIA_FLOOR * self._smallest_inertia(np.tile(self.prior, (n, 1)))

    # -- the regressor ------------------------------------------------------------

    def regressor(self, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray,
                  wavenumbers: np.ndarray | None = None) -> np.ndarray:
        """``(n, P)``: the torque of each joint is its row times ``theta`` (its ripple's
        columns zero, or at ``wavenumbers``)."""
        rows = self.regressors(*(np.atleast_2d(v) for v in (q, qd, qdd)))
        if wavenumbers is not None:
            rows = self._with_ripple(rows, np.atleast_2d(q), wavenumbers)
        return rows[0]

    def regressors(self, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray) -> np.ndarray:
        """``(T, n, P)`` for ``T`` rows of positions, velocities and accelerations (the
        ripple's columns zero: :meth:`_with_ripple`)."""
        n = self.n_joints
        rigid = np.stack([pinocchio.computeJointTorqueRegressor(self.model, self.data, *row)
                          for row in zip(q, qd, qdd, strict=True)])
        terms = np.stack([rigid @ self.prior[:self.rigid], qdd, qd,
                          *(np.tanh(qd / v) for v in COULOMB_WIDTHS),
                          np.ones_like(qd), np.zeros_like(qd), np.zeros_like(qd)],
                         axis=-1)  # (T, n, terms)
        joint = np.zeros((len(q), n, n, len(JOINT_TERMS)))
        joint[:, np.arange(n), np.arange(n)] = terms
        return np.concatenate([rigid, (rigid @ self.unit_payload)[..., None],
                               joint.reshape(len(q), n, -1)], axis=-1)

    def prepare(self, transitions: Transitions, smoothing: int = 1) -> Regressed:
        """Each transition's regressor at its period's midpoint (module docstring), computed
        once, to be fitted and predicted through a moving average over ``smoothing`` rows."""
        n = self.n_joints
        middle = (transitions.states + transitions.next_states) / 2
        acceleration = (transitions.next_states[:, n:] - transitions.states[:, n:]) / self.period
        return Regressed(transitions, self.regressors(middle[:, :n], middle[:, n:],
                                                      acceleration), smoothing)

    def _with_ripple(self, rows: np.ndarray, q: np.ndarray, wavenumbers: np.ndarray
                     ) -> np.ndarray:
        """``rows`` ``(T, n, P)`` with each joint's ripple columns ``sin(k_j q_j), cos(k_j
        q_j)`` (zero where ``k_j`` is 0)."""
        rows, joints = rows.copy(), np.arange(self.n_joints)
        column = self.rigid + 1 + len(JOINT_TERMS) * joints + RIPPLE
        angle, present = q * wavenumbers, wavenumbers > 0
        rows[:, joints, column] = np.where(present, np.sin(angle), 0.0)
        rows[:, joints, column + 1] = np.where(present, np.cos(angle), 0.0)
        return rows

    def _rows(self, prepared: Transitions | Regressed, smoothing: int,
              wavenumbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The design (joint-major ``(n, T, P)``, the ripple at ``wavenumbers``) and commands
        ``(n, T)``, through the moving average (prepared ones: through theirs)."""
        if isinstance(prepared, Transitions):
            prepared = self.prepare(prepared, smoothing)
        if wavenumbers.any():
            prepared = dataclasses.replace(prepared, rows=self._with_ripple(
                prepared.rows, _middle_positions(prepared.transitions), wavenumbers))
        design, commands = prepared.smoothed()
        return design.transpose(1, 0, 2), commands.T

    # -- the fit ----------------------------------------------------------------

    def fit(self, prepared: Regressed, ridges: Sequence[float] = RIDGES) -> InertialFit:
        """Delay and lags by residual, each joint's ripple period by a search on the residual;
        then with or without the ripple and the ridge weights among ``ridges`` (one on the
        bodies' parameters, one on the rest) by cross-validation, each joint's rows weighed
        by its held-out error; the least pull beyond that whose mass matrix is physically
        consistent (module docstring)."""
        none = np.zeros(self.n_joints)
        design, commands = self._rows(prepared, prepared.smoothing, none)
        moved = self._moving(design)  # where each joint was held (module held_still)
        delay, lags = self._choose(design, commands, moved)
        ripple = self._search(prepared, design, _sent(commands, delay), lags, moved)
        # An unmodelled ripple bends the choice of lags: chosen again with it.
        delay, lags = self._choose(self._rows(prepared, prepared.smoothing, ripple)[0], commands,
                                   moved)
        y = _sent(commands, delay) * fitted_rows(moved)
        designs = [(wavenumbers, fitted_design(_lagged(self._rows(
            prepared, prepared.smoothing, wavenumbers)[0], lags), moved, self._friction))
                   for wavenumbers in (none, ripple)]
        # One ridge on everything, or the bodies held at the URDF (its shape) and a ridge on
        # the rest: a grid of both weights chose on noise (1.4x worse on the real log at 2 s).
        stiff = max(ridges)
        pairs = [(r, r) for r in ridges] + [(stiff, r) for r in ridges]
        held_out = self._validate(designs, y, pairs, np.ones(self.n_joints))[-1]
        weight = 1 / np.maximum(held_out, 1e-2 * held_out.max())  # at most 100 to 1
        _, chosen, wavenumbers, psi, _ = self._validate(designs, y, pairs, weight)
        normal = _normal(psi * weight[:, None, None], y * weight[:, None], self.prior)
        for pull in (10.0 ** k for k in range(round(np.log10(stiff / min(chosen))) + 1)):
            ridge = (min(chosen[0] * pull, stiff), min(chosen[1] * pull, stiff))
            fit = InertialFit(np.tile(self.prior + self._step(*normal[:2], ridge),
                                      (self.n_joints, 1)), DELAYS[delay],
                              np.array(RETENTIONS)[lags], wavenumbers, prepared.smoothing,
                              ridge)
            if self.consistent(fit):  # physically consistent: the least pull that is
                return self._held_friction(fit, prepared, moved)
        return dataclasses.replace(self.initial(DELAYS[delay]), smoothing=prepared.smoothing)

    def _moving(self, design: np.ndarray) -> np.ndarray:
        """``(n, T')``: 1 where the joint moved, 0 where friction held it
        (:func:`~maml_ros.model.held_still.moving`; the velocity is each joint's viscous
        column)."""
        joints = np.arange(self.n_joints)
        column = self.rigid + 1 + len(JOINT_TERMS) * joints + VISCOUS
        return moving(design[joints, :, column].T, max(DELAYS))

    def _held_friction(self, fit: InertialFit, prepared: Regressed, moved: np.ndarray
                       ) -> InertialFit:
        """``fit`` with the Coulomb friction of each joint held still over most of the
        support at least the torque it was held against
        (:func:`~maml_ros.model.held_still.breakaway`; the sharpest width takes what is
        missing)."""
        coulomb = self.rigid + 1 + len(JOINT_TERMS) * np.arange(self.n_joints)[:, None] + \
            np.arange(VISCOUS + 1, OFFSET)  # (n, widths)
        sliding = fit.theta.copy()
        sliding[:, coulomb] = 0.0
        design, commands = self._rows(prepared, fit.smoothing, fit.wavenumbers)
        index = np.array([RETENTIONS.index(r) for r in fit.retention])
        residual = _sent(commands, DELAYS.index(fit.delay)) - np.einsum(
            'jtp,jp->jt', _lagged(design, index), sliding)
        own = fit.theta[np.arange(self.n_joints)[:, None], coulomb].sum(-1)
        missing = np.maximum(breakaway(residual, moved) - own, 0.0)
        theta = fit.theta.copy()
        theta[:, coulomb[:, 0]] += missing
        return dataclasses.replace(fit, theta=theta)

    def _validate(self, designs: list[tuple[np.ndarray, np.ndarray]], y: np.ndarray,
                  ridges: Sequence[tuple[float, float]], weight: np.ndarray
                  ) -> tuple[float, tuple[float, float], np.ndarray, np.ndarray, np.ndarray]:
        """Blocked 2-fold cross-validation of every design (``(wavenumbers, psi)``) and pair
        of ridge weights, each joint's rows times ``weight``: the best one's error, ridges,
        wavenumbers and design, and its held-out RMS per joint (command units)."""
        half = y.shape[1] // 2
        halves = ((slice(0, half), slice(half, None)), (slice(half, None), slice(0, half)))
        weighted = weight[:, None]
        best = None
        for wavenumbers, psi in designs:
            folds = [(_normal(psi[:, train] * weighted[..., None], y[:, train] * weighted,
                              self.prior), psi[:, test], y[:, test]) for train, test in halves]
            for ridge in ridges:
                squares = sum(np.mean((test @ (self.prior + self._step(*normal[:2], ridge))
                                       - target) ** 2, axis=1) for normal, test, target in folds)
                error = float(np.sum(squares * weight ** 2))
                if best is None or error < best[0]:
                    best = (error, ridge, wavenumbers, psi, np.sqrt(squares / 2))
        return best

    def _smallest_inertia(self, theta: np.ndarray) -> np.ndarray:
        """At each consistency posture, the smallest real part of the eigenvalues of the mass
        matrix that ``theta`` ``(n, P)`` implies in command units (rotor inertia, payload and
        each joint's URDF-torque scale included: not symmetric where the joints' scales
        differ)."""
        mass = np.einsum('kcjp,jp->kjc', self._inertia_rows, theta)
        return np.linalg.eigvals(mass).real.min(axis=1)

    def consistent(self, fit: InertialFit) -> bool:
        """Whether ``fit``'s mass matrix keeps every direction above :data:`INERTIA_FLOOR` of
        the URDF's at postures around home (:data:`WORKSPACE`)."""
        return bool(np.all(self._smallest_inertia(fit.theta) >= self._inertia_floor))

    def _search(self, prepared: Regressed, design: np.ndarray, y: np.ndarray,
                lags: np.ndarray, moved: np.ndarray) -> np.ndarray:
        """Each joint's ripple wavenumber: of :data:`WAVENUMBER_GRID`, the one whose sine and
        cosine of the joint's position, added to the model without ripple, take most from
        its residual (a periodogram in position, through the same moving average and lag;
        the part of the columns the model's own terms can already explain does not count),
        as fitted where joints were held (:func:`~maml_ros.model.held_still.fitted_design`).
        """
        rows = fitted_rows(moved)
        psi, y = fitted_design(_lagged(design, lags), moved, self._friction), y * rows
        gram, rhs, _ = _normal(psi, y, self.prior)
        gram = gram.sum(0)
        regularized = gram + CHOICE_RIDGE * np.diag(np.maximum(np.diag(gram), 1e-12))
        residual = y - psi @ (self.prior + np.linalg.solve(regularized, rhs.sum(0)))
        angle = _middle_positions(prepared.transitions)[..., None] * WAVENUMBER_GRID
        columns = np.stack([_lagged(prepared.transitions.smoothed(f(angle), prepared.smoothing)
                                    .transpose(1, 0, 2), lags) * rows[..., None]
                            for f in (np.sin, np.cos)], -1)  # (n, T', K, 2)
        shared = np.einsum('jtp,jtkc->pjkc', psi, columns)  # what the model's terms share
        explained_by_model = np.linalg.solve(regularized, shared.reshape(len(gram), -1))
        own = np.einsum('jtkc,jtkd->jkcd', columns, columns) - np.einsum(
            'pjkc,pjkd->jkcd', shared, explained_by_model.reshape(shared.shape))
        projection = np.einsum('jtkc,jt->jkc', columns, residual)
        taken = np.einsum('jkc,jkc->jk', projection, np.linalg.solve(
            own + 1e-12 * np.eye(2), projection[..., None])[..., 0])
        return WAVENUMBER_GRID[taken.argmax(1)]

    def _choose(self, design: np.ndarray, commands: np.ndarray, moved: np.ndarray
                ) -> tuple[int, np.ndarray]:
        """The delay (index) and each joint's lag (indices): first with one lag for all
        joints, the delay and lags whose fits leave the smallest residuals (each joint's
        relative to its own best:
        :meth:`~maml_ros.model.physics_model.PhysicsResidualModel.select`); then, as the
        joints share the parameters a wrong lag on one joint bends, each joint's lag again
        with the others' held (two sweeps, by the total residual); as fitted where joints were
        held (:func:`~maml_ros.model.held_still.fitted_design`)."""
        n, joints = self.n_joints, np.arange(self.n_joints)
        psi = [fitted_design(_lagged(design, np.full(n, i)), moved, self._friction)
               for i in range(len(RETENTIONS))]
        grams = [p.swapaxes(1, 2) @ p for p in psi]
        normal = [[_normal(p, _sent(commands, d) * fitted_rows(moved), self.prior, gram)
                   for d in range(len(DELAYS))] for p, gram in zip(psi, grams, strict=True)]

        def residuals(lags: np.ndarray, delay: int) -> np.ndarray:
            gram, rhs, squares = (np.stack([normal[lag][delay][k][j]
                                            for j, lag in enumerate(lags)])
                                  for k in range(3))
            step = self._step(gram, rhs, passive=False)
            return squares - 2 * rhs @ step + ((gram @ step) @ step)

        objective = np.array([[residuals(np.full(n, i), d) for d in range(len(DELAYS))]
                              for i in range(len(RETENTIONS))])
        delay, lag = PhysicsResidualModel.select(torch.as_tensor(objective))
        delay, lags = int(delay), lag.numpy()
        for _ in range(2):
            for joint in joints:
                lags[joint] = min(range(len(RETENTIONS)), key=lambda i: residuals(
                    np.where(joints == joint, i, lags), delay).sum())
        return delay, lags

    def _step(self, gram: np.ndarray, rhs: np.ndarray,
              ridge: tuple[float, float] = (CHOICE_RIDGE, CHOICE_RIDGE), *,
              passive: bool = True) -> np.ndarray:
        """The step from ``theta_0`` minimizing ``|psi theta - y|^2 + E |R S^-1 (theta -
        theta_0)|^2`` over all joints' rows (``S`` each parameter's :attr:`scales`, ``E`` the
        data's median energy of a column times its scale squared, ``R^2`` the first ridge
        weight on the bodies' parameters, the second on the rest) from each joint's normal
        equations (:func:`_normal`), payload, friction and rotor inertia
        held at zero where they came out negative (``passive``: an active set)."""
        gram, rhs = gram.sum(0), rhs.sum(0)
        diagonal = np.diag(gram)
        energy = np.median(diagonal * self.scales ** 2)
        weight = energy / self.scales ** 2 * np.where(np.arange(len(diagonal)) < self.rigid,
                                                       *ridge)
        diagonal = np.maximum(diagonal, 1e-12 * diagonal.max())
        target = np.zeros_like(self.prior)
        passive_index = np.concatenate([[self.rigid], self.rigid + 1 + np.add.outer(
            len(JOINT_TERMS) * np.arange(self.n_joints), PASSIVE).reshape(-1)])
        for _ in range(len(PASSIVE) + 2):
            step = np.linalg.solve(gram + np.diag(weight), rhs + weight * target)
            negative = passive_index[step[passive_index] < 0] if passive else []
            if not len(negative):
                break
            weight[negative], target[negative] = PINNED * diagonal[negative], 0.0
        return step

    # -- what a fit says --------------------------------------------------------

    def initial(self, delay: int = 0) -> InertialFit:
        """The URDF model, no lag: what a robot runs before it is identified."""
        return InertialFit(np.tile(self.prior, (self.n_joints, 1)), delay,
                           np.zeros(self.n_joints), np.zeros(self.n_joints))

    def predict(self, fit: InertialFit, transitions: Transitions | Regressed) -> Prediction:
        """The commands ``fit`` says ``transitions`` (or prepared ones) needed, each at the
        step it was sent (its delay and lag accounted for; the first :data:`DELAYS` rows have
        too little history to predict)."""
        design, _ = self._rows(transitions, fit.smoothing, fit.wavenumbers)
        index = np.array([RETENTIONS.index(r) for r in fit.retention])
        predicted = np.einsum('jtp,jp->tj', _lagged(design, index), fit.theta)
        return Prediction(np.arange(max(DELAYS), len(transitions)) - fit.delay, predicted)

    def torque(self, fit: InertialFit, q: np.ndarray, qd: np.ndarray,
               acceleration: np.ndarray) -> np.ndarray:
        """The command in force ``fit`` says achieves ``acceleration`` at ``(q, qd)``."""
        return np.einsum('jp,jp->j', self.regressor(q, qd, acceleration, fit.wavenumbers),
                         fit.theta)

    def procedure(self, scale: np.ndarray) -> Procedure[InertialFit]:
        """How it fits and predicts, for :func:`~maml_ros.model.held_out.judge` (the
        support loss in units of ``scale``)."""
        def loss(fit: InertialFit, prepared: Regressed) -> float:
            predicted = self.predict(fit, prepared)
            return float(np.mean(predicted.squared_errors(prepared, predicted.rows)
                                 / scale ** 2))

        return Procedure(fit=self.fit, predict=self.predict,
                         loss=loss, adopt=InertialFit.adopting, scale=scale,
                         prepare=self.prepare,
                         variants=lambda prepared: [dataclasses.replace(prepared,
                                                                        smoothing=width)
                                                    for width in SMOOTHINGS])

    def physical(self, fit: InertialFit) -> dict[str, Any]:
        """What ``fit`` says about the robot, per joint (from joint ``j``'s parameters): the
        actuator gain its URDF-torque scale implies, friction, offset, delay and lag. No
        payload: the data determine combinations of the links' parameters (the base
        parameters; a body's mass goes with its parent's where the joint's axis passes
        through it), not the mass on one link."""
        joint = fit.theta[:, self.rigid + 1:].reshape(self.n_joints, self.n_joints, -1)
        own = joint[np.arange(self.n_joints), np.arange(self.n_joints)]  # (n, terms)
        lag = [round(-1e3 * self.period / math.log(r), 1) if r > 0 else 0.0
               for r in fit.retention]
        return {'actuator_gain': [round(1 / (1 + s), 4) if s > -1 else None
                                  for s in own[:, 0]],
                'payload_kg': [round(float(m / (1 + s)), 3) if s > -1 else None
                               for m, s in zip(fit.theta[:, self.rigid], own[:, 0], strict=True)],
                'armature': own[:, 1].round(5).tolist(),
                'viscous_damping': own[:, 2].round(4).tolist(),
                'coulomb_friction': own[:, 3:OFFSET].sum(1).round(4).tolist(),
                'offset': own[:, OFFSET].round(4).tolist(),
                'ripple_nm': np.hypot(own[:, RIPPLE], own[:, RIPPLE + 1]).round(4).tolist(),
                'ripple_period_rad': [round(float(2 * math.pi / k), 4) if k > 0 else None
                                      for k in fit.wavenumbers],
                'delay_steps': fit.delay,
                'torque_lag_ms': lag, 'support_smoothing_ticks': fit.smoothing,
                'ridge': fit.ridge}


def _middle_positions(transitions: Transitions) -> np.ndarray:
    """``(T, n)``: each transition's mean position over its period."""
    n = transitions.states.shape[1] // 2
    return (transitions.states[:, :n] + transitions.next_states[:, :n]) / 2


def _normal(psi: np.ndarray, y: np.ndarray, prior: np.ndarray, gram: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each joint's normal equations for the step from ``prior``: ``psi_j^T psi_j``
    ``(n, P, P)`` (``gram`` when it is known), ``psi_j^T z_j`` and ``|z_j|^2``, ``z = y -
    psi prior``."""
    z = y - psi @ prior
    gram = psi.swapaxes(1, 2) @ psi if gram is None else gram
    return gram, (psi.swapaxes(1, 2) @ z[..., None])[..., 0], np.sum(z ** 2, axis=1)


def _lagged(design: np.ndarray, lag: np.ndarray) -> np.ndarray:
    """The design that predicts the command sent from the torque's ``(n, T, P)``: each joint's
    rows ``t = max(DELAYS)..T-1`` as ``(Phi[t] - r Phi[t-1]) / (1 - r)``, ``r`` its lag's
    retention (``lag``: indices into :data:`RETENTIONS`), as the physics model has it."""
    return PhysicsResidualModel.commands_design(design, np.array(RETENTIONS)[lag][:, None, None])


def _sent(commands: np.ndarray, delay: int) -> np.ndarray:
    """``u[t - d]`` for rows ``t = max(DELAYS)..T-1`` of joint-major commands ``(n, T)``,
    ``d = DELAYS[delay]``."""
    first, steps = max(DELAYS), commands.shape[1]
    return commands[:, first - DELAYS[delay]:steps - DELAYS[delay]]


def _set_simulator_inertias(model: pinocchio.Model, config: RobotConfig
                            ) -> tuple[dict[str, float], pinocchio.Inertia]:
    """Give ``model``'s bodies the inertial parameters PyBullet simulates ``config`` with (its
    links' masses, diagonal inertias and inertial frames); the movable joints it holds, and
    where; and 1 kg distributed like the payload link, in its frame."""
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
        if link == description.payload_link_index:
            payload = pinocchio.Inertia(1.0, inertia.lever, inertia.inertia / inertia.mass)
    for joint in range(1, model.njoints):
        model.inertias[joint] = inertias[joint]
    return held, payload
