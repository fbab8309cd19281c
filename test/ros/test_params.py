"""ParamSpec rows become descriptors rclpy enforces, and refusals read as one line with the fix."""

import types

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.parameter import Parameter
from rclpy.time import Time

from maml_ros.ros.diagnostics import diagnostic_array
from maml_ros.ros.params import ADAPTER_PARAMETERS, ParamSpec, declare_parameters
from maml_ros.ros.spin import StartupError

SPECS = [ParamSpec('rate', 0.5, 'a rate (1/s)', 0.1, 10.0),
         ParamSpec('count', 3, 'a count', 1, 5, read_only=True),
         ParamSpec('name', 'a', 'a name')]


@pytest.fixture
def make_node():
    """A real rclpy node with the given parameter overrides (no spinning, no discovery needed)."""
    context = rclpy.Context()
    rclpy.init(context=context)
    nodes = []

    def make(*overrides: Parameter):
        nodes.append(rclpy.create_node('params_test', context=context,
                                       parameter_overrides=list(overrides)))
        return nodes[-1]

    yield make
    for node in nodes:
        node.destroy_node()
    rclpy.shutdown(context=context)


def test_a_float_range_becomes_a_floating_point_range():
    descriptor = SPECS[0].descriptor()
    assert (descriptor.name, descriptor.description, descriptor.read_only) == (
        'rate', 'a rate (1/s)', False)
    [limits] = descriptor.floating_point_range
    assert (limits.from_value, limits.to_value, limits.step) == (0.1, 10.0, 0.0)
    assert not descriptor.integer_range


def test_an_integer_range_becomes_an_integer_range():
    descriptor = SPECS[1].descriptor()
    assert descriptor.read_only
    [limits] = descriptor.integer_range
    assert (limits.from_value, limits.to_value, limits.step) == (1, 5, 0)
    assert not descriptor.floating_point_range


@pytest.mark.parametrize('spec', [ParamSpec('x', 1.0, 'open above', low=0.0),
                                  ParamSpec('x', 1.0, 'open below', high=2.0),
                                  SPECS[2]])
def test_without_both_bounds_there_is_no_range(spec):
    descriptor = spec.descriptor()
    assert not descriptor.floating_point_range and not descriptor.integer_range


@pytest.mark.parametrize('default', [True, 'text', [1.0]])
def test_a_range_on_a_value_that_is_not_a_number_is_a_programming_error(default):
    with pytest.raises(TypeError, match='^x: a range needs a numeric default$'):
        ParamSpec('x', default, 'd', 0, 1).descriptor()


@pytest.mark.parametrize('default, says', [
    (True, 'write true or false'),
    (1.0, 'write a number with a decimal point (1.0, not 1)'),
    (1, 'write a whole number'),
    (['a'], 'write a list, e.g. [a, b]'),
    ('a', "write a string (quote it, e.g. '123', if it looks like a number)"),
])
def test_how_to_write_follows_the_type_of_the_default(default, says):
    assert ParamSpec('x', default, 'd').how_to_write() == says


def test_declared_parameters_carry_their_descriptors(make_node):
    node = make_node(Parameter('rate', value=2.5))
    declare_parameters(node, SPECS)
    assert node.get_parameter('rate').value == 2.5
    assert node.get_parameter('count').value == 3
    assert node.describe_parameter('count').read_only
    assert node.describe_parameter('rate').floating_point_range[0].to_value == 10.0
    refusal = node.set_parameters([Parameter('rate', value=11.0)])[0]
    assert not refusal.successful


def test_a_value_of_the_wrong_type_is_refused_with_how_to_write_it(make_node):
    node = make_node(Parameter('rate', value=1))
    with pytest.raises(StartupError) as refusal:
        declare_parameters(node, SPECS)
    assert str(refusal.value) == ("Trying to set parameter 'rate' to '1' of type 'INTEGER', "
                                  "expecting type 'DOUBLE'; write a number with a decimal point "
                                  '(1.0, not 1)')
    assert refusal.value.__cause__ is None and refusal.value.__suppress_context__


def test_a_value_out_of_range_is_refused_with_the_range(make_node):
    node = make_node(Parameter('count', value=9))
    with pytest.raises(StartupError) as refusal:
        declare_parameters(node, SPECS)
    message = str(refusal.value)
    assert 'out of range' in message and 'Min: 1, Max: 5' in message, message
    assert not message.endswith(': count')
    assert refusal.value.__cause__ is None and refusal.value.__suppress_context__


def test_every_adapter_parameter_has_a_valid_descriptor_and_a_default_in_range():
    assert len({spec.name for spec in ADAPTER_PARAMETERS}) == len(ADAPTER_PARAMETERS)
    for spec in ADAPTER_PARAMETERS:
        spec.descriptor()
        assert spec.description
        if spec.low is not None:
            assert spec.low <= spec.default <= spec.high, spec.name


def test_a_diagnostic_array_is_one_stamped_status_of_the_node():
    stamp = Time(seconds=12, nanoseconds=5).to_msg()
    node = types.SimpleNamespace(
        get_name=lambda: 'adapter',
        get_clock=lambda: types.SimpleNamespace(now=lambda: types.SimpleNamespace(
            to_msg=lambda: stamp)))
    array = diagnostic_array(node, level=DiagnosticStatus.WARN, name='maml_ros adapter',
                             message='stale', values={'a': '1', 'b': '2'})
    [status] = array.status
    assert array.header.stamp == stamp
    assert (status.level, status.name, status.message, status.hardware_id) == (
        DiagnosticStatus.WARN, 'maml_ros adapter', 'stale', 'adapter')
    assert [(v.key, v.value) for v in status.values] == [('a', '1'), ('b', '2')]
