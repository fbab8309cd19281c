"""A node's stop on Ctrl-C or SIGTERM is an event, never an exception raised in the middle of
whatever the process was doing (inside rclpy, that came out as a traceback)."""

import os
import signal

import pytest

from maml_ros.stop_signals import stop_event_on_signals


@pytest.mark.parametrize('number', [signal.SIGINT, signal.SIGTERM])
def test_the_first_signal_sets_the_event_and_later_ones_are_ignored(restore_handlers, number):
    stop = stop_event_on_signals()
    assert not stop.is_set()
    os.kill(os.getpid(), number)  # the handler runs before the next line, raising nothing
    assert stop.is_set()
    for again in (signal.SIGINT, signal.SIGTERM):
        assert signal.getsignal(again) is signal.SIG_IGN
        os.kill(os.getpid(), again)  # ignored: the clean-up runs to its end
