"""The body of every node's ``main()``: init, spin until Ctrl-C, SIGTERM or shutdown, clean up.

Signals are :mod:`maml_ros.stop_signals`', not rclpy's: rclpy's handlers shut
the context down at once, so a node could not publish anything on its way out
(the adapter sends a final stop command). A signal sets an event, which the
spin checks at least every ``WAKE_PERIOD``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
import rclpy.logging
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from maml_ros.stop_signals import ignore_signals, stop_event_on_signals

WAKE_PERIOD = 0.1  # s: the longest a signal waits to end the spin


class StartupError(Exception):
    """A node cannot start (a bad parameter): one line with the reason and the fix."""


def spin_node(make_node: Callable[[], Node], args: list[str] | None = None, *,
              name: str) -> None:
    """Run the node ``make_node()`` builds until Ctrl-C, SIGTERM or an external shutdown.

    :param name: the node's name, for the start-up refusal.

    Exits with status 1 and one log line when the node refuses to start
    (:class:`StartupError`); 0 after a signal.
    """
    stop = stop_event_on_signals()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        node = make_node()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while rclpy.ok() and not stop.is_set():
            executor.spin_once(timeout_sec=WAKE_PERIOD)
    except ExternalShutdownException:
        pass
    except StartupError as error:
        rclpy.logging.get_logger(name).fatal(f'cannot start: {error}')
        sys.exit(1)
    finally:
        ignore_signals()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
