"""The sinusoid regression benchmark of the MAML paper (Finn et al., 2017, §5.1).

A task is ``y = A sin(x - phase)`` with ``A ~ U[0.1, 5]``, ``phase ~ U[0, pi]``
and ``x ~ U[-5, 5]``; the learner sees ``K`` points of a new task and must fit
the whole curve. It checks the MAML core end to end against the baseline a
practitioner would try first: one network pretrained on all tasks pooled,
then fine-tuned with the same number of gradient steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.functional import mse_loss
from tqdm import trange

from maml_ros.maml import MAML

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, math.pi)
X_RANGE = (-5.0, 5.0)


def sinusoid_mlp() -> nn.Module:
    """The paper's regressor: 1-40-40-1 with ReLU."""
    return nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(),
                         nn.Linear(40, 1))


@dataclass(frozen=True)
class SinusoidTasks:
    """Draws of sinusoid tasks: ``amplitude`` and ``phase`` of shape (tasks, 1, 1)."""

    amplitude: Tensor
    phase: Tensor

    @classmethod
    def sample(cls, num_tasks: int, generator: torch.Generator) -> SinusoidTasks:
        """``num_tasks`` tasks with amplitude and phase drawn uniformly."""
        def uniform(low: float, high: float) -> Tensor:
            return low + (high - low) * torch.rand(num_tasks, 1, 1, generator=generator)
        return cls(amplitude=uniform(*AMPLITUDE), phase=uniform(*PHASE))

    def points(self, shots: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(x, y)`` of shape (tasks, shots, 1): ``shots`` random points per task."""
        x = X_RANGE[0] + (X_RANGE[1] - X_RANGE[0]) * torch.rand(
            self.amplitude.shape[0], shots, 1, generator=generator)
        return x, self.curve(x)

    def curve(self, x: Tensor) -> Tensor:
        """The true ``y`` at ``x`` (tasks, n, 1)."""
        return self.amplitude * torch.sin(x - self.phase)


def meta_train(*, iterations: int, meta_batch: int = 25, shots: int = 10,
               inner_lr: float = 0.01, inner_steps: int = 1, meta_lr: float = 1e-3,
               seed: int = 0, progress: bool = False) -> MAML:
    """Meta-train the paper's regressor with MAML (second order, Adam).

    :param iterations: meta-steps.
    :param meta_batch: tasks per meta-step.
    :param shots: ``K``, points in each support and query set.
    :param inner_lr: inner-loop step size (the paper: 0.01).
    :param inner_steps: inner steps during meta-training (the paper: 1).
    :param meta_lr: Adam step size of the outer loop.
    :param seed: seeds the network initialisation and the task stream.
    :param progress: show a tqdm bar.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    maml = MAML(sinusoid_mlp(), inner_lr=inner_lr, inner_steps=inner_steps)
    optimizer = torch.optim.Adam(maml.parameters(), lr=meta_lr)
    for _ in trange(iterations, desc='MAML meta-training', disable=not progress):
        tasks = SinusoidTasks.sample(meta_batch, generator)
        support, query = tasks.points(shots, generator), tasks.points(shots, generator)
        optimizer.zero_grad()
        maml.meta_loss(support, query, mse_loss).backward()
        optimizer.step()
    return maml


def pretrain_pooled(*, iterations: int, meta_batch: int = 25, shots: int = 10,
                    lr: float = 1e-3, seed: int = 0, progress: bool = False) -> nn.Module:
    """The baseline: one regressor trained on all tasks pooled, same data budget as MAML."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = sinusoid_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in trange(iterations, desc='pooled pretraining', disable=not progress):
        x, y = SinusoidTasks.sample(meta_batch, generator).points(2 * shots, generator)
        optimizer.zero_grad()
        mse_loss(model(x), y).backward()
        optimizer.step()
    return model


def held_out_mse(model: nn.Module, *, lr: float, steps: list[int], num_tasks: int = 100,
                 shots: int = 10, query_points: int = 100, seed: int = 12345
                 ) -> dict[int, float]:
    """Mean query MSE on held-out tasks after each number of SGD steps on ``shots`` points.

    Adapts through ``MAML.adapt``, the deployment path, for MAML and baseline alike.

    :param model: the network to adapt (meta-trained or pretrained).
    :param lr: SGD step size of the adaptation.
    :param steps: the step counts to report, e.g. ``[0, 1, 10]``.
    :returns: ``{steps: mean MSE}``.
    """
    generator = torch.Generator().manual_seed(seed)
    tasks = SinusoidTasks.sample(num_tasks, generator)
    support_x, support_y = tasks.points(shots, generator)
    query_x, query_y = tasks.points(query_points, generator)
    learner = MAML(model, inner_lr=lr, inner_steps=0)
    result = {}
    for count in steps:
        errors = []
        for i in range(num_tasks):
            adapted = learner.adapt((support_x[i], support_y[i]), mse_loss, steps=count)
            with torch.no_grad():
                errors.append(mse_loss(learner.predict(adapted, query_x[i]), query_y[i]))
        result[count] = torch.stack(errors).mean().item()
    return result
