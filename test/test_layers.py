"""The house by role: each folder of the package imports only the folders below it, and no
module imports itself back through others (the layering of ``maml_ros/__init__.py``)."""

import ast
from pathlib import Path

import maml_ros

PACKAGE = Path(maml_ros.__file__).parent
#: Bottom to top. The package's own top-level modules (resources, stop_signals) are below all.
LAYERS = ['maml', 'sim', 'model', 'online', 'evaluation', 'training', 'ros', 'nodes', 'cli']
CORE = ['maml', 'sim', 'model', 'online', 'evaluation', 'training']  # no rclpy


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function (lazy imports count)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f'{node.module}.{alias.name}' for alias in node.names}
    return names


def graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    modules = {module_name(path): path for path in PACKAGE.rglob('*.py')}
    return {name: {imported for imported in imports_of(path)
                   if imported in modules and imported != name}
            for name, path in modules.items()}


def layer(module: str) -> int:
    parts = module.split('.')
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else -1


def test_every_folder_is_a_layer():
    folders = {path.parent.name for path in PACKAGE.glob('*/__init__.py')}
    assert folders == set(LAYERS)


def test_modules_import_only_from_their_own_folder_or_below():
    upward = sorted(f'{module} imports {imported}' for module, imported_modules in graph().items()
                    for imported in imported_modules if layer(imported) > layer(module))
    assert upward == []


def test_no_module_imports_itself_back_through_others():
    edges = graph()
    cycles = []

    def visit(module, path):
        for imported in sorted(edges[module]):
            if imported in path:
                cycles.append(' -> '.join(path[path.index(imported):] + [imported]))
            elif imported not in done:
                visit(imported, path + [imported])
        done.add(module)

    done: set[str] = set()
    for module in sorted(edges):
        if module not in done:
            visit(module, [module])
    assert cycles == []


def test_the_core_never_imports_ros():
    ros_users = sorted(str(path.relative_to(PACKAGE)) for folder in CORE
                       for path in (PACKAGE / folder).rglob('*.py')
                       if any(name.split('.')[0] in {'rclpy', 'rosbags', 'mcap'}
                              or name.startswith('maml_ros.ros') for name in imports_of(path)))
    assert ros_users == []
