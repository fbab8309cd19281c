"""Training settings from the package's parameter YAML."""

from pathlib import Path

import pytest

from maml_ros.sim import ReferenceConfig
from maml_ros.training.config import load_train_config, node_parameters

CONFIG = Path(__file__).resolve().parents[2] / 'config' / 'adapt.yaml'


def test_shipped_yaml_gives_the_panda_training_config():
    config = load_train_config(CONFIG)
    assert config.robot.joints == tuple(f'panda_joint{i}' for i in range(1, 8))
    assert config.robot.command_interface == 'effort'
    assert config.robot.control_period == 0.01
    assert config.adapt_params is None
    assert config.ranges.payload_mass == (0.0, 2.0)
    assert config.robot.use_urdf_inertia is False
    assert config.reference == ReferenceConfig()  # the file spells out the defaults


def test_inertia_source_and_reference_settings_come_from_the_file(tmp_path):
    path = tmp_path / 'p.yaml'
    path.write_text('/**:\n  ros__parameters:\n    inertia: urdf\n'
                    'meta_trainer:\n  ros__parameters:\n    reference:\n'
                    '      {max_amplitude: 0.3, frequency_range: [0.1, 0.2]}\n')
    config = load_train_config(path)
    assert config.robot.use_urdf_inertia is True
    assert config.reference == ReferenceConfig(max_amplitude=0.3, frequency_range=(0.1, 0.2))


def test_command_line_overrides_win_over_the_file():
    config = load_train_config(CONFIG, tasks=10, refresh_tasks=2, seed=3, workers=None)
    assert (config.tasks, config.refresh_tasks, config.seed) == (10, 2, 3)
    assert config.workers is None


def test_robot_comes_from_the_wildcard_section_and_node_section_wins(tmp_path):
    path = tmp_path / 'p.yaml'
    path.write_text('/**:\n  ros__parameters:\n    control_period: 0.01\n    '
                    'command_interface: velocity\n'
                    'meta_trainer:\n  ros__parameters:\n    control_period: 0.005\n')
    assert node_parameters(path, 'meta_trainer')['control_period'] == 0.005
    config = load_train_config(path)
    assert config.robot.command_interface == 'velocity'
    assert config.robot.control_period == 0.005


@pytest.mark.parametrize(('text', 'message'), [
    ('meta_trainer:\n  ros__parameters:\n    training: {taskz: 3}\n', 'unknown training'),
    ('meta_trainer:\n  ros__parameters:\n    randomization: {payload_mass: [2, 1]}\n',
     'low > high'),
    ('meta_trainer:\n  ros__parameters:\n    randomization: {gravity: [0, 1]}\n', 'unknown'),
    ('meta_trainer:\n  ros__parameters:\n    training: {support_size: 400, query_size: 200}\n',
     'exceed'),
    ('meta_trainer: 3\n', 'ros__parameters'),
    ('/**:\n  ros__parameters:\n    inertia: cad\n', "inertia must be one of"),
    ('meta_trainer:\n  ros__parameters:\n    reference: {speed: 1}\n',
     r"unknown reference settings \['speed'\]"),
    ('meta_trainer:\n  ros__parameters:\n    reference: {velocity_fraction: 2}\n',
     'velocity_fraction'),
    ('- a list\n', 'not a ROS 2 parameter file'),
])
def test_bad_settings_are_refused_with_a_reason(tmp_path, text, message):
    path = tmp_path / 'bad.yaml'
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_train_config(path)
