"""The randomized robot: physics under effort control, latency, noise, randomization. The
tests of ``robot`` run on both engines (PyBullet, MuJoCo); those of ``pybullet_robot`` look
into PyBullet itself."""

import numpy as np
import pybullet
import pytest

from maml_ros.sim import (
    Dynamics,
    DynamicsRanges,
    InverseDynamicsModel,
    NominalController,
    RobotConfig,
    SimRobot,
    make_robot,
)
from maml_ros.sim.model import load_robot


@pytest.fixture(scope='module', params=['pybullet', 'mujoco'])
def robot(request):
    with make_robot(request.param) as shared:
        yield shared


@pytest.fixture(scope='module')
def pybullet_robot():
    with SimRobot() as shared:
        yield shared


def drive(robot, dynamics, commands, *, seed=0):
    """Open loop: reset at home, apply ``commands``; return true and measured states."""
    robot.set_dynamics(dynamics)
    robot.reset(seed=seed)
    true, measured, in_force = [], [], []
    for command in commands:
        robot.step(command)
        true.append(np.concatenate(robot.true_state()))
        measured.append(np.concatenate(robot.measured_state()))
        in_force.append(robot.command_in_force)
    return np.array(true), np.array(measured), np.array(in_force)


def wiggle(steps=60):
    """Gravity compensation at home plus a smooth torque wiggle (moves every joint)."""
    model = InverseDynamicsModel.shared(RobotConfig())
    home = model.description.home
    hold = model.torques(home, np.zeros(7), np.zeros(7))
    t = np.arange(steps)[:, None] * 0.01
    return hold + np.array([4, 4, 3, 3, 1, 1, 0.5]) * np.sin(2 * np.pi * 2 * t + np.arange(7))


def test_joint_limits_come_from_the_urdf(robot):
    assert robot.joint_names == tuple(f'panda_joint{i}' for i in range(1, 8))
    assert robot.limits.effort.tolist() == [87.0] * 4 + [12.0] * 3
    assert robot.limits.velocity.tolist() == [2.175] * 4 + [2.61] * 3
    assert robot.limits.lower[3] == pytest.approx(-3.1416)
    assert robot.limits.upper[5] == pytest.approx(3.8223)


def test_unpowered_arm_falls_but_nominal_gravity_compensation_holds_it(robot):
    steps = 100  # one second
    fallen, _, _ = drive(robot, Dynamics(), [np.zeros(7)] * steps)
    assert np.abs(fallen[-1, :7] - robot.description.home).max() > 0.3

    compensation = NominalController(position_gain=0.0, velocity_gain=0.0)
    robot.set_dynamics(Dynamics())
    robot.reset()
    for _ in range(steps):
        q, qd = robot.true_state()
        robot.step(compensation.command(q, qd, q, np.zeros(7), np.zeros(7)))
    q, qd = robot.true_state()
    assert np.abs(q - robot.description.home).max() < 1e-4
    assert np.abs(qd).max() < 1e-4


def test_held_torque_over_substeps_equals_resending_it_every_physics_step():
    """The robot steps 10 ms per stepSimulation call; PyBullet must not drop the torque."""
    config = RobotConfig()
    held_client, held_body, description = load_robot(config)
    fine_client, fine_body, _ = load_robot(config)
    once_client, once_body, _ = load_robot(config)
    for client in (fine_client, once_client):
        pybullet.setPhysicsEngineParameter(fixedTimeStep=config.physics_period, numSubSteps=1,
                                           physicsClientId=client)
    joints = list(description.joint_indices)
    try:
        for command in wiggle(30):
            torque = command.tolist()
            pybullet.setJointMotorControlArray(held_body, joints, pybullet.TORQUE_CONTROL,
                                               forces=torque, physicsClientId=held_client)
            pybullet.stepSimulation(physicsClientId=held_client)
            pybullet.setJointMotorControlArray(once_body, joints, pybullet.TORQUE_CONTROL,
                                               forces=torque, physicsClientId=once_client)
            for _ in range(config.substeps):
                pybullet.setJointMotorControlArray(fine_body, joints, pybullet.TORQUE_CONTROL,
                                                   forces=torque, physicsClientId=fine_client)
                pybullet.stepSimulation(physicsClientId=fine_client)
                pybullet.stepSimulation(physicsClientId=once_client)
        held, fine, once = (
            np.array([s[:2] for s in pybullet.getJointStates(body, joints, physicsClientId=c)])
            for c, body in ((held_client, held_body), (fine_client, fine_body),
                            (once_client, once_body)))
        assert np.array_equal(held, fine)
        assert np.abs(once - fine).max() > 0.1  # torque sent once acts for 1 ms only
    finally:
        for client in (held_client, fine_client, once_client):
            pybullet.disconnect(physicsClientId=client)


