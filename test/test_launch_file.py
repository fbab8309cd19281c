"""launch/adapt.launch.py names real executables, an existing parameter file and the node
sections of that file, and passes each node its parameters in the documented order
(launch_ros itself is not installable here: the file is read with ast, and the parameters
it passes come from :mod:`maml_ros.ros.launch_params`, tested directly)."""

import ast
from pathlib import Path

import pytest
import yaml

from maml_ros.ros.launch_params import (
    SIMULATORS,
    launched_nodes,
    log_level_arguments,
    node_parameters,
)

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / 'launch' / 'adapt.launch.py'
TREE = ast.parse(LAUNCH.read_text())


def call_of(function: str) -> ast.Call:
    """The one call of ``function`` in the launch file."""
    calls = [call for call in ast.walk(TREE) if isinstance(call, ast.Call)
             and getattr(call.func, 'id', '') == function]
    assert len(calls) == 1, ast.unparse(TREE)
    return calls[0]


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
    assert declared == {'use_sim', 'simulator', 'config', 'checkpoint', 'log_level'}
    assert any(isinstance(node, ast.FunctionDef) and node.name == 'generate_launch_description'
               for node in TREE.body)


def test_every_launched_executable_is_a_console_script_of_this_package():
    options = options_dict()
    assert options['package'].value == 'maml_ros'
    # A namespace makes launch_ros name the node in its overrides: a '/**' section would lose
    # to the parameter file's section of the node.
    assert options['namespace'].value == ''
    assert options['executable'].id == options['name'].id == 'name'  # executable = node name
    names = {name for simulator in SIMULATORS for name in launched_nodes(simulator=simulator)}
    assert names == {'pybullet_sim', 'mujoco_sim', 'meta_trainer', 'adapter'}
    assert names <= console_scripts()
    # One action per launched node; the adapter is the lifecycle node.
    comprehension = next(node for node in ast.walk(TREE) if isinstance(node, ast.ListComp))
    assert comprehension.generators[0].iter is call_of('launched_nodes')
    assert ast.unparse(comprehension.elt) == \
        "(LifecycleNode if name == 'adapter' else Node)(**options(name))"


def test_the_launch_arguments_choose_the_nodes():
    call = call_of('launched_nodes')
    assert {k.arg: ast.unparse(k.value) for k in call.keywords} == {
        'simulator': "value('simulator')", 'use_sim': 'use_sim'}
    condition = call_of('evaluate_condition_expression')  # launch's own true/false/1/0 rule
    assert ast.unparse(condition.args[1]) == "[LaunchConfiguration('use_sim')]"
    assert launched_nodes() == ['pybullet_sim', 'meta_trainer', 'adapter']
    assert launched_nodes(simulator='mujoco') == ['mujoco_sim', 'meta_trainer', 'adapter']
    assert launched_nodes(simulator='mujoco', use_sim=False) == ['meta_trainer', 'adapter']
    with pytest.raises(ValueError, match="unknown simulator 'gazebo'; choose from"):
        launched_nodes(simulator='gazebo')


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
    names = {name for simulator in SIMULATORS for name in launched_nodes(simulator=simulator)}
    assert sections - {'/**'} == names
    assert '/**' in sections
