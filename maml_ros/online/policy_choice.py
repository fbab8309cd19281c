"""Which policy the robot runs: the checkpoint chosen, loaded, checked and warmed up.

:func:`load_policy` turns a checkpoint into the :class:`AdaptivePolicy` the control loop
drives: the robot check first (a URDF the project cannot control is refused), ``auto``
resolved (:func:`adaptation_method`), the first adaptation's costs paid ahead.

:class:`CheckpointChoice` is the rule for which checkpoint runs: the chosen one when there
is one (a launch argument, a parameter file), else the shipped one, replaced by each
checkpoint that meta-training announces. An announcement never replaces a chosen
checkpoint, except the same file rewritten (retrained).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable

from maml_ros.model.trained_models import TrainedModels
from maml_ros.online.adaptive_policy import PHYSICS, AdaptivePolicy, warm_up
from maml_ros.resources import shipped_checkpoint
from maml_ros.sim.robot_check import require_robot

#: What adapts on the robot (the adapter's ``adaptation``, ``maml-ros-replay --adaptation``).
ON_ROBOT = (PHYSICS, 'maml')
ADAPTATION_CHOICES = ('auto', *ON_ROBOT)


def adaptation_method(choice: str, models: TrainedModels) -> str:
    """The method ``choice`` names: ``auto`` is ``maml_physics`` where the checkpoint has a
    physics model, else ``maml``.

    :raises ValueError: for a choice not in :data:`ADAPTATION_CHOICES`.
    """
    if choice not in ADAPTATION_CHOICES:
        raise ValueError(f'adaptation must be one of {list(ADAPTATION_CHOICES)}, '
                         f'not {choice!r}')
    if choice == 'auto':
        return PHYSICS if models.physics is not None else 'maml'
    return choice


def load_policy(path: str, *, joints: list[str], command_interface: str, adaptation: str,
                worker: str, period: float, warn: Callable[[str], None]) -> AdaptivePolicy:
    """The checkpoint at ``path`` as a warmed-up policy for these joints and interface.

    :param adaptation: one of :data:`ADAPTATION_CHOICES`.
    :param worker: where adaptations run (:class:`AdaptivePolicy`); a worker process warms
        itself up.
    :param period: the control period it will run at (s).
    :param warn: where the robot check's warnings go, and a period the checkpoint was not
        trained for.
    :raises CheckpointError: for a bad checkpoint.
    :raises ValueError: for an unknown ``adaptation``, ``maml_physics`` and a checkpoint
        without one, or a robot that fails the robot check (``RobotCheckError``).
    """
    models = TrainedModels.load(path, joints=joints, command_interface=command_interface)
    form = models.formulation
    report = require_robot(form.robot, ranges=models.ranges, reference=models.reference,
                           natural_frequency=form.natural_frequency)
    for finding in report.findings:
        if finding.status == 'WARN':
            warn(f'robot check: {finding.message}')
    if abs(period - form.robot.control_period) > 1e-9:
        warn(f'control_rate {1 / period:g} Hz is not the checkpoint\'s '
             f'{1 / form.robot.control_period:g} Hz: expect worse tracking and rejected '
             'adaptations')
    method = adaptation_method(adaptation, models)
    warm_up(models, None if worker == 'process' else method)
    return AdaptivePolicy(models=models, method=method, worker=worker)


class Announcement(enum.Enum):
    """What to do with a checkpoint meta-training announced."""

    RUN = 'run it'
    RUNNING = 'running it already'
    KEEP_CHOSEN = 'keep the chosen checkpoint'


class CheckpointChoice:
    """Which checkpoint runs (module docstring).

    :param chosen: the chosen checkpoint's path; empty: none was chosen.
    """

    def __init__(self, chosen: str) -> None:
        self.chosen = chosen
        self.running: str = ''  # the path of the checkpoint that runs
        self._version: tuple[int, int] | None = None

    def first(self) -> str:
        """The checkpoint to start with: the chosen one, else the shipped one."""
        return self.chosen or str(shipped_checkpoint())

    def now_running(self, path: str) -> None:
        """``path`` runs now (as it is on disk now)."""
        self.running, self._version = path, file_version(path)

    def announced(self, path: str) -> Announcement:
        """What to do with ``path``, announced by meta-training."""
        if self.chosen and not same_file(path, self.chosen):
            return Announcement.KEEP_CHOSEN
        if same_file(path, self.running) and file_version(path) == self._version:
            return Announcement.RUNNING
        return Announcement.RUN


def file_version(path: str) -> tuple[int, int] | None:
    """What changes when a file is rewritten (None: no such file)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)
