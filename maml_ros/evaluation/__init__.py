"""What judges the models (no rclpy): closed-loop tracking of held-out robots through the
robot's own :class:`~maml_ros.online.control_loop.ControlLoop`
(:mod:`~maml_ros.evaluation.tracking`), offline replay of recorded transitions
(:mod:`~maml_ros.evaluation.replay`), and their plots (:mod:`~maml_ros.evaluation.plots`).
"""
