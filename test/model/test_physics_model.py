"""The physics model: delay- and lag-aware pairing, the preconditioned step, the policy."""

import numpy as np
import pytest
import torch

from maml_ros.evaluation.tracking import EvalSettings, evaluate_task
from maml_ros.model.actuator import CommandPipeline
from maml_ros.model.held_out import judge
from maml_ros.model.physics_adaptation import (
    COULOMB_TERMS,
    PASSIVE_TERMS,
    PhysicsAdaptation,
    held_friction,
    passive_refit,
    physics_procedure,
)
from maml_ros.model.physics_model import (
    DELAYS,
    RETENTIONS,
    PhysicsResidualModel,
    damped_step,
)
from maml_ros.model.transitions import Transitions
from maml_ros.sim import Dynamics, NominalController, RolloutConfig, Task, run_task
from maml_ros.sim.robot import RIPPLE_WAVENUMBER

N, P = 3, 6  # joints, physical terms


def lagged(commands, delay, retention):
    """What the simulator applies: the delay line (filled by the first command), then the
    first-order lag (started at the first command in force)."""
    in_force = np.vstack([np.repeat(commands[:1], delay, 0), commands[:len(commands) - delay]])
    effective = [in_force[0]]
    for command in in_force[1:]:
        effective.append(retention * effective[-1] + (1 - retention) * command)
    return np.array(effective)


def test_the_pipeline_inverts_delay_and_lag_exactly():
    """Commands from ``command_for`` make the torque that acts equal the one asked for,
    ``delay`` steps later, with a lag on every joint."""
    delay, retention = 2, np.array([0.0, 0.5, 0.8])
    wanted = np.random.default_rng(0).normal(size=(30, N))
    pipeline = CommandPipeline(n_joints=N, delay=delay, retention=retention)
    sent = []
    for target in wanted:
        sent.append(pipeline.command_for(target))
        pipeline.sent(sent[-1])
    acting = lagged(np.array(sent), delay, retention)
    assert np.allclose(acting[delay:], wanted[:-delay])
    # A new estimate replays what was sent: under it, the inversion is exact from there on.
    pipeline.retarget(1, 0.3)
    for target in wanted:
        sent.append(pipeline.command_for(target))
        pipeline.sent(sent[-1])
    assert np.allclose(lagged(np.array(sent), 1, 0.3)[31:], wanted[:-1])
    with pytest.raises(ValueError, match='retention'):
        pipeline.retarget(1, 1.0)


def synthetic_task(delay, lag_index, *, steps=120, seed=0):
    """A hand-made sequence: torques linear in known parameters, commands that produce them
    through a known delay and per-joint lag."""
    rng = np.random.default_rng(seed)
    physical = rng.normal(size=(steps, N, P))
    theta = rng.normal(size=(N, P))
    torque = np.einsum('tjp,jp->tj', physical, theta)
    retention = np.array(RETENTIONS)[lag_index]
    # e[t] = r e[t-1] + (1 - r) u[t - delay]  =>  u[t - delay] = (e[t] - r e[t-1]) / (1 - r)
    inverse = (torque[1:] - retention * torque[:-1]) / (1 - retention)  # row i: t = i + 1
    commands = np.zeros((steps, N))
    for sent_at in range(max(0, 1 - delay), steps - delay):
        commands[sent_at] = inverse[sent_at + delay - 1]
    return physical, theta, commands


@pytest.mark.parametrize('harmonics', [0, 2])
@pytest.mark.parametrize('delay, lag_index', [(0, [0, 0, 0]), (2, [1, 3, 0]), (4, [4, 2, 1])])
def test_the_step_finds_the_delay_and_lags_and_recovers_the_parameters(delay, lag_index,
                                                                       harmonics):
    """With harmonics, the delay and lags are chosen by the physical terms (the residual at
    its prior, zero) and the step then fits them all: zero weight on the harmonics."""
    physical, theta, commands = synthetic_task(delay, lag_index)
    model = PhysicsResidualModel(n_joints=N, features=0, harmonics=harmonics).double()
    inputs = torch.as_tensor(np.random.default_rng(1).uniform(-1, 1, (1, len(physical), 3 * N)))
    with torch.no_grad():
        model.log_precision.fill_(np.log(1e-8))  # an uninformative prior
        fit, found_delay, found_lag = model.adapt(
            model.design(torch.as_tensor(physical[None]), inputs), torch.as_tensor(commands[None]))
    assert DELAYS[int(found_delay[0])] == delay
    assert found_lag[0].tolist() == lag_index
    assert np.allclose(fit[0, :, :P].numpy(), theta, atol=1e-5)
    assert np.allclose(fit[0, :, P:].numpy(), 0.0, atol=1e-4)  # RIDGE's pull


