"""Spinning an executor in the node tests: until a condition holds, or for a while; a node's
diagnostics; a node's program refusing to start."""

import os
import signal
import threading
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus


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


def diagnostics(executor, probe, node: str, count: int = 1) -> list[DiagnosticStatus]:
    """Spin until ``node`` has published ``count`` more diagnostics (1 Hz) on ``/diagnostics``,
    received by the node ``probe``; its statuses, in order."""
    received: list[DiagnosticStatus] = []

    def keep(msg: DiagnosticArray) -> None:
        received.extend(status for status in msg.status if status.name.endswith(node))

    subscription = probe.create_subscription(DiagnosticArray, '/diagnostics', keep, 10)
    assert spin_until(executor, lambda: len(received) >= count, timeout=count + 3.0)
    probe.destroy_subscription(subscription)
    return received


def refusal(main, args: list[str], capfd) -> str:
    """Run a node's program ``main(args)`` in this process: it must exit with status 1 and
    one line on stderr, the FATAL line it returns (the test needs ``restore_handlers``)."""
    # Should the refusal not come, the spin ends on this signal, without the SystemExit.
    timer = threading.Timer(30.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        with pytest.raises(SystemExit) as exit_:
            main(args)
    finally:
        timer.cancel()
    assert exit_.value.code == 1
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('[FATAL]'), lines
    return lines[0]
