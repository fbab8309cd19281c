"""Whether a robot description can work, before anything is trained or run on it.

:func:`check_robot` loads the URDF the way the simulator does and checks, one
finding per problem, each with what to change:

- the description: joints, payload link, limits and home (what
  :func:`~maml_ros.sim.model.load_robot` refuses);
- the inertias: every link with mass has a physical inertia (no zeroed
  principal moments, the triangle inequality, a radius of gyration no larger
  than the link's collision geometry, where it has some, not one placeholder
  value on every link); links the URDF gives no ``<inertial>`` are massless,
  as the URDF convention says (one line names them);
- what the URDF declares as joint damping and friction, which the simulator
  replaces by the randomization ranges (a warning where the URDF says more);
- the gains: :func:`~maml_ros.sim.gains.derive_gains` finds a stable one per joint;
- the passive torques: the largest friction plus ripple the ranges draw against
  the nominal controller's stiffness (``kp`` times the joint's smallest
  inertia): a warning where they could hold a joint more than
  :data:`PASSIVE_ERROR_LIMIT` off its reference before adaptation;
- the references: on the heaviest robot the ranges allow, the torque they ask
  for stays inside the effort limits (effort interface);
- closed loop, on the nominal simulated robot without noise: the nominal
  controller holds home for 3 s and tracks reference trajectories within
  :data:`TRACKING_TOLERANCE`, without sitting at the effort limits.

``maml-ros-check-robot`` prints the report; meta-training, ``meta_trainer``
and the adapter's configure call :func:`require_robot`, which raises
:class:`RobotCheckError` with the failures.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from maml_ros.sim.controller import NominalController
from maml_ros.sim.dynamics import Dynamics, DynamicsRanges
from maml_ros.sim.gains import TrackingGains, derive_gains
from maml_ros.sim.model import (
    InverseDynamicsModel,
    RobotConfig,
    RobotDescription,
    UrdfLink,
    load_robot,
    urdf_file,
    urdf_links,
)
from maml_ros.sim.quiet_pybullet import pybullet
from maml_ros.sim.reference import ReferenceConfig, ReferenceTrajectory, random_reference
from maml_ros.sim.robot import SimRobot
from maml_ros.sim.rollout import RolloutConfig, Task, run_task

TRACKING_TOLERANCE = 0.005  # rad RMSE of the nominal controller on the nominal robot
HOLD_SECONDS = 3.0
TRACKING_SEEDS = (0, 1, 2)  # reference trajectories tracked (5 s each)
SATURATION_LIMIT = 0.01  # largest fraction of ticks with a command at an effort limit
REFERENCE_EFFORT_FRACTION = 0.9  # of the effort limit the references may ask for
PASSIVE_ERROR_LIMIT = 0.5  # rad: friction and ripple against the nominal stiffness
Status = Literal['PASS', 'WARN', 'FAIL']


class RobotCheckError(ValueError):
    """The robot cannot work as described; the message has one line per failure."""


@dataclass(frozen=True)
class Finding:
    """One check's verdict: ``check`` names it, ``message`` says what and what to change;
    ``value`` is the closed-loop checks' measured figure (rad)."""

    check: str
    status: Status
    message: str
    value: float | None = None

    def line(self) -> str:
        return f'{self.status} {self.check}: {self.message}'


