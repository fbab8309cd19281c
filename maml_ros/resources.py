"""Files installed into ``share/maml_ros`` (config, checkpoints), wherever they are."""

from __future__ import annotations

from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]


def share_file(*parts: str) -> Path:
    """``share/maml_ros/<parts>`` of a colcon install, else the file in the source tree.

    pip-only (editable) installs have no ament index; they use the checkout.
    """
    try:
        from ament_index_python.packages import get_package_share_directory
        path = Path(get_package_share_directory('maml_ros'), *parts)
        if path.exists():
            return path
    except (ImportError, LookupError, OSError):  # no ament index: a pip install
        pass
    return SOURCE_ROOT.joinpath(*parts)


def shipped_checkpoint() -> Path:
    """The meta-trained Panda checkpoint that comes with the package."""
    return share_file('checkpoints', 'panda_effort.safetensors')


def default_config() -> Path:
    """The package's parameter file of every node."""
    return share_file('config', 'adapt.yaml')
