"""maml_ros: rapid sim-to-real adaptation for ROS 2 robots with MAML."""
