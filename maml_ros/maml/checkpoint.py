"""Checkpoints: safetensors weights with JSON metadata in the same file.

One file, so a checkpoint is written atomically and can never be half-new.
The metadata (under the header key ``maml_ros``) says what the weights are
for: robot, joints, command interface, control period, architecture, MAML
settings, randomization ranges, seed. Loading validates all of it and fails
with a :class:`CheckpointError` that says what is wrong. safetensors never
unpickles, so a file carrying a pickle payload is refused, not executed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

FORMAT_VERSION = 1
METADATA_KEY = 'maml_ros'
REQUIRED_METADATA = ('format_version', 'urdf', 'urdf_sha256', 'joints', 'command_interface',
                     'control_period', 'model', 'maml', 'randomization', 'seed')


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, or made for something else."""


@dataclass
class Checkpoint:
    """Named tensors and the metadata that says what they are for."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, Any]


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (used for the URDF the weights were trained on)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (a crash leaves the old file intact).

    :raises CheckpointError: if required metadata is missing.
    """
    path = Path(path)
    metadata = {'format_version': FORMAT_VERSION, **checkpoint.metadata}
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise CheckpointError(f'cannot save {path}: metadata lacks {missing}')
    tensors = {name: t.detach().cpu().contiguous() for name, t in checkpoint.tensors.items()}
    payload = safetensors_bytes(tensors, metadata={METADATA_KEY: json.dumps(metadata)})
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp',
                                             dir=path.parent)
    try:
        with os.fdopen(descriptor, 'wb') as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; checkpoints are shared
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, *, joints: list[str] | None = None,
                    command_interface: str | None = None) -> Checkpoint:
    """Read and validate a checkpoint.

    :param path: the ``.safetensors`` file.
    :param joints: if given, the checkpoint must be for exactly these joints, in order.
    :param command_interface: if given, the checkpoint must command this interface.
    :raises CheckpointError: missing, truncated or corrupt file; no or unreadable
        metadata; unknown format version; other joints or command interface.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'checkpoint {path} does not exist')
    try:
        with safe_open(path, framework='pt', device='cpu') as reader:
            header = reader.metadata() or {}
            tensors = {name: reader.get_tensor(name) for name in reader.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f'{path} is not a readable safetensors checkpoint (truncated or corrupt?): {error}'
        ) from error
    if METADATA_KEY not in header:
        raise CheckpointError(f'{path} is a safetensors file but not a maml_ros checkpoint '
                              f'(no {METADATA_KEY!r} metadata)')
    try:
        metadata = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as error:
        raise CheckpointError(f'{path}: metadata is not valid JSON: {error}') from error
    if not isinstance(metadata, dict):
        raise CheckpointError(f'{path}: metadata is not a JSON object')
    version = metadata.get('format_version')
    if version != FORMAT_VERSION:
        raise CheckpointError(f'{path}: unknown checkpoint format version {version!r} '
                              f'(this maml_ros reads version {FORMAT_VERSION})')
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise CheckpointError(f'{path}: metadata lacks {missing}')
    if joints is not None and list(metadata['joints']) != list(joints):
        raise CheckpointError(f'{path} was trained for joints {metadata["joints"]}, '
                              f'not {list(joints)}')
    if command_interface is not None and metadata['command_interface'] != command_interface:
        raise CheckpointError(f'{path} commands the {metadata["command_interface"]!r} '
                              f'interface, not {command_interface!r}')
    return Checkpoint(tensors=tensors, metadata=metadata)
