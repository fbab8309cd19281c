"""Meta-training the physics model: rollouts -> regressors and commands -> Adam.

Per task, support = the first ``support_size`` transitions of a rollout (what
the robot adapts on), query = the last ``query_size``. A meta-step
adapts every task of a batch on its support (:meth:`PhysicsResidualModel.adapt`,
one preconditioned step) and descends the query loss of the adapted models
with respect to the prior, the damping and the feature network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from maml_ros.model.physics_adaptation import window_arrays
from maml_ros.model.physics_model import PhysicsResidualModel
from maml_ros.sim import Rollout


@dataclass(frozen=True)
class Window:
    """Tensors of one window of every task: ``physical`` (B, T, n, 6), ``inputs``
    (B, T, 3n), ``commands`` sent (B, T, n)."""

    physical: Tensor
    inputs: Tensor
    commands: Tensor

    def subset(self, index: Tensor) -> Window:
        return Window(self.physical[index], self.inputs[index], self.commands[index])

    @staticmethod
    def concat(*parts: Window) -> Window:
        return Window(*(torch.cat(column) for column in zip(
            *((p.physical, p.inputs, p.commands) for p in parts), strict=True)))


def task_windows(rollouts: Sequence[Rollout], identification, *, support_size: int,
                 query_size: int) -> tuple[Window, Window]:
    """Support and query windows of every rollout (measured states, commands issued)."""
    support, query = [], []
    for rollout in rollouts:
        physical, inputs = window_arrays(identification, rollout.states, rollout.next_states)
        commands = rollout.issued_commands
        support.append((physical[:support_size], inputs[:support_size], commands[:support_size]))
        query.append((physical[-query_size:], inputs[-query_size:], commands[-query_size:]))

    def stack(parts) -> Window:
        return Window(*(torch.as_tensor(np.stack(column), dtype=torch.float32)
                        for column in zip(*parts, strict=True)))

    return stack(support), stack(query)


def query_loss(model: PhysicsResidualModel, support: Window, query: Window, *,
               adapt: bool = True) -> Tensor:
    """Query loss after adapting on the support (or of the prior itself)."""
    theta, delay, lag = model.adapt(model.design(support.physical, support.inputs),
                                    support.commands)
    if not adapt:
        theta, delay, lag = model.prior.expand_as(theta), 0 * delay, 0 * lag
    return model.loss(model.design(query.physical, query.inputs), query.commands, theta, delay,
                      lag)


def train_physics(model: PhysicsResidualModel, support: Window, query: Window, *,
                  iterations: int, batch: int = 32, lr: float = 3e-3, seed: int = 0,
                  progress: Callable[[int, float], None] | None = None) -> None:
    """Meta-train ``model`` (its normalization must be set) on the tasks' windows."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, iterations))
    tasks = support.physical.shape[0]
    for iteration in range(iterations):
        index = torch.randint(0, tasks, (batch,), generator=generator)
        optimizer.zero_grad()
        loss = query_loss(model, support.subset(index), query.subset(index))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if progress is not None:
            progress(iteration, loss.item())
