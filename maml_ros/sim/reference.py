"""Smooth random reference trajectories inside the joint position and velocity limits.

Each joint follows a sum of sinusoids around a centre near the home posture,
faded in by a quintic ramp so that the trajectory starts at rest, with zero
acceleration, at its centre (where the robot is reset)::

    q*(t) = c + e(t) * sum_k a_k sin(w_k t + phi_k),    e: 0 -> 1 over ramp_time

Amplitudes are scaled per joint so that analytic bounds hold:
``|q* - c| <= sum a_k`` keeps q* a margin inside the position limits and
``|qd*| <= max|e'| sum a_k + sum a_k w_k`` keeps it a fraction of the velocity limit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from maml_ros.sim.model import JointLimits

_MAX_RAMP_SLOPE = 1.875  # max of d/du (10u^3 - 15u^4 + 6u^5)


@dataclass(frozen=True, kw_only=True)
class ReferenceConfig:
    """How random references are drawn.

    :param components: sinusoids per joint.
    :param max_amplitude: largest total amplitude per joint (rad).
    :param frequency_range: ``(low, high)`` frequency of the sinusoids (Hz).
    :param velocity_fraction: largest reference speed as a fraction of the velocity limit.
    :param position_margin: distance kept from the position limits (rad).
    :param center_spread: the centre is home plus a uniform offset in ``+-center_spread`` (rad).
    :param ramp_time: seconds over which the motion fades in from rest.
    """

    components: int = 3
    max_amplitude: float = 0.5
    frequency_range: tuple[float, float] = (0.05, 0.4)
    velocity_fraction: float = 0.5
    position_margin: float = 0.15
    center_spread: float = 0.2
    ramp_time: float = 1.0

    def __post_init__(self) -> None:
        low, high = self.frequency_range
        if self.components < 1 or not 0 < low <= high:
            raise ValueError('need components >= 1 and 0 < frequency low <= high')
        if not 0 < self.velocity_fraction <= 1 or self.max_amplitude < 0:
            raise ValueError('need 0 < velocity_fraction <= 1 and max_amplitude >= 0')
        if self.position_margin < 0 or self.center_spread < 0 or self.ramp_time <= 0:
            raise ValueError('need position_margin >= 0, center_spread >= 0, ramp_time > 0')

    @classmethod
    def from_dict(cls, settings: dict[str, Any] | None) -> ReferenceConfig:
        """From a ``reference`` settings group or a checkpoint (defaults where it is silent).

        :raises ValueError: for unknown settings or values out of their domain.
        """
        settings = dict(settings or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f'unknown reference settings {unknown}; expected some of '
                             f'{sorted(known)}')
        if 'frequency_range' in settings:
            settings['frequency_range'] = tuple(settings['frequency_range'])
        return cls(**settings)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-friendly dict that :meth:`from_dict` reads back."""
        return {**dataclasses.asdict(self), 'frequency_range': list(self.frequency_range)}