@dataclass(frozen=True)
class RobotReport:
    """What :func:`check_robot` found: the joints, the gains, and the findings in order."""

    config: RobotConfig
    description: RobotDescription | None
    gains: TrackingGains | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(f.status != 'FAIL' for f in self.findings)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.status == 'FAIL']

    def finding(self, check: str) -> Finding:
        """The (first) finding of ``check``.

        :raises KeyError: when that check did not run.
        """
        for f in self.findings:
            if f.check == check:
                return f
        raise KeyError(f'no {check!r} finding; checks that ran: '
                       f'{[f.check for f in self.findings]}')

    def lines(self) -> list[str]:
        """The report as ``maml-ros-check-robot`` prints it."""
        out = [f'robot: {self.config.urdf_path} ({self.config.command_interface}, '
               f'{1 / self.config.control_period:g} Hz)']
        d = self.description
        if d is not None:
            inertia = InverseDynamicsModel.shared(self.config).smallest_inertia()
            out.append(f'  {"joint":<16}{"limits (rad)":>18}{"rad/s":>7}{"N*m":>7}'
                       f'{"min inertia":>13}{"w (rad/s)":>10}')
            for k, name in enumerate(d.joint_names):
                omega = f'{self.gains.natural_frequency[k]:g}' if self.gains else '-'
                out.append(f'  {name:<16}{d.limits.lower[k]:>8.2f} ..{d.limits.upper[k]:>6.2f}'
                           f'{d.limits.velocity[k]:>7.2f}{d.limits.effort[k]:>7.1f}'
                           f'{inertia[k]:>13.2e}{omega:>10}')
            masses = ', '.join(f'{n} {m:.3g}' for n, m in zip(d.link_names, d.link_masses,
                                                                strict=True) if m > 0)
            out.append(f'  link masses (kg): {masses}')
        out += [f.line() for f in self.findings]
        out.append('PASS' if self.passed else
                   f'FAIL: {len(self.failures)} check(s) failed; fix them before training')
        return out


def check_robot(config: RobotConfig, *, ranges: DynamicsRanges | None = None,
                reference: ReferenceConfig | None = None,
                natural_frequency: tuple[float, ...] | None = None,
                closed_loop: bool = True) -> RobotReport:
    """Check ``config`` (module docstring); never raises for a bad robot, reports it.

    :param ranges: the randomization ranges (default :class:`DynamicsRanges`).
    :param reference: how references are drawn (default :class:`ReferenceConfig`).
    :param natural_frequency: the gains in use per joint (e.g. a checkpoint's, rad/s);
        default: derived for ``ranges``.
    :param closed_loop: also run the nominal controller on the simulated robot.
    """
    ranges = ranges if ranges is not None else DynamicsRanges()
    reference = reference if reference is not None else ReferenceConfig()
    try:
        cid, body, description = load_robot(config)
    except (ValueError, RuntimeError) as error:
        return RobotReport(config, None, None, [Finding('description', 'FAIL', str(error))])
    try:
        findings = [Finding('description', 'PASS',
                            f'{description.n_joints} joints, payload on '
                            f'{config.payload_link}, home inside the limits')]
        findings += _inertia_findings(cid, body, description, config)
        findings += _urdf_friction_findings(description, ranges)
    finally:
        pybullet.disconnect(physicsClientId=cid)
    if any(f.status == 'FAIL' for f in findings):
        return RobotReport(config, description, None, findings)
    gains = derive_gains(config, ranges)
    if natural_frequency is not None:
        gains = dataclasses.replace(gains, natural_frequency=np.asarray(natural_frequency))
    findings.append(_gain_finding(config, gains, derived=natural_frequency is None))
    if config.command_interface == 'effort':
        findings += _passive_torque_findings(config, ranges, gains)
    if config.command_interface == 'effort':
        findings.append(_reference_effort_finding(config, ranges, reference))
    if closed_loop and all(f.status != 'FAIL' for f in findings):
        findings += _closed_loop_findings(config, ranges, reference, gains)
    return RobotReport(config, description, gains, findings)


@functools.lru_cache(maxsize=8)
def require_robot(config: RobotConfig, *, ranges: DynamicsRanges | None = None,
                  reference: ReferenceConfig | None = None,
                  natural_frequency: tuple[float, ...] | None = None) -> RobotReport:
    """:func:`check_robot`, raising on failure (cached per process: nodes call it at every
    configure).

    :raises RobotCheckError: with one line per failed check.
    """
    report = check_robot(config, ranges=ranges, reference=reference,
                         natural_frequency=natural_frequency)
    if not report.passed:
        raise RobotCheckError(f'{config.urdf_path} cannot work as configured:\n' + '\n'.join(
            f.line() for f in report.failures))
    return report


