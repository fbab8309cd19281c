"""Problems: every bad input counted, the log rate-limited per kind and never silent."""

from types import SimpleNamespace

from maml_ros.ros.problems import Problems, ReportsRejectedParameters


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


def test_by_default_each_kind_is_logged_at_most_once_a_second(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr('maml_ros.ros.problems.time.monotonic', lambda: clock[0])
    logger = Logger()
    problems = Problems(logger)
    for step in (0.0, 0.999, 0.001):
        clock[0] += step
        problems.report('joint_state', 'NaN position')
    assert logger.lines == ['joint_state: NaN position',
                            'joint_state: NaN position (and 1 more since the last message)']


def result(successful):
    return SimpleNamespace(successful=successful, reason='read-only')


def parameters(*names):
    return [SimpleNamespace(name=name) for name in names]


class FakeNode:
    """What ReportsRejectedParameters overrides: rclpy's Node refuses 'frozen'."""

    def set_parameters(self, parameter_list):
        return [result(p.name != 'frozen') for p in parameter_list]

    def set_parameters_atomically(self, parameter_list):
        return result(all(p.name != 'frozen' for p in parameter_list))


class ParameterNode(ReportsRejectedParameters, FakeNode):
    def __init__(self):
        self.problems = Problems(Logger(), log_period=0.0)


def test_every_refused_parameter_is_reported_with_the_reason_and_results_pass_through():
    node = ParameterNode()
    results = node.set_parameters(parameters('rate', 'frozen'))
    assert [r.successful for r in results] == [True, False]
    assert node.problems.counts == {'parameter': 1}
    assert node.problems.last == 'parameter: refused to set frozen: read-only'
    assert node.set_parameters_atomically(parameters('rate', 'frozen')).successful is False
    assert node.problems.last == 'parameter: refused to set rate, frozen: read-only'
    assert node.set_parameters_atomically(parameters('rate')).successful
    assert node.problems.counts == {'parameter': 2}
