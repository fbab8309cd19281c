"""``spin_node``, the body of every node's ``main()``, run in this process: a refusal exits 1 in one
line, a signal or an external shutdown ends the spin, and the clean-up always runs."""

import os
import signal
import threading

import pytest
import rclpy
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions, get_current_signal_handlers_options

from maml_ros.ros.spin import StartupError, spin_node


class Probe(Node):
    """Runs ``on_tick`` once from a timer; records what it saw and whether it was destroyed."""

    def __init__(self, on_tick):
        super().__init__('probe')
        self.seen: dict = {}
        self.destroyed = False
        self.timer = self.create_timer(0.01, lambda: self._tick(on_tick))

    def _tick(self, on_tick) -> None:
        self.timer.cancel()
        self.seen = {'name': self.get_name(), 'sigterm': signal.getsignal(signal.SIGTERM),
                     'rclpy_handlers': get_current_signal_handlers_options()}
        on_tick()

    def destroy_node(self) -> None:
        self.destroyed = True
        super().destroy_node()


def spin_probe(on_tick, args=None) -> Probe:
    nodes = []

    def make() -> Probe:
        nodes.append(Probe(on_tick))
        return nodes[0]

    spin_node(make, args, name='probe')
    return nodes[0]


@pytest.mark.parametrize('number', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_the_spin_and_the_node_is_destroyed(restore_handlers, number):
    node = spin_probe(lambda: os.kill(os.getpid(), number))
    # The signal reached maml_ros' handler, not rclpy's (which would shut the context down at
    # once, before the node could send its stop command).
    assert node.seen['sigterm'].__qualname__ == 'stop_event_on_signals.<locals>.request'
    assert node.seen['rclpy_handlers'] == SignalHandlerOptions.NO
    assert node.destroyed and not rclpy.ok()
    assert signal.getsignal(number) is signal.SIG_IGN  # the clean-up is not cut short


def test_a_signal_while_nothing_happens_ends_the_spin(restore_handlers):
    """The spin wakes up by itself to look for a stop (a node may have no timer at all)."""
    nodes = []

    def make() -> Node:
        nodes.append(Node('idle'))
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
        return nodes[0]

    spin_node(make, name='idle')
    assert not rclpy.ok()


def test_an_external_shutdown_ends_the_spin(restore_handlers):
    node = spin_probe(rclpy.shutdown)
    assert node.destroyed and not rclpy.ok()


def test_the_node_gets_the_command_line_arguments(restore_handlers):
    node = spin_probe(lambda: os.kill(os.getpid(), signal.SIGTERM),
                      ['--ros-args', '-r', '__node:=renamed'])
    assert node.seen['name'] == 'renamed'


def test_a_refusal_exits_with_status_one_and_one_fatal_line(restore_handlers, capfd):
    def refuse():
        raise StartupError('inner_lr: write a number')

    with pytest.raises(SystemExit) as exit_:
        spin_node(refuse, name='adapter')
    assert exit_.value.code == 1
    assert not rclpy.ok()
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and '[adapter]' in lines[0] and lines[0].endswith(
        'cannot start: inner_lr: write a number'), lines
    assert '[FATAL]' in lines[0]
