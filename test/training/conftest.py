"""The tiny meta-training run that several test modules inspect, trained once per session."""

from pathlib import Path

import pytest
import yaml

from maml_ros.cli import train as train_cli

CONFIG = Path(__file__).resolve().parents[2] / 'config' / 'adapt.yaml'
TINY = ['tasks=48', 'steps_per_task=300', 'support_size=100', 'query_size=100',
        'meta_iterations=30', 'meta_batch=8', 'pretrain_iterations=150', 'refresh_tasks=8',
        'validation_tasks=8', 'closed_loop_tasks=1', 'validation_every=15', 'hidden=[64, 64]',
        'physics_iterations=40', 'physics_features=4', 'physics_hidden=[16]']


REFERENCE = {'max_amplitude': 0.4, 'frequency_range': [0.05, 0.3]}  # not the defaults


def train_tiny(out: Path, *extra: str) -> Path:
    """``maml-ros-train`` with the tiny settings, 2 workers and seed 5, into ``out``; the
    package's YAML with the references of :data:`REFERENCE`."""
    sections = yaml.safe_load(CONFIG.read_text())
    sections['meta_trainer']['ros__parameters']['reference'].update(REFERENCE)
    config = out.with_suffix('.yaml')
    config.write_text(yaml.safe_dump(sections))
    args = ['--config', str(config), '--out', str(out), '--workers', '2', '--seed', '5',
            *extra]
    for item in TINY:
        args += ['--set', item]
    assert train_cli.main(args) == 0
    return out


@pytest.fixture(scope='session')
def tiny_training():
    """:func:`train_tiny`, for test modules (they cannot import this one by name)."""
    return train_tiny


@pytest.fixture(scope='session')
def trained(tmp_path_factory) -> Path:
    """The tiny checkpoint, collected by the local process pool."""
    return train_tiny(tmp_path_factory.mktemp('train') / 'tiny.safetensors')
