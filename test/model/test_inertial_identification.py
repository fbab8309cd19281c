"""The engineer's identification: the regressor is the nominal model's physics, the fit
recovers what the data determine, and a ridge toward the URDF keeps what they do not."""

import numpy as np
import pytest

from maml_ros.model.inertial_identification import (
    RIDGES,
    InertialFit,
    InertialIdentification,
    filtered_acceleration,
)
from maml_ros.model.transitions import Transitions
from maml_ros.sim import PANDA_HOME, InverseDynamicsModel, RobotConfig

PERIOD = 0.01
CONFIG = RobotConfig()


@pytest.fixture(scope='module')
def identification():
    return InertialIdentification(CONFIG)


def sines(ticks, *, start=0.0, amplitude=0.4):
    """Transitions of the Panda along sines of other frequencies per joint (exact states)."""
    t = start + PERIOD * np.arange(ticks + 1)[:, None]
    w = 0.6 + 0.35 * np.arange(7)
    q = np.array(PANDA_HOME) + amplitude * np.sin(w * t + np.arange(7))
    qd = amplitude * w * np.cos(w * t + np.arange(7))
    states = np.concatenate([q, qd], axis=1)
    return Transitions(states[:-1], np.zeros((ticks, 7)), states[1:])


def test_the_regressor_times_the_urdfs_parameters_is_the_urdfs_inverse_dynamics(
        identification):
    nominal, rng = InverseDynamicsModel.shared(CONFIG), np.random.default_rng(0)
    rigid = identification.prior.copy()
    rigid[70:] = 0.0
    for _ in range(20):
        q = np.array(PANDA_HOME) + 0.6 * rng.standard_normal(7)
        qd, qdd = 1.5 * rng.standard_normal(7), 3.0 * rng.standard_normal(7)
        torque = nominal.torques(q, qd, qdd)
        np.testing.assert_allclose(identification.regressor(q, qd, qdd) @ rigid, torque,
                                   rtol=0, atol=1e-9 * (1 + np.abs(torque).max()))


def with_commands(identification, transitions, theta):
    commands = identification.design(transitions, PERIOD) @ theta
    return Transitions(transitions.states, commands.reshape(-1, 7), transitions.next_states)


def test_a_noise_free_robot_is_recovered_where_the_data_determine_it(identification):
    """A 2 kg payload in the hand and friction on every joint: the fit predicts the torques
    of motion it never saw, and finds each joint's friction and offset."""
    truth = identification.prior.copy()
    truth[60] += 2.0  # mass of the last body (the payload's inertia as a point on the axis)
    truth[61:64] += 2.0 * np.array([0.0, 0.0, 0.2])  # its first moment: 0.2 m along z
    truth[64] += 2.0 * 0.04  # Ixx and Iyy about the joint origin: m * z^2
    truth[66] += 2.0 * 0.04
    friction = np.stack([np.linspace(0.5, 0.1, 7), np.linspace(1.0, 0.2, 7),
                         np.linspace(-0.3, 0.3, 7)], 1)
    truth[70:] = friction.reshape(-1)
    support = with_commands(identification, sines(600), truth)
    fit = identification.fit(support, PERIOD)
    held_out = with_commands(identification, sines(300, start=20.0, amplitude=0.5), truth)
    predicted = identification.predict(fit, held_out, PERIOD)
    error = predicted - held_out.commands  # within 0.1 % (the ridge's least pull remains)
    assert np.sqrt(np.mean(error ** 2)) < 1e-3 * np.sqrt(np.mean(held_out.commands ** 2))
    assert np.abs(error).max() < 0.01
    np.testing.assert_allclose(fit.theta[70:].reshape(7, 3), friction, rtol=0, atol=0.02)
    urdf = identification.predict(None, held_out, PERIOD)
    assert np.abs(urdf - held_out.commands).max() > 1.0  # the URDF alone is far off


