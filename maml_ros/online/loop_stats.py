"""How well the control loop keeps time: rate, period jitter and input latency per report.

The adapter notes every tick (its monotonic time) and the age of the joint
state each command is computed from (command time minus the joint state's
stamp, both on the system clock: transport, queueing and computation). A
report summarizes the ticks since the previous report and starts a new window.
"""

from __future__ import annotations

import numpy as np


class LoopStats:
    """Tick times and latencies of one reporting window.

    :param period: the nominal control period (s).
    """

    def __init__(self, *, period: float) -> None:
        self.period = period
        #: Monotonic time of the latest tick (-inf before the first).
        self.last_tick = -float('inf')
        self._window_start: float | None = None
        self._intervals: list[float] = []
        self._latencies: list[float] = []
        self._ticks = 0

    def tick(self, now: float) -> None:
        """A tick of the loop at monotonic time ``now`` (s)."""
        if self.last_tick > -float('inf'):
            self._intervals.append(now - self.last_tick)
        if self._window_start is None:
            self._window_start = now
        self.last_tick = now
        self._ticks += 1

    def command(self, latency: float) -> None:
        """A command computed from a joint state ``latency`` seconds old."""
        self._latencies.append(latency)

    def report(self, now: float) -> dict[str, str]:
        """Diagnostic values of the window up to ``now``, then start a new window."""
        values = {}
        if self._window_start is not None and now > self._window_start:
            values['control_rate_hz'] = f'{self._ticks / (now - self._window_start):.1f}'
        if self._intervals:
            intervals = np.array(self._intervals)
            jitter = np.abs(intervals - self.period) * 1e3
            values.update(loop_jitter_p50_ms=f'{np.percentile(jitter, 50):.3f}',
                          loop_jitter_p99_ms=f'{np.percentile(jitter, 99):.3f}',
                          max_loop_period_ms=f'{intervals.max() * 1e3:.3f}')
        if self._latencies:
            latency = np.array(self._latencies) * 1e3
            values.update(latency_p50_ms=f'{np.percentile(latency, 50):.3f}',
                          latency_p99_ms=f'{np.percentile(latency, 99):.3f}')
        self._window_start, self._ticks = now, 0
        self._intervals, self._latencies = [], []
        return values
