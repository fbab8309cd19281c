"""A joint that dry friction holds still: what its transitions say, and what they do not.

Sliding, a joint's friction is a function of its velocity (Coulomb, viscous), and every
model here has it. Held still, it is whatever torque keeps the joint at rest, up to the
breakaway: no function of the state predicts it, so those transitions pull a fit's other
terms (MuJoCo's demo robot, 0.4 N*m of dry friction on every joint, held still 33-65% of
its support on the shoulder: fitted on every row, the adapted robot tracked 0.60 rad, 0.17
on the rows where its joints moved). Identification, as engineers do it, fits on the transitions
where the joint moves (:func:`moving`) and keeps the ones where it was held for what they
tell: its friction is at least the torque it resisted (:func:`breakaway`).
"""

from __future__ import annotations

import numpy as np
import torch

# Below this speed (rad/s) a joint is held still (or passes through rest): a stuck joint
# creeps slower (MuJoCo's dry friction: 0.0015 rad/s on the demo robot's wrist). At 0.01 the
# slow rows of a smooth friction, which the models predict, went too: PyBullet's robots
# tracked 0.0180 rad in range (0.0175 at 0.003), sysid on 1 s of the real log 2.71 N*m (1.89).
HELD_VELOCITY = 0.003
# A joint held still over this fraction of its support has friction the moving rows do not
# identify: it gets at least the friction that held it.
MOSTLY_HELD = 0.5


def moving(velocity: np.ndarray | torch.Tensor, first: int) -> np.ndarray | torch.Tensor:
    """``(..., T, n)`` joint velocities -> ``(..., n, T')`` joint-major, 1.0 where a joint
    moved at row ``t`` and ``t - 1`` (a row of the command design combines both: the lag),
    for the rows ``t = first..T-1`` a fit predicts (``first``: the largest delay); 0.0 where
    it was held."""
    fast = abs(velocity) > HELD_VELOCITY
    return (fast[..., first:, :] & fast[..., first - 1:-1, :]).swapaxes(-1, -2) * 1.0


def fitted_rows(moved: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """The rows (``moved``'s shape) a joint is fitted on: where it moved, and every row of a
    joint that never moved (a robot at rest is identified from the torques that hold its
    postures: static identification; gravity is most of them on all but the wrist, which the
    physics model then leaves unidentified: ``STATIC_MARGIN`` of
    :mod:`~maml_ros.model.physics_adaptation`)."""
    return moved + (1 - moved) * (moved.sum(-1) == 0)[..., None]


def fitted_design(psi: np.ndarray | torch.Tensor, moved: np.ndarray | torch.Tensor,
                  friction: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """A joint-major design ``(..., n, T', P)`` as it is fitted: on :func:`fitted_rows`, with
    the friction columns (``friction``: 1.0 on them, broadcast to ``(..., n, 1, P)``) at zero
    where the joint was held: held, its friction is what held it, not a function of how it
    crept (MuJoCo's stuck wrist creeps along the push: fitted on its creep, the demo robot's
    wrist was given 1.44 N*m of Coulomb friction where it has 0.4, and ran 1.5 rad off)."""
    return psi * fitted_rows(moved)[..., None] * (1 - friction + friction * moved[..., None])


def moving_transitions(states: np.ndarray, next_states: np.ndarray) -> np.ndarray:
    """``(T, n)`` bool: where a joint moved at both ends of a transition (rows ``(T, 2n)``
    of positions then velocities); every row of a joint that never moved
    (:func:`fitted_rows`)."""
    n = states.shape[-1] // 2
    moved = (abs(states[:, n:]) > HELD_VELOCITY) & (abs(next_states[:, n:]) > HELD_VELOCITY)
    return moved | ~moved.any(0)  # never moved: every row


def breakaway(residual: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """Per joint ``(n,)``, the friction a joint's held rows prove it has, on joints held over
    :data:`MOSTLY_HELD` of the rows (0 on the others: their friction is the fit's, from where
    they moved). ``residual``: the command sent less the model's prediction without Coulomb
    friction, joint-major ``(n, T')``. Where the joint was held it is the friction's
    reaction, within +-breakaway, plus what the model has wrong about the joint at rest (an
    offset the moving rows did not determine): so half its spread, the pushes either way
    that friction held."""
    held = moved < 0.5
    top = np.where(held, residual, -np.inf).max(-1)
    bottom = np.where(held, residual, np.inf).min(-1)
    return np.where(held.mean(-1) > MOSTLY_HELD, (top - bottom) / 2, 0.0)
