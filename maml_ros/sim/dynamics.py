"""Robot dynamics of one task, and the ranges that domain randomization draws them from.

A *task* is one sample of :class:`Dynamics`. Training draws tasks from
:class:`DynamicsRanges` (which come from YAML / ROS parameters as a plain
dict); evaluation and the simulated "real robot" set them explicitly. The
ranges also answer whether a given robot lies inside what training saw
(:meth:`DynamicsRanges.contains`) and draw robots beyond it
(:meth:`DynamicsRanges.sample_beyond`) for out-of-range evaluation.

Per-joint and per-link factors accept a scalar (the same for every joint or
link) or one value per element; the robot checks the length against its URDF.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Values = float | tuple[float, ...]

# name -> (unit, smallest allowed value, whether that bound is excluded, shape).
# Shape 'joint' is one value per controlled joint, 'link' one per URDF link.
_FACTORS: dict[str, tuple[str, float, bool, str]] = {
    'link_mass_scale': ('', 0.0, True, 'link'),
    'payload_mass': ('kg', 0.0, False, 'scalar'),
    'joint_damping': ('N*m*s/rad', 0.0, False, 'joint'),
    'joint_friction': ('N*m', 0.0, False, 'joint'),
    'actuator_gain': ('', 0.0, True, 'joint'),
    'latency_steps': ('control steps', 0.0, False, 'scalar'),
    'actuator_lag': ('s', 0.0, False, 'joint'),
    'torque_ripple': ('N*m', 0.0, False, 'joint'),
    'ripple_phase': ('rad', 0.0, False, 'joint'),
    'position_noise_std': ('rad', 0.0, False, 'scalar'),
    'velocity_noise_std': ('rad/s', 0.0, False, 'scalar'),
}
FACTOR_NAMES: tuple[str, ...] = tuple(_FACTORS)
# Angles: a value "beyond" the range is one inside it, so out-of-range draws leave them be.
_CIRCULAR = frozenset({'ripple_phase'})


def _check_value(name: str, value: Any, *, what: str = '', nested: bool = False) -> Values:
    """Validate one factor value (scalar or per-element list) against its domain."""
    unit, minimum, exclusive, shape = _FACTORS[name]
    label = f'{name}{what}'
    if isinstance(value, (list, tuple, np.ndarray)) and shape != 'scalar' and not nested:
        items = list(np.asarray(value).ravel()) if isinstance(value, np.ndarray) else list(value)
        if not items:
            raise ValueError(f'{label} must not be an empty list')
        return tuple(_check_value(name, item, what=what, nested=True) for item in items)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        kind = 'a number' if shape == 'scalar' else 'a number or a list of numbers'
        raise ValueError(f'{label} must be {kind}, got {value!r}')
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f'{label} must be finite, got {number}')
    if number < minimum or (exclusive and number == minimum):
        relation = '>' if exclusive else '>='
        raise ValueError(f'{label} must be {relation} {minimum:g} {unit}, got {number:g}'.strip())
    if name == 'latency_steps':
        if number != int(number):
            raise ValueError(f'{label} must be a whole number of control steps, got {number:g}')
        return int(number)
    return number


def _check_keys(data: Mapping[str, Any], what: str) -> None:
    unknown = sorted(set(data) - set(FACTOR_NAMES))
    if unknown:
        raise ValueError(f'unknown {what} key(s) {unknown}; expected some of {list(FACTOR_NAMES)}')


def _plain(value: Values) -> float | int | list[float]:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True, kw_only=True)
class Dynamics:
    """The dynamics of one task (one robot); the defaults are the nominal URDF robot.

    :param link_mass_scale: factor on every link's mass and inertia: a scalar, or one
        value per URDF link after the base (PyBullet link indices; 12 for the Panda).
    :param payload_mass: extra mass on the payload link (kg), inertia scaled with it.
    :param joint_damping: viscous damping per controlled joint (N*m*s/rad).
    :param joint_friction: Coulomb friction per controlled joint (N*m), smoothed by tanh.
    :param actuator_gain: factor between commanded and produced torque, per joint.
    :param latency_steps: control steps between issuing a command and its taking effect.
    :param actuator_lag: time constant of the first-order lag between the torque in force and
        the torque produced, per joint (s; effort interface).
    :param torque_ripple: amplitude of a position-periodic torque of the transmission, per
        joint (N*m): ``torque_ripple * sin(2 pi q / RIPPLE_PERIOD + ripple_phase)``.
    :param ripple_phase: its phase, per joint (rad).
    :param position_noise_std: std of the noise on measured joint positions (rad).
    :param velocity_noise_std: std of the noise on measured joint velocities (rad/s).
    """

    link_mass_scale: Values = 1.0
    payload_mass: float = 0.0
    joint_damping: Values = 0.0
    joint_friction: Values = 0.0
    actuator_gain: Values = 1.0
    latency_steps: int = 0
    actuator_lag: Values = 0.0
    torque_ripple: Values = 0.0
    ripple_phase: Values = 0.0
    position_noise_std: float = 0.0
    velocity_noise_std: float = 0.0

    def __post_init__(self) -> None:
        # Normalise (lists -> tuples, numpy -> float) so that equal robots compare equal.
        for name in FACTOR_NAMES:
            object.__setattr__(self, name, _check_value(name, getattr(self, name)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Dynamics:
        """Build from a plain dict (YAML); missing keys take nominal values.

        :raises ValueError: for unknown keys or values outside a factor's domain.
        """
        _check_keys(data, 'dynamics')
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-friendly dict that :meth:`from_dict` reads back."""
        return {name: _plain(getattr(self, name)) for name in FACTOR_NAMES}

    def per_element(self, name: str, count: int) -> np.ndarray:
        """Factor ``name`` broadcast to ``count`` elements (joints or links).

        :raises ValueError: when a per-element list has the wrong length.
        """
        value = np.asarray(getattr(self, name), dtype=float)
        if value.ndim == 0:
            return np.full(count, float(value))
        if value.shape != (count,):
            raise ValueError(f'{name} has {value.size} values but the robot has {count}')
        return value.copy()


