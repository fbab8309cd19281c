"""Support transitions gathered on the robot: ``(s_t, u_t, s_{t+1})``, time-aligned.

The control loop calls :meth:`SupportBuffer.record` once per tick with the
joint state it used (and that state's stamp) and the command it sent. Two
consecutive ticks make a transition when the second state is fresh and about
one control period newer than the first; anything else (a repeated or late
state, a skipped tick, a command that was not sent) breaks the chain instead
of producing a transition the hindsight relabelling would get wrong.
"""

from __future__ import annotations

import collections

import numpy as np

from maml_ros.model.transitions import Transitions


class SupportBuffer:
    """The most recent ``capacity`` transitions (a sliding window).

    :param capacity: transitions kept (the support size).
    :param n_joints: controlled joints.
    :param control_period: seconds between control ticks.
    :param tolerance: accepted relative deviation of the state interval from
        ``control_period`` (0.25: between 0.75 and 1.25 periods).
    """

    def __init__(self, *, capacity: int, n_joints: int, control_period: float,
                 tolerance: float = 0.25) -> None:
        if capacity < 1 or n_joints < 1 or control_period <= 0 or not 0 < tolerance < 1:
            raise ValueError('need capacity >= 1, n_joints >= 1, control_period > 0 and '
                             '0 < tolerance < 1')
        self.n_joints, self.control_period, self.tolerance = n_joints, control_period, tolerance
        # (state, command, next state, the next state's stamp)
        self._rows: collections.deque[tuple[np.ndarray, np.ndarray, np.ndarray, float]] = (
            collections.deque(maxlen=int(capacity)))
        self._previous: tuple[float, np.ndarray, np.ndarray] | None = None
        #: Ticks that could not be paired with the one before (gaps, repeats).
        self.broken = 0

    @property
    def capacity(self) -> int:
        return self._rows.maxlen

    def resize(self, capacity: int) -> None:
        """Keep the newest ``capacity`` transitions from now on."""
        if capacity < 1:
            raise ValueError(f'capacity must be >= 1, got {capacity}')
        self._rows = collections.deque(self._rows, maxlen=int(capacity))

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def full(self) -> bool:
        return len(self._rows) == self.capacity

    def record(self, stamp: float, state: np.ndarray, command: np.ndarray | None) -> bool:
        """One control tick: the state used (stamped) and the command sent (None: none).

        :returns: whether a transition ending at this state was added.
        """
        added = False
        if self._previous is not None:
            previous_stamp, previous_state, previous_command = self._previous
            interval = stamp - previous_stamp
            if abs(interval - self.control_period) <= self.tolerance * self.control_period:
                self._rows.append((previous_state, previous_command, np.array(state, float),
                                   stamp))
                added = True
            else:
                self.broken += 1
        valid = (command is not None and bool(np.all(np.isfinite(state)))
                 and bool(np.all(np.isfinite(command))))
        self._previous = (stamp, np.array(state, float), np.array(command, float)) if valid \
            else None
        return added

    def break_chain(self) -> None:
        """Forget the last tick (e.g. joint states went stale): no transition spans the gap."""
        self._previous = None

    def clear(self) -> None:
        self._rows.clear()
        self._previous = None

    def transitions(self) -> Transitions:
        """Copies of the buffered transitions, oldest first."""
        if not self._rows:
            empty = np.empty((0, 2 * self.n_joints))
            return Transitions(empty, np.empty((0, self.n_joints)), empty.copy())
        states, commands, next_states, _ = (np.stack(column) for column in zip(*self._rows,
                                                                               strict=True))
        return Transitions(states, commands, next_states)

    def stamps(self) -> np.ndarray:
        """The stamp of each buffered transition's next state, oldest first."""
        return np.array([row[3] for row in self._rows], dtype=float)
