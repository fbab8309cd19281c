"""The control loop over loopback DDS: rate, period jitter and joint_states -> command latency.

``pybullet_sim`` and ``adapter`` run in their own processes (``Bringup``, as
``ros2 launch`` would start them) with the package YAML, the joint-state rate
and the control rate both set to each rate under test, and each of the
adapter's triggers: ``timer`` (a tick every period) and ``joint_states`` (a
tick on each fresh joint state). The adapter measures its own loop
(``maml_ros.online.loop_stats``) and reports it in ``/diagnostics`` once a
second; this script collects those reports over ``--seconds``:

- achieved rate: control ticks per second (mean of the reports);
- period jitter: |interval between two ticks - period|, p50 (median of the
  reports' p50) and p99 (the worst report's p99);
- latency: age of the joint state a command was computed from when the
  command is published (its stamp, taken by pybullet_sim just before
  publishing, against the adapter's clock: DDS transport, queueing and
  computation), p50 and p99 the same way;
- the worst loop period, and the adapter's peak RSS (``VmHWM``).

Each configuration runs twice: with adaptation off, then with adaptations back
to back (``readapt_period`` 0.05 s on the 200-transition sliding window). DDS
stays on loopback in a private domain.

    python bench/control_loop.py [--rates 100 250 500 1000] [--seconds 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', '73')

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402

from maml_ros.cli.bringup import Bringup  # noqa: E402
from maml_ros.resources import default_config  # noqa: E402

from bench_common import write_json  # noqa: E402

TRIGGERS = ('timer', 'joint_states')


class Probe:
    """The adapter's diagnostics reports and its adaptations (from /rosout)."""

    def __init__(self, node) -> None:
        self.node = node
        self.reports: list[dict[str, str]] = []
        self.adaptations = 0
        self.latest: dict[str, str] = {}
        node.create_subscription(Log, '/rosout', self._on_log, 100)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

    def _on_log(self, msg) -> None:
        if msg.name == 'adapter' and msg.msg.startswith('adaptation '):
            self.adaptations += 1

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name == 'maml_ros adapter':
                self.latest = {kv.key: kv.value for kv in status.values}
                self.reports.append(self.latest)


def spin_for(executor, seconds: float, until=None) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.001)
        if until is not None and until():
            return True
    return until is None


def peak_rss_mb(pid: int) -> float:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
    return float('nan')


