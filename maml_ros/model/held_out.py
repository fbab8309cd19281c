"""Never worse: an adaptation is judged on transitions it was not fitted on.

A support loss only says how well a model fits what it was fitted to: on a real Panda's
log an adaptation whose support loss fell from 2.76 to 0.21 predicted the torques that
followed worse than the URDF model it replaced. So every adaptation is judged by blocked
two-fold cross-validation within its support (:func:`cross_validate`): the same
procedure fitted on the first half of the support predicts the commands of the second,
and back. The model running now was fitted on none of the support, so its prediction of
the same transitions is held out already (a joint's transitions where dry friction held it
still do not count, unless it never moved: no model predicts the torque that friction held,
and none was fitted on it: :mod:`~maml_ros.model.held_still`). A joint whose commands the
adaptation predicts worse in both halves keeps its model (:meth:`HeldOut.adopted`); where a
model may be fitted several ways (through a moving average or not), the way whose fits predict the
halves best is taken (:func:`judge`). A support too short to hold out :data:`MIN_ROWS`
transitions per half is not judged: the adaptation is taken as fitted.

The halves are contiguous blocks, not shuffled rows: consecutive transitions are nearly
the same state, and a fit that saw a transition's neighbours has all but seen it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from maml_ros.model.held_still import moving_transitions
from maml_ros.model.transitions import Transitions

State = TypeVar('State')
# Held-out transitions each half must predict for the judgement to overrule an adaptation
# (200 support transitions, the default, give 96 to the physics model; 100 give 46). With
# fewer it is noise: on 20 in-range robots adapting on 25, 50 and 100 transitions, joints
# kept and averages chosen on its word tracked 7%, 35% and 8% worse. The adaptation is
# then taken as fitted (and guarded by its support loss).
MIN_ROWS = 80


@dataclass(frozen=True)
class Prediction:
    """The commands a model predicts for some of a set of transitions: ``rows`` index the
    transitions whose command is predicted, ``commands`` ``(len(rows), n)``."""

    rows: np.ndarray
    commands: np.ndarray

    def rms(self, transitions: Transitions) -> np.ndarray:
        """Per joint, the RMS difference from the commands sent (command units)."""
        return np.sqrt(np.mean((self.commands - transitions.commands[self.rows]) ** 2, axis=0))

    def squared_errors(self, transitions: Any, rows: np.ndarray) -> np.ndarray:
        """``(len(rows), n)``: the squared errors of the predicted ``rows`` of
        ``transitions`` (or anything with their ``commands``)."""
        index = np.searchsorted(self.rows, rows)
        return (self.commands[index] - transitions.commands[rows]) ** 2


@dataclass(frozen=True)
class HeldOut:
    """Per fold and joint ``(folds, n)``, the RMS command error (command units) on held-out
    transitions of the model running now (``before``) and of the adaptation (``after``),
    each fold's on the same ``rows`` transitions (one count per fold)."""

    before: np.ndarray
    after: np.ndarray
    rows: np.ndarray

    def adopted(self, *, per_joint: bool, scale: np.ndarray | None = None) -> np.ndarray:
        """Which joints take the adapted model: each joint unless it predicts that joint's
        commands worse in every fold (``per_joint``); where the joints share one model (a
        network), all of them unless it predicts worse over all joints in every fold, in
        units of each joint's command ``scale``, and none otherwise. All of them where too
        little was held out to judge by (:data:`MIN_ROWS`).

        Worse in every fold, not worse over both together: a joint kept on the old model
        while the others adapt is a cost of its own (on robots with delay and lag, one
        joint kept on the URDF model took tracking from 0.010 to 0.051 rad), so a joint
        keeps its model when the held-out evidence agrees, not on noise."""
        if not self.judged:
            return np.ones(self.before.shape[-1], dtype=bool)
        if per_joint:
            return ~(self.after > self.before).all(0)
        scale = np.ones(self.before.shape[-1]) if scale is None else scale
        worse = np.sum((self.after / scale) ** 2, -1) > np.sum((self.before / scale) ** 2, -1)
        return np.full(self.before.shape[-1], not worse.all())

    @property
    def judged(self) -> bool:
        """Whether each half held out enough transitions (:data:`MIN_ROWS`) to judge by."""
        return bool((self.rows >= MIN_ROWS).all())

    def refusal(self, adopted: np.ndarray) -> str:
        """Why no joint takes the adaptation ('' when some do)."""
        if adopted.any():
            return ''
        before, after = self.per_joint()
        return (f'it predicts held-out transitions no better (RMS per joint '
                f'{_listed(before)} -> {_listed(after)})')

    def per_joint(self) -> tuple[np.ndarray, np.ndarray]:
        """The RMS per joint over all folds, before and after."""
        weights = self.rows[:, None] / max(self.rows.sum(), 1)
        return (np.sqrt(np.sum(weights * self.before ** 2, 0)),
                np.sqrt(np.sum(weights * self.after ** 2, 0)))

    def error_after(self, scale: np.ndarray) -> float:
        """The adaptation's mean squared error over folds and joints, in units of each
        joint's command ``scale`` (infinite where too little was held out to judge by)."""
        if not self.judged:
            return np.inf
        return float(np.mean((self.after / scale) ** 2))

    def overall(self) -> tuple[float, float]:
        """The RMS over all joints and folds, before and after."""
        before, after = self.per_joint()
        return float(np.sqrt(np.mean(before ** 2))), float(np.sqrt(np.mean(after ** 2)))


