"""The import graph: no cycle between edgekit's subpackages, and the layer rules of DESIGN.md.

Every module is read with `ast` (nothing is imported): module-level and function-level
`import`/`from ... import` statements, and `importlib.import_module("edgekit....")` calls with a
literal name (relative names resolved against `__package__`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "edgekit"


def _module_name(path: Path) -> str:
    parts = ["edgekit", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(name: str, level: int, package: str) -> str:
    if level == 0:
        return name
    base = package.split(".")
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports_of(path: Path) -> set[str]:
    """Every edgekit module `path` imports, wherever the import statement stands."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", node.level, package)
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from . import x` names modules
        elif isinstance(node, ast.Call):
            f = node.func
            called = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            if called == "import_module" and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    name = arg.value
                    if name.startswith("."):
                        level = len(name) - len(name.lstrip("."))
                        name = _resolve(name.lstrip("."), level, package)
                    out.add(name)
    return {m for m in out if m == "edgekit" or m.startswith("edgekit.")}


def _unit(module: str) -> str:
    """The subpackage (or top-level module) a module belongs to: edgekit.bench.harness -> bench."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "edgekit"


def unit_graph() -> dict[str, dict[str, set[str]]]:
    """unit -> {imported unit: {"file -> module", ...}} over every edgekit module."""
    files = sorted(ROOT.rglob("*.py"))
    modules = {_module_name(p) for p in files}
    graph: dict[str, dict[str, set[str]]] = {}
    for p in files:
        src = _unit(_module_name(p))
        for m in imports_of(p):
            # `from .x import name` adds "pkg.x.name": keep only names that are modules
            while m not in modules and "." in m:
                m = m.rpartition(".")[0]
            dst = _unit(m)
            if dst != src and m != "edgekit":
                graph.setdefault(src, {}).setdefault(dst, set()).add(
                    f"{p.relative_to(ROOT.parent)} -> {m}"
                )
    return graph


def find_cycle(graph: dict[str, dict[str, set[str]]]) -> list[str] | None:
    """One cycle of units (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, {})):
            if state.get(v) == 1:
                return stack[stack.index(v) :] + [v]
            if v not in state and (found := visit(v)):
                return found
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state and (found := visit(u)):
            return found
    return None


def test_reader_sees_function_level_and_import_module_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "edgekit" / "bench"
    pkg.mkdir(parents=True)
    src = pkg / "x.py"
    src.write_text(
        "import importlib\n"
        "def f():\n"
        "    from ..devices import base\n"
        "    importlib.import_module('edgekit.remote.executor')\n"
        "    importlib.import_module('.tiling', __package__)\n"
    )
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path / "edgekit")
    got = imports_of(src)
    assert {"edgekit.devices", "edgekit.devices.base", "edgekit.remote.executor"} <= got
    assert "edgekit.bench.tiling" in got


def test_cycle_finder_finds_a_cycle():
    g = {"bench": {"devices": {"a"}}, "devices": {"bench": {"b"}}, "cli": {"bench": {"c"}}}
    assert find_cycle(g) in (["bench", "devices", "bench"], ["devices", "bench", "devices"])
    assert find_cycle({"bench": {"devices": {"a"}}}) is None


def test_no_cycle_between_subpackages():
    graph = unit_graph()
    cycle = find_cycle(graph)
    if cycle:
        why = [
            f"{a} -> {b}: " + "; ".join(sorted(graph[a][b]))
            for a, b in zip(cycle, cycle[1:], strict=False)
        ]
        pytest.fail("import cycle " + " -> ".join(cycle) + "\n" + "\n".join(why))


@pytest.mark.parametrize(
    ("unit", "forbidden"),
    [
        ("runtimes", None),  # ships to devices: numpy + one runtime, nothing else of edgekit
        ("devices", {"bench", "export", "compress", "pipeline", "cli", "api", "models"}),
        ("models", {"bench", "export", "compress", "devices", "pipeline", "cli", "api"}),
        ("metrics", None),
    ],
)
def test_layer_rules(unit, forbidden):
    deps = unit_graph().get(unit, {})
    bad = set(deps) if forbidden is None else set(deps) & forbidden
    assert not bad, {d: sorted(deps[d]) for d in bad}


def test_every_module_starts_with_one_line_saying_what_it_is_for():
    bad = []
    for p in sorted(ROOT.rglob("*.py")):
        doc = ast.get_docstring(ast.parse(p.read_text()))
        lines = (doc or "").splitlines()
        if not doc or (len(lines) > 1 and lines[1].strip()):
            bad.append(str(p.relative_to(ROOT.parent)))
    assert not bad, f"no one-line docstring (first line, then a blank line): {bad}"
