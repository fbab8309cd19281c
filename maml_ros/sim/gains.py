"""The nominal controller's PD gains, derived per joint from the robot and its ranges.

Computed torque turns each joint's tracking error into a double integrator
driven by the commanded acceleration, scaled by the *loop gain*: produced over
commanded torque (the actuator gain) times nominal over true inertia. The
control loop closes it at discrete times: the command is held for a control
period, arrives ``latency_steps`` periods late and passes the actuator's
first-order lag. Per joint, that loop is (state ``e, e', lag, delay line``)::

    a_k   = -kp e_k - kd e'_k                      issued acceleration
    u_k   = r u_{k-1} + (1 - r) a_{k-L}            in force after delay L and lag r = exp(-T/lag)
    e_k+1 = e_k + T e'_k + T^2/2 g u_k,   e'_k+1 = e'_k + T g u_k

With ``kp = w^2`` and ``kd = 2 w`` (critical damping) the gains are chosen as
the largest whole ``w`` (rad/s) for which this loop is stable in the worst
case the ranges allow, with one more control step of delay than they draw
(a late driver, bus jitter):

- ``L`` = largest ``latency_steps`` + 1, ``lag`` = largest ``actuator_lag`` of the joint;
- ``g`` = largest ``actuator_gain`` times the largest ratio of nominal to true
  inertia, i.e. with every link at its lowest ``link_mass_scale`` (a payload
  only adds inertia and lowers ``g``).

The rule gives 10 rad/s for the Panda's training ranges (0-2 steps, lag up to
20 ms, gain up to 1.2, links down to 0.8 of their mass), where the hand-tuned
12 rad/s had been measured stable at 4 steps of latency with gain 1.2 but
without lag and with nominal masses. Light joints need nothing else here:
computed torque scales every command by the joint's inertia; what their small
inertia does to passive torques is handled by :class:`~maml_ros.sim.robot.SimRobot`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from maml_ros.sim.dynamics import DynamicsRanges
from maml_ros.sim.model import InverseDynamicsModel, RobotConfig

DELAY_MARGIN_STEPS = 1  # control steps of delay beyond the ranges' largest
_SEARCH = (0.1, 1000.0)  # rad/s: where the critical frequency is looked for


def loop_matrix(natural_frequency: float, *, period: float, delay_steps: int,
                loop_gain: float, lag_retention: float = 0.0) -> np.ndarray:
    """The transition matrix of one joint's error loop (module docstring)."""
    kp, kd = natural_frequency ** 2, 2.0 * natural_frequency
    size = 3 + delay_steps  # e, e', u_{k-1}, a_{k-1} .. a_{k-L}
    unit = np.eye(size)
    issued = -kp * unit[0] - kd * unit[1]
    in_force = issued if delay_steps == 0 else unit[2 + delay_steps]
    applied = lag_retention * unit[2] + (1.0 - lag_retention) * in_force
    matrix = np.zeros((size, size))
    matrix[0] = unit[0] + period * unit[1] + 0.5 * period ** 2 * loop_gain * applied
    matrix[1] = unit[1] + period * loop_gain * applied
    matrix[2] = applied
    if delay_steps:
        matrix[3] = issued
        matrix[4:] = unit[3:size - 1]
    return matrix


def is_stable(natural_frequency: float, **loop: float) -> bool:
    """Whether every eigenvalue of :func:`loop_matrix` lies inside the unit circle."""
    return bool(np.max(np.abs(np.linalg.eigvals(loop_matrix(natural_frequency, **loop)))) < 1.0)


def critical_frequency(*, period: float, delay_steps: int, loop_gain: float,
                       lag_retention: float = 0.0) -> float:
    """The natural frequency (rad/s) at which the loop stops being stable (bisection)."""
    loop = dict(period=period, delay_steps=delay_steps, loop_gain=loop_gain,
                lag_retention=lag_retention)
    low, high = _SEARCH
    if not is_stable(low, **loop):
        return 0.0
    for _ in range(60):
        middle = math.sqrt(low * high)
        low, high = (middle, high) if is_stable(middle, **loop) else (low, middle)
    return low


@dataclass(frozen=True)
class TrackingGains:
    """Per-joint PD gains of computed torque and why they are what they are.

    :param natural_frequency: ``w`` per joint (rad/s): ``kp = w^2``, ``kd = 2 w``; 0 where
        no gain keeps the loop stable (pure inverse dynamics; the robot check fails it).
    :param critical_frequency: where the worst-case loop diverges, per joint.
    :param loop_gain: the worst-case loop gain used, per joint.
    :param delay_steps: the delay used (control steps).
    """

    natural_frequency: np.ndarray
    critical_frequency: np.ndarray
    loop_gain: np.ndarray
    delay_steps: int

    @property
    def position_gain(self) -> np.ndarray:
        return self.natural_frequency ** 2

    @property
    def velocity_gain(self) -> np.ndarray:
        return 2.0 * self.natural_frequency


def inertia_ratio(config: RobotConfig, link_mass_scale: np.ndarray, samples: int = 64
                  ) -> np.ndarray:
    """Per controlled joint, the largest ratio of nominal to scaled mass-matrix diagonal
    over postures inside the limits (fixed seed)."""
    nominal = InverseDynamicsModel.shared(config)
    scaled = InverseDynamicsModel(config=config, link_mass_scale=link_mass_scale)
    try:
        rng = np.random.default_rng(0)
        d = nominal.description
        postures = rng.uniform(d.limits.lower, d.limits.upper, (samples, d.n_joints))
        return np.max(nominal.inertia_diagonals(postures) / scaled.inertia_diagonals(postures),
                      axis=0)
    finally:
        scaled.close()


@functools.lru_cache(maxsize=16)
def derive_gains(config: RobotConfig, ranges: DynamicsRanges) -> TrackingGains:
    """The gains of the module docstring's rule for ``config`` under ``ranges``."""
    d = InverseDynamicsModel.shared(config).description
    _, gain_high = ranges.bounds('actuator_gain', d.n_joints)
    scale_low, _ = ranges.bounds('link_mass_scale', d.n_links)
    _, lag_high = ranges.bounds('actuator_lag', d.n_joints)
    _, latency_high = ranges.bounds('latency_steps')
    delay = int(np.max(latency_high)) + DELAY_MARGIN_STEPS
    period = config.control_period
    loop_gain = gain_high * inertia_ratio(config, scale_low)
    retention = np.exp(-period / np.maximum(lag_high, 1e-12))
    critical = np.array([critical_frequency(period=period, delay_steps=delay, loop_gain=g,
                                            lag_retention=r)
                         for g, r in zip(loop_gain, retention, strict=True)])
    return TrackingGains(natural_frequency=np.floor(critical),
                         critical_frequency=critical, loop_gain=loop_gain, delay_steps=delay)
