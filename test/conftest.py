"""Test-wide environment: DDS on loopback in a private domain, logs in a temp dir.

Set at import time, before any test module imports rclpy, and again per test
so that every test gets its own ROS_DOMAIN_ID (child processes inherit it).
"""

import fcntl
import itertools
import os
import signal
import sys
import tempfile
import types
from pathlib import Path

import pytest

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_LOG_DIR'] = tempfile.mkdtemp(prefix='maml_ros_test_log_')
os.environ.setdefault('ROS_DOMAIN_ID', '0')
os.environ['ROS_PYTHON_CHECK_FIELDS'] = '1'  # rosidl type-checks every message field set

# Domain ids 1..100 stay clear of Fast DDS port clashes on Linux. Each test process on the
# machine takes a block of ten of them, held with a lock on a file, so that test processes
# running at once (mutmut's, a second session) never share one; its tests take turns in it.
DOMAIN_BLOCKS, DOMAINS_PER_BLOCK = 10, 10
_domain_ids = itertools.count()
_block: tuple[int, int, object] | None = None  # (pid, block, its locked file)


def _domain_block() -> int:
    """This process's block; a forked child takes its own (the lock is its parent's)."""
    global _block
    if _block is None or _block[0] != os.getpid():
        for block in range(DOMAIN_BLOCKS):
            path = Path(tempfile.gettempdir()) / f'maml_ros_test_domains_{block}.lock'
            lock = open(path, 'w')  # noqa: SIM115 (open while this process lives)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            _block = (os.getpid(), block, lock)  # held until this process ends
            break
        else:
            raise RuntimeError(f'more than {DOMAIN_BLOCKS} test processes at once on this '
                               'machine: no DDS domain block left')
    return _block[1]


@pytest.fixture(autouse=True)
def private_ros_domain(monkeypatch: pytest.MonkeyPatch) -> int:
    """Give each test its own DDS domain, discovery on loopback only."""
    domain_id = 1 + DOMAINS_PER_BLOCK * _domain_block() + next(_domain_ids) % DOMAINS_PER_BLOCK
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    monkeypatch.setenv('ROS_DOMAIN_ID', str(domain_id))
    return domain_id


@pytest.fixture(scope='module')
def models():
    """The shipped checkpoint, warmed up (one per test module that asks for it)."""
    from maml_ros.model.trained_models import TrainedModels
    from maml_ros.resources import shipped_checkpoint

    models = TrainedModels.load(shipped_checkpoint())
    models.warm_up()
    return models


@pytest.fixture(scope='module')
def robot(models):
    """A simulated robot for the shipped checkpoint (its dynamics set per use)."""
    from maml_ros.sim import SimRobot

    with SimRobot(config=models.formulation.robot) as robot:
        yield robot


class Zero:
    """Commands nothing (:func:`ghost_controller`)."""

    def command(self, q, qd, q_ref, qd_ref, qdd_ref):
        return 0 * q


@pytest.fixture
def ghost_controller(monkeypatch: pytest.MonkeyPatch) -> Zero:
    """A picklable controller whose module (``ghost_controllers``) exists in this process
    only: worker processes cannot unpickle it."""
    ghost = types.ModuleType('ghost_controllers')
    ghost.Zero = Zero
    monkeypatch.setattr(Zero, '__module__', 'ghost_controllers')
    monkeypatch.setitem(sys.modules, 'ghost_controllers', ghost)
    return Zero()


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop_handlers() -> dict:
    return {number: signal.getsignal(number) for number in STOP_SIGNALS}


@pytest.fixture
def restore_handlers():
    """SIGINT's and SIGTERM's handlers as they were before the test."""
    saved = _stop_handlers()
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


@pytest.fixture(autouse=True)
def signal_handlers_left_alone(request: pytest.FixtureRequest):
    """Every test leaves SIGINT's and SIGTERM's handlers as it found them (a test that changes
    them on purpose asks for ``restore_handlers``). An ignored SIGTERM is inherited by every
    process this one starts, and ``multiprocessing.Pool.terminate`` then cannot stop them: the
    suite hung in CI that way."""
    saved = _stop_handlers()
    yield
    left = {signal.Signals(number).name: handler for number, handler in _stop_handlers().items()
            if handler != saved[number]}
    for number, handler in saved.items():
        signal.signal(number, handler)
    assert not left, f'{request.node.nodeid} left signal handlers changed: {left}'
