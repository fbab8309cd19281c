"""The adapter's services: ``~/adapt``, ``~/reset_adaptation``, ``~/save_adapted``, ``~/record``.

:class:`AdapterServices` is a mixin of the adapter node (``class AdapterNode(...,
AdapterServices, LifecycleNode)``): the callbacks use the node's ``loop`` (a
:class:`~maml_ros.online.control_loop.ControlLoop`), ``recording``
(a :class:`~maml_ros.ros.recording.RecordingSwitch`), ``problems`` and
``adapted_checkpoint``. The node creates the services at configure
(:meth:`create_adapter_services`) and destroys them at cleanup.
"""

from __future__ import annotations

import time
from pathlib import Path

from rclpy.parameter import Parameter
from std_srvs.srv import SetBool, Trigger

from maml_ros.maml.checkpoint import CheckpointError
from maml_ros.online.control_loop import SETTLE_SECONDS
from maml_ros.ros.recording import ros_home

ADAPT_ANSWER_TIMEOUT = 5.0  # s that ~/adapt waits for the outcome before it answers


class _NextSpin:
    """``await _NextSpin()``: a coroutine callback lets the executor run one more round."""

    def __await__(self):
        yield


class AdapterServices:
    """The adapter's trigger services; see the module docstring."""

    def create_adapter_services(self) -> list:
        """The four services, created on this node."""
        return [self.create_service(kind, f'~/{name}', callback) for kind, name, callback in [
            (Trigger, 'adapt', self._on_adapt), (Trigger, 'reset_adaptation', self._on_reset),
            (Trigger, 'save_adapted', self._on_save), (SetBool, 'record', self._on_record)]]

    async def _on_adapt(self, request, response):
        """Adapt now; the answer is the outcome (the control loop goes on meanwhile)."""
        policy = self.loop.policy
        previous = policy.last_outcome
        reason = self.loop.adapt(self.monotonic())
        deadline = time.monotonic() + ADAPT_ANSWER_TIMEOUT
        while not reason and policy.last_outcome is previous and time.monotonic() < deadline:
            await _NextSpin()
        outcome = policy.last_outcome
        response.success, response.message = (
            (False, f'not adapting: {reason}') if reason else
            (True, f'adaptation still running after {ADAPT_ANSWER_TIMEOUT:g} s; its outcome '
                   'will be in the log and /diagnostics') if outcome is previous else
            (outcome.accepted, f'adaptation {outcome}{self._probation_note(outcome)}'))
        return response

    def _probation_note(self, outcome) -> str:
        window = self.loop.settings.probation_window
        if not outcome.accepted or window <= 0:
            return ''
        return (f'; on probation: {SETTLE_SECONDS + window:g} s on the robot decide whether it '
                'stays (/diagnostics: probation, rollbacks)')

    def _on_reset(self, request, response):
        """Back to the meta-policy; the support is cleared."""
        self.loop.reset_adaptation()
        response.success, response.message = True, 'back to the meta-policy, support cleared'
        return response

    def _on_save(self, request, response):
        """Save the policy that runs (``adapted_checkpoint``, else under ``$ROS_HOME``)."""
        path = Path(self.adapted_checkpoint or ros_home() / 'maml_ros' / 'adapted.safetensors')
        policy = self.loop.policy
        try:
            policy.active_models().save(path)
            response.success, response.message = True, (
                f'saved the {"adapted" if policy.adapted else "meta"} policy to {path}')
        except (OSError, CheckpointError) as error:
            response.success, response.message = False, f'could not save {path}: {error}'
        return response

    def _on_record(self, request, response):
        """True starts a new bag, false closes it (the ``record`` parameter follows)."""
        result = self.set_parameters([Parameter('record', value=request.data)])[0]
        bag = self.recording.bag
        response.success, response.message = (
            (False, result.reason) if not result.successful else
            (True, f'recording into {bag.path}') if bag is not None else
            (True, 'not recording') if not request.data else
            (False, f'could not record: {self.problems.last}'))
        return response
