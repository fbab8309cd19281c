"""Collection on Ray: the same data and checkpoint as the local pool, two nodes, a lost node.

Every Ray here is given a loopback address and is stopped by the test that
started it. 127.0.0.2, because Ray replaces 127.0.0.1 by the machine's network
address. Ray 2.58's servers listen on every interface whatever address they are
given, so these tests refuse to run outside a network namespace that has only
loopback (``make test`` runs the suite in one: ``unshare --net``).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray
import safetensors.torch
from ray.cluster_utils import Cluster

from maml_ros.model.trained_models import TrainedModels
from maml_ros.sim import RolloutCollector, RolloutConfig
from maml_ros.training.collection import open_collector
from maml_ros.training.collector import CollectionError
from maml_ros.training.config import load_train_config
from maml_ros.training.meta_train import meta_train
from maml_ros.training.ray_collection import RayCollector

CONFIG = Path(__file__).resolve().parents[2] / 'config' / 'adapt.yaml'
LOOPBACK = '127.0.0.2'
SHORT = RolloutConfig(steps=100)


@pytest.fixture(autouse=True)
def loopback_only():
    """Fail rather than let Ray listen on this machine's network."""
    interfaces = [line.split(':')[0].strip() for line in
                  Path('/proc/net/dev').read_text().splitlines()[2:]]
    if interfaces != ['lo']:
        pytest.fail(f'this network namespace has {interfaces}: Ray would listen on them; run '
                    'these tests through make test (a namespace with loopback only)')


@pytest.fixture
def cluster(restore_handlers):
    """A head and a worker node on loopback, one CPU each; the driver is not connected. (The
    head node, made in this process, installs its own SIGTERM handler.)"""
    cluster = Cluster(initialize_head=True, head_node_args={
        'num_cpus': 1, 'node_ip_address': LOOPBACK, 'include_dashboard': False})
    worker = cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK)
    yield cluster, worker
    ray.shutdown()
    cluster.shutdown()


def same_rollouts(first, second) -> bool:
    fields = ('states', 'commands', 'issued_commands', 'next_states', 'true_states',
              'reference_positions')
    return len(first) == len(second) and all(
        a.seed == b.seed and all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields)
        for a, b in zip(first, second, strict=True))


def test_the_default_path_never_imports_ray():
    code = ('import sys; import maml_ros.nodes.adapter, maml_ros.nodes.meta_trainer, '
            'maml_ros.cli.train, maml_ros.training.meta_train, maml_ros.training.collection; '
            'sys.exit("ray" in sys.modules)')
    assert subprocess.run([sys.executable, '-c', code], check=False).returncode == 0


def test_the_same_seed_gives_the_same_checkpoint_on_a_local_ray(trained, tiny_training,
                                                               tmp_path):
    """Networks, settings and validation log bitwise those of the local pool: the
    collected data were the same."""
    on_ray = tiny_training(tmp_path / 'ray.safetensors', '--ray', 'local')
    pool, ray_tensors = (safetensors.torch.load_file(str(path)) for path in (trained, on_ray))
    assert pool.keys() == ray_tensors.keys()
    for name, tensor in pool.items():
        assert np.array_equal(tensor.numpy(), ray_tensors[name].numpy()), name
    infos = [TrainedModels.load(path).info for path in (trained, on_ray)]
    for info in infos:
        del info['validation']['seconds']
    assert infos[0] == infos[1]

    def rows(path):  # the validation log without its wall-clock column
        lines = [line.split(',') for line in path.with_suffix('.csv').read_text().splitlines()]
        seconds = lines[0].index('seconds')
        return [line[:seconds] + line[seconds + 1:] for line in lines]
    assert rows(on_ray) == rows(trained)
    assert not ray.is_initialized()  # the local Ray was stopped


