"""What meta-training produces and a checkpoint holds: the meta-policy and its baselines.

One checkpoint carries the meta-learned network (with its learned inner
learning rates) and the network pretrained on the pooled tasks, so that
evaluation compares methods built from the same data, and the metadata that
says which robot, interface and formulation they are for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maml_ros.maml import MAML
from maml_ros.maml.checkpoint import (
    Checkpoint,
    CheckpointError,
    file_sha256,
    load_checkpoint,
    save_checkpoint,
)
from maml_ros.maml.policy import PolicyNet
from maml_ros.model.formulation import Formulation
from maml_ros.model.physics_model import PhysicsResidualModel
from maml_ros.sim import DynamicsRanges, InverseDynamicsModel, ReferenceConfig, RobotConfig
from maml_ros.sim.command import CommandSpace
from maml_ros.sim.model import urdf_file

META, POOLED, INNER_LR, PHYSICS = 'meta.', 'pooled.', 'inner_lr.', 'physics.'


@dataclass
class TrainedModels:
    """The meta-learner, the pooled baseline, and what they were trained for.

    :param formulation: robot and gains of the residual policy.
    :param learner: the meta-learner (its ``model`` is the meta-policy).
    :param pooled: the network trained on all tasks pooled (baselines start here).
    :param ranges: the domain-randomization ranges of training.
    :param baselines: settings the baselines picked on validation tasks
        (``finetune_lr``, ``ridge``).
    :param info: anything else worth keeping (training settings, seed, figures).
    :param physics: the meta-trained physics model (prior, damping, residual features) of
        :mod:`~maml_ros.model.physics_model`, where the checkpoint has one.
    :param reference: how training drew the references tracked (evaluation draws the same).
    """

    formulation: Formulation
    learner: MAML
    pooled: PolicyNet
    ranges: DynamicsRanges
    baselines: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    physics: PhysicsResidualModel | None = None
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)

    @property
    def meta_policy(self) -> PolicyNet:
        return self.learner.model

    def warm_up(self) -> None:
        """One throw-away relabelling and adaptation, so that the first real one (and its
        timing) does not pay for loading the inverse-dynamics model and torch's first call."""
        states = np.zeros((1, 2 * self.formulation.n_joints))
        self.formulation.hindsight(states, np.zeros((1, self.formulation.n_joints)), states)
        x = torch.zeros(2, self.formulation.feature_dim)
        y = torch.zeros(2, self.formulation.n_joints)
        self.learner.adapt((x, y), lambda prediction, target: ((prediction - target) ** 2).mean(),
                           steps=1)

    def to_checkpoint(self) -> Checkpoint:
        robot = self.formulation.robot
        tensors = {META + k: v for k, v in self.meta_policy.state_dict().items()}
        tensors |= {POOLED + k: v for k, v in self.pooled.state_dict().items()}
        tensors |= {INNER_LR + k: v for k, v in self.learner.inner_lrs.items()}
        if self.physics is not None:
            tensors |= {PHYSICS + k: v for k, v in self.physics.state_dict().items()}
        learner = self.learner
        return Checkpoint(tensors=tensors, metadata={
            'urdf': robot.urdf_path,
            'urdf_sha256': file_sha256(urdf_file(robot.urdf_path)),
            'joints': list(robot.joints),
            'command_interface': robot.command_interface,
            'control_period': robot.control_period,
            'model': self.meta_policy.architecture(),
            'maml': {'inner_lr': learner.base_inner_lr, 'inner_steps': learner.inner_steps,
                     'first_order': learner.first_order,
                     'learn_inner_lr': learner.learn_inner_lr,
                     'adapt_params': learner.adapt_names},
            'randomization': self.ranges.to_dict(),
            'reference': self.reference.to_dict(),
            'seed': self.info.get('seed', 0),
            'formulation': {
                'position_gain': list(self.formulation.position_gain),
                'velocity_gain': list(self.formulation.velocity_gain),
                'exploration_scale': list(self.formulation.exploration_scale),
                'residual': self.formulation.residual,
                'payload_link': robot.payload_link,
                'home': list(robot.home) if robot.home is not None else None,
                'physics_period': robot.physics_period,
                'use_urdf_inertia': robot.use_urdf_inertia,
            },
            'baselines': dict(self.baselines),
            'info': self.info,
            'physics': self.physics.architecture() if self.physics is not None else None,
        })

    def save(self, path: str | Path) -> Path:
        """Write the checkpoint atomically."""
        return save_checkpoint(path, self.to_checkpoint())

    @classmethod
    def load(cls, path: str | Path, *, joints: list[str] | None = None,
             command_interface: str | None = None) -> TrainedModels:
        """Load and validate (see ``load_checkpoint``); the URDF on this machine must be the
        one trained on (same SHA-256) and the tensors must fit the architecture."""
        checkpoint = load_checkpoint(path, joints=joints, command_interface=command_interface)
        urdf = urdf_file(checkpoint.metadata['urdf'])
        if not urdf.is_file():
            raise CheckpointError(f'{path} was trained on {urdf}, which does not exist here')
        if file_sha256(urdf) != checkpoint.metadata['urdf_sha256']:
            raise CheckpointError(f'{path} was trained on another version of {urdf} '
                                  '(its SHA-256 differs): retrain for this URDF')
        return cls.from_checkpoint(checkpoint, source=str(path))

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, *, source: str = 'checkpoint'
                        ) -> TrainedModels:
        meta = checkpoint.metadata
        try:
            form = meta['formulation']
            robot = RobotConfig(
                urdf_path=meta['urdf'], joints=tuple(meta['joints']),
                payload_link=form['payload_link'],
                home=tuple(form['home']) if form['home'] is not None else None,
                command_interface=meta['command_interface'],
                control_period=meta['control_period'], physics_period=form['physics_period'],
                use_urdf_inertia=form['use_urdf_inertia'])
            formulation = Formulation(robot=robot, position_gain=form['position_gain'],
                                      velocity_gain=form['velocity_gain'],
                                      residual=form.get('residual', True),
                                      exploration_scale=_exploration_scale(form, robot))
            meta_policy = PolicyNet.from_architecture(meta['model'])
            pooled = PolicyNet.from_architecture(meta['model'])
            settings = meta['maml']
            learner = MAML(meta_policy, inner_lr=settings['inner_lr'],
                           inner_steps=settings['inner_steps'],
                           first_order=settings['first_order'],
                           learn_inner_lr=settings['learn_inner_lr'],
                           adapt_params=settings['adapt_params'])
            tensors = checkpoint.tensors
            meta_policy.load_state_dict(_strip(tensors, META))
            pooled.load_state_dict(_strip(tensors, POOLED))
            learner.inner_lrs.load_state_dict(_strip(tensors, INNER_LR))
            ranges = DynamicsRanges.from_dict(meta['randomization'])
            # Checkpoints from before it was stored were all trained on the default references.
            reference = ReferenceConfig.from_dict(meta.get('reference'))
            physics = None
            if meta.get('physics') is not None:
                physics = PhysicsResidualModel.from_architecture(meta['physics'])
                physics.load_state_dict(_strip(tensors, PHYSICS))
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(f'{source}: tensors or metadata do not describe a maml_ros '
                                  f'policy: {type(error).__name__}: {error}') from error
        return cls(formulation=formulation, learner=learner, pooled=pooled, ranges=ranges,
                   baselines=dict(meta.get('baselines', {})), info=dict(meta.get('info', {})),
                   physics=physics, reference=reference)


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _exploration_scale(form: dict, robot: RobotConfig) -> tuple[float, ...]:
    """The checkpoint's exploration scale; checkpoints from before it was stored explored in
    shares of the effort limit (the command space without inertia)."""
    if 'exploration_scale' in form:
        return tuple(float(v) for v in form['exploration_scale'])
    limits = InverseDynamicsModel.shared(robot).description.limits
    return tuple(CommandSpace.of(limits, robot.command_interface,
                                 robot.control_period).scale.tolist())
