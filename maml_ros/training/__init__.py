"""Meta-training and evaluation (no rclpy): uses maml/ and sim/."""
