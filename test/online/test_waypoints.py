"""Waypoint references: through the waypoints, smooth, from the robot, clamped, held."""

import re

import numpy as np
import pytest

from maml_ros.online.waypoints import WaypointReference

LOWER, UPPER = np.array([-1.0, -2.0]), np.array([1.0, 2.0])
AT_REST = (np.zeros(2), np.zeros(2))


def reference(times, positions, velocities=None, start=AT_REST, max_velocity=None):
    return WaypointReference(times=np.array(times), positions=np.array(positions),
                             velocities=velocities, start=start, lower=LOWER, upper=UPPER,
                             max_velocity=max_velocity)


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


@pytest.mark.parametrize(('times', 'positions', 'velocities', 'message'), [
    ([], np.empty((0, 2)), None, 'the trajectory has no points'),
    ([0.0, 1.0, 1.0], [[0, 0]] * 3, None,
     'time_from_start must be >= 0 and strictly increasing'),
    ([1.0, 0.5], [[0, 0]] * 2, None, 'time_from_start must be >= 0 and strictly increasing'),
    ([-1.0], [[0, 0]], None, 'time_from_start must be >= 0 and strictly increasing'),
    ([0.0], [[np.nan, 0]], None, 'non-finite time or position in the trajectory'),
    ([np.inf], [[0, 0]], None, 'non-finite time or position in the trajectory'),
    ([0.0], [[0, 0, 0]], None, re.escape('positions need shape (1, 2), got (1, 3)')),
    ([0.0], [[0, 0]], [[0.0]], 'velocities must be finite, one per position'),
    ([0.0], [[0, 0]], [[0.0, np.nan]], 'velocities must be finite, one per position'),
])
def test_bad_trajectories_are_refused(times, positions, velocities, message):
    with pytest.raises(ValueError, match=f'^{message}$'):
        reference(times, positions, velocities=velocities)


def test_nothing_clamped_is_not_flagged():
    ref = reference([0.0, 1.0], [[0.0, 0.0], [1.0, -2.0]], velocities=[[0, 0], [1.0, 1.0]],
                    max_velocity=np.array([1.0, 2.0]))
    assert not ref.clamped


def test_velocities_beyond_the_limit_are_clamped_and_flagged():
    limit = np.array([1.0, 2.0])
    given = reference([0.0, 1.0], [[0.0, 0.0], [0.5, 0.5]], velocities=[[0, 0], [5.0, -5.0]],
                      max_velocity=limit)
    assert given.clamped
    np.testing.assert_array_equal(given.velocities[1], [1.0, -2.0])
    assert reference([0.0, 1.0], [[0.0, 0.0], [0.5, 0.5]],
                     velocities=[[0, 0], [5.0, -5.0]]).clamped is False  # no limit given
    # Derived velocities (5 and -10 rad/s here) are held to it too, and so is the sample.
    derived = reference([0.1, 0.2], [[0.5, -1.0], [1.0, -2.0]], max_velocity=limit)
    np.testing.assert_array_equal(derived.velocities, [[1.0, -2.0], [1.0, -2.0], [0.0, 0.0]])
    for t in np.linspace(0.0, 0.2, 41):
        assert np.all(np.abs(derived.sample(t)[1]) <= limit)
    # So is the robot's own velocity, where the trajectory starts from it.
    start = (np.zeros(2), np.array([10.0, -10.0]))
    from_robot = reference([0.5], [[0.5, 1.0]], velocities=[[0.0, 0.0]], max_velocity=limit,
                           start=start)
    held = np.array([[1.0, -2.0], [0.0, 0.0]])
    np.testing.assert_allclose(from_robot.sample(0.25)[0], hermite(
        np.array([0.0, 0.5]), np.array([start[0], [0.5, 1.0]]), held, 0.25)[0], atol=1e-12)


def test_integer_waypoints_are_read_as_numbers():
    as_int = WaypointReference(times=[0, 1, 2], positions=[[0, 0], [1, 1], [0, 2]],
                               velocities=[[0, 0], [1, 0], [0, 0]], start=AT_REST,
                               lower=[-1, -2], upper=[1, 2], max_velocity=[1, 1])
    as_float = reference([0.0, 1.0, 2.0], [[0.0, 0.0], [1.0, 1.0], [0.0, 2.0]],
                         velocities=np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]),
                         max_velocity=np.array([1.0, 1.0]))
    for t in (0.25, 0.5, 1.5):
        for got, expected in zip(as_int.sample(t), as_float.sample(t), strict=True):
            assert got.dtype == np.float64
            np.testing.assert_array_equal(got, expected)


