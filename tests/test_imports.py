"""No import cycle inside ``jaxrl``, read from the source with ``ast`` (nothing is imported).

Every import counts, at module level or inside a function: ``import a.b``, ``from a.b import c``
(``a.b.c`` where that is a module, else ``a.b``) and relative ``from . import c``. Python's
implicit import of a module's parent packages is not an edge: a package whose ``__init__``
imports its own submodules is no cycle by itself, while a submodule that imports names from its
parent's ``__init__`` closes one when that ``__init__`` leads back to it. Imports under
``if TYPE_CHECKING:`` never run and are skipped.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jaxrl

ROOT = Path(jaxrl.__file__).parent


def module_files(root: Path, package: str) -> dict[str, Path]:
    """``{dotted name: file}`` of every module under ``root``; a package is its ``__init__``."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join((package, *parts))] = path
    return modules


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Ids of the nodes under ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for statement in node.body for child in ast.walk(statement))
    return skipped


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that module ``name`` (file ``path``) imports anywhere."""
    tree = ast.parse(path.read_text(), str(path))
    skipped = _type_checking_only(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in modules else base)
    return {target for target in targets if target in modules and target != name}


def import_graph(root: Path = ROOT, package: str = "jaxrl") -> dict[str, set[str]]:
    """``{module: modules it imports}`` over the package's own modules."""
    modules = module_files(root, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle ``[a, b, …, a]`` per strongly connected component with more than one module
    (Tarjan's algorithm, then a shortest path back to its first module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_cycle_through(graph, set(component), component[0]) for component in components]


def _cycle_through(graph: dict[str, set[str]], members: set[str], start: str) -> list[str]:
    """A shortest path ``start → … → start`` inside ``members`` (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(graph[node] & members):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if succ not in previous:
                    previous[succ] = node
                    following.append(succ)
        frontier = following
    raise AssertionError(f"{start} is on no cycle")


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for succ in graph[todo.pop()] - seen:
            seen.add(succ)
            todo.append(succ)
    return seen


def test_jaxrl_has_no_import_cycle():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_dataset_format_imports_nothing_above_the_envs():
    graph = import_graph()
    assert "jaxrl.datasets.generation" not in graph["jaxrl.datasets"]
    allowed = {"jaxrl.envs", "jaxrl.datasets.format"} | reachable(graph, "jaxrl.envs")
    assert reachable(graph, "jaxrl.datasets") <= allowed, reachable(graph, "jaxrl.datasets")
    assert {"jaxrl.agents", "jaxrl.runner", "jaxrl.policy"} <= reachable(
        graph, "jaxrl.datasets.generation")


def test_no_algorithm_imports_another():
    graph = import_graph()
    algorithms = {name for name in graph if name.startswith("jaxrl.agents.")}
    shared = {name: sorted(graph[name] & algorithms) for name in sorted(algorithms)}
    assert not any(shared.values()), {name: used for name, used in shared.items() if used}


# ---------------------------------------------------------------------------------------------
# The checker itself, on packages written for the test


def write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, source in files.items():
        path = root / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root / "pkg"


def test_a_function_level_relative_import_closes_a_cycle(tmp_path):
    root = write_package(tmp_path, {
        "__init__.py": "from pkg import a\n",
        "a.py": "from . import b\n",
        "b.py": "def f():\n    from pkg.a import x\n    return x\n",
    })
    graph = import_graph(root, "pkg")
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_a_package_importing_its_submodules_is_no_cycle(tmp_path):
    root = write_package(tmp_path, {
        "__init__.py": "from pkg.a import x\nimport pkg.sub.c as c\n",
        "a.py": "from pkg.b import y\nfrom pkg import sub\nx = y\n",
        "b.py": "from .sub import c\ny = 1\n",
        "sub/__init__.py": "",
        "sub/c.py": "from .. import b\nfrom typing import TYPE_CHECKING\n"
                    "if TYPE_CHECKING:\n    from pkg import a\n",
    })
    graph = import_graph(root, "pkg")
    assert graph == {"pkg": {"pkg.a", "pkg.sub.c"}, "pkg.a": {"pkg.b", "pkg.sub"},
                     "pkg.b": {"pkg.sub.c"}, "pkg.sub": set(), "pkg.sub.c": {"pkg.b"}}
    assert find_cycles(graph) == [["pkg.b", "pkg.sub.c", "pkg.b"]]  # b ↔ sub.c only


def test_importing_from_the_parent_init_counts_when_it_leads_back(tmp_path):
    root = write_package(tmp_path, {
        "__init__.py": "from pkg.a import x\nhelper = 1\n",
        "a.py": "from pkg import helper\nx = helper\n",
        "b.py": "from pkg import helper\n",
    })
    assert find_cycles(import_graph(root, "pkg")) == [["pkg", "pkg.a", "pkg"]]
