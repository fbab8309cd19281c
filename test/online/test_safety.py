"""The safety filter and the watchdog."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maml_ros.online.safety import SafetyFilter, Watchdog

LIMIT = np.array([87.0, 12.0])


def make_filter(rate=100.0):
    return SafetyFilter(lower=-LIMIT, upper=LIMIT, max_rate=rate, period=0.01)


def test_commands_are_clamped_to_limits_and_rate():
    safety = make_filter(rate=100.0)  # 1 N*m per 10 ms tick
    np.testing.assert_array_equal(safety(np.array([500.0, -500.0])), [87.0, -12.0])
    np.testing.assert_array_equal(safety(np.array([0.0, 0.0])), [86.0, -11.0])


def test_non_finite_entries_hold_the_previous_command():
    safety = make_filter()
    safety(np.array([5.0, 1.0]))
    np.testing.assert_array_equal(safety(np.array([np.nan, np.inf])), [5.0, 1.0])
    fresh = make_filter()
    np.testing.assert_array_equal(fresh(np.array([np.nan, 3.0])), [0.0, 3.0])


def test_wrong_length_and_bad_settings_are_refused():
    with pytest.raises(ValueError, match='3 values for 2 joints'):
        make_filter()(np.zeros(3))
    with pytest.raises(ValueError, match='max_rate'):
        make_filter(rate=0.0)
    with pytest.raises(ValueError, match=r'^lower and upper limits must have one value per '
                       r'joint, lower <= upper$'):
        SafetyFilter(lower=LIMIT, upper=-LIMIT, max_rate=1.0, period=0.01)
    with pytest.raises(ValueError, match=r'^max_rate must be finite and > 0, got 0\.0$'):
        make_filter(rate=0.0)
    with pytest.raises(ValueError, match=r'^period must be > 0, got 0$'):
        SafetyFilter(lower=-LIMIT, upper=LIMIT, max_rate=1.0, period=0)
    for lower, upper in [([-np.inf, -1.0], [1.0, 1.0]), ([-1.0, -1.0], [1.0, np.inf])]:
        with pytest.raises(ValueError, match=r'^command limits must be finite$'):
            SafetyFilter(lower=lower, upper=upper, max_rate=1.0, period=0.01)


def test_a_joint_whose_lower_limit_equals_its_upper_one_is_held_there():
    safety = SafetyFilter(lower=[2.0, -1.0], upper=[2.0, 1.0], max_rate=1e4, period=0.01)
    np.testing.assert_array_equal(safety(np.array([np.nan, 0.5])), [2.0, 0.5])


def test_integer_limits_and_commands_give_float_commands():
    """Commands go out as Float64MultiArray: integer inputs must not make integer output."""
    safety = SafetyFilter(lower=np.array([-5, -5]), upper=np.array([5, 5]), max_rate=50,
                          period=0.01)
    first = safety(np.array([3, -3]))
    assert first.dtype == np.float64
    second = safety(np.array([4, -4]))
    assert second.dtype == np.float64
    np.testing.assert_array_equal(second, [3.5, -3.5])  # 0.5 per tick: not an integer step


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=2,
                         max_size=2), min_size=1, max_size=30),
       st.floats(min_value=0.1, max_value=1e4))
def test_every_output_is_finite_within_limits_and_rate(commands, rate):
    safety = make_filter(rate=rate)
    previous = None
    for proposed in commands:
        command = safety(np.array(proposed))
        assert np.all(np.isfinite(command))
        assert np.all(np.abs(command) <= LIMIT)
        if previous is not None:
            assert np.all(np.abs(command - previous) <= rate * 0.01 + 1e-9)  # float rounding
        previous = command


@st.composite
def limits_and_rates(draw):
    """Per joint: limits that need not contain zero (a position command of a joint whose
    range is all negative) and a rate of its own."""
    joints = draw(st.integers(1, 4))
    bounds = st.floats(-100.0, 100.0)
    pairs = [sorted(draw(st.tuples(bounds, bounds))) for _ in range(joints)]
    rates = draw(st.lists(st.floats(0.1, 1e4), min_size=joints, max_size=joints))
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]), np.array(rates)


@settings(max_examples=300, deadline=None)
@given(limits_and_rates(), st.data())
def test_asymmetric_limits_and_per_joint_rates_hold_for_every_output(setup, data):
    lower, upper, rate = setup
    safety = SafetyFilter(lower=lower, upper=upper, max_rate=rate, period=0.01)
    proposals = data.draw(st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True),
                                            min_size=len(lower), max_size=len(lower)),
                                   min_size=1, max_size=20))
    previous = None
    for proposed in proposals:
        command = safety(np.array(proposed))
        assert np.all(np.isfinite(command))
        assert np.all(command >= lower) and np.all(command <= upper)
        if previous is None:  # nothing to hold yet: a non-finite entry takes the rest value
            rest = np.clip(0.0, lower, upper)
            bad = ~np.isfinite(np.array(proposed))
            np.testing.assert_array_equal(command[bad], rest[bad])
        else:
            assert np.all(np.abs(command - previous) <= rate * 0.01 * (1 + 1e-12) + 1e-12)
        previous = command


def test_watchdog_is_stale_without_data_and_after_the_timeout():
    watchdog = Watchdog(timeout=0.1)
    assert watchdog.stale(0.0)
    watchdog.feed(1.0)
    assert not watchdog.stale(1.05)
    assert watchdog.stale(1.2)
    with pytest.raises(ValueError):
        Watchdog(timeout=0.0)


def test_reset_restarts_the_rate_limit_from_a_command_clamped_to_the_limits():
    safety = SafetyFilter(lower=np.array([-1.0, -2.0]), upper=np.array([1.0, 2.0]),
                          max_rate=10.0, period=0.01)  # 0.1 per command
    safety.reset(np.array([5.0, -5.0]))  # outside the limits: clamped to them
    np.testing.assert_allclose(safety(np.zeros(2)), [0.9, -1.9])
    safety.reset(None)  # from the first command: no previous one to limit against
    np.testing.assert_allclose(safety(np.array([0.7, -1.5])), [0.7, -1.5])


def test_a_watchdog_needs_a_positive_timeout():
    with pytest.raises(ValueError, match='timeout must be > 0, got 0'):
        Watchdog(timeout=0)


def test_joint_states_exactly_timeout_old_are_still_fresh():
    watchdog = Watchdog(timeout=0.5)
    watchdog.feed(1.0)
    assert not watchdog.stale(1.5) and watchdog.stale(1.5000001)
