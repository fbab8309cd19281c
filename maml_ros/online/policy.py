"""What :class:`~maml_ros.online.control_loop.ControlLoop` drives: the :class:`Policy` protocol.

Two kinds implement it: :class:`~maml_ros.online.adaptive_policy.AdaptivePolicy` (a
checkpoint's model, adapted off the control thread: what the robot runs) and
:class:`~maml_ros.model.model_based.ModelPolicy` (computed torque with a fixed or
identified model: the evaluation's ``nominal``, ``sysid`` and ``true_model``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from maml_ros.model.outcome import AdaptationOutcome
from maml_ros.model.trained_models import TrainedModels
from maml_ros.model.transitions import Transitions


@runtime_checkable
class Policy(Protocol):
    """A controller that can adapt on support transitions.

    ``models``: the checkpoint it belongs to; ``method``: what adapts (None: nothing);
    ``adapted``: whether an adapted model is active; ``busy``: an adaptation is running;
    ``ready``: one could start at once; ``last_outcome``: the last adaptation's.
    """

    models: TrainedModels
    method: str | None
    last_outcome: AdaptationOutcome | None

    @property
    def adapted(self) -> bool: ...

    @property
    def busy(self) -> bool: ...

    @property
    def ready(self) -> bool: ...

    def command(self, q: np.ndarray, qd: np.ndarray, q_ref: np.ndarray, qd_ref: np.ndarray,
                qdd_ref: np.ndarray) -> np.ndarray:
        """The command for this state and reference (before the safety filter)."""

    def hold(self, q: np.ndarray) -> np.ndarray:
        """The command that holds posture ``q`` at rest."""

    def sent(self, command: np.ndarray) -> None:
        """The command that went out (after the safety filter)."""

    def start(self, transitions: Transitions, *, inner_steps: int, inner_lr: float | None = None,
              on_done: Callable[[AdaptationOutcome], None] | None = None) -> str:
        """Adapt on ``transitions``: '' when started, else why not."""

    def identified(self) -> dict | None:
        """What the active adapted model says about the robot (None: nothing)."""

    def rollback(self, reason: str) -> AdaptationOutcome | None:
        """Back to the model before the last adaptation (it made the robot do worse:
        ``reason``): the last outcome, rolled back; None with nothing to go back to."""

    def reset(self) -> None:
        """Back to the initial model."""

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a running adaptation; whether none runs now."""

    def close(self, wait: float = 0.0) -> None:
        """Stop adapting and release what the policy holds."""
