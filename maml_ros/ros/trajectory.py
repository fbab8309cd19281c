"""``trajectory_msgs/JointTrajectory`` -> waypoint arrays of the controlled joints, by name."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class TrajectoryError(ValueError):
    """A reference trajectory that cannot be used."""


def trajectory_arrays(msg, joints: Sequence[str]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(times, positions, velocities or None)`` in ``joints`` order.

    :raises TrajectoryError: no points, joint names that are not exactly the
        controlled joints (any order), points with the wrong number of values.
    """
    names = list(msg.joint_names)
    if not msg.points:
        raise TrajectoryError('empty trajectory (no points)')
    if sorted(names) != sorted(joints) or len(set(names)) != len(names):
        raise TrajectoryError(f'trajectory joints {names} are not the controlled joints '
                              f'{list(joints)}')
    order = [names.index(joint) for joint in joints]
    times, positions, velocities = [], [], []
    for k, point in enumerate(msg.points):
        if len(point.positions) != len(names):
            raise TrajectoryError(f'point {k} has {len(point.positions)} positions for '
                                  f'{len(names)} joints')
        if point.velocities and len(point.velocities) != len(names):
            raise TrajectoryError(f'point {k} has {len(point.velocities)} velocities for '
                                  f'{len(names)} joints')
        times.append(point.time_from_start.sec + point.time_from_start.nanosec * 1e-9)
        positions.append([point.positions[i] for i in order])
        velocities.append([point.velocities[i] for i in order] if point.velocities else None)
    all_velocities = None if any(v is None for v in velocities) else np.array(velocities)
    return np.array(times), np.array(positions), all_velocities
