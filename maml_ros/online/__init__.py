"""What runs on the robot besides the policy (no rclpy): support buffer, safety, adapter."""