@dataclass(frozen=True)
class ReferenceTrajectory:
    """Desired positions, velocities and accelerations at control steps ``0..steps``.

    Arrays have ``steps + 1`` rows (row ``t`` is time ``t * control_period``) and
    one column per controlled joint.
    """

    positions: np.ndarray
    velocities: np.ndarray
    accelerations: np.ndarray
    control_period: float

    @property
    def steps(self) -> int:
        """Number of control steps (one fewer than rows)."""
        return len(self.positions) - 1

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(q, qd, qdd)`` at ``t`` seconds: the row of that control step, the last row after
        the end (the same interface as :class:`maml_ros.online.waypoints.WaypointReference`)."""
        row = min(max(int(t / self.control_period + 1e-9), 0), self.steps)
        return self.positions[row], self.velocities[row], self.accelerations[row]


@dataclass(frozen=True)
class SineReference:
    """``q*(t)`` of the module docstring, evaluated at the times asked for (no end: the
    control loop's built-in test trajectory costs microseconds per tick, not a table).

    :param center: the centre ``c`` per joint.
    :param amplitude: ``a_k`` per joint and component.
    :param omega: ``w_k`` (rad/s) per joint and component.
    :param phase: ``phi_k`` per joint and component.
    :param ramp_time: seconds over which the motion fades in from rest.
    """

    center: np.ndarray
    amplitude: np.ndarray
    omega: np.ndarray
    phase: np.ndarray
    ramp_time: float

    def evaluate(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(q, qd, qdd)`` at ``times`` (s), one row per time."""
        t = np.asarray(times, dtype=float)[:, None, None]  # (time, joint, component)
        angle = self.omega * t + self.phase
        sine, cosine = np.sin(angle), np.cos(angle)
        wave = np.einsum('tjk,jk->tj', sine, self.amplitude)
        wave_d = np.einsum('tjk,jk->tj', cosine, self.amplitude * self.omega)
        wave_dd = -np.einsum('tjk,jk->tj', sine, self.amplitude * self.omega**2)
        env, env_d, env_dd = _ramp(t[:, :, 0] / self.ramp_time, self.ramp_time)
        return (self.center + env * wave, env_d * wave + env * wave_d,
                env_dd * wave + 2 * env_d * wave_d + env * wave_dd)

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(q, qd, qdd)`` at ``t`` seconds."""
        q, qd, qdd = self.evaluate(np.array([t]))
        return q[0], qd[0], qdd[0]

    def trajectory(self, steps: int, control_period: float) -> ReferenceTrajectory:
        """The reference at control steps ``0..steps``."""
        q, qd, qdd = self.evaluate(np.arange(steps + 1) * control_period)
        return ReferenceTrajectory(positions=q, velocities=qd, accelerations=qdd,
                                   control_period=control_period)


def random_sines(rng: np.random.Generator, *, limits: JointLimits, home: np.ndarray,
                 config: ReferenceConfig | None = None) -> SineReference:
    """Draw a smooth reference.

    :param rng: the task's generator (the only source of randomness).
    :param limits: joint limits of the controlled joints.
    :param home: nominal posture the centre is drawn around.
    :param config: how to draw it (defaults: :class:`ReferenceConfig`).
    """
    config = config if config is not None else ReferenceConfig()
    n = len(home)
    lower = limits.lower + config.position_margin
    upper = limits.upper - config.position_margin
    center = np.clip(np.asarray(home) + rng.uniform(-1, 1, n) * config.center_spread,
                     lower, upper)
    shape = rng.uniform(0.2, 1.0, (n, config.components))
    shape /= shape.sum(axis=1, keepdims=True)  # total amplitude 1 per joint before scaling
    omega = 2 * np.pi * rng.uniform(*config.frequency_range, (n, config.components))
    phase = rng.uniform(0, 2 * np.pi, (n, config.components))
    room = np.maximum(np.minimum(center - lower, upper - center), 0.0)
    speed_per_amplitude = _MAX_RAMP_SLOPE / config.ramp_time + (shape * omega).sum(axis=1)
    total = np.minimum.reduce([
        np.full(n, config.max_amplitude),
        room,
        config.velocity_fraction * limits.velocity / speed_per_amplitude,
    ])
    return SineReference(center=center, amplitude=shape * total[:, None], omega=omega,
                         phase=phase, ramp_time=config.ramp_time)


def random_reference(
    rng: np.random.Generator,
    *,
    limits: JointLimits,
    home: np.ndarray,
    steps: int,
    control_period: float,
    config: ReferenceConfig | None = None,
) -> ReferenceTrajectory:
    """Draw a smooth reference (:func:`random_sines`) for ``steps`` control steps.

    :param steps: control steps; the trajectory has ``steps + 1`` samples.
    :param control_period: seconds per control step.
    """
    return random_sines(rng, limits=limits, home=home, config=config).trajectory(
        steps, control_period)


def _ramp(u: np.ndarray, duration: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quintic smooth step over ``u`` in [0, 1] and its time derivatives."""
    u = np.clip(u, 0.0, 1.0)
    value = u**3 * (10 - 15 * u + 6 * u**2)
    slope = 30 * u**2 * (1 - u) ** 2 / duration
    curvature = 60 * u * (1 - u) * (1 - 2 * u) / duration**2
    return value, slope, curvature
