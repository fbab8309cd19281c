"""The residual formulation: hindsight relabelling and the nominal command."""

import copy

import numpy as np
import pytest

from maml_ros.maml.checkpoint import Checkpoint, load_checkpoint
from maml_ros.model.formulation import Formulation
from maml_ros.model.physics_model import PhysicsResidualModel
from maml_ros.model.trained_models import PHYSICS, TrainedModels
from maml_ros.resources import shipped_checkpoint
from maml_ros.sim import (
    Dynamics,
    InverseDynamicsModel,
    NominalController,
    RobotConfig,
    RolloutConfig,
    Task,
    run_task,
)


@pytest.fixture(scope='module')
def nominal_rollout():
    config = RolloutConfig(steps=200, exploration_std=0.02)
    return run_task(Task(5, Dynamics()), config=config)


def test_hindsight_residual_is_small_on_the_nominal_robot(nominal_rollout):
    formulation = Formulation()
    r = nominal_rollout
    features, residual = formulation.hindsight(r.states, r.issued_commands, r.next_states)
    assert features.shape == (200, 28) and residual.shape == (200, 7)
    command_rms = np.sqrt(np.mean(r.issued_commands ** 2))
    assert np.sqrt(np.mean(residual ** 2)) < 0.05 * command_rms


def test_hindsight_residual_grows_with_a_payload_and_weak_actuators():
    formulation = Formulation()
    config = RolloutConfig(steps=200, exploration_std=0.02)
    sizes = []
    for dynamics in (Dynamics(), Dynamics(payload_mass=2.0, actuator_gain=0.8)):
        r = run_task(Task(5, dynamics), config=config)
        _, residual = formulation.hindsight(r.states, r.issued_commands, r.next_states)
        sizes.append(np.sqrt(np.mean(residual ** 2)))
    assert sizes[1] > 10 * sizes[0]


def test_zero_residual_policy_is_the_nominal_computed_torque_controller():
    formulation = Formulation()
    controller = NominalController(config=formulation.robot)
    rng = np.random.default_rng(0)
    q, qd, q_ref, qd_ref, qdd_ref = (rng.normal(scale=0.3, size=7) for _ in range(5))
    q += np.array(formulation.robot.home)
    acceleration = formulation.desired_acceleration(q, qd, q_ref, qd_ref, qdd_ref)
    features, nominal = formulation.features(q, qd, acceleration)
    expected = controller.command(q, qd, q_ref, qd_ref, qdd_ref)
    unclamped = np.abs(expected) < controller.model.description.limits.effort
    np.testing.assert_allclose(nominal[unclamped], expected[unclamped], rtol=1e-9)
    np.testing.assert_array_equal(features[21:], nominal)


@pytest.mark.parametrize('interface', ['position', 'velocity'])
def test_nominal_command_integrates_the_acceleration_for_other_interfaces(interface):
    formulation = Formulation(robot=RobotConfig(command_interface=interface))
    q, qd, a = np.ones((4, 7)), np.full((4, 7), 0.5), np.full((4, 7), 2.0)
    nominal = formulation.nominal(q, qd, a)
    expected = qd + a * 0.01 if interface == 'velocity' else q + qd * 0.01 + a * 0.5e-4
    np.testing.assert_allclose(nominal, expected)


def test_pure_inverse_model_learns_the_whole_command(nominal_rollout):
    formulation = Formulation(residual=False)
    r = nominal_rollout
    features, targets = formulation.hindsight(r.states, r.issued_commands, r.next_states)
    assert formulation.feature_dim == 21 and features.shape == (200, 21)
    np.testing.assert_array_equal(targets, r.issued_commands)


def test_gains_and_exploration_are_derived_per_joint_and_kept_by_checkpoints():
    """The wrist's exploration is the torque that changes its speed by its velocity limit
    in one period (far below its effort limit); heavy joints keep the effort limit."""
    formulation = Formulation()
    model = InverseDynamicsModel.shared(formulation.robot)
    limits, home = model.description.limits, model.description.home
    wrist = model.inertia_diagonals(home)[0][6] * limits.velocity[6] / 0.01
    assert formulation.exploration_scale[6] == pytest.approx(wrist)
    assert formulation.exploration_scale[6] < 0.2 * limits.effort[6]
    assert formulation.exploration_scale[:4] == tuple(limits.effort[:4])
    assert formulation.position_gain == (100.0,) * 7  # sim/gains.py: 10 rad/s
    assert formulation.natural_frequency == (10.0,) * 7


def legacy_checkpoint() -> Checkpoint:
    """The shipped checkpoint as the release before the derived gains wrote it: scalar gains
    (12 rad/s), no exploration scale, a physics model without harmonics."""
    checkpoint = load_checkpoint(shipped_checkpoint())
    meta = copy.deepcopy(checkpoint.metadata)
    form = meta['formulation']
    form.update(position_gain=144.0, velocity_gain=24.0)
    del form['exploration_scale']
    physics = {key: value for key, value in meta['physics'].items() if key != 'harmonics'}
    meta['physics'] = physics
    old = PhysicsResidualModel.from_architecture(physics)
    tensors = {name: tensor for name, tensor in checkpoint.tensors.items()
               if not name.startswith(PHYSICS)}
    tensors |= {PHYSICS + name: tensor for name, tensor in old.state_dict().items()}
    return Checkpoint(tensors=tensors, metadata=meta)


def test_a_checkpoint_from_before_the_derivation_keeps_its_gains_and_exploration():
    models = TrainedModels.from_checkpoint(legacy_checkpoint())
    form = models.formulation
    limits = InverseDynamicsModel.shared(form.robot).description.limits
    assert form.position_gain == (144.0,) * 7
    assert form.exploration_scale == tuple(limits.effort)
    assert models.physics.harmonics == 0 and models.physics.wavenumbers().shape == (7, 0)


@pytest.mark.parametrize('gain', [[1.0, 2.0], -1.0, float('nan')])
def test_bad_gains_are_refused(gain):
    with pytest.raises(ValueError, match='position_gain'):
        Formulation(position_gain=gain, velocity_gain=20.0)
