"""`colcon build` of this package installs what `ros2 run` / `ros2 launch` look for."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IGNORED = shutil.ignore_patterns('.venv', '.git', 'build', 'install', 'log', '__pycache__',
                                 '*.egg-info', '.pytest_cache', '.ruff_cache', '.hypothesis',
                                 '.ros_log')


def console_scripts() -> list[str]:
    """Executable names declared in setup.py's console_scripts."""
    tree = ast.parse((REPO / 'setup.py').read_text())
    entry_points = next(node.value for node in ast.walk(tree)
                        if isinstance(node, ast.keyword) and node.arg == 'entry_points')
    scripts = ast.literal_eval(entry_points)['console_scripts']
    return [spec.split('=')[0].strip() for spec in scripts]


def test_colcon_build_installs_executables_and_share_files(tmp_path):
    source = tmp_path / 'src' / 'maml_ros'
    shutil.copytree(REPO, source, ignore=IGNORED)
    colcon = Path(sys.executable).with_name('colcon')
    env = dict(os.environ, PATH=f'{colcon.parent}{os.pathsep}{os.environ["PATH"]}')
    result = subprocess.run(
        [str(colcon), 'build', '--base-paths', 'src', '--event-handlers', 'console_direct-'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr

    prefix = tmp_path / 'install' / 'maml_ros'
    executables = console_scripts()
    assert executables, 'setup.py declares no console_scripts'
    for name in executables:
        path = prefix / 'lib' / 'maml_ros' / name
        assert path.is_file() and os.access(path, os.X_OK), f'{name} not in lib/maml_ros'

    share = prefix / 'share' / 'maml_ros'
    expected = ['package.xml']
    for folder, pattern in [('launch', '*.launch.py'), ('config', '*.yaml'),
                            ('checkpoints', '*.safetensors')]:
        expected += [f'{folder}/{p.name}' for p in sorted((REPO / folder).glob(pattern))]
    for relative in expected:
        assert (share / relative).is_file(), f'{relative} not installed into share/maml_ros'
    marker = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'maml_ros'
    assert marker.is_file()

    # The installed package imports from the install space, not the source tree.
    site = next((prefix / 'lib').glob('python3*/site-packages'))
    probe = subprocess.run(
        [sys.executable, '-c', 'import maml_ros.maml, sys; print(maml_ros.maml.__file__)'],
        cwd=tmp_path, env=dict(env, PYTHONPATH=str(site)), capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().startswith(str(site))

    # With the ament index of the install space, share files resolve there.
    probe = subprocess.run(
        [sys.executable, '-c', 'from maml_ros.resources import share_file; '
         'print(share_file("config", "adapt.yaml"))'],
        cwd=tmp_path, env=dict(env, PYTHONPATH=str(site), AMENT_PREFIX_PATH=str(prefix)),
        capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == str(share / 'config' / 'adapt.yaml')
