"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / 'README.md'


def test_readme_python_example_runs():
    blocks = re.findall(r'```python\n(.*?)```', README.read_text(), flags=re.DOTALL)
    assert blocks, 'README has no python example'
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, str(README), 'exec'), namespace)  # noqa: S102
        assert namespace['prediction'].shape == (20, 1)
        assert len(namespace['maml'].inner_lrs) == 4