def _listed(values: np.ndarray) -> str:
    return '[' + ', '.join(f'{value:.3g}' for value in values) + ']'


@dataclass(frozen=True)
class Procedure(Generic[State]):
    """How one kind of model adapts, predicts and is scored.

    :param fit: a support's transitions -> the adapted state.
    :param predict: a state and transitions -> the commands it says they needed.
    :param loss: a state and transitions -> its support loss (the number a fit minimizes).
    :param adopt: ``(running, fitted, joints) -> state``: the running state with the fitted
        one on ``joints`` (a mask), for models with parameters per joint; None: one model
        for all joints (a network), taken whole or not at all.
    :param scale: each joint's command scale, in which a shared model's joints are weighed.
    :param prepare: what ``fit``, ``predict`` and ``loss`` take instead of transitions
        (sliced like them, with their ``commands``): what the model computes from each
        transition once (its regressors) rather than for every part of the support.
    :param variants: the prepared support -> the ways it may be fitted (e.g. through
        moving averages): the one whose fits predict the held-out halves best is taken.
    """

    fit: Callable[[Any], State]
    predict: Callable[[State, Any], Prediction]
    loss: Callable[[State, Any], float]
    adopt: Callable[[State, State, np.ndarray], State] | None = None
    scale: np.ndarray | None = None
    prepare: Callable[[Transitions], Any] = lambda transitions: transitions
    variants: Callable[[Any], list[Any]] = lambda prepared: [prepared]


@dataclass(frozen=True)
class Judgement(Generic[State]):
    """An adaptation judged: ``state`` the running model with the adapted one on the
    ``adopted`` joints (a mask), and the support loss of the running model and of ``state``."""

    state: State
    loss_before: float
    loss_after: float
    held_out: HeldOut
    adopted: np.ndarray

    @property
    def kept(self) -> tuple[int, ...]:
        """The joints (from 1) that keep their model."""
        return tuple(int(j) + 1 for j in np.flatnonzero(~self.adopted))


def judge(procedure: Procedure[State], active: State, transitions: Transitions
          ) -> Judgement[State]:
    """Adapt on ``transitions`` (the variant of them whose fits predict the held-out halves
    best) and judge the result against the running ``active`` state on held-out transitions
    (module docstring)."""
    scale = np.ones(transitions.commands.shape[1]) if procedure.scale is None \
        else procedure.scale
    judged = [(cross_validate(procedure, active, variant), variant)
              for variant in procedure.variants(procedure.prepare(transitions))]
    held_out, transitions = min(judged, key=lambda pair: pair[0].error_after(scale))
    fitted = procedure.fit(transitions)
    per_joint = procedure.adopt is not None
    adopted = held_out.adopted(per_joint=per_joint, scale=scale)
    state = procedure.adopt(active, fitted, adopted) if per_joint else fitted
    return Judgement(state, procedure.loss(active, transitions),
                     procedure.loss(state, transitions), held_out, adopted)


def cross_validate(procedure: Procedure[State], active: State, transitions: Any) -> HeldOut:
    """Blocked two-fold cross-validation of ``procedure`` against the ``active`` state on
    ``transitions`` (prepared; module docstring): each model's error on the transitions both
    predict."""
    half = len(transitions) // 2
    folds = (slice(0, half), slice(half, None)), (slice(half, None), slice(0, half))
    n = transitions.commands.shape[1]
    before, after, rows = np.zeros((2, n)), np.zeros((2, n)), np.zeros(2, dtype=int)
    if half < MIN_ROWS:  # too short to judge by: not worth the fits
        return HeldOut(before, after, rows)
    for fold, (train, test) in enumerate(folds):
        held_out = transitions[test]
        fitted = procedure.predict(procedure.fit(transitions[train]), held_out)
        running = procedure.predict(active, held_out)
        common = np.intersect1d(fitted.rows, running.rows)
        if len(common):
            # A joint friction held still was not fitted there, and no model predicts it.
            measured = getattr(held_out, 'transitions', held_out)  # prepared or not
            moved = moving_transitions(measured.states, measured.next_states)[common]
            count = np.maximum(moved.sum(0), 1)
            before[fold] = np.sqrt((running.squared_errors(held_out, common) * moved).sum(0)
                                   / count)
            after[fold] = np.sqrt((fitted.squared_errors(held_out, common) * moved).sum(0)
                                  / count)
            rows[fold] = len(common)
    return HeldOut(before, after, rows)
