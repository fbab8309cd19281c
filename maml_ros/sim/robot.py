"""The domain-randomized robot: one PyBullet client, stepped one control period at a time.

What the engine does lives in a few methods (``_load``, ``_set_engine_dynamics``,
``_set_state``, ``_drive``, ``_joint_state``): :class:`~maml_ros.sim.mujoco_robot.MujocoRobot`
overrides them and keeps the rest (clamping, delay, ripple, noise, the state handed out).

Between commands the physics runs ``substeps`` steps of ``physics_period``
(1 kHz by default). What the randomized dynamics do, in order:

1. the issued command is clamped to the URDF limits, then delayed by
   ``latency_steps`` control steps (before the first command, nothing is in
   force yet, so the first command fills the delay line);
2. the command in force drives the joint: ``effort`` torques pass a first-order
   lag (time constant ``actuator_lag``: the torque loop's bandwidth) and are
   scaled by ``actuator_gain``; ``position``/``velocity`` targets go to
   PyBullet's motors whose maximum torque is the effort limit times
   ``actuator_gain``;
3. passive torques ``-damping*qd - friction*tanh(qd/v)`` act on each joint, and
   the transmission's ripple ``torque_ripple * sin(2 pi q / RIPPLE_PERIOD +
   ripple_phase)`` (outside the rigid-body-plus-friction model);
4. the measured state is the true state plus Gaussian noise.

Passive torques are computed once per control step from the velocity at its
start and held over the substeps. Reading joint states and re-sending torques
before every 1 ms step costs about 6 us per step in Python, against 12-20 us
for the step itself, which would put collection far below the 80%-of-bare
throughput target. A torque held for a whole control period over-corrects,
and reverses, a light joint (the Panda wrist has 0.004 kg*m^2), so two limits
keep it stable: damping is integrated exactly for a lower bound of the joint
inertia (``I(1-exp(-d T/I))/T``), and the friction smoothing velocity ``v``
(0.02 rad/s) is widened until damping plus friction cannot reverse the joint
within one period. Heavy joints keep their nominal values; light joints with
strong friction get a more viscous friction.
"""

from __future__ import annotations

import collections
import contextlib
from math import isfinite, pi, sin, tanh
from time import perf_counter

import numpy as np

from maml_ros.sim.command import CommandSpace
from maml_ros.sim.dynamics import Dynamics
from maml_ros.sim.model import (
    InverseDynamicsModel,
    JointLimits,
    RobotConfig,
    RobotDescription,
    load_robot,
    set_link_masses,
)
from maml_ros.sim.quiet_pybullet import pybullet

FRICTION_VELOCITY = 0.02  # rad/s: tanh smoothing of Coulomb friction (sign chatters)
RIPPLE_PERIOD = 0.5  # rad of joint travel per period of the transmission's torque ripple
RIPPLE_WAVENUMBER = 2 * pi / RIPPLE_PERIOD
_NOISE_BLOCK = 256  # control steps of measurement noise drawn at once


