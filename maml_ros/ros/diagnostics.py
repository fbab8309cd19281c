"""``/diagnostics`` messages of the maml_ros nodes."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


def diagnostic_array(node, *, level: int, name: str, message: str,
                     values: dict[str, str]) -> DiagnosticArray:
    """One stamped status of ``node`` (hardware_id = node name) with ``values``."""
    status = DiagnosticStatus(level=level, name=name, message=message,
                              hardware_id=node.get_name(),
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
    array = DiagnosticArray(status=[status])
    array.header.stamp = node.get_clock().now().to_msg()
    return array
