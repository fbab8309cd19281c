"""ROS 2 nodes: thin shells over the core (one node per module, each with main())."""