def _inertia_findings(cid: int, body: int, d: RobotDescription, config: RobotConfig
                      ) -> list[Finding]:
    source = 'the URDF' if config.use_urdf_inertia else 'the collision meshes'
    declared = urdf_links(urdf_file(config.urdf_path))
    findings = []
    massless = [name for name, link in declared.items() if not link.inertial]
    if massless:
        findings.append(Finding('inertia', 'PASS', f'links without <inertial> are massless (the '
                                f'URDF convention): {", ".join(massless)}'))
    massive = [k for k in range(d.n_links) if d.link_masses[k] > 0]
    shapeless = [d.link_names[k] for k in massive
                 if not declared.get(d.link_names[k], UrdfLink(True, True)).collision]
    if shapeless and config.use_urdf_inertia:
        findings.append(Finding('inertia', 'WARN', f'links {", ".join(shapeless)} have no '
                                'collision geometry: their inertias are checked for positive '
                                'moments and the triangle inequality, not against their size'))
    for k in massive:
        name, mass, moments = d.link_names[k], d.link_masses[k], np.sort(d.link_inertias[k])
        reach = 0.0 if name in shapeless else _reach(cid, body, k)
        # What a user can change: the URDF, or where inertias come from (collision meshes
        # only where the link has some).
        other = ('inertia: collision' if config.use_urdf_inertia and name not in shapeless
                 else 'inertia: urdf' if not config.use_urdf_inertia else '')
        fix = f'fix the URDF or set {other}' if other else 'fix the URDF'
        if name in shapeless and not config.use_urdf_inertia:
            problem, fix = ('no collision geometry to take an inertia from (PyBullet gives it '
                            f'that of its collision margin, {moments[2]:.2g} kg*m^2)'),\
                'set inertia: urdf'
        elif moments[0] <= 0:
            problem = (f'zero principal inertia {moments.tolist()} (PyBullet zeroes a tensor '
                       'that is not physical)')
        elif moments[0] + moments[1] < moments[2] * (1 - 1e-6):
            problem = f'principal inertias {moments.tolist()} break the triangle inequality'
        elif reach > 0 and moments[2] > mass * reach ** 2:
            problem = (f'inertia {moments[2]:.3g} kg*m^2 needs a radius of gyration of '
                       f'{np.sqrt(moments[2] / mass):.3f} m, larger than the link '
                       f'({reach:.3f} m from its centre of mass)')
        else:
            continue
        findings.append(Finding('inertia', 'FAIL', f'link {name} ({mass:.3g} kg) from {source}: '
                                f'{problem}; {fix}'))
    tensors = {tuple(np.round(d.link_inertias[k], 9)) for k in massive}
    if len(massive) >= 3 and len(tensors) == 1:
        tensor = [float(v) for v in tensors.pop()]
        other = 'inertia: collision' if config.use_urdf_inertia else 'inertia: urdf'
        findings.append(Finding('inertia', 'FAIL', f'every link has the inertia {tensor} from '
                                f'{source}: placeholders, not the robot; set {other}'))
    if all(finding.status != 'FAIL' for finding in findings):
        findings.append(Finding('inertia', 'PASS', f'{len(massive)} links with mass, physical '
                                f'inertias from {source}'))
    return findings


def _reach(cid: int, body: int, link: int) -> float:
    """The farthest corner of the link's bounding box from its centre of mass."""
    low, high = (np.array(corner) for corner in pybullet.getAABB(body, link,
                                                                  physicsClientId=cid))
    centre = np.array(pybullet.getLinkState(body, link, physicsClientId=cid)[0])
    corners = np.array(np.meshgrid(*zip(low, high, strict=True))).reshape(3, -1).T
    return float(np.max(np.linalg.norm(corners - centre, axis=1)))


