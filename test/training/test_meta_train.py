"""A tiny meta-training run end to end, its checkpoint, and the evaluate tool."""

import json

import pytest
import safetensors.torch
import torch

from maml_ros.cli import evaluate as evaluate_cli
from maml_ros.maml.checkpoint import CheckpointError
from maml_ros.model.trained_models import TrainedModels
from maml_ros.sim import ReferenceConfig
from maml_ros.training.config import load_train_config


def test_tiny_meta_training_lowers_the_meta_validation_loss(trained):
    rows = trained.with_suffix('.csv').read_text().splitlines()
    header, first, last = rows[0].split(','), rows[1].split(','), rows[-1].split(',')
    column = header.index('query_loss_after')
    assert len(rows) == 1 + 3  # validations at 0, 15 and 30
    assert float(last[column]) < float(first[column])
    assert trained.with_suffix('.png').read_bytes()[:4] == b'\x89PNG'


def test_checkpoint_restores_both_networks_and_the_settings(trained):
    models = TrainedModels.load(trained, joints=[f'panda_joint{i}' for i in range(1, 9)][:7],
                                command_interface='effort')
    assert models.formulation.robot.joints[0] == 'panda_joint1'
    assert models.learner.learn_inner_lr and len(models.learner.inner_lrs) == 6
    assert set(models.baselines) == {'finetune_lr', 'ridge'}
    assert models.info['seed'] == 5 and models.info['training']['tasks'] == 48
    stored = safetensors.torch.load_file(str(trained))
    assert models.physics.features == 4 and models.physics.hidden == (16,)
    validation = models.info['physics_validation']
    assert validation['query_loss_after'] < validation['query_loss_before']  # adapting helps
    for prefix, net in (('meta.', models.meta_policy), ('pooled.', models.pooled),
                        ('physics.', models.physics)):
        for name, tensor in net.state_dict().items():
            assert torch.equal(tensor, stored[prefix + name]), prefix + name
    with pytest.raises(CheckpointError, match='position'):
        TrainedModels.load(trained, command_interface='position')


def test_checkpoint_keeps_the_reference_settings_training_drew_with(trained, tmp_path):
    """Evaluation draws its references with them; checkpoints from before they were stored
    were trained on the defaults."""
    models = TrainedModels.load(trained)
    trained_with = load_train_config(trained.with_suffix('.yaml')).reference
    assert models.reference == trained_with != ReferenceConfig()
    checkpoint = models.to_checkpoint()
    del checkpoint.metadata['reference']
    assert TrainedModels.from_checkpoint(checkpoint).reference == ReferenceConfig()
    checkpoint.metadata['reference'] = {'max_amplitude': -1.0}
    with pytest.raises(CheckpointError, match='max_amplitude >= 0'):
        TrainedModels.from_checkpoint(checkpoint)
    checkpoint.metadata['reference'] = {'speed': 1.0}
    with pytest.raises(CheckpointError, match=r"unknown reference settings \['speed'\]"):
        TrainedModels.from_checkpoint(checkpoint)


def test_checkpoint_with_tensors_that_do_not_fit_the_architecture_is_refused(trained, tmp_path):
    models = TrainedModels.load(trained)
    checkpoint = models.to_checkpoint()
    checkpoint.metadata['model']['hidden'] = [32, 32]
    with pytest.raises(CheckpointError, match='do not describe'):
        TrainedModels.from_checkpoint(checkpoint)


def test_evaluate_prints_the_table_and_writes_json_and_plot(trained, tmp_path, capsys):
    json_path, plot_path = tmp_path / 'eval.json', tmp_path / 'eval.png'
    code = evaluate_cli.main([
        '--checkpoint', str(trained), '--dynamics', 'payload_mass=1.0,actuator_gain=0.9',
        '--support', '100', '--steps', '2', '--track-steps', '100', '--workers', '1',
        '--json', str(json_path), '--plot', str(plot_path)])
    assert code == 0
    report = json.loads(json_path.read_text())
    for method in ('no_adaptation', 'pretrained_finetune', 'last_layer_ridge', 'maml', 'oracle',
                   'maml_physics', 'sysid'):
        assert report[method]['rmse'] > 0
    assert report['maml']['adapt_ms'] > 0
    identified = report['groups']['given']['tasks'][0]['maml_physics']['identified']
    assert len(identified['actuator_gain']) == 7 and 'torque_lag_ms' in identified
    assert report['groups']['given']['tasks'][0]['dynamics']['payload_mass'] == 1.0
    assert 'no_adaptation' in capsys.readouterr().out
    assert plot_path.read_bytes()[:4] == b'\x89PNG'


def test_evaluate_refuses_a_corrupt_checkpoint(tmp_path, capsys):
    bad = tmp_path / 'bad.safetensors'
    bad.write_bytes(b'\x00' * 64)
    assert evaluate_cli.main(['--checkpoint', str(bad)]) == 2
    assert 'truncated or corrupt' in capsys.readouterr().err


def test_checkpoint_for_another_urdf_version_is_refused(trained, tmp_path):
    from maml_ros.maml.checkpoint import load_checkpoint, save_checkpoint
    checkpoint = load_checkpoint(trained)
    checkpoint.metadata['urdf_sha256'] = '0' * 64
    path = save_checkpoint(tmp_path / 'other.safetensors', checkpoint)
    with pytest.raises(CheckpointError, match='another version'):
        TrainedModels.load(path)
    checkpoint.metadata['urdf'] = str(tmp_path / 'missing.urdf')
    path = save_checkpoint(tmp_path / 'missing.safetensors', checkpoint)
    with pytest.raises(CheckpointError, match='does not exist here'):
        TrainedModels.load(path)


def test_evaluate_says_when_a_checkpoint_has_no_physics_model(trained, tmp_path, capsys):
    models = TrainedModels.load(trained)
    models.physics = None  # a checkpoint from before the physics model
    older = models.save(tmp_path / 'older.safetensors')
    assert TrainedModels.load(older).physics is None
    code = evaluate_cli.main(['--checkpoint', str(older), '--dynamics', 'payload_mass=1.0',
                              '--methods', 'maml_physics', '--workers', '1'])
    assert code == 2
    assert 'has no physics model' in capsys.readouterr().err
