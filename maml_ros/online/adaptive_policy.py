"""The policy the robot runs and its adaptation: off the control thread, guarded, swapped in.

The control loop asks :meth:`AdaptivePolicy.command` for commands at every
tick; that only reads the active policy (one attribute, replaced whole), so it
never waits for an adaptation. :meth:`AdaptivePolicy.start` adapts to a
support set in the background. The result is judged on support transitions it was not
fitted on (:mod:`~maml_ros.model.held_out`: a joint of the physics model it predicts
worse keeps its model, a network worse over all joints is refused) and kept only if its
support loss is finite and no higher than the active policy's (gradient steps on a
learned inverse model can diverge: fine-tuning one with lr 0.1 once took tracking beyond
1 rad); otherwise the previous policy stays and the outcome says why.

Where the gradient steps run (``worker``): ``process``, a worker process
spawned once at a lower CPU priority (an adaptation is mostly small tensor
operations that hold the GIL between them, so in a thread it slows a control
loop in the same process; in a process it cannot); ``thread``; or ``inline``,
in the caller, finished before :meth:`start` returns (simulation and
evaluation, where the loop runs on simulated time).
"""

from __future__ import annotations

import atexit
import copy
import functools
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import torch

from maml_ros.model.actuator import CommandPipeline
from maml_ros.model.adaptation import (
    ADAPTATIONS,
    adapt_params,
    predict_commands,
    scaled_mse,
    state_with,
)
from maml_ros.model.held_out import Judgement, Procedure, judge
from maml_ros.model.outcome import AdaptationOutcome
from maml_ros.model.physics_adaptation import (
    PhysicsAdaptation,
    PhysicsController,
    PhysicsFit,
    physics_procedure,
)
from maml_ros.model.policy_controller import PolicyController
from maml_ros.model.trained_models import TrainedModels
from maml_ros.model.transitions import Transitions

WORKERS = ('process', 'thread', 'inline')
PHYSICS = 'maml_physics'  # the physics model: its fit is the state, not network weights
BACKTRACKS, BACKTRACK_FACTOR = 3, 0.25  # shorter steps tried when the support loss rose
WARM_UP_TRANSITIONS = 40  # made-up support of the throw-away adaptation


def adapt_weights(models: TrainedModels, method: str, active_state: dict | PhysicsFit,
                  transitions: Transitions, *, inner_steps: int,
                  lr_scale: float) -> Judgement:
    """The computation of one adaptation: the adapted weights (or physics fit) judged against
    the active ones (:func:`~maml_ros.model.held_out.judge`)."""
    if method == PHYSICS:
        procedure = physics_procedure(models, active_state, inner_steps=inner_steps,
                                      lr_scale=lr_scale)
    else:
        procedure = network_procedure(models, method, active_state, inner_steps=inner_steps,
                                      lr_scale=lr_scale)
    return judge(procedure, active_state, transitions)


def network_procedure(models: TrainedModels, method: str, active_state: dict, *,
                      inner_steps: int, lr_scale: float) -> Procedure[dict]:
    """How a network adapts (``method``, steps from ``active_state``), predicts and is scored
    (:func:`~maml_ros.model.adaptation.scaled_mse` on the hindsight targets)."""
    loss_fn = scaled_mse(models.meta_policy.output_scale)

    def support(transitions: Transitions) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = models.formulation.hindsight(transitions.states, transitions.commands,
                                            transitions.next_states)
        return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)

    def loss(state: dict, transitions: Transitions) -> float:
        x, y = support(transitions)
        with torch.no_grad():
            return float(loss_fn(torch.func.functional_call(models.meta_policy, state, x), y))

    def fit(transitions: Transitions) -> dict:
        before, scale = loss(active_state, transitions), lr_scale
        for _ in range(BACKTRACKS + 1):
            # Steps from the active weights: a re-adaptation builds on what the robot has
            # learned.
            state = state_with(models.meta_policy, adapt_params(
                models, method, support(transitions), steps=inner_steps, lr_scale=scale,
                start=active_state))
            if loss(state, transitions) <= before:  # else: the steps overshot; shorter ones,
                break                                # as a line search would
            scale *= BACKTRACK_FACTOR
        return state

    return Procedure(fit=fit, predict=functools.partial(predict_commands, models), loss=loss,
                     scale=models.meta_policy.output_scale.double().numpy())


