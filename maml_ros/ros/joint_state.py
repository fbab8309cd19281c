"""``sensor_msgs/JointState`` -> arrays of the controlled joints, by name, validated.

Joint states may come with extra joints and in any order (robot drivers
publish what they have); what the adapter needs is ``q`` and ``qd`` of its
controlled joints, finite and plausible. Anything else is a
:class:`JointStateError` that says what was wrong, so the caller can drop and
count the message without deriving a command from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Beyond these a reading is a fault, not a robot: no revolute joint is 1000 rad
# from zero, and no arm moves at 1000 rad/s.
MAX_ABS_POSITION = 1e3
MAX_ABS_VELOCITY = 1e3


class JointStateError(ValueError):
    """A joint state message that cannot be used."""


def stamp_seconds(stamp) -> float:
    """``builtin_interfaces/Time`` as float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def joint_state_arrays(msg, joints: Sequence[str]) -> tuple[np.ndarray, np.ndarray, float]:
    """``(q, qd, stamp)`` of ``joints`` (in that order) from a JointState message.

    :raises JointStateError: lengths that disagree, duplicate names, missing
        controlled joints, no velocities, non-finite or implausible values, or
        a zero stamp.
    """
    names = list(msg.name)
    if not names:
        raise JointStateError('empty joint state (no names)')
    if len(msg.position) != len(names) or len(msg.velocity) != len(names):
        raise JointStateError(f'{len(names)} names but {len(msg.position)} positions and '
                              f'{len(msg.velocity)} velocities')
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise JointStateError(f'duplicate joint names {duplicates}')
    index = {name: i for i, name in enumerate(names)}
    missing = [joint for joint in joints if joint not in index]
    if missing:
        raise JointStateError(f'controlled joints {missing} missing from the joint state')
    rows = [index[joint] for joint in joints]
    q = np.array([msg.position[i] for i in rows], dtype=float)
    qd = np.array([msg.velocity[i] for i in rows], dtype=float)
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(qd))):
        raise JointStateError('non-finite position or velocity of a controlled joint')
    if np.any(np.abs(q) > MAX_ABS_POSITION) or np.any(np.abs(qd) > MAX_ABS_VELOCITY):
        raise JointStateError('implausibly large position or velocity of a controlled joint')
    stamp = stamp_seconds(msg.header.stamp)
    if stamp <= 0.0 or not math.isfinite(stamp):
        raise JointStateError('joint state has no stamp (zero time)')
    return q, qd, stamp