def _urdf_friction_findings(d: RobotDescription, ranges: DynamicsRanges) -> list[Finding]:
    findings = []
    for name, declared in (('joint_damping', d.urdf_damping), ('joint_friction', d.urdf_friction)):
        _, high = ranges.bounds(name, d.n_joints)
        above = [f'{j} {v:g}' for j, v, h in zip(d.joint_names, declared, high, strict=True)
                 if v > h]
        if above:
            findings.append(Finding('urdf dynamics', 'WARN', f'the URDF declares {name} '
                                    f'{", ".join(above)}, above the randomization range '
                                    f'(up to {np.max(high):g}); the simulator uses the range: '
                                    f'widen randomization.{name} if the real robot has that '
                                    'much'))
    return findings


def _gain_finding(config: RobotConfig, gains: TrackingGains, *, derived: bool) -> Finding:
    omega, critical = gains.natural_frequency, gains.critical_frequency
    margin = (f'the loop diverges above {_values(critical, "{:.1f}")} rad/s with '
              f'{gains.delay_steps} steps of delay at loop gain {_values(gains.loop_gain)}')
    if np.any(omega < 1.0):
        return Finding('gains', 'FAIL', f'no PD gain keeps computed torque stable on '
                       f'{_values(np.asarray(config.joints)[omega < 1.0])}: {margin}; '
                       f'shorten control_period ({config.control_period:g} s) or narrow '
                       'latency_steps, actuator_lag, actuator_gain or link_mass_scale')
    text = (f'natural frequency {_values(omega)} rad/s (kp = w^2, kd = 2w) '
            f'{"derived" if derived else "in use"}; {margin}')
    if np.all(omega <= critical):
        return Finding('gains', 'PASS', text)
    return Finding('gains', 'WARN', f'{text}: stable only with less delay or a smaller '
                   'loop gain than that (retrain to get derived gains)')


def _passive_torque_findings(config: RobotConfig, ranges: DynamicsRanges,
                             gains: TrackingGains) -> list[Finding]:
    """Friction and ripple the nominal controller leaves to adaptation, per joint."""
    model = InverseDynamicsModel.shared(config)
    n = model.description.n_joints
    passive = ranges.bounds('joint_friction', n)[1] + ranges.bounds('torque_ripple', n)[1]
    inertia = model.smallest_inertia()
    stiffness = gains.position_gain * inertia
    error = passive / np.maximum(stiffness, 1e-12)
    swamped = [k for k in range(n) if error[k] > PASSIVE_ERROR_LIMIT]
    return [Finding('passive torques', 'WARN', f'{model.description.joint_names[k]}: friction '
                    f'and ripple up to {passive[k]:.3g} N*m against the nominal stiffness of '
                    f'{stiffness[k]:.3g} N*m/rad (kp times its smallest inertia, '
                    f'{inertia[k]:.2g} kg*m^2) can hold it '
                    f'{error[k]:.2g} rad off before adaptation; give this joint smaller '
                    'randomization.joint_friction and torque_ripple (per-joint ranges) if the '
                    'real one has less') for k in swamped]


def _reference_effort_finding(config: RobotConfig, ranges: DynamicsRanges,
                              reference: ReferenceConfig) -> Finding:
    """The references' inverse-dynamics torque on the heaviest robot of the ranges."""
    d = InverseDynamicsModel.shared(config).description
    _, scale_high = ranges.bounds('link_mass_scale', d.n_links)
    _, payload_high = ranges.bounds('payload_mass')
    heavy = InverseDynamicsModel(config=config, link_mass_scale=scale_high,
                                 payload_mass=float(payload_high[0]))
    try:
        peak = np.zeros(d.n_joints)
        for seed in TRACKING_SEEDS:
            ref = random_reference(np.random.default_rng(seed), limits=d.limits, home=d.home,
                                   steps=500, control_period=config.control_period,
                                   config=reference)
            for row in zip(ref.positions, ref.velocities, ref.accelerations, strict=True):
                peak = np.maximum(peak, np.abs(heavy.torques(*row)))
    finally:
        heavy.close()
    fraction = peak / d.limits.effort
    worst = int(np.argmax(fraction))
    summary = (f'on the heaviest robot (payload {payload_high[0]:g} kg, link masses x'
               f'{np.max(scale_high):g}) references need up to {fraction[worst]:.0%} of '
               f'{d.joint_names[worst]}\'s effort limit')
    if fraction[worst] <= REFERENCE_EFFORT_FRACTION:
        return Finding('references', 'PASS', summary)
    return Finding('references', 'FAIL', f'{summary} (more than '
                   f'{REFERENCE_EFFORT_FRACTION:.0%}): lower randomization.payload_mass or '
                   'the reference speed (reference.velocity_fraction, max_amplitude)')


