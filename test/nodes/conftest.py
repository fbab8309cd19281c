"""Fixtures of the node tests: an rclpy context, adapter nodes in an AdapterHarness."""

import sys
from pathlib import Path

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from maml_ros.nodes.adapter import AdapterNode

sys.path.insert(0, str(Path(__file__).parent))  # the tests import adapter_harness, ros_testing
from adapter_harness import AdapterHarness  # noqa: E402


@pytest.fixture
def ros_context(private_ros_domain):
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


@pytest.fixture
def executor(ros_context):
    executor = SingleThreadedExecutor(context=ros_context)
    yield executor
    executor.shutdown()


@pytest.fixture
def make_harness(ros_context):
    """``make_harness(**parameters)``: an active adapter node in an :class:`AdapterHarness`,
    adapting in a thread of this process unless told otherwise (tests replace ``MAML.adapt``
    here)."""
    nodes = []

    def make(**parameters) -> AdapterHarness:
        parameters = {'adaptation_process': False, **parameters}
        node = AdapterNode(context=ros_context, parameter_overrides=[
            Parameter(name, value=value) for name, value in parameters.items()])
        nodes.append(node)
        return AdapterHarness(node)

    yield make
    for node in nodes:
        if node.loop is not None:
            node.loop.policy.wait(10.0)
        node.destroy_node()
