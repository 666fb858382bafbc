"""The packages of lucid import each other along the layers of docs/design.md ("Layers"):
no import circle between packages, and no new one between modules.

The graph is read from the source: every ``import`` / ``from ... import`` of a lucid
module, also those inside functions, so a circle hidden in a lazy import counts too.
The core — Tensor, autograd, the ops and the random generator — is one layer whose
parts call each other by design (``x + y`` runs an op, an op returns a Tensor)."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Module circles that are known and owned by another change (issue 11: the distributed
# communicator, its failure handling and watchdog); anything else fails.
KNOWN_MODULE_CIRCLES = {frozenset({"lucid.distributed.comm", "lucid.distributed.failure", "lucid.distributed.watchdog"})}
CORE = {"lucid.tensor", "lucid.autograd", "lucid.ops", "lucid.random"}


def module_name(path: str) -> str:
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def lucid_modules() -> dict[str, str]:
    found = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "lucid")):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                found[module_name(path)] = path
    return found


def imports_of(path: str, name: str, modules: dict) -> set[str]:
    """The lucid modules ``name`` imports (``from pkg import sub`` resolves to pkg.sub)."""
    tree = ast.parse(open(path).read())
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("lucid")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if not base.startswith("lucid"):
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in modules else base)
    return {m for m in out if m in modules and m != name}


def package_of(module: str) -> str:
    """lucid.ops.conv -> lucid.ops; top-level modules (lucid.dtypes) are their own package;
    the parts of the core are one."""
    package = ".".join(module.split(".")[:2])
    return "lucid core" if package in CORE else package


def graph():
    """Module -> lucid modules it imports. The ``lucid`` front door (lucid/__init__.py, which
    re-exports every layer) is left out: a module's ``import lucid`` inside a function would
    otherwise close a circle through it with every layer."""
    modules = lucid_modules()
    return {name: imports_of(path, name, modules) - {"lucid"} for name, path in modules.items() if name != "lucid"}


def circles(edges: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def package_edges(mods: dict[str, set[str]]) -> dict[str, set[str]]:
    """Package -> packages its modules import (without the ``lucid`` front door, see graph)."""
    edges: dict[str, set[str]] = {}
    for m, deps in mods.items():
        if m == "lucid":
            continue
        src = package_of(m)
        edges.setdefault(src, set()).update(package_of(d) for d in deps if d != "lucid" and package_of(d) != src)
    return edges


def test_no_circle_between_packages():
    found = circles(package_edges(graph()))
    assert not found, f"import circles between lucid packages: {[sorted(c) for c in found]}"


def test_no_new_circle_between_modules():
    found = [
        c for c in circles(graph())
        if frozenset(c) not in KNOWN_MODULE_CIRCLES and {package_of(m) for m in c} != {"lucid core"}
    ]
    assert not found, f"import circles between lucid modules: {[sorted(c) for c in found]}"


def test_the_checker_finds_a_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(edges) == [{"a", "b", "c"}]
    assert package_edges({"lucid.data.x": {"lucid.nn.y"}, "lucid.nn.y": {"lucid.data.z", "lucid"}, "lucid": {"lucid.nn.y"}}) == {
        "lucid.data": {"lucid.nn"}, "lucid.nn": {"lucid.data"}}
    assert circles(package_edges({"lucid.data.x": {"lucid.nn.y"}, "lucid.nn.y": {"lucid.data.z"}})) == [{"lucid.data", "lucid.nn"}]
