"""Ctrl-C and SIGTERM stop a maml_ros process once, and its clean-up runs to the end.

A terminal's Ctrl-C reaches every process of its group, and ``ros2 launch``
(or ``maml-ros-bringup``) then signals its nodes again: a second
KeyboardInterrupt in the middle of the first one's clean-up is what printed
tracebacks and left exit code -2. SIGTERM is treated like SIGINT.
"""

from __future__ import annotations

import signal


def stop_on_signals() -> None:
    """From now on the first SIGINT or SIGTERM raises KeyboardInterrupt; later ones are
    ignored."""
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)


def ignore_signals() -> None:
    """From now on SIGINT and SIGTERM are ignored (a clean-up runs to its end)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _stop(signum, frame) -> None:
    ignore_signals()
    raise KeyboardInterrupt