def hermite(times, positions, velocities, t):
    """An independent cubic Hermite interpolation: the cubic polynomial in absolute time that
    meets each segment's end positions and velocities, and its derivatives."""
    i = max(np.searchsorted(times, t, side='right') - 1, 0)
    t0, t1 = times[i], times[i + 1]
    rows = [[1, t0, t0**2, t0**3], [1, t1, t1**2, t1**3], [0, 1, 2 * t0, 3 * t0**2],
            [0, 1, 2 * t1, 3 * t1**2]]
    c = np.linalg.solve(rows, [positions[i], positions[i + 1], velocities[i], velocities[i + 1]])
    return (c[0] + c[1] * t + c[2] * t**2 + c[3] * t**3, c[1] + 2 * c[2] * t + 3 * c[3] * t**2,
            2 * c[2] + 6 * c[3] * t)


def test_samples_are_the_cubic_through_each_segments_ends_on_uneven_times():
    """Segments of 0.3, 0.7 and 0.25 s, the first waypoint 0.5 s ahead (from the robot's state);
    right-continuous at a waypoint (its acceleration is the next segment's)."""
    times = np.array([0.5, 0.8, 1.5, 1.75])
    positions = np.array([[0.2, -0.5], [0.6, 0.3], [-0.4, 1.2], [0.1, 0.9]])
    velocities = np.array([[0.5, 0.0], [1.0, 2.0], [-1.5, 0.5], [0.0, -1.0]])
    start = (np.array([0.1, -0.2]), np.array([0.3, 0.4]))
    ref = reference(times, positions, velocities=velocities, start=start)
    all_times = np.concatenate([[0.0], times])
    all_positions, all_velocities = np.vstack([start[0], positions]), np.vstack([start[1],
                                                                                velocities])
    for t in [0.0, 0.2, 0.5, 0.6, 0.8, 1.1, 1.5, 1.6, 1.7499]:
        for got, expected in zip(ref.sample(t),
                                 hermite(all_times, all_positions, all_velocities, t),
                                 strict=True):
            np.testing.assert_allclose(got, expected, atol=1e-9)
    assert not ref.clamped


def test_derived_velocities_are_the_slopes_of_the_waypoints_and_zero_at_the_end():
    ref = reference([0.0, 0.5, 0.75], [[0.0, 0.0], [0.5, -1.0], [0.75, -1.5]])
    np.testing.assert_allclose(ref.velocities, [[1.0, -2.0], [1.0, -2.0], [0.0, 0.0]])
    two = reference([0.0, 0.5], [[0.0, 0.0], [0.5, -1.0]])
    np.testing.assert_allclose(two.velocities, [[1.0, -2.0], [0.0, 0.0]])
    one = reference([0.0], [[0.5, -1.0]])  # a single waypoint now: hold it
    np.testing.assert_array_equal(one.velocities, [[0.0, 0.0]])
    for t in (0.0, 1.0):
        q, qd, qdd = one.sample(t)
        np.testing.assert_array_equal(q, [0.5, -1.0])
        assert qd.shape == qdd.shape == (2,) and not qd.any() and not qdd.any()
    q, qd, qdd = ref.sample(2.0)  # after the end: at rest, one value per joint
    assert qd.shape == qdd.shape == (2,) and not qd.any() and not qdd.any()


def test_the_robot_outside_its_limits_starts_the_trajectory_from_inside_them():
    ref = reference([1.0], [[0.0, 0.0]], velocities=np.zeros((1, 2)),
                    start=(np.array([1.5, -3.0]), np.zeros(2)))
    np.testing.assert_array_equal(ref.sample(0.0)[0], [1.0, -2.0])
    np.testing.assert_allclose(ref.sample(0.5)[0], hermite(
        np.array([0.0, 1.0]), np.array([[1.0, -2.0], [0.0, 0.0]]), np.zeros((2, 2)), 0.5)[0],
        atol=1e-12)


def test_clamped_positions_are_flagged_whether_or_not_velocities_are_given():
    ref = reference([0.0, 1.0], [[0.0, 0.0], [5.0, 0.0]], velocities=np.zeros((2, 2)),
                    max_velocity=np.array([1.0, 1.0]))
    assert ref.clamped


def test_samples_stay_within_the_limits_in_both_directions():
    """A cubic through waypoints near the limits, moving outwards, overshoots them between
    waypoints; so does a fast segment's speed."""
    times, positions = [0.0, 0.4, 0.8], [[0.98, 1.98], [-0.98, -1.98], [0.98, 1.98]]
    velocities = np.array([[6.0, 6.0], [-6.0, -6.0], [0.0, 0.0]])
    grid = np.linspace(0.0, 0.8, 81)
    ref = reference(times, positions, velocities=velocities)
    q = np.array([ref.sample(t)[0] for t in grid])
    assert q.min(0).tolist() == LOWER.tolist() and q.max(0).tolist() == UPPER.tolist()
    ref = reference(times, positions, velocities=velocities, max_velocity=np.array([1.0, 1.0]))
    qd = np.array([ref.sample(t)[1] for t in grid])
    assert qd.min() == -1.0 and qd.max() == 1.0