def _pair(name: str, value: Any) -> tuple[Values, Values]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f'range {name} must be a [low, high] pair, got {value!r}')
    low = _check_value(name, value[0], what=' (low)')
    high = _check_value(name, value[1], what=' (high)')
    if np.any(np.asarray(low, dtype=float) > np.asarray(high, dtype=float)):
        raise ValueError(f'range {name} has low > high: {value!r}')
    return low, high


@dataclass(frozen=True, kw_only=True)
class DynamicsRanges:
    """Domain-randomization ranges ``(low, high)``, inclusive, one per dynamics factor.

    Per-joint and per-link factors are drawn independently for each element.
    Bounds may be scalars or per-element lists. The defaults suit the Panda.

    :param link_mass_scale: range of the per-link mass (and inertia) factor.
    :param payload_mass: range of the payload mass (kg).
    :param joint_damping: range of the per-joint viscous damping (N*m*s/rad).
    :param joint_friction: range of the per-joint Coulomb friction (N*m).
    :param actuator_gain: range of the per-joint torque factor.
    :param latency_steps: range of the command latency (whole control steps).
    :param actuator_lag: range of the per-joint torque lag time constant (s).
    :param torque_ripple: range of the per-joint ripple amplitude (N*m).
    :param ripple_phase: range of the per-joint ripple phase (rad).
    :param position_noise_std: range of the position measurement noise std (rad).
    :param velocity_noise_std: range of the velocity measurement noise std (rad/s).
    """

    link_mass_scale: tuple[Values, Values] = (0.8, 1.2)
    payload_mass: tuple[Values, Values] = (0.0, 2.0)
    joint_damping: tuple[Values, Values] = (0.0, 0.3)
    joint_friction: tuple[Values, Values] = (0.0, 0.3)
    actuator_gain: tuple[Values, Values] = (0.8, 1.2)
    latency_steps: tuple[Values, Values] = (0, 2)
    actuator_lag: tuple[Values, Values] = (0.0, 0.02)
    torque_ripple: tuple[Values, Values] = (0.0, 0.3)
    ripple_phase: tuple[Values, Values] = (0.0, 2 * math.pi)
    position_noise_std: tuple[Values, Values] = (0.0, 0.001)
    velocity_noise_std: tuple[Values, Values] = (0.0, 0.01)

    def __post_init__(self) -> None:
        for name in FACTOR_NAMES:
            object.__setattr__(self, name, _pair(name, getattr(self, name)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DynamicsRanges:
        """Build from a plain dict of ``name: [low, high]``; missing keys keep the defaults.

        :raises ValueError: for unknown keys, malformed pairs, low > high, or bounds
            outside a factor's domain.
        """
        _check_keys(data, 'dynamics range')
        return cls(**{name: tuple(value) if isinstance(value, list) else value
                      for name, value in data.items()})

    def to_dict(self) -> dict[str, list]:
        """Plain dict of ``name: [low, high]`` that :meth:`from_dict` reads back."""
        return {name: [_plain(bound) for bound in getattr(self, name)] for name in FACTOR_NAMES}

    def bounds(self, name: str, count: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Low and high bounds of factor ``name`` broadcast to ``count`` elements."""
        low, high = getattr(self, name)
        try:
            return (np.broadcast_to(np.asarray(low, dtype=float), (count,)).copy(),
                    np.broadcast_to(np.asarray(high, dtype=float), (count,)).copy())
        except ValueError:
            raise ValueError(f'range {name} does not have {count} elements') from None

    def sample(self, rng: np.random.Generator, *, n_joints: int, n_links: int) -> Dynamics:
        """Draw one task's dynamics uniformly inside the ranges.

        :param rng: the task's generator (the only source of randomness).
        :param n_joints: number of controlled joints.
        :param n_links: number of URDF links (PyBullet ``getNumJoints``).
        """
        values = {}
        for name in FACTOR_NAMES:
            count = _count(name, n_joints, n_links)
            low, high = self.bounds(name, count)
            if name == 'latency_steps':
                values[name] = int(rng.integers(int(low[0]), int(high[0]) + 1))
            else:
                draw = rng.uniform(low, high)
                values[name] = float(draw[0]) if _FACTORS[name][3] == 'scalar' else tuple(
                    float(x) for x in draw)
        return Dynamics(**values)

    def violations(self, dynamics: Dynamics, *, n_joints: int, n_links: int) -> list[str]:
        """Human-readable list of the factors of ``dynamics`` outside the ranges."""
        found = []
        for name in FACTOR_NAMES:
            count = _count(name, n_joints, n_links)
            low, high = self.bounds(name, count)
            value = dynamics.per_element(name, count)
            # A relative tolerance so that values read back from YAML stay inside.
            tol = 1e-9 * np.maximum(1.0, np.abs(value))
            outside = (value < low - tol) | (value > high + tol)
            if np.any(outside):
                low_bound, high_bound = (_plain(bound) for bound in getattr(self, name))
                found.append(f'{name}={_plain(getattr(dynamics, name))} outside '
                             f'[{low_bound}, {high_bound}]')
        return found

    def contains(self, dynamics: Dynamics, *, n_joints: int, n_links: int) -> bool:
        """Whether every factor of ``dynamics`` lies inside the ranges (in-range evaluation)."""
        return not self.violations(dynamics, n_joints=n_joints, n_links=n_links)

    def sample_beyond(
        self,
        rng: np.random.Generator,
        *,
        n_joints: int,
        n_links: int,
        factors: Sequence[str] | None = None,
        extent: float = 0.5,
    ) -> Dynamics:
        """Draw dynamics outside the ranges, for out-of-range evaluation.

        Each factor in ``factors`` is pushed beyond its range, all its elements to
        the same side (a robot that is heavier, or weaker, overall), by between
        10% and 100% of ``extent`` times the range width; the other factors are
        drawn inside. Below-range values stay inside the factor's domain. (With
        the default ranges and extent, pushing every factor out at once about
        doubles the nominal controller's mean tracking error on the Panda.)

        :param factors: factors to push out; ``None`` for every factor whose range
            has a nonzero width (angles excepted: beyond their range is inside it).
        :param extent: how far beyond, in range widths (at least one latency step).
        :raises ValueError: for an unknown factor or a non-positive extent.
        """
        if extent <= 0:
            raise ValueError(f'extent must be > 0, got {extent}')
        if factors is None:
            factors = [name for name in FACTOR_NAMES if name not in _CIRCULAR
                       and np.any(np.subtract(*map(np.asarray, getattr(self, name)[::-1])) > 0)]
        unknown = sorted(set(factors) - set(FACTOR_NAMES))
        if unknown:
            raise ValueError(f'unknown factor(s) {unknown}; expected some of {list(FACTOR_NAMES)}')
        values = self.sample(rng, n_joints=n_joints, n_links=n_links).to_dict()
        for name in factors:
            values[name] = self._beyond(name, rng, _count(name, n_joints, n_links), extent)
        return Dynamics.from_dict(values)

    def _beyond(self, name: str, rng: np.random.Generator, count: int, extent: float) -> Any:
        _, minimum, exclusive, shape = _FACTORS[name]
        low, high = self.bounds(name, count)
        width = np.maximum(high - low, 1e-3 * np.maximum(1.0, np.abs(high)))
        if name == 'latency_steps':
            return int(high[0]) + int(rng.integers(1, max(1, round(extent * width[0])) + 1))
        # Room below the range, kept strictly inside an open domain bound.
        below = np.minimum(extent * width, (low - minimum) * (0.9 if exclusive else 1.0))
        go_below = bool(np.all(below > 1e-12) and rng.random() < 0.5)
        fraction = rng.uniform(0.1, 1.0, size=count)
        value = low - fraction * below if go_below else high + fraction * extent * width
        return float(value[0]) if shape == 'scalar' else [float(x) for x in value]


def _count(name: str, n_joints: int, n_links: int) -> int:
    shape = _FACTORS[name][3]
    return n_joints if shape == 'joint' else n_links if shape == 'link' else 1

