"""ROS 2 nodes: shells that convert messages and own the lifecycle, parameters and services,
over the core (one node per module, each with ``main()``).
"""
