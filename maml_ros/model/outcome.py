"""What one adaptation did: the record every policy keeps and the diagnostics report."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from maml_ros.model.held_out import HeldOut


@dataclass(frozen=True)
class AdaptationOutcome:
    """What one adaptation did.

    :param accepted: whether the adapted policy is now active.
    :param reason: why not, when rejected ('' when accepted).
    :param loss_before: support loss of the policy that was active.
    :param loss_after: support loss of the adapted policy.
    :param duration_ms: wall-clock time of the adaptation.
    :param transitions: support transitions used.
    :param window_end: stamp of the newest support state (s), where the control loop knows
        it: the support is the ``transitions`` transitions up to it (a recorded bag replays
        the same window).
    :param held_out: the cross-validated command error per joint of the model that was
        running and of the adaptation (:mod:`~maml_ros.model.held_out`); None where the
        adaptation failed before it was judged.
    :param kept: the joints (from 1) that kept the model they had, because the adaptation
        predicted their held-out commands no better.
    :param rolled_back: it was accepted, then the robot did worse with it and the control
        loop went back to the model before it (:mod:`~maml_ros.online.probation`);
        ``reason`` says how it compared.
    """

    accepted: bool
    reason: str
    loss_before: float
    loss_after: float
    duration_ms: float
    transitions: int
    window_end: float | None = None
    held_out: HeldOut | None = None
    kept: tuple[int, ...] = ()
    rolled_back: bool = False

    def rolled_back_because(self, reason: str) -> AdaptationOutcome:
        """This adaptation, rolled back on the robot for ``reason``."""
        return dataclasses.replace(self, accepted=False, reason=reason, rolled_back=True)

    @property
    def verdict(self) -> str:
        """``accepted``, ``rejected: <why>``, or the roll-back's reason."""
        return 'accepted' if self.accepted else self.reason if self.rolled_back \
            else f'rejected: {self.reason}'

    def judged(self) -> dict[str, list]:
        """The held-out judgement, per joint (empty where it was not judged): the RMS
        command error of the model that was running and of the adaptation, on held-out
        support transitions, and the joints that kept their model."""
        if self.held_out is None or not self.held_out.judged:
            return {}
        before, after = self.held_out.per_joint()
        return {'held_out_rms_before': before.round(6).tolist(),
                'held_out_rms_after': after.round(6).tolist(), 'kept_joints': list(self.kept)}

    def __str__(self) -> str:
        verdict = self.verdict
        if self.accepted and self.kept:
            verdict += f' (joints {list(self.kept)} kept their model)'
        judged = ''
        if self.held_out is not None and self.held_out.judged:
            judged = '; held-out RMS {:.4g} -> {:.4g}'.format(*self.held_out.overall())
        return (f'{verdict}; support loss {self.loss_before:.4g} -> {self.loss_after:.4g}'
                f'{judged} on {self.transitions} transitions in {self.duration_ms:.1f} ms')
