"""JointState messages become controlled-joint arrays by name, or a clear error."""

import numpy as np
import pytest
from sensor_msgs.msg import JointState

from maml_ros.ros.joint_state import JointStateError, joint_state_arrays

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
    (message([], [], []), 'empty'),
    (message(['a', 'b'], [1.0], [0.0, 0.0]), '2 names but 1 positions'),
    (message(['a', 'b'], [1.0, 2.0], []), '0 velocities'),
    (message(['a', 'a', 'b'], [1.0, 1.0, 2.0], [0.0] * 3), 'duplicate'),
    (message(['a', 'c'], [1.0, 2.0], [0.0, 0.0]), r"\['b'\] missing"),
    (message(['a', 'b'], [float('nan'), 2.0], [0.0, 0.0]), 'non-finite'),
    (message(['a', 'b'], [1.0, 2.0], [0.0, float('inf')]), 'non-finite'),
    (message(['a', 'b'], [1e9, 2.0], [0.0, 0.0]), 'implausibly large'),
    (message(['a', 'b'], [1.0, 2.0], [0.0, 0.0], sec=0), 'no stamp'),
])
def test_malformed_messages_are_refused_with_a_reason(msg, reason):
    with pytest.raises(JointStateError, match=reason):
        joint_state_arrays(msg, JOINTS)


def test_a_bad_uncontrolled_joint_does_not_matter():
    q, _, _ = joint_state_arrays(message(['a', 'b', 'x'], [1.0, 2.0, float('nan')],
                                         [0.0, 0.0, 0.0]), JOINTS)
    np.testing.assert_array_equal(q, [1.0, 2.0])
