"""What a command means on each command interface: limits, rest, exploration units.

One home for the rules the simulated robot, rollouts, the sim node and the
on-robot control loop must agree on:

- limits: effort and velocity commands are symmetric about zero; position
  commands lie between the joint's position limits;
- rest: the command that holds still without doing anything (zero effort or
  velocity; for positions, where the joint is);
- exploration: Gaussian noise of ``std`` times a per-joint scale (the velocity
  limit; for positions, how far the velocity limit moves the joint in one
  control period; for effort, the torque that changes the joint's speed by its
  velocity limit in one control period given its inertia, or the effort limit
  where that is lower or the inertia is not given), clipped at
  ``EXPLORATION_CLIP`` std so a rare draw cannot kick the robot. In effort
  limits alone a 0.0002 kg*m^2 wrist with a 20 N*m limit (the xArm6) took 2%
  noise as 2000 rad/s^2 kicks and tracked 3 rad off.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from maml_ros.sim.model import JointLimits

EXPLORATION_CLIP = 2.5  # standard deviations
EXPLORATION_STD = 0.02  # the default exploration: 2% of the command scale


@dataclass(frozen=True)
class CommandSpace:
    """Commands of one interface for one robot (arrays in joint order).

    :param interface: ``effort``, ``velocity`` or ``position``.
    :param lower: smallest command per joint.
    :param upper: largest command per joint.
    :param scale: the unit of exploration noise per joint.
    """

    interface: str
    lower: np.ndarray
    upper: np.ndarray
    scale: np.ndarray

    @classmethod
    def of(cls, limits: JointLimits, interface: str, control_period: float, *,
           inertia: np.ndarray | None = None) -> CommandSpace:
        """The command space of ``interface`` for a robot with these joint limits.

        :param inertia: per joint (kg*m^2), for the effort exploration scale.
        """
        if interface == 'effort':
            scale = limits.effort if inertia is None else np.minimum(
                limits.effort, np.asarray(inertia) * limits.velocity / control_period)
            return cls(interface, -limits.effort, limits.effort, scale)
        if interface == 'velocity':
            return cls(interface, -limits.velocity, limits.velocity, limits.velocity)
        if interface == 'position':
            return cls(interface, limits.lower, limits.upper, limits.velocity * control_period)
        raise ValueError(f'unknown command interface {interface!r}')

    def with_scale(self, scale: np.ndarray | None) -> CommandSpace:
        """The same space with another exploration scale (``None``: this one)."""
        return self if scale is None else dataclasses.replace(self, scale=np.asarray(scale,
                                                                                     float))

    def rest(self, q: np.ndarray) -> np.ndarray:
        """The command that holds a robot at posture ``q`` still, doing nothing."""
        return np.array(q, float) if self.interface == 'position' else np.zeros(len(self.lower))

    def exploration(self, rng: np.random.Generator, std: float, steps: int | None = None
                    ) -> np.ndarray:
        """Exploration noise for one tick (``steps=None``) or ``steps`` ticks, in command units."""
        shape = (len(self.scale),) if steps is None else (steps, len(self.scale))
        return np.clip(rng.standard_normal(shape), -EXPLORATION_CLIP, EXPLORATION_CLIP) \
            * std * self.scale
