"""ROS 2 glue: message <-> array conversions, parameter declarations, QoS, diagnostics,
rosbag2 recording and reading, the simulator nodes' common shell, and the adapter node's
services, reports and checkpoint following (mixins).
"""