def test_same_commands_move_randomized_tasks_differently(robot):
    ranges = DynamicsRanges(latency_steps=(0, 0), position_noise_std=(0, 0),
                            velocity_noise_std=(0, 0))
    commands = wiggle()
    finals = [drive(robot, ranges.sample(np.random.default_rng(seed), n_joints=7,
                                         n_links=12), commands)[0][-1] for seed in range(3)]
    again = drive(robot, ranges.sample(np.random.default_rng(0), n_joints=7, n_links=12),
                  commands)[0][-1]
    assert np.array_equal(finals[0], again)
    for i in range(3):
        for j in range(i):
            assert np.abs(finals[i] - finals[j]).max() > 1e-2


@pytest.mark.parametrize('change', [
    {'link_mass_scale': 1.2}, {'payload_mass': 1.0}, {'joint_damping': 0.3},
    {'joint_friction': 0.3}, {'actuator_gain': 0.8}, {'actuator_lag': 0.02},
    {'torque_ripple': 0.3},
])
def test_each_physical_factor_changes_the_motion(robot, change):
    commands = wiggle()
    nominal = drive(robot, Dynamics(), commands)[0]
    changed = drive(robot, Dynamics(**change), commands)[0]
    assert np.abs(changed - nominal).max() > 1e-3


def test_payload_sits_on_the_hand_with_inertia_scaled(pybullet_robot):
    robot = pybullet_robot
    hand = robot.description.link_names.index('panda_hand')
    nominal = pybullet.getDynamicsInfo(robot.body_id, hand, physicsClientId=robot.client_id)
    robot.set_dynamics(Dynamics(payload_mass=2.0))
    loaded = pybullet.getDynamicsInfo(robot.body_id, hand, physicsClientId=robot.client_id)
    robot.set_dynamics(Dynamics())
    factor = (nominal[0] + 2.0) / nominal[0]
    assert loaded[0] == pytest.approx(nominal[0] + 2.0)
    assert np.allclose(loaded[2], np.array(nominal[2]) * factor)


@pytest.mark.parametrize('latency', [1, 3])
def test_latency_delays_the_command_by_exactly_that_many_control_steps(robot, latency):
    commands = wiggle(40)
    late, _, in_force = drive(robot, Dynamics(latency_steps=latency), commands)
    # The command in force at t is the one issued at t - latency (the first
    # command fills the delay line)...
    expected = np.concatenate([[commands[0]] * latency, commands[:-latency]])
    assert np.array_equal(in_force, expected)
    # ...and the physics sees exactly that: a robot without latency fed the
    # shifted commands moves identically, bit for bit.
    shifted, _, _ = drive(robot, Dynamics(), expected)
    assert np.array_equal(late, shifted)
    assert not np.array_equal(late, drive(robot, Dynamics(), commands)[0])


def test_measurement_noise_affects_measured_states_only(robot):
    commands = wiggle(200)
    clean_true, clean_measured, _ = drive(robot, Dynamics(), commands)
    noisy = Dynamics(position_noise_std=1e-3, velocity_noise_std=2e-2)
    noisy_true, noisy_measured, _ = drive(robot, noisy, commands)
    assert np.array_equal(clean_true, noisy_true)
    assert np.array_equal(clean_true, clean_measured)
    error = noisy_measured - noisy_true
    assert np.std(error[:, :7]) == pytest.approx(1e-3, rel=0.1)
    assert np.std(error[:, 7:]) == pytest.approx(2e-2, rel=0.1)
    # The noise is part of the seeded task: same seed, same noise.
    assert np.array_equal(noisy_measured, drive(robot, noisy, commands)[1])
    assert not np.array_equal(noisy_measured, drive(robot, noisy, commands, seed=1)[1])


