"""Parameters declared once per node: name, default, description, range, read-only.

A node lists its parameters as :class:`ParamSpec` rows and calls
:func:`declare_parameters`; ranges go into the descriptors (so ``ros2 param
describe`` shows them) and are also checked by :func:`validate`, which nodes
call from their on-set-parameters callback to refuse bad values with a reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a node.

    :param name: parameter name.
    :param default: default value; its type is the parameter's type.
    :param description: what it means, with units.
    :param low: smallest allowed value (numbers only).
    :param high: largest allowed value (numbers only).
    :param read_only: True when a change needs a restart.
    """

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    read_only: bool = False

    def descriptor(self) -> ParameterDescriptor:
        descriptor = ParameterDescriptor(name=self.name, description=self.description,
                                         read_only=self.read_only)
        if self.low is not None and self.high is not None:
            if isinstance(self.default, bool) or not isinstance(self.default, (int, float)):
                raise TypeError(f'{self.name}: a range needs a numeric default')
            if isinstance(self.default, int):
                descriptor.integer_range = [IntegerRange(
                    from_value=int(self.low), to_value=int(self.high), step=0)]
            else:
                descriptor.floating_point_range = [FloatingPointRange(
                    from_value=float(self.low), to_value=float(self.high), step=0.0)]
        return descriptor


def declare_parameters(node, specs: Iterable[ParamSpec]) -> None:
    """Declare every parameter of ``specs`` on ``node`` with its descriptor."""
    for spec in specs:
        node.declare_parameter(spec.name, spec.default, spec.descriptor())


def validate(specs: Sequence[ParamSpec], name: str, value: Any) -> str:
    """'' when ``value`` is acceptable for parameter ``name``, else the reason it is not."""
    spec = next((s for s in specs if s.name == name), None)
    if spec is None or spec.low is None or spec.high is None:
        return ''
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f'{name} must be a number, got {value!r}'
    if not math.isfinite(value) or not spec.low <= value <= spec.high:
        return f'{name} must be in [{spec.low:g}, {spec.high:g}], got {value!r}'
    return ''


def check_parameters(specs: Sequence[ParamSpec], parameters) -> SetParametersResult:
    """The on-set-parameters verdict: refused with the first reason, else accepted."""
    for parameter in parameters:
        reason = validate(specs, parameter.name, parameter.value)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
    return SetParametersResult(successful=True)
