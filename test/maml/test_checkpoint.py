"""Checkpoint round trip, atomic writes, and every way a checkpoint can be wrong."""

import json
import os
import pickle
import struct

import pytest
import torch

from maml_ros.maml.checkpoint import (
    Checkpoint,
    CheckpointError,
    file_sha256,
    load_checkpoint,
    save_checkpoint,
)
from maml_ros.maml.policy import PolicyNet

JOINTS = [f'panda_joint{i}' for i in range(1, 8)]


def make_checkpoint() -> Checkpoint:
    torch.manual_seed(0)
    policy = PolicyNet(input_dim=21, output_dim=7, hidden=(32, 32))
    policy.fit_normalization(torch.randn(100, 21) * 3 + 1, torch.randn(100, 7) * 5)
    return Checkpoint(tensors=dict(policy.state_dict()), metadata={
        'urdf': 'franka_panda/panda.urdf', 'urdf_sha256': 'ab' * 32, 'joints': JOINTS,
        'command_interface': 'effort', 'control_period': 0.01,
        'model': policy.architecture(),
        'maml': {'inner_lr': 0.1, 'inner_steps': 5, 'first_order': True},
        'randomization': {'payload_mass': [0.0, 2.0]}, 'seed': 3})


@pytest.fixture
def saved(tmp_path):
    return save_checkpoint(tmp_path / 'policy.safetensors', make_checkpoint())


def test_round_trip_restores_weights_normalization_and_metadata(saved):
    original = make_checkpoint()
    loaded = load_checkpoint(saved, joints=JOINTS, command_interface='effort')
    assert loaded.metadata == {'format_version': 1, **original.metadata}
    assert loaded.tensors.keys() == original.tensors.keys()
    for name, tensor in original.tensors.items():
        assert torch.equal(loaded.tensors[name], tensor), name
    policy = PolicyNet.from_architecture(loaded.metadata['model'])
    policy.load_state_dict(loaded.tensors)
    assert torch.equal(policy.input_std, original.tensors['input_std'])


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match='does not exist'):
        load_checkpoint(tmp_path / 'nope.safetensors')


@pytest.mark.parametrize('keep', [0, 7, 100, -1])
def test_truncated_file(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[:keep] if keep >= 0 else data[:-1])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        load_checkpoint(saved)


def test_random_bytes(saved):
    saved.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        load_checkpoint(saved)


def test_corrupt_header_length(saved):
    data = bytearray(saved.read_bytes())
    data[:8] = struct.pack('<Q', 10**12)
    saved.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        load_checkpoint(saved)


def test_other_joints_are_refused(saved):
    with pytest.raises(CheckpointError, match='trained for joints'):
        load_checkpoint(saved, joints=JOINTS[:6])
    with pytest.raises(CheckpointError, match='trained for joints'):
        load_checkpoint(saved, joints=list(reversed(JOINTS)))


def test_other_command_interface_is_refused(saved):
    with pytest.raises(CheckpointError, match="'effort' interface, not 'position'"):
        load_checkpoint(saved, command_interface='position')


def rewrite_metadata(path, edit):
    """Rewrite the JSON metadata of a safetensors file in place (a well-formed file)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    with safe_open(path, framework='pt') as reader:
        header = reader.metadata()
    save_file(load_file(path), path, metadata=edit(header))


def test_unknown_format_version_is_refused(saved):
    def bump(header):
        metadata = json.loads(header['maml_ros'])
        metadata['format_version'] = 99
        return {'maml_ros': json.dumps(metadata)}
    rewrite_metadata(saved, bump)
    with pytest.raises(CheckpointError, match='unknown checkpoint format version 99'):
        load_checkpoint(saved)


def test_foreign_safetensors_and_bad_metadata_are_refused(saved):
    rewrite_metadata(saved, lambda header: {'format': 'pt'})
    with pytest.raises(CheckpointError, match='not a maml_ros checkpoint'):
        load_checkpoint(saved)
    rewrite_metadata(saved, lambda header: {'maml_ros': '{not json'})
    with pytest.raises(CheckpointError, match='not valid JSON'):
        load_checkpoint(saved)
    rewrite_metadata(saved, lambda header: {'maml_ros': json.dumps({'format_version': 1})})
    with pytest.raises(CheckpointError, match='metadata lacks'):
        load_checkpoint(saved)


class CreatesMarker:
    """Unpickling this runs code: it creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_pickle_payload_is_refused_without_executing_anything(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.safetensors'
    path.write_bytes(pickle.dumps({'weights': CreatesMarker(marker)}))
    pickle.loads(path.read_bytes())  # the payload is live: it does create the marker
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        load_checkpoint(path)
    assert not marker.exists()
    torch.save({'weights': CreatesMarker(marker)}, path, _use_new_zipfile_serialization=True)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


def test_interrupted_write_leaves_previous_file_intact_and_loadable(saved, monkeypatch):
    before = saved.read_bytes()

    def crash(*args, **kwargs):
        raise OSError('disk full (simulated)')

    monkeypatch.setattr(os, 'replace', crash)
    changed = make_checkpoint()
    changed.metadata['seed'] = 4
    with pytest.raises(OSError, match='simulated'):
        save_checkpoint(saved, changed)
    assert saved.read_bytes() == before
    assert load_checkpoint(saved).metadata['seed'] == 3
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temporary left


def test_saving_without_required_metadata_is_refused(tmp_path):
    checkpoint = make_checkpoint()
    del checkpoint.metadata['joints']
    with pytest.raises(CheckpointError, match='lacks'):
        save_checkpoint(tmp_path / 'x.safetensors', checkpoint)
    assert not (tmp_path / 'x.safetensors').exists()


def test_a_checkpoint_is_written_beside_its_path_and_readable_by_all(tmp_path, monkeypatch):
    """Into folders that do not exist yet; through a hidden temporary in the same folder (the
    rename is atomic only within one file system, and ``*.safetensors`` globs skip it); with
    the permissions of an ordinary file."""
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, 'replace', lambda src, dst: replaced.append(src) or
                        real_replace(src, dst))
    path = save_checkpoint(tmp_path / 'runs' / 'panda' / 'policy.safetensors', make_checkpoint())
    temporary = replaced[0]
    assert os.path.dirname(temporary) == str(path.parent)
    assert os.path.basename(temporary).startswith('.policy.safetensors.')
    assert temporary.endswith('.tmp')
    assert path.stat().st_mode & 0o777 == 0o644
    assert load_checkpoint(path).metadata['seed'] == 3


def test_metadata_that_is_not_an_object_is_refused_with_the_reason(saved):
    rewrite_metadata(saved, lambda header: {'maml_ros': json.dumps([1, 2])})
    with pytest.raises(CheckpointError, match=f'^{saved}: metadata is not a JSON object$'):
        load_checkpoint(saved)


def test_the_urdf_digest_is_the_sha256_of_its_bytes(tmp_path):
    urdf = tmp_path / 'robot.urdf'
    urdf.write_bytes(b'abc')
    assert file_sha256(urdf) == \
        'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
