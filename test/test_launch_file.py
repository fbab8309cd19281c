"""launch/adapt.launch.py names real executables, an existing parameter file, and the
node sections of that file (launch_ros itself is not installable here, so it is read
with ast)."""

import ast
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / 'launch' / 'adapt.launch.py'


def launched_nodes() -> list[dict]:
    """Keyword arguments (literals only) of every Node/LifecycleNode in the launch file."""
    nodes = []
    for call in ast.walk(ast.parse(LAUNCH.read_text())):
        if isinstance(call, ast.Call) and getattr(call.func, 'id', '') in ('Node',
                                                                          'LifecycleNode'):
            nodes.append({k.arg: k.value.value for k in call.keywords
                          if isinstance(k.value, ast.Constant)} | {'kind': call.func.id})
    return nodes


def console_scripts() -> set[str]:
    tree = ast.parse((REPO / 'setup.py').read_text())
    entry_points = next(node.value for node in ast.walk(tree)
                        if isinstance(node, ast.keyword) and node.arg == 'entry_points')
    return {s.split('=')[0].strip() for s in ast.literal_eval(entry_points)['console_scripts']}


def test_launch_file_compiles_and_declares_its_arguments():
    tree = ast.parse(LAUNCH.read_text())
    compile(tree, str(LAUNCH), 'exec')
    declared = {call.args[0].value for call in ast.walk(tree) if isinstance(call, ast.Call)
                and getattr(call.func, 'id', '') == 'DeclareLaunchArgument'}
    assert declared == {'use_sim', 'config', 'checkpoint', 'log_level'}
    assert any(isinstance(node, ast.FunctionDef) and node.name == 'generate_launch_description'
               for node in tree.body)


def test_every_launched_executable_is_a_console_script_of_this_package():
    nodes = launched_nodes()
    assert {n['executable'] for n in nodes} == {'pybullet_sim', 'meta_trainer', 'adapter'}
    assert all(n['package'] == 'maml_ros' for n in nodes)
    assert {n['executable'] for n in nodes} <= console_scripts()
    assert next(n for n in nodes if n['executable'] == 'adapter')['kind'] == 'LifecycleNode'


def test_parameter_file_exists_and_its_node_sections_match_node_names():
    source = LAUNCH.read_text()
    assert "'config', 'adapt.yaml'" in source
    sections = set(yaml.safe_load((REPO / 'config' / 'adapt.yaml').read_text()))
    names = {n['name'] for n in launched_nodes()}
    assert sections - {'/**'} == names
    assert '/**' in sections
