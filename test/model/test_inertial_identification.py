"""The engineer's identification (``sysid``): the regressor is the nominal model's physics,
the fit recovers what the data determine (delay and lag included), and a ridge toward the
URDF keeps what they do not."""

import numpy as np
import pytest

from maml_ros.model.inertial_identification import (
    COULOMB_WIDTHS,
    JOINT_TERMS,
    OFFSET,
    RIDGES,
    InertialIdentification,
)
from maml_ros.model.physics_model import DELAYS, RETENTIONS
from maml_ros.model.transitions import Transitions
from maml_ros.sim import PANDA_HOME, InverseDynamicsModel, RobotConfig

PERIOD = 0.01
CONFIG = RobotConfig()
RIGID = 70  # the Panda's seven bodies, ten parameters each
PAYLOAD = RIGID  # then the payload's mass


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


def joint_terms(theta):
    """``(7, terms)``: each joint's own terms (:data:`JOINT_TERMS`) of a parameter vector."""
    return theta[PAYLOAD + 1:].reshape(7, len(JOINT_TERMS))


def with_commands(identification, transitions, theta, *, delay=0, retention=0.0):
    """The transitions with the commands a robot of parameters ``theta`` was sent: the torque
    in force over each period, ``e = Phi theta``, is ``r e[t-1] + (1 - r) u[t - delay]``
    (the last ``delay`` commands act after the window: zero)."""
    torque = np.einsum('tjp,p->tj', identification.prepare(transitions).rows, theta)
    commands = torque.copy()  # the first period's command: as if it had been in force
    acting = (torque[1:] - retention * torque[:-1]) / (1 - retention)  # sent at t - delay
    sent = np.arange(max(0, 1 - delay), len(torque) - delay)
    commands[sent] = acting[sent + delay - 1]
    commands[len(torque) - delay:] = 0.0
    return Transitions(transitions.states, commands, transitions.next_states)


def test_the_regressor_times_the_urdfs_parameters_is_the_urdfs_inverse_dynamics(
        identification):
    """So is the URDF-torque column of each joint, and the command of the initial model; the
    payload column is what 1 kg more on the payload link adds (as the simulator puts it)."""
    nominal, rng = InverseDynamicsModel.shared(CONFIG), np.random.default_rng(0)
    heavier = InverseDynamicsModel(config=CONFIG, payload_mass=1.0)
    rigid = identification.prior.copy()
    assert not rigid[RIGID:].any()  # nothing but the URDF
    urdf_torque = np.zeros_like(rigid)
    joint_terms(urdf_torque)[:, 0] = 1.0
    for _ in range(20):
        q = np.array(PANDA_HOME) + 0.6 * rng.standard_normal(7)
        qd, qdd = 1.5 * rng.standard_normal(7), 3.0 * rng.standard_normal(7)
        torque = nominal.torques(q, qd, qdd)
        tolerance = 1e-9 * (1 + np.abs(torque).max())
        regressor = identification.regressor(q, qd, qdd)
        np.testing.assert_allclose(regressor @ rigid, torque, rtol=0, atol=tolerance)
        np.testing.assert_allclose(regressor @ urdf_torque, torque, rtol=0, atol=tolerance)
        np.testing.assert_allclose(identification.torque(identification.initial(), q, qd, qdd),
                                   torque, rtol=0, atol=tolerance)
        np.testing.assert_allclose(regressor[:, PAYLOAD], heavier.torques(q, qd, qdd) - torque,
                                   rtol=0, atol=tolerance)


def friction(theta, transitions):
    """``(7, 21)``: each joint's friction torque at velocities across the range it moved at
    (viscous and the Coulomb widths trade off where the joint never moved fast)."""
    fastest = np.abs(transitions.states[:, 7:]).max(0)
    velocity = np.linspace(-1, 1, 21) * fastest[:, None]
    terms = joint_terms(theta)
    return terms[:, 2:3] * velocity + sum(
        terms[:, 3 + i, None] * np.tanh(velocity / width)
        for i, width in enumerate(COULOMB_WIDTHS))


