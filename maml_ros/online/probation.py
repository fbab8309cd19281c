"""Closed-loop acceptance: an adaptation is tried on the robot before it is trusted.

An adaptation passes its held-out test on support data (:mod:`~maml_ros.model.held_out`)
before it is swapped in, but a model can predict torques better and still make the robot
worse: a Coulomb friction overestimated on a light joint turns measurement noise around
zero velocity into a square wave (the wrist chatters). So after each swap the control loop
watches what the robot does for ``window`` seconds (after the settling time it gives every
new model) and compares it with the last ``window`` seconds before the swap:

- tracking: the RMS position error over all joints (rad);
- chatter: per joint, the RMS second difference of the policy's own command (before
  exploration noise, which is white and would hide it) in units of the joint's command
  scale: the high-frequency part of what the controller asks for.

The adapted model fails when either is worse than before by more than ``margin`` (a
fraction) plus a floor below which differences are noise (:data:`TRACKING_FLOOR`,
:data:`CHATTER_FLOOR`); the loop then rolls back to the model that ran before. The two
windows are compared only on comparable motion: when the reference's RMS speed differs by
more than :data:`MOTION_RATIO` either way, or the window before the swap holds less than
:data:`MIN_BEFORE` of its length, the verdict is that no comparison was possible, and the
model stays.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np

TRACKING_FLOOR = 0.002  # rad: tracking differences below it are not judged
# Command scales per tick^2 (RMS second difference): about what a torque of +-0.1 N*m that
# flips sign at random every tick gives on the Panda's wrist (scale 1.1 N*m). The default
# exploration noise, which the robot takes while it collects support, gives 0.05; a fit
# whose friction compensation flips with velocity noise gives several.
CHATTER_FLOOR = 0.25
MOTION_RATIO = 2.0  # reference RMS speeds within this ratio are comparable motion
MIN_BEFORE = 0.5  # the window before the swap must hold this fraction of the window


@dataclass(frozen=True)
class Motion:
    """What one window of ticks did: tracking RMS (rad), the reference's RMS speed (rad/s),
    per-joint chatter (command scales per tick^2), and how many ticks it holds."""

    tracking: float
    speed: float
    chatter: np.ndarray
    ticks: int

    def __str__(self) -> str:
        return (f'tracking {self.tracking:.4g} rad, chatter {float(self.chatter.max()):.3g} '
                f'(joint {int(self.chatter.argmax()) + 1})')


class MotionWindow:
    """The last ``ticks`` ticks of one model: error, reference speed and policy command."""

    def __init__(self, ticks: int) -> None:
        self._records: collections.deque = collections.deque(maxlen=max(ticks, 1))

    def __len__(self) -> int:
        return len(self._records)

    def add(self, q: np.ndarray, q_ref: np.ndarray, qd_ref: np.ndarray,
            command: np.ndarray) -> None:
        """One tick: the measured and reference positions, reference velocity, and the
        policy's command in command scales."""
        self._records.append((float(np.mean((q - q_ref) ** 2)), float(np.mean(qd_ref ** 2)),
                              np.array(command, float)))

    def clear(self) -> None:
        self._records.clear()

    def resize(self, ticks: int) -> None:
        """Hold the last ``ticks`` ticks from now on (the newest are kept)."""
        self._records = collections.deque(self._records, maxlen=max(ticks, 1))

    def motion(self) -> Motion | None:
        """The window's figures (None while it holds fewer than three ticks)."""
        if len(self._records) < 3:
            return None
        errors, speeds, commands = zip(*self._records, strict=True)
        second = np.diff(np.array(commands), n=2, axis=0)
        return Motion(tracking=math.sqrt(np.mean(errors)), speed=math.sqrt(np.mean(speeds)),
                      chatter=np.sqrt(np.mean(second ** 2, axis=0)), ticks=len(errors))


@dataclass(frozen=True)
class Verdict:
    """A probation's end: ``rollback`` when the adapted model did worse; ``reason`` says how
    it compared, in words."""

    rollback: bool
    reason: str


def verdict(before: Motion | None, after: Motion, *, window_ticks: int,
            margin: float) -> Verdict:
    """How the adapted model (``after``) did against the one before it (``before``)."""
    if before is None or before.ticks < MIN_BEFORE * window_ticks:
        held = 0 if before is None else before.ticks
        return Verdict(False, f'kept: {held} ticks before the swap to compare with, fewer '
                              f'than {MIN_BEFORE:g} of the window')
    slow, fast = sorted((before.speed, after.speed))
    if fast > MOTION_RATIO * max(slow, 1e-9):
        return Verdict(False, f'kept: the motion is not comparable (reference speed '
                              f'{before.speed:.3g} rad/s before, {after.speed:.3g} after)')
    worse = []
    if after.tracking > (1 + margin) * before.tracking + TRACKING_FLOOR:
        worse.append(f'tracking {after.tracking:.4g} rad against {before.tracking:.4g}')
    limit = (1 + margin) * before.chatter + CHATTER_FLOOR
    joints = np.flatnonzero(after.chatter > limit)
    if len(joints):
        now, then = (np.round(m.chatter[joints], 3).tolist() for m in (after, before))
        worse.append(f'chatter on joints {(joints + 1).tolist()} ({now} against {then})')
    if worse:
        return Verdict(True, f'rolled back after {after.ticks} ticks on the robot: '
                             f'{"; ".join(worse)} before the swap (margin {margin:.0%})')
    return Verdict(False, f'kept after {after.ticks} ticks on the robot: {after} '
                          f'against {before} before')
