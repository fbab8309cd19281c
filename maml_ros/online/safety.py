"""The last line before the actuators: command limits, rate limits, stale data.

:class:`SafetyFilter` turns whatever the policy proposes into a command that
is finite, inside the URDF limits and within ``max_rate`` of the previous one;
:class:`Watchdog` says when joint states are too old to act on.
"""

from __future__ import annotations

import numpy as np


class SafetyFilter:
    """Clamp commands to limits and to a maximum rate of change.

    :param lower: per-joint lower command limits (e.g. ``-effort_limit``).
    :param upper: per-joint upper command limits.
    :param max_rate: largest change per second (command units/s), scalar or per joint.
    :param period: seconds between commands.
    """

    def __init__(self, *, lower: np.ndarray, upper: np.ndarray, max_rate: float | np.ndarray,
                 period: float) -> None:
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        if self.lower.shape != self.upper.shape or np.any(self.lower > self.upper):
            raise ValueError('lower and upper limits must have one value per joint, lower <= upper')
        if not np.all(np.isfinite(self.lower)) or not np.all(np.isfinite(self.upper)):
            raise ValueError('command limits must be finite')
        if period <= 0:
            raise ValueError(f'period must be > 0, got {period}')
        self.period = float(period)
        self.set_max_rate(max_rate)
        self._previous: np.ndarray | None = None

    def set_max_rate(self, max_rate: float | np.ndarray) -> None:
        """Change the rate limit (takes effect at the next command)."""
        rate = np.broadcast_to(np.asarray(max_rate, float), self.lower.shape).copy()
        if not np.all(np.isfinite(rate)) or np.any(rate <= 0):
            raise ValueError(f'max_rate must be finite and > 0, got {max_rate}')
        self.max_rate = rate

    def reset(self, previous: np.ndarray | None = None) -> None:
        """Restart the rate limit from ``previous`` (None: from the first command)."""
        self._previous = None if previous is None else np.clip(previous, self.lower, self.upper)

    def __call__(self, proposed: np.ndarray) -> np.ndarray:
        """The safe command for ``proposed``; non-finite entries hold the previous value.

        :raises ValueError: if ``proposed`` has the wrong length.
        """
        proposed = np.asarray(proposed, float)
        if proposed.shape != self.lower.shape:
            raise ValueError(f'command has {proposed.size} values for {self.lower.size} joints')
        hold = self._previous if self._previous is not None else np.clip(
            np.zeros_like(self.lower), self.lower, self.upper)
        command = np.where(np.isfinite(proposed), proposed, hold)
        command = np.clip(command, self.lower, self.upper)
        if self._previous is not None:
            step = self.max_rate * self.period
            command = np.clip(command, self._previous - step, self._previous + step)
        self._previous = command
        return command.copy()


class Watchdog:
    """Joint states older than ``timeout`` seconds are stale; so is having none.

    :param timeout: seconds.
    """

    def __init__(self, *, timeout: float) -> None:
        self.set_timeout(timeout)
        self._last: float | None = None

    def set_timeout(self, timeout: float) -> None:
        if not timeout > 0:
            raise ValueError(f'timeout must be > 0, got {timeout}')
        self.timeout = float(timeout)

    def feed(self, now: float) -> None:
        """Fresh data arrived at ``now`` (seconds, a monotonic clock)."""
        self._last = now

    def stale(self, now: float) -> bool:
        return self._last is None or now - self._last > self.timeout
