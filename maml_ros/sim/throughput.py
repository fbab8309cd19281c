"""Physics steps per second: bare ``stepSimulation`` against full randomized collection.

All figures come from the same worker processes, which start each phase
together (a barrier) so that they share the machine's load; each phase is
repeated ``rounds`` times, interleaved, and the best round counts (timings on
shared machines are noisy, and noise only ever slows a round down).

The cost of a physics step depends on the robot's state (about twice as much
while joint limits are active, ~20% more in motion than at rest), so the bare
baseline is given two ways, both one ``stepSimulation`` call per physics step:

- ``bare``: the robot as loaded, under gravity, no commands (the arm falls
  onto its joint limits);
- ``bare_free``: without gravity, every joint drifting from home at
  0.02 rad/s: in motion, no limit reached, like tracking a reference.

``collection`` runs whole tasks (random dynamics and reference, nominal
controller, exploration, latency, noise, recording, pickling each rollout as
the pool does), counting physics steps (control steps times substeps).
``physics_share`` is the fraction of collection time spent inside
``stepSimulation``: collection's rate relative to bare stepping of exactly the
same motion.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import time
from dataclasses import dataclass
from typing import Any

from maml_ros.sim.controller import NominalController
from maml_ros.sim.model import GRAVITY, InverseDynamicsModel, load_robot
from maml_ros.sim.quiet_pybullet import pybullet
from maml_ros.sim.robot import SimRobot
from maml_ros.sim.rollout import RolloutConfig, run_task

_DRIFT_VELOCITY = 0.02  # rad/s, slow enough that no joint reaches a limit


@dataclass(frozen=True)
class ThroughputReport:
    """Physics steps per second, summed over workers (they run in parallel)."""

    workers: int
    substeps: int
    bare_steps_per_second: float
    bare_free_steps_per_second: float
    collection_steps_per_second: float
    physics_share: float

    @property
    def collection_control_steps_per_second(self) -> float:
        return self.collection_steps_per_second / self.substeps

    @property
    def ratio(self) -> float:
        """Collection over the stricter bare baseline (``bare_free``)."""
        return self.collection_steps_per_second / self.bare_free_steps_per_second


def _bare_rate(config: RolloutConfig, steps: int, gravity: bool) -> float:
    client, body, description = load_robot(config.robot)
    try:
        pybullet.setPhysicsEngineParameter(fixedTimeStep=config.robot.physics_period,
                                           numSubSteps=1, physicsClientId=client)
        pybullet.setGravity(0, 0, GRAVITY if gravity else 0.0, physicsClientId=client)
        velocity = 0.0 if gravity else _DRIFT_VELOCITY
        for index, position in zip(description.joint_indices, description.home, strict=True):
            pybullet.resetJointState(body, index, float(position), velocity,
                                     physicsClientId=client)
        for index, position in zip(description.held_indices, description.held_positions,
                                   strict=True):
            pybullet.resetJointState(body, index, position, 0.0, physicsClientId=client)
        step = pybullet.stepSimulation
        start = time.perf_counter()
        for _ in range(steps):
            step(physicsClientId=client)
        return steps / (time.perf_counter() - start)
    finally:
        pybullet.disconnect(physicsClientId=client)


def _measure(config: RolloutConfig, bare_steps: int, tasks: int, rounds: int, first_seed: int,
             barrier: Any, results: Any) -> tuple[float, float, float, float]:
    def together() -> None:
        if barrier is not None:
            barrier.wait()

    robot = SimRobot(config=config.robot)
    controller = NominalController(config=config.robot)
    InverseDynamicsModel.shared(config.robot).inertia_lower_bound()
    run_task(first_seed, config=config, controller=controller, robot=robot)  # warm caches
    bare, free, collection, share = 0.0, 0.0, 0.0, 0.0
    seed = first_seed
    for _ in range(rounds):
        together()
        bare = max(bare, _bare_rate(config, bare_steps, gravity=True))
        together()
        free = max(free, _bare_rate(config, bare_steps, gravity=False))
        together()
        physics_before = robot.physics_seconds
        start = time.perf_counter()
        for _ in range(tasks):
            seed += 1
            pickle.dumps(run_task(seed, config=config, controller=controller, robot=robot))
        elapsed = time.perf_counter() - start
        rate = tasks * config.steps * config.robot.substeps / elapsed
        if rate > collection:
            collection = rate
            share = (robot.physics_seconds - physics_before) / elapsed
    robot.close()
    rates = (bare, free, collection, share)
    if results is not None:
        results.put(rates)
    return rates


def measure_throughput(
    *,
    workers: int | None = None,
    config: RolloutConfig | None = None,
    bare_steps: int = 10000,
    tasks_per_round: int = 2,
    rounds: int = 3,
) -> ThroughputReport:
    """Measure bare and collection throughput with ``workers`` processes.

    :param workers: processes (default ``os.cpu_count()``); 1 runs in this process.
    :param config: rollout settings (defaults: :class:`RolloutConfig`).
    :param bare_steps: physics steps per worker in each bare round.
    :param tasks_per_round: tasks each worker collects in each collection round.
    :param rounds: interleaved repetitions; the best round of each kind counts.
    """
    config = config if config is not None else RolloutConfig()
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers == 1:
        rates = [_measure(config, bare_steps, tasks_per_round, rounds, 0, None, None)]
    else:
        context = multiprocessing.get_context('spawn')
        barrier = context.Barrier(workers)
        results = context.Queue()
        processes = [context.Process(target=_measure, args=(
            config, bare_steps, tasks_per_round, rounds, 100_000 * k, barrier, results))
            for k in range(workers)]
        for process in processes:
            process.start()
        rates = [results.get() for _ in processes]
        for process in processes:
            process.join()
    bare, free, collection = (sum(rate[i] for rate in rates) for i in range(3))
    return ThroughputReport(
        workers=workers, substeps=config.robot.substeps, bare_steps_per_second=bare,
        bare_free_steps_per_second=free, collection_steps_per_second=collection,
        physics_share=sum(rate[3] for rate in rates) / len(rates))
