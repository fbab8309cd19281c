"""The MuJoCo robot: the two engines agree on the nominal URDF robot, and MuJoCo's own joint
and actuator models (dry friction, rotor inertia, force limits, servos) do what they say."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from maml_ros.resources import share_file
from maml_ros.sim import (
    Dynamics,
    InverseDynamicsModel,
    RobotConfig,
    RolloutConfig,
    Task,
    collect_rollouts,
    make_robot,
    run_task,
)
from maml_ros.sim.mujoco_robot import MujocoRobot
from maml_ros.training.config import TrainConfig, load_train_config

XARM6 = load_train_config(share_file('config', 'xarm6.yaml')).robot  # "your own robot"
# Max |q_pybullet - q_mujoco| (rad) tracking the same reference with the nominal controller
# on the nominal robot. Effort: the engines' integrators; position and velocity: their
# servos (PyBullet's constraint motors against MuJoCo's 50 Hz servos) differ as well.
AGREEMENT = {'effort': 2e-3, 'position': 6e-3, 'velocity': 6e-3}

TWO_LINK = """<?xml version="1.0"?>
<robot name="two_link">
  <link name="base"><inertial><mass value="1"/>
    <inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <link name="arm"><inertial><origin xyz="0 0 0.2"/><mass value="1"/>
    <inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <link name="tip"><inertial><origin xyz="0.1 0 0.1"/><mass value="0.5"/>
    <inertia ixx="0.001" iyy="0.001" izz="0.001" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <joint name="shoulder" type="revolute"><parent link="base"/><child link="arm"/>
    <axis xyz="0 1 0"/><limit lower="-2" upper="2" effort="50" velocity="2"/></joint>
  <joint name="wrist" type="revolute"><parent link="arm"/><child link="tip"/>
    <origin xyz="0 0 0.4"/><axis xyz="0 1 0"/>
    <limit lower="0.5" upper="1.5" effort="20" velocity="2"/></joint>
</robot>
"""


def track(engine: str, config: RobotConfig, seed: int) -> np.ndarray:
    """True joint positions of the nominal robot tracking the task's reference."""
    rollout_config = RolloutConfig(robot=config, steps=300, exploration_std=0.0, engine=engine)
    with make_robot(engine, config=config) as robot:
        rollout = run_task(Task(seed, dynamics=Dynamics()), config=rollout_config, robot=robot)
    assert rollout.tracking_rmse < 0.01  # the nominal controller tracks in both engines
    return rollout.true_next_states[:, :len(config.joints)]


@pytest.mark.parametrize('config', [
    RobotConfig(), XARM6, RobotConfig(command_interface='position'),
    RobotConfig(command_interface='velocity')], ids=['panda', 'xarm6', 'position', 'velocity'])
def test_both_engines_move_the_nominal_robot_alike(config):
    for seed in (1, 2):
        difference = np.abs(track('pybullet', config, seed) - track('mujoco', config, seed))
        assert difference.max() < AGREEMENT[config.command_interface]


def test_a_held_joint_is_welded_where_pybullet_holds_it(tmp_path):
    """The wrist is not controlled: PyBullet holds it at the middle of its limits (1 rad) with
    a motor, MuJoCo welds it there; the shoulder falls alike under gravity."""
    urdf = Path(tmp_path / 'two_link.urdf')
    urdf.write_text(TWO_LINK)
    config = RobotConfig(urdf_path=str(urdf), joints=('shoulder',), payload_link='tip',
                         home=(0.3,))
    falls = {}
    for engine in ('pybullet', 'mujoco'):
        with make_robot(engine, config=config) as robot:
            robot.reset()
            for _ in range(30):
                robot.step(np.zeros(1))
            falls[engine] = robot.true_state()[0][0] - 0.3
    assert abs(falls['pybullet']) > 0.05  # it falls ...
    assert falls['mujoco'] == pytest.approx(falls['pybullet'], rel=0.02)  # ... the same way


def gravity_hold(robot, dynamics, extra=None, steps=100):
    """Joint drift (rad) from home over ``steps`` ticks of gravity compensation plus ``extra``."""
    model = InverseDynamicsModel.shared(robot.config)
    n = robot.description.n_joints
    robot.set_dynamics(dynamics)
    robot.reset()
    for _ in range(steps):
        q = robot.true_state()[0]
        robot.step(model.torques(q, np.zeros(n), np.zeros(n)) + (0.0 if extra is None else extra))
    return robot.true_state()[0] - robot.description.home


def test_friction_is_dry_a_torque_below_it_does_not_move_the_joint():
    push = np.zeros(7)
    push[6] = 0.15  # N*m on the wrist
    with make_robot('mujoco') as robot:
        stuck = gravity_hold(robot, Dynamics(joint_friction=0.3), push)[6]
        slips = gravity_hold(robot, Dynamics(joint_friction=0.1), push)[6]
    with make_robot('pybullet') as robot:  # its friction is smooth: the joint creeps
        creeps = gravity_hold(robot, Dynamics(joint_friction=0.3), push)[6]
    assert abs(stuck) < 0.01  # a few mrad while the (stiff but soft) constraint engages
    assert slips > 0.1 and creeps > 0.1