def warm_up(models: TrainedModels, method: str | None) -> None:
    """Pay the first call's costs now (loading the inverse-dynamics model, torch's first
    calls, the physics model's first fit): one throw-away adaptation of ``method`` on made-up
    transitions, so that the first real one (and its timing) does not."""
    models.warm_up()
    if method != PHYSICS:
        return
    n, steps = models.formulation.n_joints, WARM_UP_TRANSITIONS
    rng = np.random.default_rng(0)
    q = np.array(models.formulation.robot.home) + 0.01 * rng.standard_normal((steps + 1, n))
    states = np.concatenate([q, np.zeros_like(q)], axis=1)
    adapt_weights(models, method, PhysicsAdaptation(models.formulation, models.physics).initial(),
                  Transitions(states[:-1], rng.standard_normal((steps, n)), states[1:]),
                  inner_steps=1, lr_scale=1.0)


def rejection(judged: Judgement) -> str:
    """Why the adapted weights (or fit) must not be used ('' when they may)."""
    state, before, after = judged.state, judged.loss_before, judged.loss_after
    values = [torch.as_tensor(state.theta)] if isinstance(state, PhysicsFit) else state.values()
    if not math.isfinite(after) or not all(bool(torch.isfinite(t).all()) for t in values):
        return 'adapted weights or support loss are not finite'
    refusal = judged.held_out.refusal(judged.adopted)
    if refusal:
        return refusal
    if after > before:
        return f'support loss rose from {before:.4g} to {after:.4g}'
    # No actuator turns a command into no torque or the opposite one: the support did not
    # determine these joints' torque (on 25 transitions such a fit drove a robot 0.83 rad off
    # where the URDF model tracked 0.07).
    joints = np.flatnonzero(state.theta[:, 0] <= 0) if isinstance(state, PhysicsFit) else []
    if len(joints):
        return f'the torque coefficient of joints {(joints + 1).tolist()} is not positive ' \
               '(not identifiable from this support)'
    return ''


_worker_models: TrainedModels | None = None  # in an adaptation worker process


def _start_worker(models: TrainedModels, method: str | None, threads: int) -> None:
    global _worker_models
    # A terminal's Ctrl-C reaches the whole process group: the node stops this worker itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(10)  # the control loop goes first
    # It holds nothing to save: the interpreter's teardown (seconds of garbage collection of
    # torch's modules, at this priority on a busy machine) would only delay the node's exit.
    atexit.register(_exit_at_once)
    torch.set_num_threads(threads)
    warm_up(models, method)
    _worker_models = models


def _exit_at_once() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _adapt_in_worker(method: str, active_state: dict, transitions: Transitions,
                     inner_steps: int, lr_scale: float) -> Judgement:
    return adapt_weights(_worker_models, method, active_state, transitions,
                         inner_steps=inner_steps, lr_scale=lr_scale)