def heavier_robot(identification):
    """The URDF with 2 kg in the hand and friction on every joint."""
    truth = identification.prior.copy()
    truth[60] += 2.0  # mass of the last body (the payload's inertia as a point on the axis)
    truth[61:64] += 2.0 * np.array([0.0, 0.0, 0.2])  # its first moment: 0.2 m along z
    truth[64] += 2.0 * 0.04  # Ixx and Iyy about the joint origin: m * z^2
    truth[66] += 2.0 * 0.04
    terms = joint_terms(truth)
    terms[:, 1] = np.linspace(0.3, 0.1, 7)  # armature
    terms[:, 2] = np.linspace(0.5, 0.1, 7)  # viscous
    terms[:, 3] = np.linspace(1.0, 0.2, 7)  # sharp Coulomb
    terms[:, OFFSET] = np.linspace(-0.3, 0.3, 7)
    return truth


@pytest.mark.parametrize('delay, lags', [(0, (0, 0, 0, 0, 0, 0, 0)),
                                         (max(DELAYS), (4, 3, 2, 1, 0, 4, 1))])
def test_a_noise_free_robot_is_recovered_with_its_delay_and_lag(identification, delay, lags):
    """The grid's ends: the fit finds the delay and every joint's lag, predicts the commands
    of motion it never saw, and finds each joint's friction (over the velocities it moved
    at) and offset."""
    truth, retention = heavier_robot(identification), np.array(RETENTIONS)[list(lags)]
    support = with_commands(identification, sines(600), truth, delay=delay,
                            retention=retention)
    fit = identification.fit(identification.prepare(support))
    assert fit.delay == delay
    np.testing.assert_array_equal(fit.retention, retention)
    held_out = with_commands(identification, sines(300, start=20.0, amplitude=0.5), truth,
                             delay=delay, retention=retention)
    predicted = identification.predict(fit, held_out)
    error = predicted.commands - held_out.commands[predicted.rows]
    scale = np.sqrt(np.mean(held_out.commands ** 2))
    assert np.sqrt(np.mean(error ** 2)) < 2e-3 * scale  # the ridge's least pull remains
    np.testing.assert_allclose(friction(fit.theta[0], support), friction(truth, support),
                               rtol=0, atol=0.05)
    np.testing.assert_allclose(joint_terms(fit.theta[0])[:, OFFSET],
                               joint_terms(truth)[:, OFFSET], rtol=0, atol=0.05)
    physical = identification.physical(fit)
    assert physical['delay_steps'] == delay and len(physical['torque_lag_ms']) == 7
    urdf = identification.predict(identification.initial(delay), held_out)
    assert np.abs(urdf.commands - held_out.commands[urdf.rows]).max() > 1.0


def test_on_noisy_torques_cross_validation_chooses_a_ridge_that_predicts_better(
        identification):
    """One second of motion and 0.5 N*m of measurement noise: least squares (the smallest
    ridge) fits the noise; the ridge cross-validation chooses keeps the URDF where the data
    say little, and predicts motion it never saw better."""
    truth = identification.prior.copy()
    truth[60] += 1.0
    joint_terms(truth)[:, 2:5] = [0.2, 0.3, 0.05]  # viscous, two Coulomb widths
    exact = with_commands(identification, sines(100), truth)
    noise = 0.5 * np.random.default_rng(1).standard_normal(exact.commands.shape)
    support = identification.prepare(
        Transitions(exact.states, exact.commands + noise, exact.next_states))
    fit = identification.fit(support)
    least_squares = identification.fit(support, ridges=RIDGES[:1])
    assert max(fit.ridge) > RIDGES[0]
    held_out = with_commands(identification, sines(300, start=20.0, amplitude=0.5), truth)

    def error(candidate):
        predicted = identification.predict(candidate, held_out)
        return np.sqrt(np.mean((predicted.commands - held_out.commands[predicted.rows]) ** 2))

    assert error(fit) < 0.8 * error(least_squares)


