"""QoS profiles of the maml_ros topics."""

from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data

#: ``meta_trainer/checkpoint``: the last path stays available to late subscribers.
CHECKPOINT_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)

#: ``/joint_states`` as the adapter reads it: newest data only, never blocking the driver.
JOINT_STATE_QOS = qos_profile_sensor_data