def test_passive_torques_slow_a_moving_arm_without_chatter(robot):
    compensation = NominalController(position_gain=0.0, velocity_gain=0.0)
    start = np.array([0.3, 0.3, 0.3, 0.3, 1.0, 1.0, 1.0])

    def spin_down(dynamics):
        robot.set_dynamics(dynamics)
        robot.reset(velocities=start)
        velocities = []
        for _ in range(100):
            q, qd = robot.true_state()
            robot.step(compensation.command(q, qd, q, np.zeros(7), np.zeros(7)))
            velocities.append(robot.true_state()[1])
        return np.array(velocities)

    coasting = spin_down(Dynamics())
    braked = spin_down(Dynamics(joint_friction=0.5, joint_damping=0.3))
    assert np.abs(coasting[-1]).min() > 0.2
    assert np.abs(braked[-1]).max() < 0.15
    # Held for 10 ms, a naive friction torque would flip the wrist's velocity
    # every step (its inertia is 0.004 kg*m^2); the stabilised one does not. (A joint that
    # has stopped, below 1 mrad/s, has no direction: MuJoCo's dry friction holds it there.)
    moving = [np.sign(joint[np.abs(joint) > 1e-3]) for joint in braked.T]
    sign_flips = [(np.diff(signs) != 0).sum() for signs in moving]
    assert max(sign_flips) <= 2


def test_commands_are_clamped_to_the_effort_limits(robot):
    robot.set_dynamics(Dynamics())
    robot.reset()
    robot.step(np.array([1e3, -1e3, 1e3, -1e3, 1e3, -1e3, 1e3]))
    assert robot.issued_command.tolist() == [87, -87, 87, -87, 12, -12, 12]
    robot.reset()


def test_bad_commands_and_mismatched_dynamics_are_rejected(robot):
    robot.set_dynamics(Dynamics())
    robot.reset()
    with pytest.raises(ValueError, match='7 finite values'):
        robot.step(np.array([0.0] * 6 + [np.nan]))
    with pytest.raises(ValueError, match='7 finite values'):
        robot.step(np.zeros(6))
    with pytest.raises(ValueError, match='actuator_gain has 3 values but the robot has 7'):
        robot.set_dynamics(Dynamics(actuator_gain=[1.0, 1.0, 1.0]))


def test_writing_to_arrays_the_robot_hands_out_does_not_change_its_physics(pybullet_robot):
    robot = pybullet_robot
    commands = wiggle(20)
    expected, _, _ = drive(robot, Dynamics(latency_steps=2), commands)
    robot.reset()
    for command in commands:
        robot.step(command.copy())
        for array in (robot.issued_command, robot.command_in_force, *robot.true_state(),
                      *robot.measured_state()):
            array[:] = 0.0
    states = pybullet.getJointStates(robot.body_id, list(robot.description.joint_indices),
                                     physicsClientId=robot.client_id)
    assert np.array_equal([s[0] for s in states] + [s[1] for s in states], expected[-1])


def test_robot_configuration_errors_are_clear():
    with pytest.raises(ValueError, match='has no mass'):
        SimRobot(config=RobotConfig(payload_link='panda_link8'))
    with pytest.raises(ValueError, match=r"joints \['elbow'\] are not in"):
        SimRobot(config=RobotConfig(joints=('panda_joint1', 'elbow'), home=(0.0, 0.0)))
    with pytest.raises(ValueError, match='command_interface must be one of'):
        RobotConfig(command_interface='torque')
    with pytest.raises(ValueError, match='not a whole number of physics periods'):
        RobotConfig(control_period=0.0105)


