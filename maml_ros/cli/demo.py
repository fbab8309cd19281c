"""``maml-ros-demo``: the end-to-end demo on the simulated robot.

Starts ``pybullet_sim`` (playing the "real" robot of ``config/adapt.yaml``:
heavier payload, weaker actuators and more friction than the meta-policy
mostly saw), or ``mujoco_sim`` with ``--simulator mujoco`` (the same robot
in the other engine), and the ``adapter`` in their own processes over
loopback DDS.
The adapter tracks its built-in trajectory with the meta-policy while it
collects support, adapts, and keeps tracking with the adapted policy. The
demo prints the tracking RMSE before and after, the support size and the
adaptation time (from ``/diagnostics``), and plots the tracking error.

    maml-ros-demo [--config PATH] [--checkpoint PATH] [--simulator pybullet|mujoco]
        [--after SECONDS] [--plot demo.png]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState

from maml_ros.cli.bringup import DEFAULT_CONFIG, Bringup
from maml_ros.ros.launch_params import SIMULATORS
from maml_ros.stop_signals import ignore_signals, stop_on_signals


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', type=Path, default=DEFAULT_CONFIG)
    parser.add_argument('--checkpoint', default='',
                        help='checkpoint to run (wins over the parameter file)')
    parser.add_argument('--simulator', choices=SIMULATORS, default='pybullet',
                        help='the engine that plays the robot (default: pybullet)')
    parser.add_argument('--after', type=float, default=10.0,
                        help='seconds of tracking after the adaptation (default 10)')
    parser.add_argument('--timeout', type=float, default=120.0,
                        help='give up when no adaptation happened by then (s)')
    parser.add_argument('--plot', type=Path, default=Path('demo.png'))
    return parser.parse_args(argv)


def loopback_environment() -> dict[str, str]:
    """This environment with DDS kept on loopback, in a private domain unless one is set."""
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    env.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
    env.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='maml_ros_demo_log_'))
    return env


class Monitor:
    """Records joint states, what the adapter tracks, and its diagnostics."""

    def __init__(self, node) -> None:
        self.positions: dict[tuple[int, int], list[float]] = {}
        self.errors: list[tuple[float, float]] = []  # (time, |error|)
        self.diagnostics: dict[str, str] = {}
        self.adapted_at: float | None = None
        self.start = time.monotonic()
        node.create_subscription(JointState, 'joint_states', self._on_state, 100)
        node.create_subscription(JointState, 'adapter/desired', self._on_desired, 100)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

    @staticmethod
    def _key(msg) -> tuple[int, int]:
        return msg.header.stamp.sec, msg.header.stamp.nanosec

    def _on_state(self, msg) -> None:
        self.positions[self._key(msg)] = list(msg.position)

    def _on_desired(self, msg) -> None:
        # The adapter stamps what it tracks with the joint state it compared it with.
        q = self.positions.get(self._key(msg))
        if q is not None:
            error = sum((a - b) ** 2 for a, b in zip(q, msg.position, strict=False)) ** 0.5
            self.errors.append((time.monotonic() - self.start, error))

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name == 'maml_ros adapter':
                self.diagnostics = {kv.key: kv.value for kv in status.values}
                if self.adapted_at is None and self.diagnostics.get('state') == 'adapted':
                    self.adapted_at = time.monotonic() - self.start


def plot(path: Path, monitor: Monitor, summary: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 4))
    times, errors = zip(*monitor.errors, strict=True) if monitor.errors else ((), ())
    axis.plot(times, errors, lw=1)
    if monitor.adapted_at is not None:
        axis.axvline(monitor.adapted_at, color='k', ls='--', label='adapted (diagnostics, 1 Hz)')
        axis.legend(loc='upper right')
    axis.set_xlabel('time since the demo started (s)')
    axis.set_ylabel('|q - q_ref| (rad)')
    axis.set_title(summary)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(args: list[str] | None = None) -> int:
    options = parse_args(args)
    env = loopback_environment()
    # rclpy reads these at init: this process joins the nodes' private, loopback domain.
    os.environ.update({k: env[k] for k in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID',
                                           'ROS_LOG_DIR')})
    stop_on_signals()
    simulator = f'{options.simulator}_sim'
    bringup = Bringup(nodes=[simulator, 'adapter'], config=options.config, env=env,
                      checkpoint=options.checkpoint)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node('maml_ros_demo')
    monitor = Monitor(node)
    print(f'started {simulator} and adapter (ROS_DOMAIN_ID={env["ROS_DOMAIN_ID"]}, '
          'discovery on loopback); waiting for the adaptation ...', flush=True)
    deadline = time.monotonic() + options.timeout
    try:
        while time.monotonic() < deadline and not bringup.exited():
            rclpy.spin_once(node, timeout_sec=0.05)
            if monitor.adapted_at is not None:
                deadline = min(deadline, monitor.start + monitor.adapted_at + options.after)
    except KeyboardInterrupt:
        print('maml-ros-demo: interrupted; stopping the nodes', file=sys.stderr)
        return 0
    finally:
        ignore_signals()
        died = bringup.exited()
        bringup.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    if died:
        print(f'maml-ros-demo: node(s) {died} exited early', file=sys.stderr)
        return 1
    d = monitor.diagnostics
    if 'tracking_rmse_adapted' not in d:
        print(f'maml-ros-demo: no adaptation happened; last diagnostics {d}', file=sys.stderr)
        return 1
    summary = (f'tracking RMSE {float(d["tracking_rmse_meta_policy"]):.4f} rad before, '
               f'{float(d["tracking_rmse_adapted"]):.4f} rad after adapting')
    print(f'\n{summary}\n'
          f'support: {d["support_fill"]} transitions; adaptation {d["adaptation_ms"]} ms '
          f'({d["last_adaptation"]}); support loss {d["support_loss_before"]} -> '
          f'{d["support_loss_after"]}; problems {d.get("last_problem", "none")}')
    plot(options.plot, monitor, summary)
    print(f'plot written to {options.plot}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
