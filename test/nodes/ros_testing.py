"""Spinning an executor in the node tests: until a condition holds, or for a while."""

import time


def spin_until(executor, condition, timeout: float = 15.0) -> bool:
    """Spin until ``condition()`` or ``timeout`` seconds; the condition's last value."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.005)
    return condition()


def spin_for(executor, seconds: float) -> None:
    """Spin for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.002)