def test_on_noisy_torques_cross_validation_chooses_a_ridge_that_predicts_better(
        identification):
    """One second of motion and 0.5 N*m of measurement noise: least squares (the smallest
    ridge) fits the noise; the ridge cross-validation chooses keeps the URDF where the data
    say little, and predicts motion it never saw better."""
    truth = identification.prior.copy()
    truth[60] += 1.0
    truth[70:] = np.tile([0.2, 0.3, 0.05], 7)
    exact = with_commands(identification, sines(100), truth)
    noise = 0.5 * np.random.default_rng(1).standard_normal(exact.commands.shape)
    support = Transitions(exact.states, exact.commands + noise, exact.next_states)
    fit = identification.fit(support, PERIOD)
    assert fit.ridge > RIDGES[0]
    least_squares = InertialFit(identification._solve(
        identification.design(support, PERIOD), support.commands.reshape(-1),
        np.sqrt(np.mean(identification.design(support, PERIOD) ** 2, axis=0)) + 1e-9,
        RIDGES[0]), RIDGES[0])
    held_out = with_commands(identification, sines(300, start=20.0, amplitude=0.5), truth)

    def error(candidate):
        predicted = identification.predict(candidate, held_out, PERIOD)
        return np.sqrt(np.mean((predicted - held_out.commands) ** 2))

    assert error(fit) < 0.8 * error(least_squares)


def test_the_acceleration_is_the_velocity_change_over_each_period_and_stops_at_gaps():
    t = PERIOD * np.arange(31)[:, None]
    qd = np.concatenate([2.0 * t, -t], axis=1)  # constant accelerations 2 and -1
    states = np.concatenate([np.zeros_like(qd), qd], axis=1)
    joined = Transitions(states[:-1], np.zeros((30, 2)), states[1:])
    np.testing.assert_allclose(filtered_acceleration(joined, PERIOD),
                               np.tile([2.0, -1.0], (30, 1)), atol=1e-9)
    broken = Transitions(np.concatenate([states[:10], states[20:30]]), np.zeros((20, 2)),
                         np.concatenate([states[1:11] * 3.0, states[21:31]]))
    acceleration = filtered_acceleration(broken, PERIOD)
    np.testing.assert_allclose(acceleration[10:], np.tile([2.0, -1.0], (10, 1)), atol=1e-9)
    assert np.abs(acceleration[:10]).max() > 2.5  # its own run, not smoothed into the next


def test_each_transition_is_modelled_at_its_periods_midpoint(identification):
    """The design's rows are the URDF's inverse dynamics at the mean position and velocity of
    each period, with the velocity change over it as the acceleration."""
    transitions = sines(30)
    rigid = identification.prior.copy()
    rigid[70:] = 0.0
    nominal = InverseDynamicsModel.shared(CONFIG)
    q = (transitions.states[:, :7] + transitions.next_states[:, :7]) / 2
    qd = (transitions.states[:, 7:] + transitions.next_states[:, 7:]) / 2
    qdd = filtered_acceleration(transitions, PERIOD)
    expected = np.array([nominal.torques(*row) for row in zip(q, qd, qdd, strict=True)])
    np.testing.assert_allclose(
        (identification.design(transitions, PERIOD) @ rigid).reshape(-1, 7), expected,
        rtol=0, atol=1e-9)


def test_the_smoothing_takes_out_velocity_noise_that_the_raw_difference_multiplies():
    """Measured velocities with noise that flips sign each tick: differenced raw, the noise
    becomes 2e/T; smoothed over five ticks first, a fraction of it."""
    ticks, noise = 60, 0.01
    t = PERIOD * np.arange(ticks + 1)[:, None]
    true = np.concatenate([np.sin(t), 2.0 * t], axis=1)
    measured = true + noise * (-1.0) ** np.arange(ticks + 1)[:, None]
    states = np.concatenate([np.zeros_like(measured), measured], axis=1)
    transitions = Transitions(states[:-1], np.zeros((ticks, 2)), states[1:])
    truth = np.diff(true, axis=0) / PERIOD
    raw = np.diff(measured, axis=0) / PERIOD
    smoothed = filtered_acceleration(transitions, PERIOD)
    inner = slice(3, -3)  # the ends average fewer ticks
    assert np.abs(smoothed - truth)[inner].max() < 0.25 * np.abs(raw - truth)[inner].max()