class AdaptivePolicy:
    """The policy the robot runs, and its adaptation.

    :param models: the loaded checkpoint (meta-policy, pooled network, formulation).
    :param method: how support data become weights: ``maml`` (from the meta-policy),
        or a baseline (``pretrained_finetune``, ``last_layer_ridge``: from the pooled
        network); ``maml_physics``: the checkpoint's physics model, whose fit takes the
        place of the weights; ``None`` never adapts.
    :param initial_state: weights to start from instead of the method's network.
    :param worker: where the gradient steps run: ``process`` (started here, in the
        background; :meth:`close` stops it), ``thread`` or ``inline``.
    :param min_transitions: fewest support transitions worth adapting on.
    """

    def __init__(self, *, models: TrainedModels, method: str | None = 'maml',
                 initial_state: dict | None = None, worker: str = 'thread',
                 min_transitions: int = 10) -> None:
        if method is not None and method not in ADAPTATIONS and method != PHYSICS:
            raise ValueError(f'unknown adaptation {method!r}; choose from '
                             f'{sorted(ADAPTATIONS) + [PHYSICS]}')
        if method == PHYSICS and models.physics is None:
            raise ValueError('this checkpoint has no physics model (it was trained before '
                             'there was one): retrain it, or adapt with maml')
        if worker not in WORKERS:
            raise ValueError(f'worker must be one of {WORKERS}, got {worker!r}')
        self.models, self.method, self.worker = models, method, worker
        self.min_transitions = min_transitions
        self._pool = self._start_pool() if worker == 'process' else None
        self._physics = PhysicsAdaptation(models.formulation, models.physics) \
            if method == PHYSICS else None
        self._pipeline = CommandPipeline(n_joints=models.formulation.n_joints) \
            if self._physics is not None else None  # the commands sent, for the lag inversion
        if initial_state is None and self._physics is not None:
            initial_state = self._physics.initial(adapted=bool(models.info.get('adapted')))
        elif initial_state is None:
            start = models.pooled if method != 'maml' else models.meta_policy
            initial_state = start.state_dict()
        self._initial_state = initial_state
        self._active = self._controller(initial_state)
        self._previous: tuple | None = None  # (controller, adapted) before the last swap
        # The first command pays for torch's and the model's first calls (150 ms): here, not
        # at the robot's first control tick.
        home = np.array(models.formulation.robot.home)
        self.command(home, 0 * home, home, 0 * home, 0 * home)
        self._adapted = False
        self._worker: threading.Thread | None = None
        self._generation = 0  # bumped by reset(): results of older runs are dropped
        self._lock = threading.Lock()
        #: The outcome of the last adaptation that finished (None before any).
        self.last_outcome: AdaptationOutcome | None = None

    def _start_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context('spawn'),
            initializer=_start_worker, initargs=(self.models, self.method, torch.get_num_threads()))
        self._started = pool.submit(int)  # start the worker now, not at the first adaptation
        return pool

    def _controller(self, state: dict | PhysicsFit) -> PolicyController | PhysicsController:
        if self._physics is not None:
            return PhysicsController(adaptation=self._physics, fit=state, pipeline=self._pipeline)
        return PolicyController(formulation=self.models.formulation,
                                architecture=self.models.meta_policy.architecture(), state=state)

    # -- the control thread's side ------------------------------------------

    def command(self, q: np.ndarray, qd: np.ndarray, q_ref: np.ndarray, qd_ref: np.ndarray,
                qdd_ref: np.ndarray) -> np.ndarray:
        """The active policy's command (not yet safety-filtered)."""
        return self._active.command(q, qd, q_ref, qd_ref, qdd_ref)

    def hold(self, q: np.ndarray) -> np.ndarray:
        """The active model's command that holds posture ``q`` at rest (gravity compensation,
        with the payload and actuator gain it adapted to)."""
        return self._active.hold(q)

    def sent(self, command: np.ndarray) -> None:
        """The command that went out (after the safety filter): the physics model inverts the
        delay and lag it identified from these (a network needs no history)."""
        if self._pipeline is not None:
            self._pipeline.sent(command)

    @property
    def adapted(self) -> bool:
        """Whether an adapted policy (not the meta-policy) is active."""
        return self._adapted

    @property
    def ready(self) -> bool:
        """Whether an adaptation can start at once (a worker process takes seconds to start and
        warm up; the first adaptation waits for it, and would report that wait as its time)."""
        return self._pool is None or self._started.done()

    @property
    def busy(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def active_state(self) -> dict[str, torch.Tensor] | PhysicsFit:
        """Weights of the active policy (e.g. to save them), or the active physics fit."""
        state = self._active.state
        return state if isinstance(state, PhysicsFit) else dict(state)

    def identified(self) -> dict | None:
        """What the adapted physics fit says about the robot (None before adapting, and for
        networks)."""
        state = self._active.state
        return state.physical() if self._adapted and isinstance(state, PhysicsFit) else None

    def active_models(self) -> TrainedModels:
        """The checkpoint's models with the active (adapted) weights as the policy; for the
        physics model, the active fit as its prior (delay and lag are found again)."""
        models = copy.deepcopy(self.models)
        state = self.active_state()
        if not isinstance(state, PhysicsFit):
            models.meta_policy.load_state_dict(state)
        elif state.adapted:  # (an unadapted fit is the checkpoint's prior)
            with torch.no_grad():
                models.physics.prior.copy_(torch.as_tensor(state.theta))
            models.info = {**models.info, 'identified': state.physical()}
        models.info = {**models.info, 'adapted': self._adapted}
        return models

    # -- adaptation ------------------------------------------------------------

    def start(self, transitions: Transitions, *, inner_steps: int, inner_lr: float | None = None,
              on_done: Callable[[AdaptationOutcome], None] | None = None) -> str:
        """Adapt in the background (``inline``: now); '' when started, else why not.

        :param inner_lr: the inner learning rate; learned rates are scaled by ``inner_lr`` /
            the checkpoint's. None: the checkpoint's.
        """
        base = self.models.learner.base_inner_lr
        lr_scale = inner_lr / base if inner_lr is not None and base > 0 else 1.0
        if self.method is None:
            return 'this policy does not adapt'
        if len(transitions) < self.min_transitions:
            return f'only {len(transitions)} support transitions'
        if not self.ready:
            return 'the adaptation worker process is still starting'
        if self.worker == 'inline':
            outcome = self.adapt(transitions, inner_steps=inner_steps, lr_scale=lr_scale)
            if on_done is not None:
                on_done(outcome)
            return ''
        with self._lock:
            if self.busy:
                return 'an adaptation is running'
            generation = self._generation

            def run() -> None:
                outcome = self.adapt(transitions, inner_steps=inner_steps, lr_scale=lr_scale,
                                     generation=generation)
                if on_done is not None:
                    on_done(outcome)

            self._worker = threading.Thread(target=run, name='maml_adaptation', daemon=True)
            self._worker.start()
            return ''

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a running adaptation; True when none is running any more."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
        return not self.busy

    def adapt(self, transitions: Transitions, *, inner_steps: int, lr_scale: float = 1.0,
              generation: int | None = None) -> AdaptationOutcome:
        """Adapt now (this thread waits for the worker process, if any) and swap the result in
        if it passes the guard."""
        start = time.perf_counter()
        active = self.active_state()
        judged = None
        try:
            if self._pool is not None:
                judged = self._pool.submit(_adapt_in_worker, self.method, active, transitions,
                                           inner_steps, lr_scale).result()
            else:
                judged = adapt_weights(self.models, self.method, active, transitions,
                                       inner_steps=inner_steps, lr_scale=lr_scale)
            reason = rejection(judged)
        except Exception as error:  # e.g. the worker process died: the robot carries on
            reason = f'adaptation failed: {type(error).__name__}: {error}'
            if isinstance(error, BrokenProcessPool):
                self._pool = self._start_pool()  # a new worker for the next adaptation
        with self._lock:
            if generation is not None and generation != self._generation:
                reason = reason or 'adaptation was reset while it ran'
            if not reason:
                self._previous = (self._active, self._adapted)
                self._active, self._adapted = self._controller(judged.state), True
            outcome = AdaptationOutcome(
                accepted=not reason, reason=reason, transitions=len(transitions),
                loss_before=judged.loss_before if judged else math.nan,
                loss_after=judged.loss_after if judged else math.nan,
                held_out=judged.held_out if judged else None,
                kept=judged.kept if judged and not reason else (),
                duration_ms=1e3 * (time.perf_counter() - start))
            self.last_outcome = outcome
        return outcome

    def rollback(self, reason: str) -> AdaptationOutcome | None:
        """Back to the policy that ran before the last swap, whose adaptation made the robot
        do worse (``reason``); a running adaptation's result will be dropped (it started from
        the model rolled back). The last outcome, rolled back; None with nothing to go back
        to."""
        with self._lock:
            if self._previous is None:  # (a swap sets last_outcome too)
                return None
            self._generation += 1
            (self._active, self._adapted), self._previous = self._previous, None
            self.last_outcome = self.last_outcome.rolled_back_because(reason)
            return self.last_outcome

    def reset(self) -> None:
        """Back to the initial policy; a running adaptation's result will be dropped."""
        with self._lock:
            self._generation += 1
            self._active, self._adapted = self._controller(self._initial_state), False
            self._previous = None

    def close(self, wait: float = 0.0) -> None:
        """Drop a running adaptation's result (waiting up to ``wait`` seconds for it to end:
        a process that exits under one aborts) and stop the worker process."""
        self.reset()
        self.wait(wait)
        if self._pool is not None:
            if not self._started.done():  # still importing torch and warming up: of no use now
                # (ProcessPoolExecutor.kill_workers from Python 3.14 on)
                for process in list(getattr(self._pool, '_processes', {}).values()):
                    process.kill()
            # Waiting for the pool's own thread too: left running into the interpreter's exit,
            # it races the exit hook of concurrent.futures (a traceback, once in a while).
            self._pool.shutdown(wait=wait > 0, cancel_futures=True)
