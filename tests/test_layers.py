"""The layering: advisor/ is torch-free and never imports calibration/ (the CLI commands that
dispatch to it excepted, and those only lazily), and no two modules of the project import
each other, directly or around a loop.

Function-level (lazy) imports count as edges: a lazy import still makes one module depend on
another, and a loop of them is how the layers got tangled before (calibration.train.single and
calibration.train.stacked importing each other). The root package's own lazy ``recommend`` is an
edge like any other.
"""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("advisor", "calibration")
# CLI command modules that dispatch to calibration/ (inside their command functions)
DISPATCHERS = ("advisor.cli.commands.calibrate", "advisor.cli.commands.check_spectral",
               "advisor.cli.commands.results", "advisor.cli.commands.validate",
               "advisor.cli.commands.prepare_data")


def _modules() -> dict:
    """{dotted module name: path} of every .py file under advisor/ and calibration/."""
    out = {}
    for pkg in PACKAGES:
        for p in sorted((REPO / pkg).rglob("*.py")):
            parts = list(p.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = p
    return out


def _imports(name: str, path: Path, modules: dict) -> dict:
    """{project module imported: 'module' | 'function'} for one file, from its AST."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    top_level = {id(n) for n in tree.body}
    for n in tree.body:       # `if TYPE_CHECKING:` / try blocks at module level
        top_level.update(id(c) for c in ast.walk(n) if not isinstance(
            n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))

    def resolve(dotted):
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    out = {}
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [resolve(a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [resolve(f"{mod}.{a.name}") if f"{mod}.{a.name}" in modules
                       else resolve(mod) for a in node.names]
        for t in targets:
            if t and t != name:
                level = "module" if id(node) in top_level else "function"
                if out.get(t) != "module":
                    out[t] = level
    return out


def _graph() -> dict:
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def _cycles(graph: dict) -> list:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, comps = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def test_the_checker_finds_a_cycle_and_the_project_has_none():
    assert _cycles({"a": {"b": "function"}, "b": {"c": "module"}, "c": {"a": "module"},
                    "d": {"a": "module"}}) == [["a", "b", "c"]]
    graph = _graph()
    assert len(graph) > 60 and "calibration.train.single" in graph["calibration.train.group"]
    assert _cycles(graph) == []


def test_advisor_imports_calibration_only_in_cli_dispatchers_and_lazily():
    graph = _graph()
    bad = {m: sorted(t for t in deps if t.startswith("calibration"))
           for m, deps in graph.items() if m.startswith("advisor")
           and m not in DISPATCHERS and any(t.startswith("calibration") for t in deps)}
    assert bad == {}
    for m in DISPATCHERS:
        eager = [t for t, level in graph[m].items()
                 if t.startswith("calibration") and level == "module"]
        assert eager == [], f"{m} imports {eager} at module level"
    assert "calibration.train.single" not in graph["calibration.train.stacked"]
    assert "calibration.train.stacked" not in graph["calibration.train.single"]


_BLOCKED = r"""
import importlib, json, pkgutil, sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
        return None

sys.meta_path.insert(0, NoTorch())
import advisor
names = sorted(m.name for m in pkgutil.walk_packages(advisor.__path__, "advisor."))
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names,
                  "torch": sorted(m for m in sys.modules if m.split(".")[0] == "torch"),
                  "calibration": sorted(m for m in sys.modules
                                        if m.split(".")[0] == "calibration")}))
"""


def test_every_advisor_module_imports_without_torch_and_without_calibration():
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, "-c", _BLOCKED], capture_output=True, text=True,
                       cwd=REPO, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    expected = {m for m in _modules() if m.startswith("advisor.")}
    assert set(got["imported"]) == expected
    assert got["torch"] == [] and got["calibration"] == []


# The stages of each package, lowest first: a module may import its own stage and the stages
# before it, never one after it (the root package ``advisor``, the public facade, may import any).
ADVISOR_STAGES = ("advisor.errors", "advisor.version", "advisor.common", "advisor.rules",
                  "advisor.specs", "advisor.laws", "advisor.runs", "advisor.fit",
                  "advisor.schedule", "advisor.recommendation", "advisor.export", "advisor.cli")
CALIBRATION_STAGES = ("calibration.model", "calibration.train", "calibration.sweep",
                      "calibration.spectral", "calibration.analyze")
def _stage(module: str, stages: tuple):
    for i, s in enumerate(stages):
        if module == s or module.startswith(s + "."):
            return i
    return None


def test_every_module_sits_in_a_stage_folder():
    """advisor/ has at most five top-level modules; everything else lives in a stage folder."""
    top = sorted(p.name for p in (REPO / "advisor").glob("*.py"))
    assert len(top) <= 5, top
    for m in _modules():
        if m in ("advisor", "calibration"):
            continue
        stages = ADVISOR_STAGES if m.startswith("advisor.") else CALIBRATION_STAGES
        assert _stage(m, stages) is not None, f"{m} is in no stage folder"


def test_stages_import_only_downward():
    graph = _graph()
    upward = []
    for m, targets in graph.items():
        if m in ("advisor", "calibration"):
            continue
        stages = ADVISOR_STAGES if m.startswith("advisor.") else CALIBRATION_STAGES
        for t in targets:
            if t.split(".")[0] != m.split(".")[0]:
                continue        # advisor -> calibration is checked above (CLI dispatchers only)
            if t in ("advisor", "calibration"):
                continue
            if _stage(t, stages) > _stage(m, stages):
                upward.append((m, t))
    assert upward == [], upward
