"""Adapt offline from recorded ticks, and judge the result on what the robot did next.

:func:`replay` splits a bag's transitions by time into a support window and a held-out
part, adapts on the support exactly as the adapter does
(:class:`~maml_ros.online.adaptive_policy.AdaptivePolicy`, inline), and compares the
commands three models predict for the held-out transitions with the commands that were
sent: the unadapted model (what the robot runs before adapting), the adapted one, and the
classical identification (``sysid``) fitted on the same support. A model that predicts
the commands a robot needed is the one whose computed torque tracks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from maml_ros.model.adaptation import predict_commands
from maml_ros.model.held_out import Prediction
from maml_ros.model.inertial_identification import InertialFit
from maml_ros.model.model_based import (
    JointModel,
    SystemIdentification,
    inertial_identification,
    sysid_policy,
)
from maml_ros.model.outcome import AdaptationOutcome
from maml_ros.model.physics_adaptation import PhysicsAdaptation, PhysicsFit
from maml_ros.model.trained_models import TrainedModels
from maml_ros.model.transitions import Transitions
from maml_ros.online.adaptive_policy import AdaptivePolicy


def predict(models: TrainedModels, state: dict | PhysicsFit | InertialFit | JointModel,
            transitions: Transitions) -> Prediction:
    """The commands ``state`` (network weights, a physics fit, a ``sysid`` or ``sysid_simple``
    model) says the robot needed for ``transitions``, its delay and lag accounted for."""
    if isinstance(state, InertialFit):
        return inertial_identification(models.formulation.robot).predict(state, transitions)
    if isinstance(state, JointModel):
        return SystemIdentification(models.formulation).predict(state, transitions)
    if isinstance(state, PhysicsFit):
        return PhysicsAdaptation(models.formulation, models.physics).predict(state, transitions)
    return predict_commands(models, state, transitions)


@dataclass(frozen=True)
class Replay:
    """One offline adaptation and its judgement.

    :param support: the transitions adapted on; ``support_span``: the stamps of the first
        and last of their next states (s).
    :param held_out: the transitions after them.
    :param outcome: the adaptation's outcome (support loss before and after).
    :param policy: the policy adapted (its ``active_models()`` is the adapted checkpoint).
    :param predictions: ``unadapted``, ``adapted`` and ``sysid``, on ``held_out``.
    :param identified: what the adapted model and ``sysid`` say about the robot.
    """

    support: Transitions
    support_span: tuple[float, float]
    held_out: Transitions
    outcome: AdaptationOutcome
    policy: AdaptivePolicy
    predictions: dict[str, Prediction]
    identified: dict[str, dict | None]

    def held_out_rms(self) -> dict[str, dict]:
        """Per model: the RMS command prediction error on the held-out transitions, per
        joint and over all joints (command units)."""
        figures = {}
        for label, prediction in self.predictions.items():
            rms = prediction.rms(self.held_out)
            figures[label] = {'per_joint': rms.round(4).tolist(),
                              'all': round(float(np.sqrt(np.mean(rms ** 2))), 4)}
        return figures


def split(transitions: Transitions, stamps: np.ndarray, *, support_size: int,
          start: float = 0.0, origin: float | None = None,
          window: tuple[float, int] | None = None) -> tuple[Transitions, np.ndarray, Transitions]:
    """The support (and its stamps) and the held-out transitions after it.

    :param stamps: the stamp of each transition's next state (s), increasing.
    :param support_size: support transitions: the first ones whose next state is stamped at
        least ``start`` seconds after ``origin`` (default: the first stamp).
    :param window: instead, ``(end, count)``: the newest ``count`` transitions whose next
        state is stamped at or before ``end`` (the window an adapter adapted on).
    :raises ValueError: too few transitions.
    """
    if window is not None:
        end, count = window
        first = np.flatnonzero(stamps <= end)[-count:]
        if len(first) < count:
            raise ValueError(f'the window has {count} transitions; {len(first)} of them are '
                             'here (recording started later)')
    else:
        origin = stamps[0] if origin is None else origin
        first = np.flatnonzero(stamps >= origin + start)[:support_size]
        if len(first) < support_size:
            raise ValueError(f'{len(first)} transitions from {start:g} s on, fewer than the '
                             f'{support_size} asked for (there are {len(transitions)})')
    end = stamps[first[-1]]
    return transitions[first], stamps[first], transitions[np.flatnonzero(stamps > end)]


def replay(transitions: Transitions, stamps: np.ndarray, models: TrainedModels, *,
           method: str, support_size: int = 200, start: float = 0.0,
           origin: float | None = None, window: tuple[float, int] | None = None,
           inner_steps: int = 5, inner_lr: float | None = None) -> Replay:
    """Adapt on a support window of ``transitions`` and predict the held-out commands
    (module docstring); the window as :func:`split` chooses it; ``method``,
    ``inner_steps`` and ``inner_lr`` as the adapter's parameters.

    :raises ValueError: too few transitions (see :func:`split`), or none held out.
    """
    support, support_stamps, held_out = split(transitions, stamps, support_size=support_size,
                                              start=start, origin=origin, window=window)
    if not len(held_out):
        raise ValueError('no transition after the support window to judge the adaptation on')
    policy = AdaptivePolicy(models=models, method=method, worker='inline')
    unadapted = policy.active_state()
    reason = policy.start(support, inner_steps=inner_steps, inner_lr=inner_lr)
    if reason:
        raise ValueError(f'cannot adapt: {reason}')
    identification = sysid_policy(models)  # judged by the same rule
    identification.start(support, inner_steps=inner_steps)
    sysid = identification.model
    adapted = policy.active_state()
    if isinstance(adapted, PhysicsFit):  # both through the moving average of the support
        unadapted = dataclasses.replace(unadapted, smoothing=adapted.smoothing)
    states = {'unadapted': unadapted, 'adapted': adapted, 'sysid': sysid}
    return Replay(support=support, support_span=(float(support_stamps[0]),
                                                 float(support_stamps[-1])),
                  held_out=held_out, outcome=policy.last_outcome, policy=policy,
                  predictions={label: predict(models, state, held_out)
                               for label, state in states.items()},
                  identified={'adapted': policy.identified(),
                              'sysid': identification.identified()})
