"""The package's import layers, read from the source with ``ast`` (docs/architecture.md, "Layers").

Every ``import`` in ``opentad/`` counts, at module level or inside a function (a deferred import still ties
the two modules together), except those under ``if TYPE_CHECKING:``. A module may import its own layer and
the layers below; imports between modules must form no circle.
"""
import ast
import pathlib
from typing import Dict, List, Set

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "opentad"

#: bottom to top, as docs/architecture.md draws them; tools/ and benchmarks/ sit above all
LAYERS: List[Set[str]] = [
    {"opentad.registry", "opentad.ops", "opentad.utils", "opentad.transforms"},
    {"opentad.datasets", "opentad.evaluations"},
    {"opentad.models"},
    {"opentad.cores"},
    {"opentad.apis"},
]
#: pairs of the same layer that must not meet either
APART = [("opentad.datasets", "opentad.evaluations")]


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: pathlib.Path, modules: Set[str]) -> Set[str]:
    """The ``opentad`` modules ``path`` imports.

    ``from package import sub`` counts as an import of the sub-module only (as ``import package.sub``; a
    package's ``__init__`` runs for any of its modules); a name that is not a module counts as its module.
    """
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: Set[str] = set()
    skip: Set[int] = set()
    tree = ast.parse(path.read_text(encoding="utf8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            subs = {f"{base}.{alias.name}" for alias in node.names} & modules
            found.update(subs if len(subs) == len(node.names) else subs | {base})
    return {m for m in found if m in modules and m != name}


def _graph() -> Dict[str, Set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(f) for f in files}
    return {_module_name(f): _imports(f, modules) for f in files}


def _layer(module: str) -> int:
    for index, tops in enumerate(LAYERS):
        if any(module == top or module.startswith(top + ".") for top in tops):
            return index
    return -1  # ``opentad`` itself


def _top(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_every_module_has_a_layer():
    assert [m for m in _graph() if m != "opentad" and _layer(m) < 0] == []


def test_nothing_imports_a_higher_layer():
    upward = [
        f"{a} -> {b}"
        for a, targets in _graph().items()
        for b in sorted(targets)
        if _layer(a) >= 0 and _layer(b) > _layer(a)
    ]
    assert upward == []


def test_apart_packages_do_not_meet():
    crossing = [
        f"{a} -> {b}"
        for a, targets in _graph().items()
        for b in sorted(targets)
        for x, y in APART
        if {_top(a), _top(b)} == {x, y}
    ]
    assert crossing == []


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_circle():
    assert _cycles(_graph()) == []


def test_the_checks_see_what_they_should():
    """Hand-made graphs: the cycle finder and the layer rule catch what they must."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    assert _layer("opentad.utils.config") == 0 and _layer("opentad.cores.runner") == 3
    graph = _graph()
    assert "opentad.registry" in graph["opentad.models.backbones.vit"]  # imports are read at all