def config_for(rate: float, trigger: str, folder: Path) -> Path:
    """The package YAML with both nodes at ``rate``, and no adaptation yet."""
    config = yaml.safe_load(default_config().read_text())
    config['pybullet_sim']['ros__parameters']['publish_rate'] = rate
    config['adapter']['ros__parameters'].update(control_rate=rate, trigger=trigger,
                                                auto_adapt=False)
    path = folder / f'control_loop_{rate:g}_{trigger}.yaml'
    path.write_text(yaml.safe_dump(config))
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (0 once it is gone)."""
    try:
        fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def children(pid: int) -> list[int]:
    path = Path(f'/proc/{pid}/task/{pid}/children')
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def measure(executor, probe: Probe, seconds: float, pids: dict[str, int]) -> dict:
    """Aggregate the adapter's reports over ``seconds`` (the report in progress is skipped);
    the CPU use of each node process (% of one core)."""
    spin_for(executor, 1.1)
    probe.reports, probe.adaptations = [], 0
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    spin_for(executor, seconds)
    cpu = {f'{name}_cpu_percent': 100 * (cpu_seconds(pid) - cpu[name]) / seconds
           for name, pid in pids.items()}
    reports = [r for r in probe.reports if 'latency_p99_ms' in r]
    if not reports:
        raise RuntimeError(f'no loop reports from the adapter; last diagnostics {probe.latest}')

    def column(key):
        return np.array([float(r[key]) for r in reports])

    return {'achieved_hz': float(column('control_rate_hz').mean()),
            'jitter_p50_ms': float(np.median(column('loop_jitter_p50_ms'))),
            'jitter_p99_ms': float(column('loop_jitter_p99_ms').max()),
            'latency_p50_ms': float(np.median(column('latency_p50_ms'))),
            'latency_p99_ms': float(column('latency_p99_ms').max()),
            'max_loop_period_ms': float(column('max_loop_period_ms').max()),
            'adaptations': probe.adaptations, 'reports': len(reports), **cpu}


def run_config(executor, probe: Probe, rate: float, trigger: str, seconds: float,
               folder: Path) -> list[dict]:
    bringup = Bringup(nodes=['pybullet_sim', 'adapter'],
                      config=config_for(rate, trigger, folder))
    try:
        probe.latest = {}
        if not spin_for(executor, 60.0, until=lambda: probe.latest.get(
                'commands_sent', '0') != '0'):
            raise RuntimeError(f'the nodes did not come up at {rate} Hz: {bringup.exited()}')
        config = {'rate_hz': rate, 'trigger': trigger}
        pids = {name: process.pid for name, process in bringup.processes.items()}
        workers = [c for c in children(pids['adapter'])
                   if 'spawn_main' in Path(f'/proc/{c}/cmdline').read_text()]
        pids['adaptation_worker'] = workers[0] if workers else -1
        rows = [{**config, 'adapting': False, **measure(executor, probe, seconds, pids)}]
        client = AsyncParameterClient(probe.node, 'adapter')
        future = client.set_parameters([Parameter('readapt_period', value=0.05)])
        spin_for(executor, 5.0, until=future.done)
        rows.append({**config, 'adapting': True, **measure(executor, probe, seconds, pids)})
        rss = {'adapter_peak_rss_mb': peak_rss_mb(pids['adapter']),
               'worker_peak_rss_mb': peak_rss_mb(pids['adaptation_worker'])
               if pids['adaptation_worker'] > 0 else 0.0}
        for row in rows:
            row.update(rss)
        return rows
    finally:
        bringup.stop()


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rates', type=float, nargs='+', default=[100.0, 250.0, 500.0, 1000.0])
    parser.add_argument('--triggers', nargs='+', default=list(TRIGGERS), choices=TRIGGERS)
    parser.add_argument('--seconds', type=float, default=5.0)
    parser.add_argument('--json', type=Path, default=Path('bench/results/control_loop.json'))
    options = parser.parse_args(args)
    rclpy.init()
    node = rclpy.create_node('control_loop_probe')
    probe = Probe(node)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    rows = []
    print(f'{"rate":>6} {"trigger":>12} {"adapting":>8} {"achieved":>9} {"jitter p50":>10} '
          f'{"p99":>6} {"latency p50":>11} {"p99":>6} {"worst period":>12} {"adapts":>6} '
          f'{"RSS MB":>7} {"CPU sim":>7} {"adapter":>7} {"worker":>6}   (ms; CPU % of a core)')
    try:
        with tempfile.TemporaryDirectory() as folder:
            for trigger in options.triggers:
                for rate in options.rates:
                    for row in run_config(executor, probe, rate, trigger, options.seconds,
                                          Path(folder)):
                        rows.append(row)
                        print(f'{row["rate_hz"]:>6.0f} {trigger:>12} {str(row["adapting"]):>8} '
                              f'{row["achieved_hz"]:>9.1f} {row["jitter_p50_ms"]:>10.3f} '
                              f'{row["jitter_p99_ms"]:>6.2f} {row["latency_p50_ms"]:>11.3f} '
                              f'{row["latency_p99_ms"]:>6.2f} {row["max_loop_period_ms"]:>12.2f} '
                              f'{row["adaptations"]:>6} {row["adapter_peak_rss_mb"]:>7.0f} '
                              f'{row["pybullet_sim_cpu_percent"]:>7.0f} '
                              f'{row["adapter_cpu_percent"]:>7.0f} '
                              f'{row["adaptation_worker_cpu_percent"]:>6.0f}')
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    write_json(options.json, {'seconds': options.seconds, 'rows': rows})


if __name__ == '__main__':
    main()
