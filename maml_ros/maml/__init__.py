"""Pure-PyTorch meta-learning core (no rclpy)."""

from maml_ros.maml.meta_learner import MAML, select_parameter_names

__all__ = ['MAML', 'select_parameter_names']
