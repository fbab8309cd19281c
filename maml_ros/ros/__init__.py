"""ROS 2 glue: message <-> array conversions, parameter declarations, QoS."""
