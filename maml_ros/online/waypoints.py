"""A reference given as waypoints (a JointTrajectory), sampled smoothly at any time.

Cubic Hermite interpolation between waypoints (their velocities, or finite
differences when none are given), starting from the robot's state when the
trajectory arrives if its first waypoint lies in the future, and holding the
last waypoint afterwards. Positions outside the joint limits, and velocities
beyond ``max_velocity``, are clamped (:attr:`clamped` says so, for a warning);
so are the sampled positions and velocities, which cubic segments could
otherwise carry past the limits between waypoints.
"""

from __future__ import annotations

import numpy as np


class WaypointReference:
    """Desired ``(q, qd, qdd)`` at time ``t`` (seconds since the trajectory started).

    :param times: waypoint times, strictly increasing, >= 0 (P,).
    :param positions: waypoint positions (P, n).
    :param velocities: waypoint velocities (P, n), or None to derive them.
    :param start: ``(q, qd)`` of the robot at t = 0, used when ``times[0] > 0``.
    :param lower: lower position limits (n,).
    :param upper: upper position limits (n,).
    :param max_velocity: largest speed per joint (n,); None: unlimited.
    :raises ValueError: empty, non-monotonic or non-finite waypoints, wrong shapes.
    """

    def __init__(self, *, times: np.ndarray, positions: np.ndarray,
                 velocities: np.ndarray | None, start: tuple[np.ndarray, np.ndarray],
                 lower: np.ndarray, upper: np.ndarray,
                 max_velocity: np.ndarray | None = None) -> None:
        times, positions = np.asarray(times, float), np.asarray(positions, float)
        n = len(lower)
        if times.ndim != 1 or len(times) == 0:
            raise ValueError('the trajectory has no points')
        if positions.shape != (len(times), n):
            raise ValueError(f'positions need shape {(len(times), n)}, got {positions.shape}')
        if not (np.all(np.isfinite(times)) and np.all(np.isfinite(positions))):
            raise ValueError('non-finite time or position in the trajectory')
        if times[0] < 0 or np.any(np.diff(times) <= 0):
            raise ValueError('time_from_start must be >= 0 and strictly increasing')
        if velocities is not None:
            velocities = np.asarray(velocities, float)
            if velocities.shape != positions.shape or not np.all(np.isfinite(velocities)):
                raise ValueError('velocities must be finite, one per position')
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.max_velocity = np.full(n, np.inf) if max_velocity is None else \
            np.asarray(max_velocity, float)
        clipped = np.clip(positions, lower, upper)
        self.clamped = bool(np.any(clipped != positions))
        if velocities is not None:
            clipped_velocities = np.clip(velocities, -self.max_velocity, self.max_velocity)
            self.clamped |= bool(np.any(clipped_velocities != velocities))
            velocities = clipped_velocities
        positions = clipped
        if times[0] > 0:  # interpolate from where the robot is
            q0, qd0 = (np.asarray(x, float) for x in start)
            times = np.concatenate([[0.0], times])
            positions = np.vstack([np.clip(q0, lower, upper), positions])
            if velocities is not None:
                velocities = np.vstack([np.clip(qd0, -self.max_velocity, self.max_velocity),
                                        velocities])
        if velocities is None:
            velocities = np.gradient(positions, times, axis=0) if len(times) > 1 else \
                np.zeros_like(positions)
            velocities = np.clip(velocities, -self.max_velocity, self.max_velocity)
            velocities[-1] = 0.0  # come to rest at the end
        self.times, self.positions, self.velocities = times, positions, velocities

    @property
    def duration(self) -> float:
        return float(self.times[-1])

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(q, qd, qdd)`` at ``t``: the last waypoint at rest after the end."""
        if t >= self.times[-1] or len(self.times) == 1:
            return self.positions[-1].copy(), np.zeros_like(self.positions[-1]), \
                np.zeros_like(self.positions[-1])
        i = max(int(np.searchsorted(self.times, t, side='right')) - 1, 0)
        h = self.times[i + 1] - self.times[i]
        s = (max(t, self.times[0]) - self.times[i]) / h
        p0, p1 = self.positions[i], self.positions[i + 1]
        m0, m1 = self.velocities[i] * h, self.velocities[i + 1] * h
        # Cubic Hermite basis and its first two derivatives in s.
        h00, h10, h01, h11 = 2*s**3 - 3*s**2 + 1, s**3 - 2*s**2 + s, -2*s**3 + 3*s**2, s**3 - s**2
        d00, d10, d01, d11 = 6*s**2 - 6*s, 3*s**2 - 4*s + 1, -6*s**2 + 6*s, 3*s**2 - 2*s
        a00, a10, a01, a11 = 12*s - 6, 6*s - 4, -12*s + 6, 6*s - 2
        q = h00 * p0 + h10 * m0 + h01 * p1 + h11 * m1
        qd = (d00 * p0 + d10 * m0 + d01 * p1 + d11 * m1) / h
        qdd = (a00 * p0 + a10 * m0 + a01 * p1 + a11 * m1) / h**2
        return (np.clip(q, self.lower, self.upper),
                np.clip(qd, -self.max_velocity, self.max_velocity), qdd)
