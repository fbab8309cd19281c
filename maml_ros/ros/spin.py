"""The body of every node's ``main()``: init, spin until Ctrl-C or shutdown, clean up."""

from __future__ import annotations

from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def spin_node(make_node: Callable[[], Node], args: list[str] | None = None) -> None:
    """Run the node ``make_node()`` builds until Ctrl-C or an external shutdown."""
    rclpy.init(args=args)
    node = make_node()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # SIGTERM shuts the context down under a wait in progress, which rclpy reports as an
        # RCLError: still a clean shutdown.
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
