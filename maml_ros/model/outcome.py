"""What one adaptation did: the record every policy keeps and the diagnostics report."""

from __future__ import annotations

from dataclasses import dataclass


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
    """

    accepted: bool
    reason: str
    loss_before: float
    loss_after: float
    duration_ms: float
    transitions: int
    window_end: float | None = None

    def __str__(self) -> str:
        verdict = 'accepted' if self.accepted else f'rejected: {self.reason}'
        return (f'{verdict}; support loss {self.loss_before:.4g} -> {self.loss_after:.4g} on '
                f'{self.transitions} transitions in {self.duration_ms:.1f} ms')