def test_the_delay_is_the_one_the_joints_prefer_each_relative_to_its_own_best():
    """A light joint's objective is large in its own units and barely depends on the delay
    (friction and ripple); the joints whose motion the delay explains choose it."""
    objective = torch.ones(len(RETENTIONS), len(DELAYS), N)  # (R, D, n)
    objective[:, :, :2] = 10.0
    objective[2, 1, :2] = 1.0  # joints 1-2: delay 1 (lag index 2) fits 10 times better
    objective[:, :, 2] = 1000.0
    objective[0, 4, 2] = 900.0  # joint 3: large, and 10% better with 4 steps
    delay, lag = PhysicsResidualModel.select(objective)
    assert DELAYS[int(delay)] == 1
    assert lag.tolist() == [2, 2, 0]
    absolute = objective.min(0).values.sum(-1).argmin()  # what an absolute total chooses
    assert DELAYS[int(absolute)] == 4


def test_a_strong_prior_holds_the_parameters_where_the_data_are_few():
    physical, theta, commands = synthetic_task(1, [1, 1, 1], steps=12)
    model = PhysicsResidualModel(n_joints=N, features=0)
    with torch.no_grad():
        model.log_precision.fill_(np.log(1e6))
        fit, _, _ = model.adapt(model.design(torch.as_tensor(physical[None]).float(),
                                             torch.zeros(1, 12, 3 * N)),
                                torch.as_tensor(commands[None]).float())
    assert torch.allclose(fit[0], model.prior, atol=1e-3)


def noise_free_support(models, dynamics, steps=300, exploration_std=0.02):
    config = RolloutConfig(robot=models.formulation.robot, steps=steps,
                           exploration_std=exploration_std)
    rollout = run_task(Task(3, dynamics), config=config,
                       controller=NominalController(config=config.robot))
    return Transitions(states=rollout.states, commands=rollout.issued_commands,
                       next_states=rollout.next_states)


def test_adapted_physical_parameters_recover_a_noise_free_robot(models):
    """Gain, payload and delay of a robot without noise, lag or ripple, from 300 transitions
    with an uninformative prior (the shoulder and elbow carry the payload's weight), from the
    raw rows (the moving average that takes a real robot's noise out also takes out some of
    the exploration's tick-to-tick steps that identify a noise-free one: the elbow's gain
    came out 0.84)."""
    dynamics = Dynamics(actuator_gain=0.8, payload_mass=1.5, latency_steps=1)
    model = PhysicsResidualModel(n_joints=7, features=0)
    model.fit_normalization(torch.zeros(2, 21), torch.ones(2, 7) * torch.arange(2)[:, None])
    with torch.no_grad():
        model.log_precision.fill_(np.log(1e-6))
    adaptation = PhysicsAdaptation(models.formulation, model)
    fit = adaptation.fit(noise_free_support(models, dynamics))
    identified = fit.physical()
    assert identified['delay_steps'] == 1
    assert np.allclose(np.array(identified['actuator_gain'])[[1, 3]], 0.8, rtol=0.05)
    assert np.allclose(np.array(identified['payload_kg'])[[1, 3]], 1.5, atol=0.15)


