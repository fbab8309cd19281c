"""What runs on the robot around the model (no rclpy): the control loop, the safety filter
and watchdog, the support buffer, the policy that adapts off the control thread and guards
what it swaps in, and the choice of that policy from a checkpoint.
"""
