"""The README's examples run as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_marked_doctest_run():
    blocks = re.findall(r"<!-- doctest -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "no <!-- doctest --> python block in README.md"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_ci_runs_the_readme_test_command():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "ci:test-command" in ci
    block = re.search(r"<!-- ci:test-command -->\s*```bash\n(.*?)```", README.read_text(), re.S)
    assert block and "pytest" in block.group(1)