def test_the_harmonics_are_each_joints_own_position_at_its_learned_wavenumbers():
    model = PhysicsResidualModel(n_joints=N, features=0, harmonics=2)
    with torch.no_grad():
        model.log_wavenumber.copy_(torch.log(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])))
        model.output_scale.copy_(torch.tensor([1.0, 2.0, 4.0]))
    q = torch.tensor([[0.1, -0.2, 0.3]])
    inputs = torch.cat([q, torch.randn(1, 2 * N)], -1)  # velocities, accelerations: unused
    design = model.design(torch.zeros(1, N, P), inputs)[0]  # (n, 6 + 2 * 2)
    k = torch.tensor(model.wavenumbers(), dtype=torch.float32)
    angle = q[0, :, None] * k
    scale = model.output_scale[:, None]
    assert torch.allclose(design[:, P:P + 2], angle.sin() / scale)
    assert torch.allclose(design[:, P + 2:], angle.cos() / scale)


def test_adapted_ripple_recovers_a_noise_free_robot(models):
    """A transmission ripple of known amplitude, from 300 transitions with an uninformative
    prior and the model's harmonic at the ripple's period (what meta-training learns: the
    shipped model's wavenumbers). Joint 7 turns its flange about its own axis: its torque
    coefficient trades off against the payload term there, so its gain is not identifiable
    from these data and the ripple in N*m (the command's amplitude over the gain) with it.
    From the raw rows, as above."""
    dynamics = Dynamics(torque_ripple=0.2, ripple_phase=1.0)
    model = PhysicsResidualModel(n_joints=7, features=0, harmonics=1)
    model.fit_normalization(torch.zeros(2, 21), torch.ones(2, 7) * torch.arange(2)[:, None])
    with torch.no_grad():
        model.log_precision.fill_(np.log(1e-6))
        model.log_wavenumber.fill_(np.log(RIPPLE_WAVENUMBER))
    adaptation = PhysicsAdaptation(models.formulation, model)
    identified = adaptation.fit(noise_free_support(models, dynamics)).physical()
    assert np.allclose(identified['ripple_nm'][:6], 0.2, rtol=0.1)
    assert np.allclose(identified['ripple_period_rad'], 2 * np.pi / RIPPLE_WAVENUMBER)
    assert np.allclose(identified['actuator_gain'][:6], 1.0, rtol=0.05)


def test_the_shipped_physics_model_beats_the_urdf_on_a_robot_with_the_reality_gap(models, robot):
    robot_with_gap = Dynamics(payload_mass=1.5, actuator_gain=0.85, joint_friction=0.2,
                              latency_steps=1, actuator_lag=0.01, torque_ripple=0.1)
    settings = EvalSettings(track_steps=200, methods=('nominal', 'maml_physics'))
    result = evaluate_task(models, robot_with_gap, seed=7, settings=settings, robot=robot)
    assert result['maml_physics']['accepted'] == 1.0
    assert result['maml_physics']['rmse'] < 0.5 * result['nominal']['rmse']
    assert result['maml_physics']['identified']['delay_steps'] == 1


def test_the_fit_is_solvable_for_a_light_joint_that_never_slows_down():
    """The xArm6's wrist: torque columns 1000 times smaller than the velocity column, and
    both Coulomb columns the sign of a velocity that never crosses zero (the unscaled float32
    normal matrix was not positive definite and training stopped)."""
    rng = np.random.default_rng(0)
    rows = 196
    qd = rng.uniform(1.0, 3.0, rows)
    psi = np.stack([rng.normal(0, 1e-3, rows), rng.normal(0, 1e-3, rows), qd,
                    np.tanh(qd / 0.02), np.tanh(qd / 0.2), np.ones(rows)], -1)
    y = psi @ np.array([900.0, 50.0, 0.2, 0.3, 0.1, 0.05]) + rng.normal(0, 1e-3, rows)
    precision = np.full(6, 1e-6)
    theta = damped_step(torch.tensor(psi, dtype=torch.float32),
                        torch.tensor(y[:, None], dtype=torch.float32),
                        torch.zeros(6), torch.tensor(precision, dtype=torch.float32))
    assert torch.all(torch.isfinite(theta))
    # What the fit predicts is as good as the float64 solution's (theta itself is not
    # identifiable: the two Coulomb columns are one).
    exact = np.linalg.solve(psi.T @ psi + np.diag(precision), psi.T @ y)
    residual = np.sqrt(np.mean((psi @ theta.double().numpy()[:, 0] - y) ** 2))
    assert residual < 1.5 * np.sqrt(np.mean((psi @ exact - y) ** 2))


