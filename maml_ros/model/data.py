"""Per-task supervised data: rollouts turned into hindsight pairs, split into support and query.

Support is an early window of a task's rollout (what the robot sees first),
query a later window of the same task (what the adapted policy must handle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from maml_ros.model.formulation import Formulation
from maml_ros.sim import Rollout


@dataclass(frozen=True)
class TaskSet:
    """Hindsight pairs: ``features`` (tasks, steps, F) and ``targets`` (tasks, steps, n)."""

    features: Tensor
    targets: Tensor

    @classmethod
    def from_rollouts(cls, rollouts: Sequence[Rollout], formulation: Formulation) -> TaskSet:
        """Hindsight-relabel every rollout (all must have the same number of steps)."""
        pairs = [formulation.hindsight(r.states, r.issued_commands, r.next_states)
                 for r in rollouts]
        return cls(features=torch.as_tensor(np.stack([f for f, _ in pairs]), dtype=torch.float32),
                   targets=torch.as_tensor(np.stack([t for _, t in pairs]), dtype=torch.float32))

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def steps(self) -> int:
        return self.features.shape[1]

    @staticmethod
    def concat(*parts: TaskSet) -> TaskSet:
        """The tasks of all ``parts``, in order."""
        return TaskSet(torch.cat([p.features for p in parts]),
                       torch.cat([p.targets for p in parts]))

    def subset(self, indices: Tensor | Sequence[int] | slice) -> TaskSet:
        return TaskSet(self.features[indices], self.targets[indices])

    def support(self, size: int) -> tuple[Tensor, Tensor]:
        """The first ``size`` steps of every task: ``(x, y)`` with a task dimension."""
        self._check(size)
        return self.features[:, :size], self.targets[:, :size]

    def query(self, size: int) -> tuple[Tensor, Tensor]:
        """The last ``size`` steps of every task."""
        self._check(size)
        return self.features[:, -size:], self.targets[:, -size:]

    def pooled(self) -> tuple[Tensor, Tensor]:
        """All pairs of all tasks, flattened to ``(tasks * steps, ...)``."""
        return (self.features.reshape(-1, self.features.shape[-1]),
                self.targets.reshape(-1, self.targets.shape[-1]))

    def _check(self, size: int) -> None:
        if not 0 < size <= self.steps:
            raise ValueError(f'window of {size} steps does not fit rollouts of {self.steps}')
