"""Ctrl-C and SIGTERM stop a maml_ros process once, and its clean-up runs to the end.

A terminal's Ctrl-C reaches every process of its group, and ``ros2 launch``
(or ``maml-ros-bringup``) then signals its nodes again: a second
KeyboardInterrupt in the middle of the first one's clean-up is what printed
tracebacks and left exit code -2. SIGTERM is treated like SIGINT.

A node's spin loop asks for the stop as an event (:func:`stop_event_on_signals`)
rather than an exception: a KeyboardInterrupt raised inside rclpy (while it
converted a message for a subscription) came out as a RuntimeError of pybind11
and a traceback.
"""

from __future__ import annotations

import signal
import threading


def stop_on_signals() -> None:
    """From now on the first SIGINT or SIGTERM raises KeyboardInterrupt; later ones are
    ignored."""
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)


def stop_event_on_signals() -> threading.Event:
    """From now on the first SIGINT or SIGTERM sets the returned event, and later ones are
    ignored; nothing is raised, so no call is cut in the middle."""
    stop = threading.Event()

    def request(signum, frame) -> None:
        ignore_signals()
        stop.set()

    signal.signal(signal.SIGINT, request)
    signal.signal(signal.SIGTERM, request)
    return stop


def ignore_signals() -> None:
    """From now on SIGINT and SIGTERM are ignored (a clean-up runs to its end)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _stop(signum, frame) -> None:
    ignore_signals()
    raise KeyboardInterrupt
