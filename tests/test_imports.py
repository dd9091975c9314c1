"""The package has no import cycle. Static analysis of every ``import``/``from`` statement of every
module of aft_fast, at module level and inside functions alike (a deferred import that closes a
cycle is a cycle of dependencies all the same, only hidden), skipping ``if TYPE_CHECKING:``
blocks, which never run.

A module's edges: each aft_fast module it names (``from aft_fast.x import y`` names the module
``aft_fast.x.y`` when there is one, else the package ``aft_fast.x``), and the packages whose
``__init__`` importing that module runs first, except the importer's own enclosing packages (they
are already being imported when it runs: a package that re-exports its submodules is no cycle)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aft_fast"


def module_names(root: Path) -> dict[str, Path]:
    """{dotted name: file} for every module under package directory `root`: sources, and compiled
    extensions (``_C.cpython-311-x86_64-linux-gnu.so`` is module ``_C``: a leaf, nothing to
    parse)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".py", ".so", ".pyd"):
            continue
        parts = list(path.relative_to(root.parent).parts)
        parts[-1] = parts[-1].split(".")[0]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node that can run (not under `if TYPE_CHECKING:`)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _targets(node, importer: str, is_package: bool, modules) -> set[str]:
    """The modules an import statement names (those inside the analysed package)."""
    if isinstance(node, ast.Import):
        named = [alias.name for alias in node.names]
        return {n for n in named if n in modules}
    if node.level:  # relative: from the importer's package, `level` dots up
        base = importer.split(".")
        base = base[:len(base) - node.level + (1 if is_package else 0)]
        origin = ".".join(base + ([node.module] if node.module else []))
    else:
        origin = node.module or ""
    out = set()
    for alias in node.names:
        sub = f"{origin}.{alias.name}"
        if sub in modules:
            out.add(sub)
        elif origin in modules:
            out.add(origin)
    return out


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """{module: the modules importing it makes run first}, as described in the docstring."""
    graph = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        own = set(_ancestors(name)) | ({name} if is_package else set())
        edges = set()
        source = path.read_text() if path.suffix == ".py" else ""
        tree = ast.parse(source, str(path))
        for node in _imports(tree):
            for target in _targets(node, name, is_package, modules):
                edges.add(target)
                edges.update(p for p in _ancestors(target) if p in modules and p not in own)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_one_cycle(graph, set(c)) for c in comps]


def _one_cycle(graph, comp: set[str]) -> list[str]:
    """A readable cycle a → b → ... → a inside a strongly connected component."""
    start = min(comp)
    path, seen = [start], {start}
    while True:
        nxt = min(w for w in graph[path[-1]] if w in comp)
        if nxt in seen:
            return path[path.index(nxt):] + [nxt]
        path.append(nxt)
        seen.add(nxt)


def test_the_package_has_no_import_cycle():
    modules = module_names(PACKAGE)
    assert len(modules) > 30 and "aft_fast.train.loop" in modules  # the walk found the package
    cycles = find_cycles(import_graph(modules))
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


# ------------------------------------------------------------- the checker finds what it must
def _package(tmp_path, files: dict[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        path = tmp_path / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return module_names(tmp_path / "pkg")


@pytest.mark.parametrize("files, cycle", [
    ({"__init__.py": "", "a.py": "from pkg import b\n", "b.py": "import pkg.a\n"},
     ["pkg.a", "pkg.b", "pkg.a"]),
    ({"__init__.py": "from pkg import a\n", "a.py": "from pkg import _C, VERSION\n", "_C.so": ""},
     ["pkg", "pkg.a", "pkg"]),  # _C is a module (no edge to pkg), VERSION is not
    ({"__init__.py": "", "a.py": "def f():\n    from pkg.b import g\n",
      "b.py": "from .a import f\n"},
     ["pkg.a", "pkg.b", "pkg.a"]),
    # sub/x imports a name of pkg.y, whose package __init__ imports... the importer's package
    ({"__init__.py": "", "sub/__init__.py": "from pkg.sub.x import X\n",
      "sub/x.py": "from pkg.y import Y\nX = 1\n", "y.py": "from pkg.sub import X\nY = 2\n"},
     ["pkg.sub", "pkg.sub.x", "pkg.y", "pkg.sub"]),
])
def test_a_synthetic_cycle_is_found(tmp_path, files, cycle):
    assert find_cycles(import_graph(_package(tmp_path, files))) == [cycle]


@pytest.mark.parametrize("files", [
    # a package re-exporting its submodules, which import each other one way
    {"__init__.py": "from pkg.a import A\nfrom pkg.b import B\n", "a.py": "A = 1\n",
     "b.py": "from pkg.a import A\nB = A\n"},
    # an import only a type checker runs
    {"__init__.py": "", "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
     "    from pkg.b import B\n", "b.py": "import pkg.a\n"},
])
def test_what_is_no_cycle_is_not_reported(tmp_path, files):
    assert find_cycles(import_graph(_package(tmp_path, files))) == []
