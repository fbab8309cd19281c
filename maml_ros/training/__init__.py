"""Offline meta-training (no rclpy): the configuration, rollout collection and its backends
(local processes or Ray), and the meta-training loop of the network and the physics model.
"""
