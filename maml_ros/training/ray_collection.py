"""Rollout collection on a Ray cluster: one warm simulated robot per CPU, fed chunks of tasks.

The second backend of :mod:`maml_ros.training.collection`, imported only when a
Ray address is given (``pip install .[ray]``). Ray Core only: actors and their
method calls, no RLlib.

- Each :class:`RolloutWorker` actor holds one simulated robot for its lifetime
  and runs a chunk of tasks with the local pool's own code
  (:func:`~maml_ros.sim.rollout.run_chunk`), so a task gives the same rollout
  bitwise wherever it runs.
- Chunks go to idle actors, several chunks per actor and collection, so that
  the work balances and a loss costs little. A chunk whose actor dies (its
  node lost, its process killed) goes back to the queue for the actors still
  alive: no task is lost while one is left.
- ``local`` starts a private Ray on this machine with a loopback address, stopped
  by :meth:`RayCollector.close`; ``auto`` or ``HOST:PORT`` joins a running
  cluster (``ray start --head``), which it leaves running. (Ray 2.58's servers
  listen on every interface whatever address they are given: the README's
  security section.)
- Usage statistics and the dashboard are off. ``ray.init`` replaces the
  process's SIGTERM handler: the caller's SIGINT and SIGTERM handlers are put
  back, so a trainer still stops cleanly on either.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import pickle
import signal
import socket
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable

os.environ.setdefault('RAY_USAGE_STATS_ENABLED', '0')  # before Ray reads it

import ray  # noqa: E402 - after the environment above

from maml_ros.sim.rollout import (  # noqa: E402
    Rollout,
    RolloutConfig,
    Task,
    as_tasks,
    run_chunk,
    warm_worker,
)
from maml_ros.training.collector import CollectionError  # noqa: E402

CHUNKS_PER_WORKER = 4  # per collection: balance, and a small loss when a worker dies
MAX_TRIES = 3  # workers a chunk may lose before collection gives up on it
WAIT_S = 0.5  # ray.wait's timeout: signal handlers run between waits
START_TIMEOUT_S = 120.0  # for the actors to load their robots
CONNECT_TIMEOUT_S = 5.0  # for the head's address to answer
# A private Ray's node address. Not 127.0.0.1: Ray replaces that (and localhost) by the
# machine's network address when it connects.
LOOPBACK = '127.0.0.2'


@ray.remote(num_cpus=1)
class RolloutWorker:
    """One simulated robot in a Ray worker process."""

    def __init__(self, config: RolloutConfig) -> None:
        warm_worker(config)

    def node(self) -> str:
        """The ID of the node this worker runs on (an answer also says it has started)."""
        return ray.get_runtime_context().get_node_id()

    def run(self, config: RolloutConfig, controller: bytes, tasks: list[Task]
            ) -> tuple[str, list[Rollout]]:
        """The rollouts of ``tasks``, and the node they ran on."""
        return self.node(), run_chunk((config, controller, tasks))


class RayCollector:
    """Collects rollouts on a Ray cluster; the interface of
    :class:`~maml_ros.sim.rollout.RolloutCollector`.

    :param address: ``local``, ``auto`` or ``HOST:PORT`` (see the module docstring).
    :param workers: at most this many actors; None: one per CPU of the cluster.
    :param config: default rollout settings; its robot is loaded when the actors start.
    :param log: where one-line reports go (workers started, workers lost).
    """

    def __init__(self, *, address: str, workers: int | None = None,
                 config: RolloutConfig | None = None,
                 log: Callable[[str], None] = print) -> None:
        if workers is not None and int(workers) < 1:
            raise ValueError(f'workers must be >= 1, got {workers}')
        self.address, self.workers = address, workers
        self.config = config if config is not None else RolloutConfig()
        self.log = log
        self.chunks_by_node: Counter[str] = Counter()  # chunks each node has run
        self.lost = 0  # chunks run again after their worker died
        self._actors: list = []
        self._started_ray = False

    # -- starting and stopping ------------------------------------------------

    def _init_ray(self) -> None:
        if ray.is_initialized():  # the caller's connection: used, and left to the caller
            return
        options = {'include_dashboard': False, 'logging_level': logging.WARNING,
                   'log_to_driver': False}
        if self.address == 'local':
            options.update(num_cpus=self.workers or os.cpu_count(),
                           _node_ip_address=LOOPBACK)
        elif self.address != 'auto':
            host = _check_reachable(self.address)
            if ipaddress.ip_address(host).is_loopback:
                options['_node_ip_address'] = host  # the nodes there registered as such
        handlers = {number: signal.getsignal(number) for number in (signal.SIGINT,
                                                                    signal.SIGTERM)}
        try:
            ray.init(address=self.address, **options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise CollectionError(f'cannot start or join Ray at {self.address!r}: '
                                  f'{error}') from None
        finally:
            if threading.current_thread() is threading.main_thread():
                for number, handler in handlers.items():
                    signal.signal(number, handler)
        self._started_ray = True

    def _start(self) -> None:
        if self._actors:
            return
        self._init_ray()
        cpus = int(ray.cluster_resources().get('CPU', 0))
        count = min(self.workers or cpus, cpus)
        if count < 1:
            raise CollectionError(f'the Ray cluster at {self.address!r} has no CPU for a worker')
        actors = [RolloutWorker.options(scheduling_strategy='SPREAD').remote(self.config)
                  for _ in range(count)]
        try:
            nodes = ray.get([actor.node.remote() for actor in actors], timeout=START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            for actor in actors:
                ray.kill(actor)
            raise CollectionError(f'{count} Ray workers did not start within '
                                  f'{START_TIMEOUT_S:.0f} s: is the cluster busy?') from None
        self._actors = actors
        self.log(f'Ray: {count} rollout workers on {len(set(nodes))} node(s) '
                 f'({self.address}); asked for {self.workers or "one per CPU"}')

    def close(self) -> None:
        """Stop the workers; stop Ray if this collector started it, else disconnect."""
        for actor in self._actors:
            ray.kill(actor)
        self._actors = []
        if self.chunks_by_node:
            nodes = ', '.join(f'{node[:8]} {count}' for node, count in
                              self.chunks_by_node.most_common())
            self.log(f'Ray: chunks run per node: {nodes}; {self.lost} run again after their '
                     'worker was lost')
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    def __enter__(self) -> RayCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- collection -------------------------------------------------------------

    def collect(self, tasks: Iterable[Task | int], *, controller=None,
                config: RolloutConfig | None = None) -> list[Rollout]:
        """Run every task; results come back in the order of ``tasks``.

        :param tasks: tasks or seeds.
        :param controller: picklable controller (default: the nominal controller); its
            class must be importable on every node.
        :param config: rollout settings for this call (default: the collector's).
        :raises CollectionError: when no worker is left, or a chunk lost ``MAX_TRIES`` of them.
        """
        config = config if config is not None else self.config
        tasks = as_tasks(tasks)
        if not tasks:
            return []
        self._start()
        controller_ref = ray.put(pickle.dumps(controller))  # once, not once per chunk
        size = math.ceil(len(tasks) / (CHUNKS_PER_WORKER * len(self._actors)))
        chunks = [tasks[start:start + size] for start in range(0, len(tasks), size)]
        results: list[list[Rollout]] = [[] for _ in chunks]
        queue, tries = deque(range(len(chunks))), Counter()
        running: dict = {}  # ObjectRef -> (chunk index, actor)
        idle = list(self._actors)
        while queue or running:
            while queue and idle:
                index, actor = queue.popleft(), idle.pop()
                running[actor.run.remote(config, controller_ref, chunks[index])] = index, actor
            if not running:
                raise CollectionError(f'every Ray worker is lost; {len(queue)} chunks of tasks '
                                      'were not collected')
            done, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_S)
            for ref in done:
                index, actor = running.pop(ref)
                try:
                    node, results[index] = ray.get(ref)
                except ray.exceptions.RayActorError as error:
                    self._lose(actor, error)
                    tries[index] += 1
                    if tries[index] >= MAX_TRIES:
                        raise CollectionError(f'a chunk of {len(chunks[index])} tasks lost '
                                              f'{MAX_TRIES} Ray workers; the last: {error}'
                                              ) from None
                    queue.appendleft(index)
                    continue
                except ray.exceptions.RayTaskError as error:  # the task's own error
                    raise error.as_instanceof_cause() from None
                self.chunks_by_node[node] += 1
                idle.append(actor)
        return [rollout for chunk in results for rollout in chunk]

    def _lose(self, actor, error: Exception) -> None:
        self._actors.remove(actor)
        self.lost += 1
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        self.log(f'Ray: a rollout worker was lost ({reason}); its chunk goes to the '
                 f'{len(self._actors)} left')


def _check_reachable(address: str) -> str:
    """The IP of ``address``'s host, once something answers there; ray.init would wait
    minutes for an address where nothing does."""
    host, _, port = address.rpartition(':')
    if not host or not port.isdigit():
        raise CollectionError(f'Ray address {address!r}: expected local, auto or HOST:PORT')
    if host in ('localhost', '127.0.0.1', '::1'):
        raise CollectionError(
            f'Ray address {address!r}: Ray replaces {host} by this machine\'s network address '
            'when it connects; give the address the head printed, or keep the cluster on '
            'loopback with another loopback address (ray start --head --node-ip-address '
            '127.0.0.2)')
    try:
        ip = socket.gethostbyname(host)
        socket.create_connection((ip, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise CollectionError(f'nothing answers at Ray address {address!r} ({error}): is the '
                              'head started (ray start --head)?') from None
    return ip
