"""The tree's shape: no import cycles between the project's modules, and no oversized module
that does not say why it is long.

Imports are read from the source (ast), including imports inside functions and under
TYPE_CHECKING: a lazy import still ties two modules together, so it counts. `from pkg import sub`
depends on the submodule `pkg.sub`, not on the package's __init__.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("trainer", "export", "decode", "shaders", "viewer", "bench")
MAX_LINES = 400
LONG_MODULE_NOTE = "Why this module is long:"


def project_modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                subs = [f"{module}.{alias.name}" for alias in node.names]
                named_subs = [s for s in subs if s in mods]
                deps.update(named_subs)
                if len(named_subs) < len(subs):
                    deps.add(module)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
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
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(import_graph(project_modules()))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_long_modules_say_why():
    unexplained = []
    for name, path in project_modules().items():
        text = path.read_text()
        lines = text.count("\n")
        if lines > MAX_LINES and LONG_MODULE_NOTE not in (ast.get_docstring(ast.parse(text)) or ""):
            unexplained.append(f"{name} ({lines} lines)")
    assert not unexplained, (f"modules over {MAX_LINES} lines whose docstring does not say "
                             f"'{LONG_MODULE_NOTE}': {', '.join(unexplained)}")


def test_every_error_class_derives_from_the_one_base():
    """Each class named *Error (or NativeUnavailable) in the project derives from NTCError, so the
    CLIs print one line for any of them and code branches on types, never on message text."""
    import importlib

    from export.errors import NTCError
    strays = []
    for name, path in project_modules().items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and (node.name.endswith("Error")
                                                   or node.name == "NativeUnavailable"):
                cls = getattr(importlib.import_module(name), node.name)
                if not issubclass(cls, NTCError):
                    strays.append(f"{name}.{node.name}")
    assert not strays, f"error classes outside the NTCError hierarchy: {strays}"


def test_no_code_branches_on_error_message_text():
    pattern = re.compile(r"""["'][^"']+["']\s+(not\s+)?in\s+str\((e|err|exc|error)\)""")
    found = [f"{name}: {m.group(0)}" for name, path in project_modules().items()
             for m in pattern.finditer(path.read_text())]
    # one exception, outside our control: torch reports a failed allocation as a RuntimeError
    found = [f for f in found if "allocate memory" not in f]
    assert not found, found


def test_readme_layout_names_every_module():
    """README's "How the code is laid out" names each module of the pipeline's stages, so the
    map stays true when a module is added or moved."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", section))
    missing = [name for name in project_modules()
               if name.split(".")[0] != "bench" and name.rsplit(".", 1)[-1] not in words]
    assert not missing, f"modules missing from README's layout section: {missing}"
