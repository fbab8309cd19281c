"""The adapted model that contains the physics: identified terms, a learned residual, a prior.

Per joint ``j`` the torque the joint needs (in command units) is linear in the
adapted parameters ``theta_j``::

    e_j = theta_j . [tau_nom_j, dtau_payload_j, qd_j, tanh(qd_j/0.02), tanh(qd_j/0.2), 1,
                     sin(k_j q_j), cos(k_j q_j),  h(x)]

the physical regressors of :mod:`~maml_ros.model.model_based` (URDF inverse
dynamics at the hindsight acceleration, its change for 1 kg of payload,
viscous and Coulomb friction, an offset), then the learned residual: ``M``
harmonics of the joint's own position, with the wavenumbers ``k_j`` (``M`` of
them) meta-learned per joint (a transmission's ripple and a motor's cogging are periodic in
position; their amplitude and phase are what each robot adapts), and ``h(x)``,
features of ``x = (q, qd, a)`` computed by a meta-learned network for the rest.
``e`` is the command in force after the robot's delay and torque lag
(:mod:`~maml_ros.model.actuator`).

What is fitted is the command sent: with ``d`` steps of delay and a lag that
keeps ``r`` per step, ``u[t - d] = (e[t] - r e[t-1]) / (1 - r)``, so with
``Psi_t = (Phi_t - r Phi_{t-1}) / (1 - r)`` the prediction ``Psi_t theta`` is
linear in ``theta`` too, and every candidate ``(d, r)`` predicts the same
quantity (a fair comparison: a target smoothed by a wrong lag would look
easier to fit).

Adaptation is the inner loop of MAML with a preconditioned step: one
Gauss-Newton step on the support set from the meta-learned initialization
``theta0`` with learned damping ``Lambda`` (per parameter), which for a model
linear in ``theta`` lands on the minimum of::

    sum_t |(Psi_t theta - u[t - d]) / s|^2 + (theta - theta0)^T Lambda (theta - theta0)

(``s`` the joint's command scale), over the rows where the joint moved (where dry friction
held it, its torque is whatever held it; a joint that never moved is fitted on every row,
its friction terms left out: :mod:`~maml_ros.model.held_still`). The delay (0..4 steps,
all joints) and the lag of each joint are the candidates of :data:`DELAYS` x :data:`RETENTIONS`
whose fit of the physical terms alone (the residual at ``theta0``) has the
smallest value of that objective. (On the robot the damping
is then scaled by cross-validation: :mod:`~maml_ros.model.physics_adaptation`.)
Meta-training learns ``theta0``, ``Lambda``, the wavenumbers and the feature
network ``h`` by differentiating the query loss of the adapted model through
that step (the step is a linear solve, so the meta-gradient is exact).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from maml_ros.model.held_still import fitted_design, fitted_rows, moving

COULOMB_VELOCITIES = (0.02, 0.2)  # rad/s: a sharp and a soft Coulomb friction term
PHYSICAL_TERMS = ('torque', 'payload', 'viscous', 'coulomb_sharp', 'coulomb_soft', 'offset')
FRICTION_TERMS = [PHYSICAL_TERMS.index(t) for t in ('viscous', 'coulomb_sharp', 'coulomb_soft')]
DELAYS = (0, 1, 2, 3, 4)  # control steps
RETENTIONS = (0.0, 0.3, 0.5, 0.65, 0.8)  # torque lag kept per step: 0, 8, 14, 23, 45 ms at 100 Hz
DAMPING_SCALES = (1.0, 0.1, 0.01, 0.001)  # on the robot: cross-validated factors on the damping
WAVENUMBERS = (2.0, 32.0)  # rad^-1: where the harmonics start, log-spaced (periods 3 to 0.2 rad)
CLAMP = 3.0  # feature inputs beyond this many training stds are held there
RIDGE = 1e-5  # on the scaled normal matrix's unit diagonal (float32 resolves ~1e-7)


def physical_regressors(regressors: np.ndarray) -> np.ndarray:
    """``(..., n, 4)`` ``tau_nom, dtau_payload, qd, 1`` -> ``(..., n, 6)`` in the order of
    :data:`PHYSICAL_TERMS`."""
    qd = regressors[..., 2:3]
    friction = [np.tanh(qd / velocity) for velocity in COULOMB_VELOCITIES]
    return np.concatenate([regressors[..., :3], *friction, regressors[..., 3:]], axis=-1)


def damped_step(psi: Tensor, y: Tensor, prior: Tensor, precision: Tensor) -> Tensor:
    """``argmin |psi theta - y|^2 + (theta - prior)^T diag(precision) (theta - prior)`` for
    each column of ``y`` ``(..., T, k)``, ``psi`` ``(..., T, P)``: ``(..., P, k)``.

    Solved for ``D theta`` with ``D`` the square root of the normal matrix's diagonal (the
    same minimum): on a light joint the torque columns are 1000 times smaller than the
    velocity column, and the unscaled matrix is not positive definite in float32. On a
    joint that never slows down both Coulomb columns are the sign of its velocity: a ridge
    of ``RIDGE`` on the unit diagonal keeps the pair solvable. ``psi^T psi`` is formed once
    however many priors and dampings the leading dimensions hold (the adapter's
    cross-validation solves for 8).
    """
    return damped_solve(psi.mT @ psi, psi.mT @ y, prior, precision)


def damped_solve(gram: Tensor, rhs: Tensor, prior: Tensor, precision: Tensor) -> Tensor:
    """:func:`damped_step` from the normal equations ``psi^T psi``, ``psi^T y`` (to solve them
    again for other priors and dampings)."""
    scale = (gram.diagonal(dim1=-2, dim2=-1) + precision).sqrt()  # (..., P)
    gram = gram / (scale[..., :, None] * scale[..., None, :]) + torch.diag_embed(
        precision / scale ** 2 + RIDGE)
    rhs = rhs / scale[..., None] + (precision * prior / scale)[..., None]
    return torch.cholesky_solve(rhs, torch.linalg.cholesky(gram)) / scale[..., None]


class PhysicsResidualModel(nn.Module):
    """Prior, damping and residual features of the module docstring.

    :param n_joints: controlled joints.
    :param features: residual features ``h(x)`` (0: none).
    :param hidden: hidden widths of the feature network.
    :param harmonics: position harmonics per joint (0: none).
    """

    def __init__(self, *, n_joints: int, features: int = 16,
                 hidden: tuple[int, ...] = (64, 64), harmonics: int = 0) -> None:
        super().__init__()
        self.n_joints, self.features, self.hidden = n_joints, features, tuple(hidden)
        self.harmonics = harmonics
        self.physical = len(PHYSICAL_TERMS)
        size = self.physical + 2 * harmonics + features
        prior = torch.zeros(n_joints, size)
        prior[:, 0] = 1.0  # the URDF is right until the data say otherwise
        self.prior = nn.Parameter(prior)
        # Initial damping: prior std 0.3 on every coefficient and harmonic, 1 on the features.
        log_precision = torch.full((n_joints, size), -2 * math.log(0.3))
        log_precision[:, self.physical + 2 * harmonics:] = 0.0
        self.log_precision = nn.Parameter(log_precision)
        if harmonics:
            self.log_wavenumber = nn.Parameter(torch.linspace(
                *(math.log(k) for k in WAVENUMBERS), harmonics).expand(n_joints, -1).clone())
        self.body: nn.Module = nn.Identity()  # no features: physics alone
        if features:
            layers: list[nn.Module] = []
            width = 3 * n_joints
            for next_width in self.hidden:
                layers += [nn.Linear(width, next_width), nn.Tanh()]
                width = next_width
            self.body = nn.Sequential(*layers, nn.Linear(width, features))
        self.register_buffer('input_mean', torch.zeros(3 * n_joints))
        self.register_buffer('input_std', torch.ones(3 * n_joints))
        self.register_buffer('output_scale', torch.ones(n_joints))

    def architecture(self) -> dict[str, Any]:
        return {'type': 'PhysicsResidualModel', 'n_joints': self.n_joints,
                'features': self.features, 'hidden': list(self.hidden),
                'harmonics': self.harmonics}

    @classmethod
    def from_architecture(cls, architecture: dict[str, Any]) -> PhysicsResidualModel:
        if architecture.get('type') != 'PhysicsResidualModel':
            raise ValueError(f'not a PhysicsResidualModel architecture: {architecture!r}')
        return cls(n_joints=architecture['n_joints'], features=architecture['features'],
                   hidden=tuple(architecture['hidden']),
                   harmonics=architecture.get('harmonics', 0))

    def wavenumbers(self) -> np.ndarray:
        """The harmonics' wavenumbers per joint ``(n, M)``, rad^-1."""
        if not self.harmonics:
            return np.zeros((self.n_joints, 0))
        return self.log_wavenumber.detach().double().exp().numpy()

    @torch.no_grad()
    def fit_normalization(self, inputs: Tensor, commands: Tensor) -> None:
        """Input statistics of the feature network and the command scale per joint."""
        inputs = inputs.reshape(-1, inputs.shape[-1])
        self.input_mean.copy_(inputs.mean(0))
        self.input_std.copy_(inputs.std(0).clamp_min(1e-6))
        self.output_scale.copy_(commands.reshape(-1, self.n_joints).std(0).clamp_min(1e-6))

    # -- the math ------------------------------------------------------------

    def design(self, physical: Tensor, inputs: Tensor) -> Tensor:
        """``Phi`` ``(..., T, n, P)``, in command-scale units, from the physical regressors
        ``(..., T, n, 6)`` and the network inputs ``(..., T, 3n)``."""
        columns = [physical]
        if self.harmonics:
            angle = inputs[..., :self.n_joints, None] * self.log_wavenumber.exp()  # (.., T, n, M)
            columns += [angle.sin(), angle.cos()]
        if self.features:
            h = self.body(((inputs - self.input_mean) / self.input_std).clamp(-CLAMP, CLAMP))
            columns.append(h.unsqueeze(-2).expand(*physical.shape[:-1], self.features))
        return torch.cat(columns, dim=-1) / self.output_scale[:, None]

    @staticmethod
    def commands_design(design: Tensor, retention: Tensor) -> Tensor:
        """The design that predicts the command in force from ``Phi`` ``(..., n, T, P)``
        (joint-major): with the joint's lag keeping ``retention`` (broadcast to
        ``(..., n, 1, 1)``) per step it is ``(e[t] - r e[t-1]) / (1 - r)``. Rows
        ``t = MAX_DELAY..T-1``: ``(..., n, T', P)``."""
        first = max(DELAYS)
        return (design[..., first:, :] - retention * design[..., first - 1:-1, :]) / (
            1 - retention)

    def sent(self, commands: Tensor, delay: Tensor | int) -> Tensor:
        """``u[t - delay]`` for rows ``t = MAX_DELAY..T-1``, joint-major ``(..., n, T')``, in
        command-scale units (``delay`` an int, or one per task ``(...,)``)."""
        first, steps = max(DELAYS), commands.shape[-2]
        commands = (commands / self.output_scale).transpose(-1, -2)
        if isinstance(delay, int):
            return commands[..., first - delay:steps - delay]
        rows = torch.arange(first, steps) - delay[..., None]  # (..., T')
        return commands.gather(-1, rows.unsqueeze(-2).expand(*commands.shape[:-1], -1))

    def solve(self, design: Tensor, commands: Tensor, start: Tensor | None = None
              ) -> tuple[Tensor, Tensor]:
        """The step for every candidate lag and delay, fitting the physical terms alone: the
        residual is held at its prior (its prediction moved to the target).

        :param design: ``Phi`` ``(..., T, n, P)``.
        :param commands: ``(..., T, n)`` the commands sent.
        :param start: where the step starts and the damping pulls to instead of the prior
            (the active parameters, to build on what the robot has learned).
        :returns: the physical terms ``(..., R, D, n, 6)`` and the objective
            ``(..., R, D, n)``.
        """
        k = self.physical
        prior = self.prior if start is None else start
        joint_major = design.transpose(-3, -2).contiguous()
        psi = torch.stack([self.commands_design(joint_major, r) for r in RETENTIONS],
                          -4)  # (..., R, n, T', P)
        moved = self.moving(design)  # where a joint was held (module held_still)
        psi = fitted_design(psi, moved.unsqueeze(-3), self._friction(psi))
        y = torch.stack([self.sent(commands, d) * fitted_rows(moved) for d in DELAYS],
                        -1).unsqueeze(-4)
        y = y - psi[..., k:] @ prior[..., k:, None].to(psi.dtype)  # (..., R, n, T', D)
        psi, prior, precision = psi[..., :k], prior[..., :k], self.log_precision.exp()[..., :k]
        theta = damped_step(psi, y, prior, precision)  # (..., R, n, k, D)
        error = ((psi @ theta - y) ** 2).sum(-2)  # (..., R, n, D)
        prior_cost = (precision[..., None] * (theta - prior[..., None]) ** 2).sum(-2)
        objective = (error + prior_cost).transpose(-1, -2)
        return theta.permute(*range(theta.dim() - 4), -4, -1, -3, -2), objective

    @staticmethod
    def select(objective: Tensor) -> tuple[Tensor, Tensor]:
        """``(delay index (...), lag index (..., n))``: the best lag of each joint for each
        delay, then the delay (shared by all joints) with the smallest total of each joint's
        objective relative to its own best.

        Relative, because a light joint's objective, in units of its small command scale,
        is mostly friction and ripple, which no delay explains: in absolute terms the
        xArm6's wrist chose 4 steps on robots with 1-2 (tracking 0.209 rad with delay and
        lag, 0.061 chosen this way; the Panda's figures are unchanged)."""
        best, lag = objective.min(-3)  # (..., D, n)
        relative = best / best.amin(-2, keepdim=True).clamp_min(torch.finfo(best.dtype).tiny)
        delay = relative.sum(-1).argmin(-1)  # (...)
        index = delay[..., None, None].expand(*delay.shape, 1, lag.shape[-1])
        return delay, lag.gather(-2, index).squeeze(-2)

    def choose(self, design: Tensor, commands: Tensor, start: Tensor | None = None
               ) -> tuple[Tensor, Tensor]:
        """The delay (index = steps) and each joint's lag index: the physical terms' choice,
        the residual held at its prior (``start``: see :meth:`solve`). A flexible residual
        can make a wrong lag fit better: on a robot beyond the training ranges it picked 8 ms
        on two joints of a robot without lag, and tracked 10 times worse."""
        with torch.no_grad():
            return self.select(self.solve(design, commands, start)[1])

    def adapt(self, design: Tensor, commands: Tensor, start: Tensor | None = None
              ) -> tuple[Tensor, Tensor, Tensor]:
        """``theta`` ``(..., n, P)`` solved for the delay and lags of :meth:`choose`, and
        those (what meta-training differentiates: one solve, not one per candidate)."""
        delay, lag = self.choose(design, commands, start)
        return self.refit(design, commands, delay, lag, self.prior if start is None else start,
                          self.log_precision.exp()), delay, lag

    def moving(self, design: Tensor) -> Tensor:
        """``(..., n, T')`` joint-major: 1 where the joint moved, 0 where friction held it
        (:func:`~maml_ros.model.held_still.moving`; the velocity is the viscous regressor)."""
        return moving(design[..., PHYSICAL_TERMS.index('viscous')] * self.output_scale,
                      max(DELAYS))

    @staticmethod
    def _friction(psi: Tensor) -> Tensor:
        """1.0 on the friction columns of a design ``psi`` (viscous, Coulomb), 0.0 elsewhere."""
        friction = torch.zeros(psi.shape[-1], dtype=psi.dtype)
        friction[FRICTION_TERMS] = 1.0
        return friction

    def _chosen(self, design: Tensor, commands: Tensor, delay: Tensor, lag: Tensor
                ) -> tuple[Tensor, Tensor]:
        """``(psi, y)`` joint-major for the chosen delay and lags."""
        retention = torch.tensor(RETENTIONS, dtype=design.dtype)[lag][..., None, None]
        return (self.commands_design(design.transpose(-3, -2), retention),
                self.sent(commands, delay))

    def refit(self, design: Tensor, commands: Tensor, delay: Tensor, lag: Tensor,
              prior: Tensor, precision: Tensor) -> Tensor:
        """The step's ``theta`` for a delay and lags already chosen, with an explicit prior and
        damping ``(..., n, P)`` (leading dimensions: one solve per candidate)."""
        return damped_solve(*self.normal_equations(design, commands, delay, lag), prior,
                            precision).squeeze(-1)

    def normal_equations(self, design: Tensor, commands: Tensor, delay: Tensor, lag: Tensor
                         ) -> tuple[Tensor, Tensor]:
        """``psi^T psi`` and ``psi^T y`` for a delay and lags already chosen (what
        :func:`damped_solve` takes), on the rows where each joint moved."""
        psi, y = self._chosen(design, commands, delay, lag)
        moved = self.moving(design)
        psi, y = fitted_design(psi, moved, self._friction(psi)), y * fitted_rows(moved)
        return psi.mT @ psi, psi.mT @ y.unsqueeze(-1)

    def loss(self, design: Tensor, commands: Tensor, theta: Tensor, delay: Tensor,
             lag: Tensor) -> Tensor:
        """Mean squared error, in command-scale units, of the commands ``theta`` predicts."""
        prediction, sent = self.predict(design, commands, theta, delay, lag)
        return (prediction - sent).pow(2).mean()

    def predict(self, design: Tensor, commands: Tensor, theta: Tensor, delay: Tensor,
                lag: Tensor) -> tuple[Tensor, Tensor]:
        """The commands ``theta`` predicts and the commands sent, joint-major ``(..., n, T')``
        in command-scale units: rows ``t = MAX_DELAY..T-1``, the command sent at
        ``t - delay``."""
        psi, sent = self._chosen(design, commands, delay, lag)
        return (psi @ theta.unsqueeze(-1)).squeeze(-1), sent
