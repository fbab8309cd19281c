"""Bad input a node dropped or refused: counted by kind, logged, shown in ``/diagnostics``.

A node that drives motors must not stop for a malformed message, but nobody
should have to guess why a message was ignored either. :class:`Problems`
counts each kind of problem (``joint_state``, ``reference``, ``parameter``,
...), keeps the latest reason, and logs every kind at most once per
``log_period`` with how many were dropped in between, so a flood of bad
messages cannot flood the log.
"""

from __future__ import annotations

import time
from collections import Counter


class Problems:
    """Counts and the latest reason of the problems of one node.

    :param logger: an rclpy logger (``node.get_logger()``).
    :param log_period: seconds between two log lines of the same kind.
    """

    def __init__(self, logger, *, log_period: float = 1.0) -> None:
        self.logger = logger
        self.log_period = log_period
        self.counts: Counter[str] = Counter()
        self.last = ''  # 'kind: reason' of the latest problem
        self._logged: dict[str, tuple[float, int]] = {}  # kind -> (time, count) when last logged

    def report(self, kind: str, reason: str) -> None:
        """Count a problem of ``kind`` and log ``reason`` (rate-limited per kind)."""
        self.counts[kind] += 1
        self.last = f'{kind}: {reason}'
        now = time.monotonic()
        logged_at, logged_count = self._logged.get(kind, (-float('inf'), 0))
        if now - logged_at >= self.log_period:
            unlogged = self.counts[kind] - logged_count - 1
            since = f' (and {unlogged} more since the last message)' if unlogged else ''
            self.logger.warn(f'{self.last}{since}')
            self._logged[kind] = (now, self.counts[kind])
        else:
            self.logger.debug(self.last)  # each one, at log level debug

    def values(self) -> dict[str, str]:
        """Diagnostic key-values: ``problems_<kind>`` counts and ``last_problem``."""
        values = {f'problems_{kind}': str(count) for kind, count in sorted(self.counts.items())}
        if self.last:
            values['last_problem'] = self.last
        return values


class ReportsRejectedParameters:
    """Node mixin: every refused parameter change is reported to ``self.problems``.

    rclpy refuses wrong types, out-of-range values and read-only parameters
    itself, before the node's on-set-parameters callback sees them; these
    overrides see every outcome, whichever check refused it, whether set
    in-process or through the ``~/set_parameters*`` services. Put it first
    in the bases: ``class MyNode(ReportsRejectedParameters, Node)``.
    """

    problems: Problems

    def set_parameters(self, parameter_list):
        results = super().set_parameters(parameter_list)
        for parameter, result in zip(parameter_list, results, strict=True):
            self._report_rejection([parameter], result)
        return results

    def set_parameters_atomically(self, parameter_list):
        result = super().set_parameters_atomically(parameter_list)
        self._report_rejection(parameter_list, result)
        return result

    def _report_rejection(self, parameters, result) -> None:
        if not result.successful:
            names = ', '.join(p.name for p in parameters)
            self.problems.report('parameter', f'refused to set {names}: {result.reason}')