def hold(robot, dynamics, torque, steps=50):
    """Largest joint drift (rad) over ``steps`` ticks commanding ``torque(q)`` from home."""
    robot.set_dynamics(dynamics)
    robot.reset()
    for _ in range(steps):
        robot.step(torque(robot.true_state()[0]))
    return np.abs(robot.true_state()[0] - robot.description.home).max()


def test_a_weaker_actuator_needs_proportionally_more_command_to_hold_a_posture(robot):
    """Gain 0.7 means 70% of the commanded torque arrives (not 143%): gravity compensation
    divided by 0.7 holds the arm, undivided it sags, and divided by 0.7 twice it rises."""
    model = InverseDynamicsModel.shared(RobotConfig())
    gravity = lambda q: model.torques(q, np.zeros(7), np.zeros(7))  # noqa: E731
    weak = Dynamics(actuator_gain=0.7)
    assert hold(robot, weak, lambda q: gravity(q) / 0.7) < 1e-4
    sag = hold(robot, weak, gravity)
    assert sag > 1e-2
    assert hold(robot, weak, lambda q: gravity(q) / 0.7 ** 2) > 0.5 * sag  # other way round


def test_a_payload_adds_its_weight_through_the_hand_jacobian(pybullet_robot):
    """The torque that holds a 2 kg payload still is the nominal gravity torque plus
    J(hand centre of mass)^T (0, 0, 2 kg * g), by PyBullet's own kinematics."""
    robot, payload, g = pybullet_robot, 2.0, 9.81
    hand = robot.description.payload_link_index
    robot.set_dynamics(Dynamics())
    robot.reset()
    client, body = robot.client_id, robot.body_id
    movable = robot.description.movable_indices
    positions = [s[0] for s in pybullet.getJointStates(body, movable, physicsClientId=client)]
    centre = pybullet.getDynamicsInfo(body, hand, physicsClientId=client)[3]  # inertial frame
    linear, _ = pybullet.calculateJacobian(body, hand, centre, positions, [0.0] * len(positions),
                                           [0.0] * len(positions), physicsClientId=client)
    columns = [movable.index(i) for i in robot.description.joint_indices]
    extra = payload * g * np.asarray(linear)[2, columns]
    model = InverseDynamicsModel.shared(RobotConfig())
    gravity = model.torques(robot.description.home, np.zeros(7), np.zeros(7))
    assert np.abs(extra).max() > 1.0  # the payload matters at this posture
    assert hold(robot, Dynamics(payload_mass=payload), lambda q: gravity + extra) < 2e-3
    assert hold(robot, Dynamics(payload_mass=payload), lambda q: gravity) > 1e-2


def test_the_torque_that_acts_is_the_delayed_command_through_a_first_order_lag(robot):
    """What the physics model pairs with each transition: the inverse dynamics of the achieved
    motion follows the command sent ``delay`` steps before, passed through the lag, much
    closer than the command in force or the command sent (joints 1-6; the light wrist meets
    its limit)."""
    delay, lag = 2, 0.015
    retention = np.exp(-0.01 / lag)
    commands = wiggle(40) + np.random.default_rng(0).normal(0, 0.2, (40, 7))
    true, _, _ = drive(robot, Dynamics(latency_steps=delay, actuator_lag=lag), commands)
    model = InverseDynamicsModel.shared(RobotConfig())
    states = np.vstack([np.concatenate([robot.description.home, np.zeros(7)]), true[:-1]])
    acceleration = (true[:, 7:] - states[:, 7:]) / 0.01
    torque = np.array([model.torques(s[:7], s[7:], a)
                       for s, a in zip(states, acceleration, strict=True)])
    in_force = np.vstack([np.repeat(commands[:1], delay, 0), commands[:-delay]])
    effective = [in_force[0]]
    for command in in_force[1:]:
        effective.append(retention * effective[-1] + (1 - retention) * command)

    def error(paired):
        return np.median(np.abs(torque - np.asarray(paired))[5:, :6])

    assert error(effective) < 0.6 * error(in_force)
    assert error(effective) < 0.25 * error(commands)


