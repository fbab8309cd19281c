"""Waypoint references: through the waypoints, smooth, from the robot, clamped, held."""

import numpy as np
import pytest

from maml_ros.online.waypoints import WaypointReference

LOWER, UPPER = np.array([-1.0, -2.0]), np.array([1.0, 2.0])
AT_REST = (np.zeros(2), np.zeros(2))


def reference(times, positions, velocities=None, start=AT_REST):
    return WaypointReference(times=np.array(times), positions=np.array(positions),
                               velocities=velocities, start=start, lower=LOWER, upper=UPPER)


def test_passes_through_waypoints_and_holds_the_last_at_rest():
    ref = reference([0.0, 1.0, 2.0], [[0.0, 0.0], [0.5, 1.0], [0.2, -1.0]])
    for t, expected in [(0.0, [0.0, 0.0]), (1.0, [0.5, 1.0]), (2.0, [0.2, -1.0])]:
        np.testing.assert_allclose(ref.sample(t)[0], expected, atol=1e-12)
    q, qd, qdd = ref.sample(5.0)
    np.testing.assert_allclose(q, [0.2, -1.0])
    assert not qd.any() and not qdd.any()


def test_velocity_and_acceleration_are_the_derivatives_of_position():
    ref = reference([0.0, 1.0, 2.0], [[0.0, 0.0], [0.5, 1.0], [0.2, -1.0]],
                    velocities=np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.0]]))
    eps = 1e-6
    for t in (0.3, 0.77, 1.5):
        q_minus, q_plus = ref.sample(t - eps)[0], ref.sample(t + eps)[0]
        _, qd, qdd = ref.sample(t)
        np.testing.assert_allclose(qd, (q_plus - q_minus) / (2 * eps), atol=1e-6)
        qd_minus, qd_plus = ref.sample(t - eps)[1], ref.sample(t + eps)[1]
        np.testing.assert_allclose(qdd, (qd_plus - qd_minus) / (2 * eps), atol=1e-4)


def test_starts_from_the_robot_when_the_first_point_is_in_the_future():
    ref = reference([1.0], [[0.5, 0.5]], start=(np.array([0.1, -0.1]), np.zeros(2)))
    np.testing.assert_allclose(ref.sample(0.0)[0], [0.1, -0.1])
    np.testing.assert_allclose(ref.sample(1.0)[0], [0.5, 0.5])


def test_positions_outside_limits_are_clamped_and_flagged():
    ref = reference([0.0, 1.0], [[0.0, 0.0], [5.0, -5.0]])
    assert ref.clamped
    np.testing.assert_allclose(ref.sample(2.0)[0], [1.0, -2.0])


@pytest.mark.parametrize(('times', 'positions', 'message'), [
    ([], np.empty((0, 2)), 'no points'),
    ([0.0, 1.0, 1.0], [[0, 0]] * 3, 'strictly increasing'),
    ([1.0, 0.5], [[0, 0]] * 2, 'strictly increasing'),
    ([-1.0], [[0, 0]], '>= 0'),
    ([0.0], [[np.nan, 0]], 'non-finite'),
    ([0.0], [[0, 0, 0]], 'shape'),
])
def test_bad_trajectories_are_refused(times, positions, message):
    with pytest.raises(ValueError, match=message):
        reference(times, positions)
