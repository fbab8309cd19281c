"""Collection backends: where meta-training's rollouts run.

Two implement :class:`Collector`: the local process pool
(:class:`~maml_ros.sim.rollout.RolloutCollector`, the default) and a Ray cluster
(:class:`~maml_ros.training.ray_collection.RayCollector`, ``ray_address``; Ray is
an optional extra and is imported only then). Both run the same code per task,
so the same seeds give the same rollouts bitwise with either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from maml_ros.sim import Controller, Rollout, RolloutCollector, RolloutConfig, Task


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


def open_collector(*, config: RolloutConfig, workers: int | None, ray_address: str = '',
                   log: Callable[[str], None] = print) -> Collector:
    """The local process pool, or Ray when ``ray_address`` is given.

    :param config: the default rollout settings (its robot is loaded when workers start).
    :param workers: worker processes (Ray: at most this many actors); None: one per CPU
        (of this machine, or of the cluster).
    :param ray_address: ``''`` for the local pool; ``local`` (a private Ray on this
        machine), ``auto`` (the cluster started here by ``ray start``) or ``HOST:PORT``.
    :param log: where one-line reports go.
    """
    if not ray_address:
        return RolloutCollector(workers=workers, config=config)
    from maml_ros.training.ray_collection import RayCollector  # the optional extra
    return RayCollector(address=ray_address, workers=workers, config=config, log=log)