def test_a_joint_held_still_is_fitted_where_it_moved_and_given_the_friction_that_held_it(
        identification):
    """The wrist, with 0.3 N*m of sliding friction and a breakaway of 0.6, is held still
    over the first 80% of the support while the controller pushes it by up to 0.5 N*m, then
    moves; the other joints move throughout. The pushes (no state predicts them) bend
    nothing the other joints' torques share, and the wrist's Coulomb friction is at least the
    0.5 it was held against and no more than its breakaway."""
    truth = heavier_robot(identification)
    joint_terms(truth)[6, 3] = 0.3
    motion = sines(600)
    states, next_states = motion.states.copy(), motion.next_states.copy()
    held = np.arange(len(states)) < 480
    for rows in (states, next_states):
        rows[held, 6], rows[held, 13] = PANDA_HOME[6], 0.0
    exact = with_commands(identification, Transitions(states, motion.commands, next_states),
                          truth)
    commands = exact.commands.copy()
    commands[held, 6] += 0.5 * np.sin(np.linspace(0.0, 30.0, held.sum()))
    fit = identification.fit(identification.prepare(
        Transitions(states, commands, next_states)))
    coulomb = joint_terms(fit.theta[0])[6, 3:OFFSET].sum()
    assert 0.49 < coulomb <= 0.6
    held_out = with_commands(identification, sines(300, start=20.0, amplitude=0.5), truth)
    predicted = identification.predict(fit, held_out)
    error = (predicted.commands - held_out.commands[predicted.rows])[:, :6]
    assert np.sqrt(np.mean(error ** 2)) < 0.004 * np.sqrt(np.mean(held_out.commands ** 2))


def test_friction_the_fit_would_make_negative_is_held_at_zero(identification):
    """A robot without friction or armature, noisy torques: no joint is identified with
    friction that pushes it along its motion, or a rotor of negative inertia."""
    exact = with_commands(identification, sines(150), identification.prior)
    noise = 0.3 * np.random.default_rng(2).standard_normal(exact.commands.shape)
    fit = identification.fit(identification.prepare(
        Transitions(exact.states, exact.commands + noise, exact.next_states)))
    passive = joint_terms(fit.theta[0])[:, 1:OFFSET]
    assert (passive > -1e-6).all() and (np.abs(passive) < 1e-6).any()  # held at zero


def test_each_transition_is_modelled_at_its_periods_midpoint(identification):
    """The rows are the URDF's inverse dynamics at the mean position and velocity of each
    period, with the velocity change over it as the acceleration."""
    transitions = sines(30)
    nominal = InverseDynamicsModel.shared(CONFIG)
    q = (transitions.states[:, :7] + transitions.next_states[:, :7]) / 2
    qd = (transitions.states[:, 7:] + transitions.next_states[:, 7:]) / 2
    qdd = (transitions.next_states[:, 7:] - transitions.states[:, 7:]) / PERIOD
    expected = np.array([nominal.torques(*row) for row in zip(q, qd, qdd, strict=True)])
    np.testing.assert_allclose(identification.prepare(transitions).rows @ identification.prior,
                               expected, rtol=0, atol=1e-9)


def test_a_joint_kept_on_its_model_keeps_its_parameters_and_lag(identification):
    fitted = identification.fit(identification.prepare(with_commands(
        identification, sines(200), heavier_robot(identification), delay=1,
        retention=np.full(7, RETENTIONS[2]))))
    joints = np.array([True] * 6 + [False])
    adopted = identification.initial().adopting(fitted, joints)
    np.testing.assert_array_equal(adopted.theta[:6], fitted.theta[:6])
    np.testing.assert_array_equal(adopted.theta[6], identification.prior)
    np.testing.assert_array_equal(adopted.retention[:6], fitted.retention[:6])
    assert adopted.retention[6] == 0.0 and fitted.retention[6] > 0
    assert adopted.wavenumbers[6] == 0.0 and adopted.delay == fitted.delay == 1


