"""launch/adapt.launch.py names real executables, an existing parameter file and the node
sections of that file, and passes each node its parameters in the documented order
(launch_ros itself is not installable here: the file is read with ast, and the parameters
it passes come from :mod:`maml_ros.ros.launch_params`, tested directly)."""

import ast
from pathlib import Path

import yaml

from maml_ros.ros.launch_params import log_level_arguments, node_parameters

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / 'launch' / 'adapt.launch.py'
TREE = ast.parse(LAUNCH.read_text())


def launched_nodes() -> list[dict]:
    """``{'name', 'kind'}`` of every Node/LifecycleNode(**options('<name>'), ...) call."""
    nodes = []
    for call in ast.walk(TREE):
        if isinstance(call, ast.Call) and getattr(call.func, 'id', '') in ('Node',
                                                                          'LifecycleNode'):
            options = next(k.value for k in call.keywords if k.arg is None)
            nodes.append({'name': options.args[0].value, 'kind': call.func.id})
    return nodes


def options_dict() -> dict[str, ast.expr]:
    """The keyword arguments every node gets (the dict ``options(name)`` returns)."""
    function = next(node for node in ast.walk(TREE)
                    if isinstance(node, ast.FunctionDef) and node.name == 'options')
    returned = next(node.value for node in ast.walk(function) if isinstance(node, ast.Return))
    return {key.value: value for key, value in zip(returned.keys, returned.values, strict=True)}


def console_scripts() -> set[str]:
    tree = ast.parse((REPO / 'setup.py').read_text())
    entry_points = next(node.value for node in ast.walk(tree)
                        if isinstance(node, ast.keyword) and node.arg == 'entry_points')
    return {s.split('=')[0].strip() for s in ast.literal_eval(entry_points)['console_scripts']}


def test_launch_file_compiles_and_declares_its_arguments():
    compile(TREE, str(LAUNCH), 'exec')
    declared = {call.args[0].value for call in ast.walk(TREE) if isinstance(call, ast.Call)
                and getattr(call.func, 'id', '') == 'DeclareLaunchArgument'}
    assert declared == {'use_sim', 'config', 'checkpoint', 'log_level'}
    assert any(isinstance(node, ast.FunctionDef) and node.name == 'generate_launch_description'
               for node in TREE.body)


def test_every_launched_executable_is_a_console_script_of_this_package():
    nodes = launched_nodes()
    options = options_dict()
    assert options['package'].value == 'maml_ros'
    # A namespace makes launch_ros name the node in its overrides: a '/**' section would lose
    # to the parameter file's section of the node.
    assert options['namespace'].value == ''
    assert options['executable'].id == options['name'].id == 'name'  # executable = node name
    assert {n['name'] for n in nodes} == {'pybullet_sim', 'meta_trainer', 'adapter'}
    assert {n['name'] for n in nodes} <= console_scripts()
    assert next(n for n in nodes if n['name'] == 'adapter')['kind'] == 'LifecycleNode'


def test_the_simulator_starts_only_with_use_sim():
    sim = next(call for call in ast.walk(TREE) if isinstance(call, ast.Call)
               and getattr(call.func, 'id', '') == 'Node'
               and next(k.value for k in call.keywords if k.arg is None).args[0].value
               == 'pybullet_sim')
    condition = next(k.value for k in sim.keywords if k.arg == 'condition')
    assert condition.func.id == 'IfCondition'
    assert ast.unparse(condition.args[0]) == "value('use_sim')"
    others = [call for call in ast.walk(TREE) if isinstance(call, ast.Call)
              and getattr(call.func, 'id', '') in ('Node', 'LifecycleNode') and call is not sim]
    assert len(others) == 2 and not any(k.arg == 'condition' for c in others for k in c.keywords)


def test_every_node_gets_its_parameters_and_log_level_from_launch_params():
    options = options_dict()
    parameters, ros_arguments = options['parameters'], options['ros_arguments']
    assert parameters.func.id == 'node_parameters'
    assert {k.arg: k.value.id for k in parameters.keywords} == {'config': 'config',
                                                                 'checkpoint': 'checkpoint'}
    assert ros_arguments.func.id == 'log_level_arguments'


def test_an_explicit_checkpoint_comes_after_the_file_and_an_empty_one_is_not_passed():
    # Empty: the file's checkpoint (or the shipped default) stands.
    assert node_parameters('adapter', config='c.yaml') == ['c.yaml']
    assert node_parameters('pybullet_sim', config='c.yaml', checkpoint='x') == ['c.yaml']
    # Given: it overrides the file, for the adapter and meta_trainer alike.
    assert node_parameters('adapter', config='c.yaml', checkpoint='x') == [
        'c.yaml', {'checkpoint': 'x'}]
    # meta_trainer trains with the settings of the file it was launched with.
    assert node_parameters('meta_trainer', config='c.yaml', checkpoint='x') == [
        'c.yaml', {'config': 'c.yaml', 'checkpoint': 'x'}]
    assert node_parameters('meta_trainer', config='c.yaml') == ['c.yaml', {'config': 'c.yaml'}]


def test_log_level_is_set_for_the_node_logger_only():
    assert log_level_arguments('adapter', 'debug') == ['--log-level', 'adapter:=debug']


def test_parameter_file_exists_and_its_node_sections_match_node_names():
    source = LAUNCH.read_text()
    assert "'config', 'adapt.yaml'" in source
    sections = set(yaml.safe_load((REPO / 'config' / 'adapt.yaml').read_text()))
    names = {n['name'] for n in launched_nodes()}
    assert sections - {'/**'} == names
    assert '/**' in sections
