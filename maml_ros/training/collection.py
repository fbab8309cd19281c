"""Which backend runs meta-training's rollouts.

Two implement :class:`~maml_ros.training.collector.Collector`: the local process pool
(:class:`~maml_ros.sim.rollout.RolloutCollector`, the default) and a Ray cluster
(:class:`~maml_ros.training.ray_collection.RayCollector`, ``ray_address``; Ray is
an optional extra and is imported only then). Both run the same code per task,
so the same seeds give the same rollouts bitwise with either.
"""

from __future__ import annotations

from collections.abc import Callable

from maml_ros.sim import RolloutCollector, RolloutConfig
from maml_ros.training.collector import Collector


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
