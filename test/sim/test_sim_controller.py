"""The nominal computed-torque controller: tracking, limits, pickling, the protocol."""

import pickle

import numpy as np
import pytest

from maml_ros.sim import (
    PANDA_HOME,
    Controller,
    Dynamics,
    InverseDynamicsModel,
    NominalController,
    RobotConfig,
    RolloutConfig,
    SimRobot,
    Task,
    evaluate_tracking,
)

STEPS = 300  # 3 s: the fade-in ramp (1 s) and two seconds of full motion


@pytest.fixture(scope='module')
def robot():
    with SimRobot() as shared:
        yield shared


def test_nominal_controller_tracks_the_nominal_robot_closely(robot):
    config = RolloutConfig(steps=STEPS)
    rmse = [evaluate_tracking(NominalController(), task=Task(seed, Dynamics()), config=config,
                              robot=robot) for seed in range(3)]
    # Measured about 2e-4 rad: computed torque with the exact model leaves only
    # the discretisation error of torques held for 10 ms.
    assert max(rmse) < 2e-3


def test_randomized_dynamics_degrade_nominal_tracking_but_it_stays_stable(robot):
    config = RolloutConfig(steps=STEPS)
    nominal = evaluate_tracking(NominalController(), task=Task(0, Dynamics()), config=config,
                                robot=robot)
    randomized = [evaluate_tracking(NominalController(), task=seed, config=config, robot=robot)
                  for seed in range(4)]
    # Measured 0.046-0.097 rad: model error (gain, masses, payload), latency, friction.
    assert min(randomized) > 5 * nominal
    assert max(randomized) < 0.2


@pytest.mark.parametrize('interface', ['position', 'velocity'])
def test_position_and_velocity_interfaces_track_the_nominal_robot(interface):
    robot_config = RobotConfig(command_interface=interface)
    config = RolloutConfig(robot=robot_config, steps=STEPS)
    rmse = evaluate_tracking(NominalController(config=robot_config), task=Task(0, Dynamics()),
                             config=config)
    assert rmse < 0.01


def test_gains_matter():
    config = RolloutConfig(steps=STEPS)
    # Pure inverse dynamics drifts with no feedback; feedback pulls it back.
    open_loop = evaluate_tracking(NominalController(position_gain=0.0, velocity_gain=0.0),
                                  task=Task(0, Dynamics(actuator_gain=0.9)), config=config)
    closed_loop = evaluate_tracking(NominalController(),
                                    task=Task(0, Dynamics(actuator_gain=0.9)), config=config)
    assert closed_loop < open_loop / 3


def test_effort_commands_stay_within_the_urdf_limits():
    controller = NominalController()
    far = np.array(PANDA_HOME) + 2.0
    tau = controller.command(np.array(PANDA_HOME), np.full(7, 2.0), far, np.zeros(7),
                             np.zeros(7))
    limits = np.array([87.0] * 4 + [12.0] * 3)
    assert np.all(np.abs(tau) <= limits)
    assert np.any(np.abs(tau) == limits)


def test_controller_is_picklable_after_use_and_follows_the_protocol():
    controller = NominalController(position_gain=[100.0] * 7, velocity_gain=20.0)
    args = (np.array(PANDA_HOME), np.zeros(7), np.array(PANDA_HOME) + 0.1, np.zeros(7),
            np.zeros(7))
    before = controller.command(*args)
    clone = pickle.loads(pickle.dumps(controller))
    assert np.array_equal(clone.command(*args), before)
    assert isinstance(controller, Controller)
    with pytest.raises(ValueError, match='must be >= 0'):
        NominalController(position_gain=-1.0)


def test_nominal_inverse_dynamics_takes_arrays_or_lists_and_includes_gravity():
    model = InverseDynamicsModel.shared(RobotConfig())
    zeros = np.zeros(7)
    from_arrays = model.torques(np.array(PANDA_HOME), zeros, zeros)
    from_lists = model.torques(list(PANDA_HOME), [0.0] * 7, [0.0] * 7)
    assert np.array_equal(from_arrays, from_lists)
    assert abs(from_arrays[3]) > 10  # the elbow holds up the forearm
    assert np.abs(model.torques(np.array(PANDA_HOME), zeros, np.ones(7)) - from_arrays).min() > 0