def test_a_negative_friction_or_payload_is_held_at_zero_and_the_rest_refitted():
    """Commands that a negative Coulomb friction would explain best (as the barely excited
    wrist of the xArm6 did): the physical fit keeps friction, damping and payload >= 0."""
    model = PhysicsResidualModel(n_joints=1, features=0)
    rng = np.random.default_rng(0)
    steps = 200
    qd = rng.uniform(-1.0, 1.0, steps)
    tau = rng.normal(0.0, 1.0, steps)
    physical = np.stack([tau, rng.normal(0, 0.1, steps), qd, np.tanh(qd / 0.02),
                         np.tanh(qd / 0.2), np.ones(steps)], -1)[:, None, :]
    commands = 1.1 * tau - 0.3 * np.tanh(qd / 0.02)  # "anti-friction"
    design = model.design(torch.tensor(physical, dtype=torch.float32),
                          torch.zeros(steps, 3)).double()
    commands = torch.tensor(commands[:, None])
    delay, lag = torch.tensor(0), torch.tensor([0])
    prior, precision = model.prior.detach().double(), model.log_precision.exp().detach().double()
    with torch.no_grad():
        free = model.refit(design, commands, delay, lag, prior, precision)
        held = passive_refit(model, design, commands, delay, lag, prior, precision)
    assert free[0, 3] < -0.1  # the unconstrained step takes the anti-friction
    assert torch.all(held[0, PASSIVE_TERMS] > -1e-6)
    assert held[0, 0] == pytest.approx(1.1, abs=0.05)  # the torque term still fits


def test_averaging_the_design_rows_and_commands_alike_leaves_the_fit_unbiased(models):
    """Commands that are exactly the raw design rows times known parameters: the fit through
    the moving average predicts them as the raw rows' fit does, to 0.1% (the model is linear
    in its parameters, and both sides are averaged alike; the delay and lag found are none).
    The parameters themselves are not all identifiable from this support: viscous and
    Coulomb friction trade off on joints that barely reverse."""
    model = PhysicsResidualModel(n_joints=7, features=0)
    model.fit_normalization(torch.zeros(2, 21), torch.ones(2, 7) * torch.arange(2)[:, None])
    with torch.no_grad():
        model.log_precision.fill_(np.log(1e-6))
    adaptation = PhysicsAdaptation(models.formulation, model)
    support = noise_free_support(models, Dynamics())
    theta = np.zeros((7, P))
    theta[:, 0], theta[:, 2], theta[:, 5] = 0.8, 0.3, 0.1  # gain, viscous, offset
    design, _ = adaptation.support(adaptation.prepare(support, smoothing=1))
    commands = (design.numpy() * theta).sum(-1) * model.output_scale.numpy()
    exact = Transitions(support.states, commands, support.next_states)
    for smoothing in (1, 5):
        fit = adaptation.fit(adaptation.prepare(exact, smoothing=smoothing))
        assert (fit.delay, fit.retention.max()) == (0, 0.0)
        predicted = (design.numpy() * fit.theta).sum(-1) * model.output_scale.numpy()
        relative = np.sqrt(np.mean((predicted - commands) ** 2, 0) / np.mean(commands ** 2, 0))
        assert relative.max() < 1e-3  # of each joint's commands (RMS)


def test_the_support_is_averaged_where_that_predicts_held_out_commands_better(models):
    """A simulated robot's exploration steps its commands from tick to tick: through the
    raw rows the fits predict the other half of the support better, those steps are what
    identifies it. Under heavy velocity noise (0.2 rad/s), or where the commands are
    smooth (no exploration, as in a logged excitation trajectory), through the rows
    averaged over 5 ticks."""
    running = PhysicsAdaptation(models.formulation, models.physics).initial()
    procedure = physics_procedure(models, running)

    def smoothing(support: Transitions) -> int:
        return judge(procedure, running, support).state.smoothing

    support = noise_free_support(models, Dynamics(payload_mass=1.0))
    assert smoothing(support) == 1
    measured = np.concatenate([support.states, support.next_states[-1:]])
    measured[:, 7:] += np.random.default_rng(0).normal(0.0, 0.2, measured[:, 7:].shape)
    assert smoothing(Transitions(measured[:-1], support.commands, measured[1:])) == 5
    assert smoothing(noise_free_support(models, Dynamics(payload_mass=1.0),
                                        exploration_std=0.0)) == 5


