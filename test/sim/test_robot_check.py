"""The robot check: what can work passes, what cannot is refused with its reason."""

import dataclasses

import numpy as np
import pytest
import yaml

from maml_ros.cli import check_robot as cli
from maml_ros.cli import train as train_cli
from maml_ros.resources import default_config, share_file
from maml_ros.sim import DynamicsRanges, RobotConfig
from maml_ros.sim.model import load_robot
from maml_ros.sim.quiet_pybullet import pybullet
from maml_ros.sim.robot_check import (
    TRACKING_TOLERANCE,
    RobotCheckError,
    check_robot,
    require_robot,
)

XARM6 = RobotConfig(urdf_path='xarm/xarm6_robot.urdf',
                    joints=tuple(f'joint{i}' for i in range(1, 7)), payload_link='link6',
                    home=(0.0, -0.3, -0.8, 0.0, 1.1, 0.0))


@pytest.mark.parametrize('robot', [RobotConfig(), XARM6], ids=['panda', 'xarm6'])
def test_panda_and_xarm6_pass_and_the_nominal_controller_tracks_them(robot):
    report = check_robot(robot)
    assert report.passed, report.lines()
    assert report.finding('track').value <= TRACKING_TOLERANCE
    assert report.finding('hold home').value <= TRACKING_TOLERANCE
    assert report.lines()[-1] == 'PASS'
    assert all(name in '\n'.join(report.lines()) for name in robot.joints)


def test_the_urdf_joint_damping_is_not_simulated_but_reported():
    """PyBullet would integrate the xArm6's declared 1 N*m*s/rad explicitly: the 0.0002
    kg*m^2 wrist diverged and the nominal robot drifted 2.6 rad off home."""
    client, _, description = load_robot(XARM6)
    pybullet.disconnect(physicsClientId=client)
    np.testing.assert_array_equal(description.urdf_damping, 1.0)
    report = check_robot(XARM6)
    assert report.finding('hold home').value < 1e-6
    warning = report.finding('urdf dynamics')
    assert warning.status == 'WARN' and 'joint_damping joint1 1' in warning.message


BROKEN = {
    'unknown joint': (dataclasses.replace(XARM6, joints=('joint1', 'joint2', 'joint3', 'joint4',
                                                         'joint5', 'wrist')),
                      'description', "joints ['wrist'] are not in"),
    'massless payload link': (dataclasses.replace(RobotConfig(), payload_link='panda_link8'),
                              'description', "payload link 'panda_link8' has no mass"),
    'home outside the limits': (dataclasses.replace(XARM6, home=(0.0, -3.0, 0.0, 0.0, 0.0, 0.0)),
                                'description', 'outside the joint limits'),
    'zeroed inertia': (dataclasses.replace(XARM6, use_urdf_inertia=True),
                       'inertia', 'link link2 (1.71 kg) from the URDF: zero principal inertia'),
    'placeholder inertia': (dataclasses.replace(RobotConfig(), use_urdf_inertia=True),
                            'inertia', 'placeholders, not the robot; set inertia: collision'),
    'slow control period': (dataclasses.replace(XARM6, control_period=0.05),
                            'track', 'the nominal controller cannot drive the nominal robot'),
}


@pytest.mark.parametrize('case', BROKEN)
def test_a_configuration_that_cannot_work_is_refused_with_its_reason(case):
    robot, check, reason = BROKEN[case]
    report = check_robot(robot)
    assert not report.passed
    assert any(reason in f.message for f in report.failures if f.check == check), \
        report.lines()
    assert report.lines()[-1].startswith('FAIL:')
    with pytest.raises(RobotCheckError, match=reason.replace('(', r'\(').replace(')', r'\)')
                       .replace('[', r'\[').replace(']', r'\]')):
        require_robot(robot)


def test_ranges_no_gain_can_stabilize_are_refused():
    ranges = DynamicsRanges(latency_steps=(0, 60))
    failure = check_robot(RobotConfig(), ranges=ranges).finding('gains')
    assert failure.status == 'FAIL'
    assert 'no PD gain keeps computed torque stable' in failure.message


def test_references_the_heaviest_robot_cannot_follow_are_refused():
    ranges = DynamicsRanges(payload_mass=(0.0, 40.0))
    failure = check_robot(XARM6, ranges=ranges).finding('references')
    assert failure.status == 'FAIL' and 'lower randomization.payload_mass' in failure.message


def test_gains_above_the_stability_limit_are_flagged():
    """A checkpoint's gains are checked against the derived limit (the shipped Panda's
    hand-tuned 12 rad/s: stable in training, not with the margin)."""
    report = check_robot(RobotConfig(), natural_frequency=(12.0,) * 7, closed_loop=False)
    assert report.finding('gains').status == 'WARN'
    far_too_high = check_robot(RobotConfig(), natural_frequency=(144.0,) * 7)
    assert far_too_high.finding('hold home').status == 'FAIL'


def _config_with(tmp_path, **robot):
    """config/adapt.yaml with ``/**`` values replaced, as a user's copy."""
    document = yaml.safe_load(default_config().read_text())
    document['/**']['ros__parameters'].update(robot)
    path = tmp_path / 'my_robot.yaml'
    path.write_text(yaml.safe_dump(document))
    return path


def test_check_robot_cli_passes_the_shipped_configurations(capsys):
    for name in ('adapt.yaml', 'xarm6.yaml'):
        assert cli.main(['--config', str(share_file('config', name))]) == 0
        out = capsys.readouterr().out
        assert 'PASS track:' in out and out.rstrip().endswith('PASS')


def test_check_robot_cli_fails_with_the_reason_and_training_refuses(tmp_path, capsys):
    config = _config_with(tmp_path, inertia='urdf')
    assert cli.main(['--config', str(config)]) == 1
    assert 'placeholders' in capsys.readouterr().out
    out = tmp_path / 'never.safetensors'
    assert train_cli.main(['--config', str(config), '--out', str(out)]) == 1
    captured = capsys.readouterr()
    assert 'FAIL inertia' in captured.out and '--force' in captured.err
    assert not out.exists()


def test_check_robot_cli_refuses_an_unknown_inertia_source(tmp_path, capsys):
    assert cli.main(['--config', str(_config_with(tmp_path, inertia='cad'))]) == 2
    assert "inertia must be one of ['collision', 'urdf'], got 'cad'" in capsys.readouterr().err


def test_passive_torques_that_swamp_a_light_joint_are_flagged():
    """The Panda's wrist (0.004 kg*m^2) under the default friction and ripple ranges: the
    joint issue 18 found wandering; per-joint ranges sized to it clear the warning."""
    warnings = [f for f in check_robot(RobotConfig(), closed_loop=False).findings
                if f.check == 'passive torques']
    assert [f.message.split(':')[0] for f in warnings] == ['panda_joint7']
    assert warnings[0].status == 'WARN' and '1.4 rad off' in warnings[0].message
    wrist = (0.3,) * 6 + (0.03,)
    sized = DynamicsRanges(joint_friction=(0.0, wrist), torque_ripple=(0.0, wrist))
    report = check_robot(RobotConfig(), ranges=sized, closed_loop=False)
    assert all(f.check != 'passive torques' for f in report.findings)
