"""From the command sent to the torque that acts: a delay line, then a first-order lag.

A real joint does not apply the command of this tick during this tick: the
command waits ``delay`` control steps in drivers and DDS, and the torque loop
follows it with a first-order lag (it keeps ``retention = exp(-T / tau)`` of
its last value each step). With ``c[t] = u[t - delay]`` the command in force::

    e[t] = retention * e[t - 1] + (1 - retention) * c[t]

acts over step ``t`` (the simulator's order; before the first command nothing
is in force, so the first command fills the line and the lag). Learning pairs
the acceleration achieved over step ``t`` with ``e[t]``, not ``u[t]``
(:mod:`~maml_ros.model.physics_model`); a controller inverts the pipeline,
choosing ``u[t]`` so that ``e[t + delay]`` is the torque it wants then
(:meth:`CommandPipeline.command_for`).
"""

from __future__ import annotations

import collections

import numpy as np

HISTORY = 64  # commands kept to replay when the delay or lag estimate changes


class CommandPipeline:
    """The delay line and lag of one robot, fed with each command sent, inverted on request.

    :param n_joints: command size.
    :param delay: control steps before a command is in force.
    :param retention: per joint (or one for all), the lag's ``exp(-T / tau)``; 0: no lag.
    """

    def __init__(self, *, n_joints: int, delay: int = 0,
                 retention: np.ndarray | float = 0.0) -> None:
        self.n_joints = n_joints
        self._history: collections.deque[np.ndarray] = collections.deque(maxlen=HISTORY)
        self.retarget(delay, retention)

    def retarget(self, delay: int, retention: np.ndarray | float) -> None:
        """Another estimate of the delay and lag: the commands sent so far are replayed."""
        retention = np.broadcast_to(np.asarray(retention, dtype=float), (self.n_joints,)).copy()
        if int(delay) != delay or delay < 0 or np.any((retention < 0) | (retention >= 1)):
            raise ValueError(f'need a whole delay >= 0 and 0 <= retention < 1, got {delay}, '
                             f'{retention}')
        self.delay, self.retention = int(delay), retention
        history = list(self._history)
        self.reset()
        for command in history:
            self.sent(command)

    def reset(self) -> None:
        """Nothing sent yet (after a pause the next command fills the line again)."""
        self._history.clear()
        self._line: collections.deque[np.ndarray] = collections.deque()
        self._effective: np.ndarray | None = None

    def sent(self, command: np.ndarray) -> None:
        """``command`` went out this tick."""
        command = np.asarray(command, dtype=float)
        self._history.append(command)
        if self._effective is None:
            self._line.extend([command] * self.delay)
        self._line.append(command)
        in_force = self._line.popleft()
        self._effective = in_force if self._effective is None else (
            self.retention * self._effective + (1.0 - self.retention) * in_force)

    def command_for(self, effective: np.ndarray) -> np.ndarray:
        """The command to send now so that ``effective`` acts ``delay`` steps from now."""
        if self._effective is None:
            return effective  # the first command fills the line: it acts as sent
        state = self._effective
        for in_force in self._line:  # what is already on its way
            state = self.retention * state + (1.0 - self.retention) * in_force
        return (effective - self.retention * state) / (1.0 - self.retention)
