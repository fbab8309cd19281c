"""What a command means on each command interface: limits, rest, exploration units.

One home for the rules the simulated robot, rollouts, the sim node and the
on-robot control loop must agree on:

- limits: effort and velocity commands are symmetric about zero; position
  commands lie between the joint's position limits;
- rest: the command that holds still without doing anything (zero effort or
  velocity; for positions, where the joint is);
- exploration: Gaussian noise of ``std`` times a per-joint scale (the effort
  limit; the velocity limit; for positions, how far the velocity limit moves
  the joint in one control period), clipped at ``EXPLORATION_CLIP`` std so a
  rare draw cannot kick the robot.
"""

from __future__ import annotations

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
    def of(cls, limits: JointLimits, interface: str, control_period: float) -> CommandSpace:
        """The command space of ``interface`` for a robot with these joint limits."""
        if interface == 'effort':
            return cls(interface, -limits.effort, limits.effort, limits.effort)
        if interface == 'velocity':
            return cls(interface, -limits.velocity, limits.velocity, limits.velocity)
        if interface == 'position':
            return cls(interface, limits.lower, limits.upper, limits.velocity * control_period)
        raise ValueError(f'unknown command interface {interface!r}')

    def rest(self, q: np.ndarray) -> np.ndarray:
        """The command that holds a robot at posture ``q`` still, doing nothing."""
        return np.array(q, float) if self.interface == 'position' else np.zeros(len(self.lower))

    def exploration(self, rng: np.random.Generator, std: float, steps: int | None = None
                    ) -> np.ndarray:
        """Exploration noise for one tick (``steps=None``) or ``steps`` ticks, in command units."""
        shape = (len(self.scale),) if steps is None else (steps, len(self.scale))
        return np.clip(rng.standard_normal(shape), -EXPLORATION_CLIP, EXPLORATION_CLIP) \
            * std * self.scale