def test_armature_adds_rotor_inertia_to_the_joint():
    """1 N*m on the wrist for one control period: with 0.05 kg*m^2 of rotor inertia the joint
    gains 0.01 s * 1 N*m / (0.05 + its own inertia) of velocity."""
    push = np.zeros(7)
    push[6] = 1.0
    own = InverseDynamicsModel.shared(RobotConfig()).inertia_diagonals(
        np.array(RobotConfig().home))[0, 6]
    for armature in (0.0, 0.05):
        with MujocoRobot(armature=armature) as robot:
            gravity_hold(robot, Dynamics(), push, steps=1)
            velocity = robot.true_state()[1][6]
        assert velocity == pytest.approx(0.01 / (armature + own), rel=0.05)


def test_the_motor_force_is_limited_to_the_effort_limit():
    """Gain 1.2 on a command at the effort limit still gives the limit (12 N*m on the wrist);
    on a command below it, 1.2 times the command."""
    full, half = np.zeros(7), np.zeros(7)
    full[6], half[6] = 12.0, 6.0
    with make_robot('mujoco') as robot:
        moved = {(gain, name): gravity_hold(robot, Dynamics(actuator_gain=gain), push, steps=3)[6]
                 for gain in (1.0, 1.2) for name, push in (('full', full), ('half', half))}
    assert moved[1.2, 'full'] == pytest.approx(moved[1.0, 'full'], rel=1e-3)
    assert moved[1.2, 'half'] > 1.1 * moved[1.0, 'half']


def test_a_constant_velocity_command_is_held_without_drift():
    config = RobotConfig(command_interface='velocity')
    command = np.zeros(7)
    command[0] = 0.2  # rad/s on the base joint, the rest held still against gravity
    with make_robot('mujoco', config=config) as robot:
        robot.reset()
        for _ in range(100):
            robot.step(command)
        q, qd = robot.true_state()
    assert qd[0] == pytest.approx(0.2, abs=1e-3)
    assert q[0] - config.home[0] == pytest.approx(0.2, abs=0.01)  # 1 s at 0.2 rad/s
    assert np.abs(q[1:] - np.array(config.home[1:])).max() < 0.01


def test_new_dynamics_keep_the_state_of_the_robot():
    with make_robot('mujoco') as robot:
        robot.reset(velocities=np.full(7, 0.1))
        state = robot.true_state_vector().copy()
        robot.set_dynamics(Dynamics(payload_mass=2.0, joint_friction=0.2))
        assert np.array_equal(robot.true_state_vector(), state)
        robot._read_state()  # what the engine holds, read again
        assert np.array_equal(robot.true_state_vector(), state)


@pytest.mark.parametrize('engine, says', [
    ('pybullet', r"^joints \['wrist'\] move no mass \(no inertia in any posture\): give the links "
                 r"they carry a mass and an inertia in the URDF$"),
    ('mujoco', r"MuJoCo cannot load .*two_link.urdf: .*mass and inertia of moving bodies.*\n"
               r"Element name 'tip'"),
])
def test_a_link_without_mass_is_refused_naming_it(tmp_path, engine, says):
    """PyBullet loads a moving link without mass (and would integrate NaN); MuJoCo refuses it
    naming the element. Both robots refuse with the reason."""
    urdf = tmp_path / 'two_link.urdf'
    urdf.write_text(TWO_LINK.replace('<mass value="0.5"/>', '<mass value="0"/>').replace(
        'ixx="0.001" iyy="0.001" izz="0.001"', 'ixx="0" iyy="0" izz="0"'))
    config = RobotConfig(urdf_path=str(urdf), joints=('shoulder', 'wrist'), payload_link='arm',
                         home=(0.3, 1.0))
    with pytest.raises(ValueError, match=says):
        make_robot(engine, config=config)


@pytest.mark.parametrize('call, says', [
    (lambda: make_robot('gazebo'), "unknown engine 'gazebo'; choose from"),
    (lambda: make_robot('mujoco', gui=True), 'gui is a PyBullet option'),
    (lambda: make_robot('pybullet', armature=0.1), 'armature is a MuJoCo option'),
    (lambda: MujocoRobot(armature=[0.1, 0.1]), 'armature needs one finite value >= 0, or 7'),
    (lambda: MujocoRobot(armature=-0.1), 'armature needs one finite value >= 0'),
    (lambda: MujocoRobot(armature=float('nan')), 'armature needs one finite value >= 0'),
    (lambda: MujocoRobot(config=dataclasses.replace(RobotConfig(), urdf_path='/no/such.urdf')),
     'URDF not found'),
])
def test_bad_options_are_refused_with_the_reason(call, says):
    with pytest.raises(ValueError, match=says):
        call()


def test_collection_runs_on_the_engine_the_config_names():
    """Worker processes build the configured engine's robot: the same tasks give what a MuJoCo
    robot in this process gives, bit for bit, and not what PyBullet gives."""
    config = RolloutConfig(steps=50, engine='mujoco')
    collected = collect_rollouts([1, 2], config=config, workers=2)
    with make_robot('mujoco') as robot:
        here = [run_task(seed, config=config, robot=robot) for seed in (1, 2)]
        with pytest.raises(ValueError, match='another RobotConfig or engine'):
            run_task(1, config=dataclasses.replace(config, engine='pybullet'), robot=robot)
    pybullet = run_task(1, config=dataclasses.replace(config, engine='pybullet'))
    for a, b in zip(collected, here, strict=True):
        assert np.array_equal(a.true_next_states, b.true_next_states)
    assert not np.array_equal(collected[0].true_next_states, pybullet.true_next_states)
    with pytest.raises(ValueError, match="unknown engine 'bullet'"):
        RolloutConfig(engine='bullet')
    with pytest.raises(ValueError, match="engine must be one of"):
        TrainConfig(engine='bullet')
