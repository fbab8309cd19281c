"""Meta-training settings, read from the package's ROS 2 parameter YAML.

``config/adapt.yaml`` holds every node's parameters; training reads the robot
from the ``/**`` (all nodes) section and its own settings from
``meta_trainer``: ``training.*``, ``maml.*``, ``policy.*``, ``physics.*``,
``reference.*`` (how reference trajectories are drawn) and ``randomization.*``
(each a ``[low, high]`` range).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from maml_ros.online.control_loop import LoopSettings
from maml_ros.sim import ENGINES, DynamicsRanges, ReferenceConfig, RobotConfig

# The shipped training ranges (config/adapt.yaml).
TRAINING_RANGES = DynamicsRanges(position_noise_std=(0.0, 0.0005),
                                 velocity_noise_std=(0.0, 0.005))

ROBOT_KEYS = {'urdf': 'urdf_path', 'joints': 'joints', 'payload_link': 'payload_link',
              'home': 'home', 'command_interface': 'command_interface',
              'control_period': 'control_period', 'physics_period': 'physics_period',
              'inertia': 'use_urdf_inertia'}
INERTIA_SOURCES = {'collision': False, 'urdf': True}  # the YAML's `inertia` -> use_urdf_inertia


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything meta-training needs; defaults are those of the shipped Panda checkpoint.

    :param robot: URDF, joints, command interface, timing.
    :param ranges: domain-randomization ranges.
    :param reference: how reference trajectories are drawn.
    :param tasks: training tasks (randomized robots), one rollout each.
    :param steps_per_task: control steps per rollout.
    :param support_size: transitions in a support set (the early window).
    :param query_size: transitions in a query set (the late window).
    :param exploration_std: exploration noise, a fraction of the command scale.
    :param hidden: hidden layer widths of the policy network.
    :param activation: its activation function.
    :param residual: learn a residual on the nominal controller (else a pure inverse model).
    :param inner_lr: inner-loop learning rate (initial value if learned).
    :param inner_steps: inner-loop steps.
    :param first_order: first-order MAML.
    :param learn_inner_lr: Meta-SGD (learned elementwise inner learning rates).
    :param adapt_params: parameters the inner loop adapts (regex or None for all).
    :param meta_batch: tasks per meta-step.
    :param meta_iterations: meta-steps.
    :param meta_lr: Adam step size of the outer loop.
    :param grad_clip: largest meta-gradient norm.
    :param pretrain_iterations: Adam steps of the pooled network.
    :param pretrain_batch: transitions per pooled step.
    :param pretrain_lr: Adam step size of the pooled network.
    :param refresh_tasks: tasks re-collected with the meta-policy (on-policy refresh).
    :param refresh_at: when, as a fraction of ``meta_iterations``.
    :param validation_tasks: held-out tasks for the validation query loss.
    :param closed_loop_tasks: held-out robots for the validation tracking RMSE.
    :param validation_every: meta-steps between validations.
    :param physics_features: residual features of the physics model (0: physics alone).
    :param physics_hidden: hidden widths of its feature network.
    :param physics_harmonics: position harmonics per joint in its residual (0: none).
    :param physics_iterations: its meta-steps (Adam).
    :param physics_lr: their step size.
    :param engine: the physics engine that simulates the training robots (``pybullet``, or
        ``mujoco``: 2-3 times as many physics steps per second, its own friction model).
    :param workers: rollout worker processes (None: CPU count; with Ray, of the cluster).
    :param ray_address: where rollouts are collected: ``''`` in a local process pool;
        ``local``, ``auto`` or ``HOST:PORT``: on Ray (:mod:`maml_ros.training.collection`).
    :param seed: seeds everything.
    :param device: ``cpu`` or ``cuda`` for the meta-steps.
    """

    robot: RobotConfig = RobotConfig()
    ranges: DynamicsRanges = TRAINING_RANGES
    reference: ReferenceConfig = ReferenceConfig()
    tasks: int = 3000
    steps_per_task: int = 500
    support_size: int = LoopSettings.support_size  # what the robot adapts on
    query_size: int = 200
    exploration_std: float = LoopSettings.exploration_std
    hidden: tuple[int, ...] = (256, 256)
    activation: str = 'tanh'
    residual: bool = True
    inner_lr: float = 0.1
    inner_steps: int = 5
    first_order: bool = True
    learn_inner_lr: bool = True
    adapt_params: str | None = None
    meta_batch: int = 32
    meta_iterations: int = 2000
    meta_lr: float = 3e-4
    grad_clip: float = 1.0
    pretrain_iterations: int = 4000
    pretrain_batch: int = 2048
    pretrain_lr: float = 1e-3
    refresh_tasks: int = 1000
    refresh_at: float = 0.5
    validation_tasks: int = 64
    closed_loop_tasks: int = 8
    validation_every: int = 250
    physics_features: int = 16
    physics_hidden: tuple[int, ...] = (64, 64)
    physics_harmonics: int = 6
    physics_iterations: int = 1500
    physics_lr: float = 3e-3
    engine: str = 'pybullet'
    workers: int | None = None
    ray_address: str = ''
    seed: int = 0
    device: str = 'cpu'

    def __post_init__(self) -> None:
        for name in ('hidden', 'physics_hidden'):
            object.__setattr__(self, name, tuple(int(w) for w in getattr(self, name)))
        if self.support_size + self.query_size > self.steps_per_task:
            raise ValueError(f'support_size + query_size ({self.support_size} + '
                             f'{self.query_size}) exceed steps_per_task {self.steps_per_task}')
        for name in ('tasks', 'meta_batch', 'validation_every', 'closed_loop_tasks',
                     'validation_tasks', 'physics_iterations'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if self.refresh_tasks > self.tasks or not 0 <= self.refresh_at <= 1:
            raise ValueError('need refresh_tasks <= tasks and 0 <= refresh_at <= 1')
        if self.engine not in ENGINES:
            raise ValueError(f'engine must be one of {list(ENGINES)}, got {self.engine!r}')
        if not isinstance(self.ray_address, str):
            raise ValueError(f'ray_address must be a string, got {self.ray_address!r}')
        if self.device not in ('cpu', 'cuda') and not self.device.startswith('cuda:'):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain settings for checkpoint metadata (robot and ranges are stored apart; where
        the rollouts ran changes nothing in the checkpoint)."""
        skip = {'robot', 'ranges', 'reference', 'ray_address'}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in skip}


def node_parameters(path: str | Path, node: str) -> dict[str, Any]:
    """A node's parameters from a ROS 2 parameter YAML: ``/**`` merged with ``node``'s own."""
    document = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(document, dict):
        raise ValueError(f'{path}: not a ROS 2 parameter file (top level is not a map)')
    parameters: dict[str, Any] = {}
    for key in ('/**', node, f'/{node}', f'/**/{node}'):
        section = document.get(key)
        if section is not None:
            try:
                parameters.update(section['ros__parameters'])
            except (TypeError, KeyError):
                raise ValueError(f'{path}: section {key!r} has no ros__parameters') from None
    return parameters


def robot_config(parameters: dict[str, Any]) -> RobotConfig:
    """The robot part of a node's parameters."""
    kwargs = {ROBOT_KEYS[key]: value for key, value in parameters.items() if key in ROBOT_KEYS}
    if 'joints' in kwargs:
        kwargs['joints'] = tuple(kwargs['joints'])
    if 'home' in kwargs:
        kwargs['home'] = tuple(kwargs['home']) if kwargs['home'] else None
    if 'use_urdf_inertia' in kwargs:
        source = kwargs['use_urdf_inertia']
        if source not in INERTIA_SOURCES:
            raise ValueError(f'inertia must be one of {list(INERTIA_SOURCES)}, got {source!r}')
        kwargs['use_urdf_inertia'] = INERTIA_SOURCES[source]
    return RobotConfig(**kwargs)


def _ranges(overrides: dict[str, Any]) -> DynamicsRanges:
    """``TRAINING_RANGES`` with the factors a YAML file sets replaced."""
    return DynamicsRanges.from_dict({**TRAINING_RANGES.to_dict(), **overrides})


def load_train_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """``TrainConfig`` from the ``meta_trainer`` parameters of a YAML file.

    :param overrides: settings that win over the file (from the command line).
    :raises ValueError: for unknown settings or values out of their domain.
    """
    parameters = node_parameters(path, 'meta_trainer')
    settings: dict[str, Any] = {}
    for group in ('training', 'maml', 'policy', 'physics'):
        settings.update(parameters.get(group) or {})
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {'robot', 'ranges', 'reference'}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f'{path}: unknown training settings {unknown}')
    if settings.get('adapt_params') == '':
        settings['adapt_params'] = None
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(robot=robot_config(parameters),
                       ranges=_ranges(parameters.get('randomization') or {}),
                       reference=ReferenceConfig.from_dict(parameters.get('reference')),
                       **settings)