def test_a_short_training_spreads_collection_over_both_nodes(cluster, tmp_path):
    head, _ = cluster
    lines: list[str] = []
    config = load_train_config(CONFIG, ray_address=head.address, seed=5, tasks=16,
                               validation_tasks=4, meta_iterations=2, validation_every=2,
                               refresh_tasks=0, pretrain_iterations=20, physics_iterations=5,
                               hidden=[16], physics_features=2, physics_hidden=[8],
                               steps_per_task=300, support_size=100, query_size=100,
                               closed_loop_tasks=1)
    meta_train(config, out=tmp_path / 'cluster.safetensors', progress=False,
               log=lines.append)
    assert (tmp_path / 'cluster.safetensors').is_file()
    assert any('2 rollout workers on 2 node(s)' in line for line in lines), lines
    per_node = next(line for line in lines if 'chunks run per node' in line)
    counts = per_node.split(': ', 2)[2].split(';')[0].split(', ')
    assert len(counts) == 2 and all(int(count.split()[1]) > 0 for count in counts), per_node


def test_losing_a_node_mid_collection_loses_no_task(cluster):
    head, worker = cluster
    seeds = range(100, 124)
    with RolloutCollector(workers=2, config=SHORT) as pool:
        expected = pool.collect(seeds)
    with RayCollector(address=head.address, config=SHORT, log=lambda line: None) as collector:
        collector.collect(range(4))  # both workers started and warm
        assert len(collector.chunks_by_node) == 2

        def kill_the_worker_node() -> None:
            done = sum(collector.chunks_by_node.values())
            while sum(collector.chunks_by_node.values()) < done + 2:
                time.sleep(0.005)
            head.remove_node(worker, allow_graceful=False)

        killer = threading.Thread(target=kill_the_worker_node)
        killer.start()
        rollouts = collector.collect(seeds)
        killer.join()
        assert collector.lost >= 1
    assert same_rollouts(rollouts, expected)


def test_bad_addresses_are_refused_at_once():
    for address, reason in (('127.0.0.2:1', 'nothing answers'), ('localhost:6379', '127.0.0.2'),
                            ('no-port', 'HOST:PORT')):
        started = time.monotonic()
        with pytest.raises(CollectionError, match=reason), open_collector(
                config=SHORT, workers=1, ray_address=address) as collector:
            collector.collect([0])
        assert time.monotonic() - started < 30  # not Ray's minutes of retries
    assert not ray.is_initialized()


def test_an_error_in_a_ray_worker_is_raised_as_itself(ghost_controller):
    with RayCollector(address='local', workers=1, config=SHORT, log=lambda line: None
                      ) as collector, pytest.raises(ModuleNotFoundError, match='ghost'):
        collector.collect([0, 1], controller=ghost_controller)
    assert not ray.is_initialized()


def _ray_processes(marker: str) -> list[int]:
    pids = []
    for entry in Path('/proc').iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / 'cmdline').read_text():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_the_trainer_stops_cleanly_on_a_signal_with_its_local_ray(tmp_path, signum):
    """``ray.init`` replaces SIGTERM's handler; the trainer's own are put back, so it stops
    with its message and exit status, and the Ray it started stops with it."""
    temp = Path(tempfile.mkdtemp(prefix='mr', dir='/tmp'))  # short: Ray's socket paths
    env = {**os.environ, 'RAY_TMPDIR': str(temp), 'PYTHONUNBUFFERED': '1'}
    args = [sys.executable, '-m', 'maml_ros.cli.train', '--config', str(CONFIG), '--out',
            str(tmp_path / 'x.safetensors'), '--ray', 'local', '--workers', '1',
            '--set', 'tasks=2000']
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        for line in process.stdout:
            if 'rollout workers on' in line:
                break
        assert _ray_processes(str(temp)), 'no Ray process found for this run'
        process.send_signal(signum)
        output = process.communicate(timeout=60)[0]
    finally:
        process.kill()
    assert process.returncode == 130, output
    assert 'maml-ros-train: stopped' in output
    deadline = time.monotonic() + 30
    while _ray_processes(str(temp)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _ray_processes(str(temp))
    shutil.rmtree(temp, ignore_errors=True)
