"""Problems: every bad input counted, the log rate-limited per kind and never silent."""

from maml_ros.ros.problems import Problems


class Logger:
    def __init__(self):
        self.lines, self.debug_lines = [], []

    def warn(self, line):
        self.lines.append(line)

    def debug(self, line):
        self.debug_lines.append(line)


def test_counts_every_problem_and_logs_each_kind_at_most_once_per_period(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr('maml_ros.ros.problems.time.monotonic', lambda: clock[0])
    logger = Logger()
    problems = Problems(logger, log_period=1.0)
    for _ in range(5):
        problems.report('joint_state', 'NaN position')
    problems.report('reference', 'no points')
    assert problems.counts == {'joint_state': 5, 'reference': 1}
    assert logger.lines == ['joint_state: NaN position', 'reference: no points']
    assert logger.debug_lines == ['joint_state: NaN position'] * 4  # the others, at debug
    clock[0] += 1.0
    problems.report('joint_state', 'duplicate names')
    assert logger.lines[-1] == ('joint_state: duplicate names '
                                '(and 4 more since the last message)')
    assert problems.values() == {'problems_joint_state': '6', 'problems_reference': '1',
                                 'last_problem': 'joint_state: duplicate names'}


def test_no_problem_no_values():
    assert Problems(Logger()).values() == {}