def _closed_loop_findings(config: RobotConfig, ranges: DynamicsRanges,
                          reference: ReferenceConfig, gains: TrackingGains) -> list[Finding]:
    """Rollouts of the nominal controller on the nominal robot (no noise, no exploration):
    holding home, then tracking :data:`TRACKING_SEEDS`' references."""
    controller = NominalController(config=config, position_gain=gains.position_gain,
                                   velocity_gain=gains.velocity_gain)
    rollout_config = RolloutConfig(robot=config, ranges=ranges, reference=reference,
                                   exploration_std=0.0)
    hold_steps = round(HOLD_SECONDS / config.control_period)
    with SimRobot(config=config) as robot:
        d = robot.description
        home = np.tile(d.home, (hold_steps + 1, 1))
        still = ReferenceTrajectory(positions=home, velocities=np.zeros_like(home),
                                    accelerations=np.zeros_like(home),
                                    control_period=config.control_period)
        hold = run_task(Task(0, Dynamics()), robot=robot, controller=controller,
                        config=dataclasses.replace(rollout_config, steps=hold_steps),
                        reference=still)
        tracks = [run_task(Task(seed, Dynamics()), config=rollout_config, controller=controller,
                           robot=robot) for seed in TRACKING_SEEDS]
    drift = float(np.max(np.abs(hold.true_next_states[:, :d.n_joints] - d.home)))
    rmse = np.array([rollout.tracking_rmse for rollout in tracks])
    return [
        _closed_loop_finding('hold home', f'{HOLD_SECONDS:g} s: drift {drift:.2g} rad', drift,
                             _saturation(config, d, [hold]), config),
        _closed_loop_finding('track', f'{len(rmse)} references of '
                             f'{rollout_config.steps * config.control_period:g} s: RMSE '
                             f'{_values(rmse, "{:.2g}")} rad', float(rmse.max()),
                             _saturation(config, d, tracks), config)]


def _saturation(config: RobotConfig, d: RobotDescription, rollouts: list) -> float:
    """The fraction of ticks with an effort command at a limit (0 for other interfaces)."""
    if config.command_interface != 'effort':
        return 0.0
    commands = np.concatenate([rollout.issued_commands for rollout in rollouts])
    return float(np.mean(np.any(np.abs(commands) >= d.limits.effort * (1 - 1e-9), axis=1)))


def _closed_loop_finding(check: str, summary: str, error: float, saturation: float,
                         config: RobotConfig) -> Finding:
    text = f'{summary}, {saturation:.0%} of ticks at an effort limit'
    if np.isfinite(error) and error <= TRACKING_TOLERANCE and saturation <= SATURATION_LIMIT:
        return Finding(check, 'PASS', text, error)
    return Finding(check, 'FAIL', f'{text} (needs <= {TRACKING_TOLERANCE} rad and <= '
                   f'{SATURATION_LIMIT:.0%}): the nominal controller cannot drive the nominal '
                   'robot; check the joints\' order, limits and inertias above, '
                   f'or shorten control_period ({config.control_period:g} s)', error)


def _values(values: np.ndarray, fmt: str = '{:g}') -> str:
    """One value if all are equal, else the list."""
    items = [fmt.format(v) if not isinstance(v, str) else v for v in np.asarray(values).tolist()]
    return items[0] if len(set(items)) == 1 else '[' + ', '.join(items) + ']'
