"""JointTrajectory messages become waypoint arrays by name, or a clear error."""

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from maml_ros.ros.trajectory import TrajectoryError, trajectory_arrays


def point(positions, sec, velocities=()):
    return JointTrajectoryPoint(positions=positions, velocities=list(velocities),
                                time_from_start=Duration(sec=sec, nanosec=500_000_000))


def test_points_are_reordered_by_name_with_times_and_velocities():
    msg = JointTrajectory(joint_names=['b', 'a'], points=[point([2.0, 1.0], 0, [20.0, 10.0]),
                                                         point([4.0, 3.0], 1, [0.0, 0.0])])
    times, positions, velocities = trajectory_arrays(msg, ['a', 'b'])
    np.testing.assert_allclose(times, [0.5, 1.5])
    np.testing.assert_allclose(positions, [[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(velocities[0], [10.0, 20.0])


def test_velocities_are_none_unless_every_point_has_them():
    msg = JointTrajectory(joint_names=['a', 'b'], points=[point([1.0, 2.0], 0, [0.0, 0.0]),
                                                         point([3.0, 4.0], 1)])
    assert trajectory_arrays(msg, ['a', 'b'])[2] is None


@pytest.mark.parametrize(('msg', 'reason'), [
    (JointTrajectory(joint_names=['a', 'b']), r'^empty trajectory \(no points\)$'),
    (JointTrajectory(joint_names=['a', 'x'], points=[point([1.0, 2.0], 1)]), 'not the controlled'),
    (JointTrajectory(joint_names=['a'], points=[point([1.0], 1)]), 'not the controlled'),
    (JointTrajectory(joint_names=['a', 'b'], points=[point([1.0], 1)]), '1 positions'),
    (JointTrajectory(joint_names=['a', 'b'], points=[point([1.0, 2.0], 1, [0.0])]),
     '1 velocities'),
])
def test_malformed_trajectories_are_refused_with_a_reason(msg, reason):
    with pytest.raises(TrajectoryError, match=reason):
        trajectory_arrays(msg, ['a', 'b'])
