"""Fixtures of the node tests: an rclpy context, adapter nodes in an AdapterHarness."""

from pathlib import Path

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from maml_ros.nodes.adapter import AdapterNode

from helpers.adapter_harness import AdapterHarness


@pytest.fixture
def ros_context(private_ros_domain):
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


@pytest.fixture(params=['ROS_HOME', '~/.ros'])
def ros_home(request, tmp_path, monkeypatch) -> Path:
    """Where ROS 2 keeps its files, in ``tmp_path``: ``$ROS_HOME``, or ``~/.ros`` without it."""
    if request.param == 'ROS_HOME':
        monkeypatch.setenv('ROS_HOME', str(tmp_path / 'ros_home'))
        return tmp_path / 'ros_home'
    monkeypatch.delenv('ROS_HOME', raising=False)
    monkeypatch.setenv('HOME', str(tmp_path))
    return tmp_path / '.ros'


@pytest.fixture
def executor(ros_context):
    executor = SingleThreadedExecutor(context=ros_context)
    yield executor
    executor.shutdown()


@pytest.fixture
def make_adapter(ros_context):
    """``make_adapter(**parameters)``: an adapter node (active unless ``autostart`` is false),
    adapting in a thread of this process unless told otherwise (tests replace ``MAML.adapt``
    here); destroyed after the test."""
    nodes = []

    def make(**parameters) -> AdapterNode:
        parameters = {'adaptation_process': False, **parameters}
        node = AdapterNode(context=ros_context, parameter_overrides=[
            Parameter(name, value=value) for name, value in parameters.items()])
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        if node.loop is not None:
            node.loop.policy.wait(10.0)
        node.destroy_node()


@pytest.fixture
def make_harness(make_adapter):
    """``make_harness(**parameters)``: an active adapter node (:func:`make_adapter`) in an
    :class:`AdapterHarness`."""
    return lambda **parameters: AdapterHarness(make_adapter(**parameters))
