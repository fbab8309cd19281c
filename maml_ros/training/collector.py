"""What a collection backend is: the :class:`Collector` protocol and its error.

Two backends implement it: the local process pool
(:class:`~maml_ros.sim.rollout.RolloutCollector`, the default) and a Ray cluster
(:class:`~maml_ros.training.ray_collection.RayCollector`);
:func:`~maml_ros.training.collection.open_collector` picks one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from maml_ros.sim import Controller, Rollout, RolloutConfig, Task


class CollectionError(RuntimeError):
    """A backend could not collect: Ray could not be started or joined, or lost its workers."""


class Collector(Protocol):
    """What meta-training needs of a collection backend."""

    def collect(self, tasks: Iterable[Task | int], *, controller: Controller | None = None,
                config: RolloutConfig | None = None) -> list[Rollout]:
        """Run every task; the rollouts come back in the order of ``tasks``."""

    def close(self) -> None:
        """Stop the workers."""

    def __enter__(self) -> Collector: ...

    def __exit__(self, *exc: object) -> None: ...