def test_a_ripple_periodic_in_position_is_found_by_its_period(identification):
    """0.3 N*m on every joint, periodic every 0.5 rad of its position: the period search finds
    the period on all joints but one (six seconds span 3.2 periods at most: the slowest
    joint's ripple is partly taken by the other terms), and with it the model predicts
    other motion over the same range with less than 60% of the URDF's error."""
    wavenumber = 2 * np.pi / 0.5

    def rippled(transitions):
        q = (transitions.states[:, :7] + transitions.next_states[:, :7]) / 2
        exact = with_commands(identification, transitions, identification.prior)
        return Transitions(exact.states, exact.commands + 0.3 * np.sin(wavenumber * q + 1.0),
                           exact.next_states)

    support = rippled(sines(600, amplitude=0.8))
    held_out = rippled(sines(300, start=20.0, amplitude=0.8))
    fit = identification.fit(identification.prepare(support))
    periods = np.array(identification.physical(fit)['ripple_period_rad'])
    assert np.sum(np.abs(periods / 0.5 - 1) < 0.1) >= 6
    assert np.median(np.abs(periods / 0.5 - 1)) < 0.03

    def error(candidate):
        predicted = identification.predict(candidate, held_out)
        return np.sqrt(np.mean((predicted.commands - held_out.commands[predicted.rows]) ** 2))

    assert error(fit) < 0.6 * error(identification.initial())


def test_what_a_fit_says_about_the_robot_is_its_parameters_in_an_engineers_units(
        identification):
    """The noise-free heavier robot (2 kg in the hand as body parameters, friction and
    offsets, a 2-step delay, every joint's lag at 14.4 ms): the report gives each joint's
    actuator gain (from its URDF-torque scale), payload, rotor inertia, friction summed over
    the widths, offset, the delay and the lags in ms, as :meth:`physical` reads them off the
    parameters. (The gain it reports need not be the robot's: the data determine the torque,
    and a heavier hand and a weaker actuator explain it alike on a short support.)"""
    truth = heavier_robot(identification)
    retention = np.full(7, RETENTIONS[2])
    support = with_commands(identification, sines(600), truth, delay=2, retention=retention)
    fit = identification.fit(identification.prepare(support))
    physical = identification.physical(fit)
    terms = joint_terms(fit.theta[0])
    assert physical['actuator_gain'] == pytest.approx(1 / (1 + terms[:, 0]), abs=1e-4)
    assert physical['armature'] == pytest.approx(terms[:, 1], abs=1e-5)
    assert physical['viscous_damping'] == pytest.approx(terms[:, 2], abs=1e-4)
    assert physical['coulomb_friction'] == pytest.approx(terms[:, 3:OFFSET].sum(1), abs=1e-4)
    assert physical['offset'] == pytest.approx(joint_terms(truth)[:, OFFSET], abs=0.05)
    assert physical['payload_kg'] == pytest.approx(fit.theta[0, PAYLOAD] / (1 + terms[:, 0]),
                                                   abs=1e-3)
    assert physical['delay_steps'] == 2 and physical['torque_lag_ms'] == [14.4] * 7
    assert physical['support_smoothing_ticks'] == 1 and len(physical['ridge']) == 2
    if not fit.wavenumbers.any():
        assert physical['ripple_period_rad'] == [None] * 7


def test_the_held_out_judgement_takes_a_fit_that_predicts_better_and_refuses_one_that_does_not(
        identification):
    """Judged as every adaptation is (``procedure``): on the heavier robot every joint takes
    the fit and the support loss falls; on the URDF robot itself, with noise, a joint whose
    fit predicts its held-out halves worse keeps the URDF model."""
    from maml_ros.model.held_out import judge

    scale = np.ones(7)
    heavy = with_commands(identification, sines(400), heavier_robot(identification))
    judged = judge(identification.procedure(scale), identification.initial(), heavy)
    assert judged.adopted.all() and judged.loss_after < 0.01 * judged.loss_before
    exact = with_commands(identification, sines(400), identification.prior)
    noise = 0.5 * np.random.default_rng(3).standard_normal(exact.commands.shape)
    noisy = Transitions(exact.states, exact.commands + noise, exact.next_states)
    judged = judge(identification.procedure(scale), identification.initial(), noisy)
    kept = ~judged.adopted
    before, after = judged.held_out.before, judged.held_out.after
    np.testing.assert_array_equal(kept, (after > before).all(0))
    np.testing.assert_array_equal(judged.state.theta[kept], np.tile(identification.prior,
                                                                     (kept.sum(), 1)))