class SimRobot:
    """A PyBullet robot in DIRECT mode whose dynamics are one randomized task.

    :param config: URDF, joints, command interface and timing.
    :param dynamics: the task's dynamics (nominal by default).
    :param seed: seed of the measurement noise.
    :param gui: show the robot in a PyBullet window (needs a display; one per process).
    """

    def __init__(
        self,
        *,
        config: RobotConfig | None = None,
        dynamics: Dynamics | None = None,
        seed: int = 0,
        gui: bool = False,
    ) -> None:
        self.config = config if config is not None else RobotConfig()
        self._client: int | None = None
        #: Wall-clock seconds spent inside the engine's physics steps (profiling overhead).
        self.physics_seconds = 0.0
        self.description = self._load(gui)
        self._n = self.description.n_joints
        self._effort = self.config.command_interface == 'effort'
        #: Limits, rest and exploration units of this robot's commands.
        self.command_space = CommandSpace.of(self.description.limits,
                                             self.config.command_interface,
                                             self.config.control_period)
        self.set_dynamics(dynamics if dynamics is not None else Dynamics())
        self.reset(seed=seed)

    # -- the engine (PyBullet here; see MujocoRobot) -------------------------

    #: Which physics engine simulates the robot.
    engine = 'pybullet'

    def _load(self, gui: bool) -> RobotDescription:
        self._client, self._body, description = load_robot(self.config, gui=gui)
        self._indices = list(description.joint_indices)
        self._held = list(description.held_indices)
        self._inertia_bound = InverseDynamicsModel.shared(self.config).inertia_lower_bound()
        massless = [name for name, inertia in zip(description.joint_names, self._inertia_bound,
                                                  strict=True) if not inertia > 0]
        if massless:
            raise ValueError(f'joints {massless} move no mass (no inertia in any posture): '
                             'give the links they carry a mass and an inertia in the URDF')
        #: Rotor inertia per joint (kg*m^2): the URDF has none, so PyBullet simulates none.
        self.armature = np.zeros(description.n_joints)
        return description

    # -- facts -------------------------------------------------------------

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.description.joint_names

    @property
    def client_id(self) -> int | None:
        """The PyBullet client (for extra queries; pass it as ``physicsClientId``)."""
        return self._client

    @property
    def body_id(self) -> int:
        return self._body

    @property
    def limits(self) -> JointLimits:
        return self.description.limits

    @property
    def dynamics(self) -> Dynamics:
        return self._dynamics

    @property
    def actuator_gain(self) -> np.ndarray:
        """Torque per unit of effort command, per joint."""
        return self._gain

    def passive_torque(self, q: np.ndarray, qd: np.ndarray) -> np.ndarray:
        """The joint torque damping, friction and the ripple oppose motion with at ``(q, qd)``
        (simulation truth: what the true-model controller compensates)."""
        return (self._damping * qd + self._friction * np.tanh(qd * self._inv_friction_velocity)
                - self._ripple * np.sin(RIPPLE_WAVENUMBER * q + self._ripple_phase))

    @property
    def command_in_force(self) -> np.ndarray:
        """The (clamped) command that drove the last control step."""
        return self._in_force

    @property
    def issued_command(self) -> np.ndarray:
        """The (clamped) command issued at the last control step."""
        return self._issued

    # -- set-up ------------------------------------------------------------

    def set_dynamics(self, dynamics: Dynamics) -> None:
        """Make the robot the one described by ``dynamics`` (masses change at once).

        :raises ValueError: if per-joint or per-link values do not match the URDF.
        """
        n = self.description.n_joints
        self._gain = dynamics.per_element('actuator_gain', n)
        self._gain_list = self._gain.tolist()
        self._set_engine_dynamics(dynamics)
        self._latency = dynamics.latency_steps
        lag = dynamics.per_element('actuator_lag', n)
        #: Per control step, the fraction of the lagged torque that remains: exp(-T / lag)
        #: (effort only: the engine's motors drive position and velocity targets).
        self.lag_retention = np.exp(-self.config.control_period / np.maximum(lag, 1e-12)) \
            * self._effort
        self._lag_list = self.lag_retention.tolist() if self.lag_retention.any() else None
        self._ripple = dynamics.per_element('torque_ripple', n)
        self._ripple_phase = dynamics.per_element('ripple_phase', n)
        self._ripple_terms = list(zip(self._ripple.tolist(), self._ripple_phase.tolist(),
                                      strict=True)) if self._ripple.any() else None
        self._noise_std = np.concatenate([np.full(n, dynamics.position_noise_std),
                                          np.full(n, dynamics.velocity_noise_std)])
        if hasattr(self, '_noise_block'):
            self._scaled_noise = self._noise_block * self._noise_std
        self._dynamics = dynamics

    def _set_engine_dynamics(self, dynamics: Dynamics) -> None:
        """Masses, damping and friction (the stability limits of the module docstring)."""
        d = self.description
        scale = dynamics.per_element('link_mass_scale', d.n_links)
        set_link_masses(self._client, self._body, d, link_mass_scale=scale,
                        payload_mass=dynamics.payload_mass)
        self._motor_force = (d.limits.effort * self._gain).tolist()
        period = self.config.control_period
        inertia = self._inertia_bound * float(np.min(scale))
        damping = dynamics.per_element('joint_damping', d.n_joints)
        friction = dynamics.per_element('joint_friction', d.n_joints)
        decay = damping * period / inertia
        self._damping = inertia * -np.expm1(-decay) / period
        # Friction slope budget left by damping so that the pair cannot reverse qd.
        slope_budget = inertia * np.exp(-decay) / period
        self._friction = friction
        self._inv_friction_velocity = 1.0 / np.maximum(FRICTION_VELOCITY,
                                                       friction / slope_budget)
        self._damping_list = self._damping.tolist()
        self._friction_list = self._friction.tolist()
        self._inv_velocity_list = self._inv_friction_velocity.tolist()

    def reset(
        self,
        *,
        positions: np.ndarray | None = None,
        velocities: np.ndarray | None = None,
        seed: int | np.random.SeedSequence | None = None,
    ) -> None:
        """Put the robot at rest (or at ``velocities``) at ``positions`` (default: home).

        Clears the latency line; ``seed`` restarts the measurement noise.
        """
        d = self.description
        q = d.home if positions is None else np.asarray(positions, dtype=float)
        qd = np.zeros(d.n_joints) if velocities is None else np.asarray(velocities, dtype=float)
        if q.shape != (d.n_joints,) or qd.shape != (d.n_joints,):
            raise ValueError(f'positions and velocities need {d.n_joints} values')
        self._set_state(q, qd)
        if seed is not None:
            self._noise_rng = np.random.default_rng(seed)
        self._queue: collections.deque[tuple[np.ndarray, list[float]]] = collections.deque()
        self._issued = self._in_force = np.zeros(d.n_joints)
        self._lagged: list[float] | None = None  # the first command fills the lag too
        self._noise_block = np.empty((0, 2 * d.n_joints))
        self._noise_row = 0
        self._read_state()

    def _set_state(self, q: np.ndarray, qd: np.ndarray) -> None:
        """The controlled joints at ``(q, qd)``, the held ones at their positions."""
        for index, position, velocity in zip(self._indices, q, qd, strict=True):
            pybullet.resetJointState(self._body, index, float(position), float(velocity),
                                     physicsClientId=self._client)
        for index, position in zip(self._held, self.description.held_positions, strict=True):
            pybullet.resetJointState(self._body, index, position, 0.0,
                                     physicsClientId=self._client)

    # -- stepping ----------------------------------------------------------

    def step(self, command: np.ndarray) -> None:
        """Issue ``command`` and advance one control period.

        :raises ValueError: for a command of the wrong length or with NaN/inf values
            (they would silently poison the physics state).
        """
        cmd = np.asarray(command, dtype=float)
        if cmd.shape == (self._n,):
            cmd = np.minimum(np.maximum(cmd, self.command_space.lower), self.command_space.upper)
            cmd_list = cmd.tolist()
        if cmd.shape != (self._n,) or not isfinite(sum(cmd_list)):
            raise ValueError(f'command must be {self._n} finite values, got {command!r}')
        self._issued = cmd
        if self._latency:
            # The physics reads the list copy: callers may hold (and write to) the array.
            if not self._queue:
                self._queue.extend([(cmd, cmd_list)] * self._latency)
            self._queue.append((cmd, cmd_list))
            cmd, cmd_list = self._queue.popleft()
        self._in_force = cmd
        self._drive(cmd_list)
        self._read_state()

    def _ripple_torque(self, torque: list[float]) -> list[float]:
        """``torque`` plus the transmission's ripple at the present posture."""
        if self._ripple_terms is None:
            return torque
        return [t + a * sin(RIPPLE_WAVENUMBER * q + p) for t, (a, p), q in zip(
            torque, self._ripple_terms, self._q_list, strict=True)]

    def _drive(self, command: list[float]) -> None:
        """Apply the command in force and advance the physics one control period."""
        if self._effort:
            if self._lag_list is not None:
                lagged = command if self._lagged is None else self._lagged
                command = self._lagged = [r * y + (1.0 - r) * c for r, y, c in zip(
                    self._lag_list, lagged, command, strict=True)]
            # Plain floats: for a handful of joints a comprehension beats numpy's per-call cost.
            torque = [g * c - d * v - f * tanh(v * w) for g, c, d, f, w, v in zip(
                self._gain_list, command, self._damping_list, self._friction_list,
                self._inv_velocity_list, self._qd_list, strict=True)]
        else:
            torque = [-d * v - f * tanh(v * w) for d, f, w, v in zip(
                self._damping_list, self._friction_list, self._inv_velocity_list,
                self._qd_list, strict=True)]
            position = self.config.command_interface == 'position'
            pybullet.setJointMotorControlArray(
                self._body, self._indices,
                pybullet.POSITION_CONTROL if position else pybullet.VELOCITY_CONTROL,
                forces=self._motor_force, physicsClientId=self._client,
                **{'targetPositions' if position else 'targetVelocities': command})
        pybullet.setJointMotorControlArray(self._body, self._indices, pybullet.TORQUE_CONTROL,
                                           forces=self._ripple_torque(torque),
                                           physicsClientId=self._client)
        start = perf_counter()
        pybullet.stepSimulation(physicsClientId=self._client)
        self.physics_seconds += perf_counter() - start

    def _joint_state(self) -> tuple[list[float], list[float]]:
        """True ``(q, qd)`` of the controlled joints, as lists."""
        states = pybullet.getJointStates(self._body, self._indices, physicsClientId=self._client)
        return [s[0] for s in states], [s[1] for s in states]

    def _read_state(self) -> None:
        self._q_list, self._qd_list = self._joint_state()
        state = np.array(self._q_list + self._qd_list)
        if self._noise_row == len(self._noise_block):
            self._noise_block = self._noise_rng.standard_normal(
                (_NOISE_BLOCK, len(self._noise_std)))
            self._scaled_noise = self._noise_block * self._noise_std
            self._noise_row = 0
        measured = state + self._scaled_noise[self._noise_row]
        self._noise_row += 1
        n = self._n
        self._state, self._measured_state = state, measured
        self._q, self._qd = state[:n], state[n:]
        self._measured = measured[:n], measured[n:]

    # State and command arrays are fresh at every step and the robot never reads
    # them back, so they are handed out without copies (copying, or marking them
    # read-only, costs a few percent of collection throughput).

    def true_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free ``(q, qd)`` of the controlled joints now."""
        return self._q, self._qd

    def measured_state(self) -> tuple[np.ndarray, np.ndarray]:
        """``(q, qd)`` as the joint sensors report them now (true state plus noise).

        The noise was drawn when the state was reached, so repeated calls agree.
        """
        return self._measured

    def true_state_vector(self) -> np.ndarray:
        """The true state as one array ``(q, qd)``, the layout of rollout states."""
        return self._state

    def measured_state_vector(self) -> np.ndarray:
        """The measured state as one array ``(q, qd)``, the layout of rollout states."""
        return self._measured_state

    # -- lifetime ----------------------------------------------------------

    def close(self) -> None:
        """Disconnect the PyBullet client (idempotent)."""
        if self._client is not None and pybullet.isConnected(physicsClientId=self._client):
            pybullet.disconnect(physicsClientId=self._client)
        self._client = None

    def __enter__(self) -> SimRobot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # At interpreter shutdown pybullet may already be gone: nothing left to free.
        with contextlib.suppress(Exception):
            self.close()
