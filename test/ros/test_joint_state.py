"""JointState messages become controlled-joint arrays by name, or a clear error."""

import re

import numpy as np
import pytest
from sensor_msgs.msg import JointState

from maml_ros.ros.joint_state import (
    MAX_ABS_POSITION,
    MAX_ABS_VELOCITY,
    JointStateError,
    joint_state_arrays,
)

JOINTS = ['a', 'b']


def message(names, positions, velocities, sec=5, nanosec=0):
    msg = JointState(name=names, position=positions, velocity=velocities)
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    return msg


def test_extra_and_reordered_joints_are_mapped_by_name():
    q, qd, stamp = joint_state_arrays(
        message(['finger', 'b', 'a'], [9.0, 2.0, 1.0], [0.0, 20.0, 10.0], 3, 500_000_000),
        JOINTS)
    np.testing.assert_array_equal(q, [1.0, 2.0])
    np.testing.assert_array_equal(qd, [10.0, 20.0])
    assert stamp == 3.5


@pytest.mark.parametrize(('msg', 'reason'), [
    (message([], [], []), 'empty joint state (no names)'),
    (message(['a', 'b'], [1.0], [0.0, 0.0]), '2 names but 1 positions and 2 velocities'),
    (message(['a', 'b'], [1.0, 2.0], []), '2 names but 2 positions and 0 velocities'),
    (message(['a', 'a', 'b', 'c', 'b', 'b'], [1.0] * 6, [0.0] * 6),
     "duplicate joint names ['a', 'b']"),
    (message(['a', 'c'], [1.0, 2.0], [0.0, 0.0]),
     "controlled joints ['b'] missing from the joint state"),
    (message(['a', 'b'], [float('nan'), 2.0], [0.0, 0.0]),
     'non-finite position or velocity of a controlled joint'),
    (message(['a', 'b'], [1.0, 2.0], [0.0, float('inf')]),
     'non-finite position or velocity of a controlled joint'),
    (message(['a', 'b'], [1e9, 2.0], [0.0, 0.0]),
     'implausibly large position or velocity of a controlled joint'),
    (message(['a', 'b'], [1.0, 2.0], [0.0, np.nextafter(MAX_ABS_VELOCITY, np.inf)]),
     'implausibly large position or velocity of a controlled joint'),
    (message(['a', 'b'], [1.0, 2.0], [0.0, 0.0], sec=0), 'joint state has no stamp (zero time)'),
])
def test_malformed_messages_are_refused_with_a_reason(msg, reason):
    with pytest.raises(JointStateError, match=f'^{re.escape(reason)}$'):
        joint_state_arrays(msg, JOINTS)


def test_values_at_the_plausibility_limits_and_a_stamp_under_a_second_are_used():
    q, qd, stamp = joint_state_arrays(
        message(['a', 'b'], [MAX_ABS_POSITION, -MAX_ABS_POSITION],
                [-MAX_ABS_VELOCITY, MAX_ABS_VELOCITY], sec=0, nanosec=500_000_000), JOINTS)
    np.testing.assert_array_equal(q, [MAX_ABS_POSITION, -MAX_ABS_POSITION])
    np.testing.assert_array_equal(qd, [-MAX_ABS_VELOCITY, MAX_ABS_VELOCITY])
    assert stamp == 0.5


def test_a_bad_uncontrolled_joint_does_not_matter():
    q, _, _ = joint_state_arrays(message(['a', 'b', 'x'], [1.0, 2.0, float('nan')],
                                         [0.0, 0.0, 0.0]), JOINTS)
    np.testing.assert_array_equal(q, [1.0, 2.0])