def test_torque_ripple_is_periodic_in_joint_position(robot):
    """The transmission's ripple: a torque of the given amplitude, period RIPPLE_PERIOD."""
    from maml_ros.sim.robot import RIPPLE_PERIOD

    robot.set_dynamics(Dynamics(torque_ripple=0.3, ripple_phase=1.0))
    q = robot.description.home
    ripple = -robot.passive_torque(q, np.zeros(7))
    assert np.allclose(ripple, 0.3 * np.sin(2 * np.pi * q / RIPPLE_PERIOD + 1.0))
    assert np.allclose(-robot.passive_torque(q + RIPPLE_PERIOD, np.zeros(7)), ripple)


def test_physics_seconds_add_up_the_time_spent_in_the_engine(monkeypatch):
    ticks = iter(range(0, 1000, 2))  # each reading 2 s later: each step "takes" 2 s
    monkeypatch.setattr('maml_ros.sim.robot.perf_counter', lambda: next(ticks))
    with SimRobot() as robot:
        assert robot.physics_seconds == 0.0
        for _ in range(3):
            robot.step(np.zeros(7))
        assert robot.physics_seconds == 6.0


def test_closing_a_robot_disconnects_its_own_client_only_and_twice_is_harmless():
    with SimRobot() as first, SimRobot() as second:
        client = first.client_id
        first.close()
        assert first.client_id is None
        assert not pybullet.isConnected(physicsClientId=client)
        assert pybullet.isConnected(physicsClientId=second.client_id)
        first.close()
        second.step(np.zeros(7))


@pytest.mark.parametrize('interface', ['velocity', 'position'])
def test_a_motor_interface_drives_its_target_and_works_against_friction(interface):
    """Velocity and position commands drive PyBullet's motors (up to the effort limit times
    the actuator gain); damping and friction load them like an effort robot's joints."""
    config = RobotConfig(command_interface=interface)
    with SimRobot(config=config) as robot:
        home = robot.description.home
        target = np.full(7, 0.2) if interface == 'velocity' else home + 0.05
        applied = {}
        for friction in (0.0, 0.5):
            robot.set_dynamics(Dynamics(joint_friction=friction, joint_damping=friction))
            robot.reset()
            for _ in range(30):
                robot.step(target)
            q, qd = robot.true_state()
            if interface == 'velocity':
                np.testing.assert_allclose(qd, target, atol=1e-3)
            else:
                np.testing.assert_allclose(q, target, atol=2e-3)
            applied[friction] = np.array([state[3] for state in pybullet.getJointStates(
                robot.body_id, list(robot.description.joint_indices),
                physicsClientId=robot.client_id)])
        if interface == 'velocity':  # moving: the motors overcome friction and damping
            # PyBullet reports a tenth of the passive torque here (per physics substep of the
            # control period, it seems); the direction and the proportions across joints
            # (damping and friction differ from joint to joint) are what is checked.
            ratio = (applied[0.5] - applied[0.0]) / robot.passive_torque(q, qd)
            np.testing.assert_allclose(ratio, ratio.mean(), rtol=0.02)
            assert ratio.mean() > 0


def test_the_dynamics_given_at_construction_are_the_robots():
    with SimRobot(dynamics=Dynamics(actuator_gain=0.5, latency_steps=1)) as robot:
        np.testing.assert_array_equal(robot.actuator_gain, np.full(7, 0.5))
        assert robot.dynamics.latency_steps == 1
        np.testing.assert_array_equal(robot.armature, np.zeros(7))  # none in the URDF


def test_a_weak_actuator_limits_what_a_velocity_motor_can_hold():
    """The motors' force is the effort limit times the actuator gain: at 2% of it, the arm
    cannot hold its shoulder against gravity with a zero-velocity command."""
    with SimRobot(config=RobotConfig(command_interface='velocity')) as robot:
        sag = {}
        for gain in (1.0, 0.02):
            robot.set_dynamics(Dynamics(actuator_gain=gain))
            robot.reset()
            for _ in range(50):
                robot.step(np.zeros(7))
            sag[gain] = np.abs(robot.true_state()[0] - robot.description.home).max()
        assert sag[1.0] < 1e-3 < 0.05 < sag[0.02]
