"""ROS 2 glue: message <-> array conversions, parameter declarations, QoS, diagnostics,
rosbag2 recording and reading, and the simulator nodes' common shell.
"""