def test_a_joint_held_still_is_fitted_where_it_moved_and_given_the_friction_that_held_it():
    """Dry friction of 0.5 N*m (0.3 sliding) holds a joint still over 60% of its support
    while the controller pushes it by up to 0.4 N*m: the fit is made where it moved (the
    pushes, which no state predicts, do not bend its torque term) and its Coulomb friction is
    at least the 0.4 it was held against, and no more than the 0.5 it has."""
    model = PhysicsResidualModel(n_joints=1, features=0)
    rng = np.random.default_rng(0)
    steps = 250
    held = np.arange(steps) < 0.6 * steps
    qd = np.where(held, rng.uniform(-0.002, 0.002, steps), rng.uniform(0.2, 1.0, steps)
                  * rng.choice([-1, 1], steps))
    tau = rng.normal(0.0, 1.0, steps)
    push = 0.4 * np.sin(np.linspace(0.0, 20.0, steps))
    commands = 1.1 * tau + np.where(held, push, 0.3 * np.tanh(qd / 0.02))
    physical = np.stack([tau, rng.normal(0, 0.1, steps), qd, np.tanh(qd / 0.02),
                         np.tanh(qd / 0.2), np.ones(steps)], -1)[:, None, :]
    design = model.design(torch.tensor(physical, dtype=torch.float32),
                          torch.zeros(steps, 3)).double()
    commands = torch.tensor(commands[:, None])
    delay, lag = torch.tensor(0), torch.tensor([0])
    prior, precision = model.prior.detach().double(), torch.full((1, P), 1e-6).double()
    with torch.no_grad():
        theta, held_against = held_friction(model, design, commands, delay, lag, passive_refit(
            model, design, commands, delay, lag, prior, precision))
    assert theta[0, 0] == pytest.approx(1.1, abs=0.01)
    assert float(held_against[0]) == pytest.approx(0.4, abs=0.01)
    coulomb = float(theta[0, COULOMB_TERMS].sum())
    assert 0.39 < coulomb <= 0.5


def test_a_robot_at_rest_is_identified_where_holding_a_posture_takes_more_than_friction(models):
    """A robot held at one posture, commanded 1.3 times the URDF's torque, its wrist (URDF
    torque under 0.03 N*m there) pushed by up to 0.3 N*m and its shoulder (2.7 N*m) by up to
    0.1, which friction held: the wrist is not identified (its torques are friction's
    reaction), keeps the model it had with at least that friction, and is listed; the
    shoulder, whose posture takes far more than friction could hold, is fitted."""
    adaptation = PhysicsAdaptation(models.formulation, models.physics)
    home = np.array(models.formulation.robot.home)
    steps = 200
    states = np.tile(np.concatenate([home, np.zeros(7)]), (steps, 1))
    zeros = np.zeros((1, 7))
    gravity = models.formulation.nominal(home[None], zeros, zeros)[0]
    commands = np.tile(1.3 * gravity, (steps, 1))
    push = np.sin(np.linspace(0.0, 20.0, steps))
    commands[:, 6] += 0.3 * push
    commands[:, 1] += 0.1 * push
    assert abs(gravity[6]) < 0.03 and abs(gravity[1]) > 10 * 0.1
    running = adaptation.initial()
    fit = adaptation.fit(Transitions(states, commands, states), start=running)
    assert fit.kept == (6,) and fit.physical()['not_identified_joints'] == [7]
    sharp = COULOMB_TERMS[0]
    np.testing.assert_array_equal(fit.theta[6, :sharp], running.theta[6, :sharp])
    assert fit.theta[6, COULOMB_TERMS].sum() == pytest.approx(0.3, abs=0.02)
    assert not np.allclose(fit.theta[1], running.theta[1])
