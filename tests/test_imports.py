"""The package's imports form no circle: every `import` and `from ... import` of postdeploy's
modules (those inside functions too, which run later but still tie the modules together), read
with ast from the installed package's source."""

from __future__ import annotations

import ast
from pathlib import Path

import postdeploy

PACKAGE = Path(postdeploy.__file__).resolve().parent  # fixtures/ (verifications/ is postdeploy.verifications)
ROOTS = {"postdeploy": PACKAGE, "postdeploy.verifications": PACKAGE.parent / "verifications"}


def modules() -> dict[str, Path]:
    found = {}
    for prefix, folder in ROOTS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([prefix, *parts])] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules this one imports (a `from a.b import c` of a module c counts as a.b.c)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names}
    return {m for m in found if m in known and m != name}


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle, as the modules along it; [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return []


def test_the_package_has_no_import_circle():
    known = modules()
    graph = {name: imports(name, path, set(known)) for name, path in known.items()}
    assert sum(len(v) for v in graph.values()) > 100  # the walk did read the package's imports
    found = cycle(graph)
    assert not found, "import circle: " + " -> ".join(found)


def test_the_walk_finds_a_circle_when_there_is_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycle(graph) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) == []


CORE = ("postdeploy.signoff", "postdeploy.database")  # what every room may import
TOP = ("postdeploy.plugin", "postdeploy.glue")  # the pytest glue, above the rooms it ties


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_the_core_imports_no_room_and_no_room_imports_the_glue():
    known = modules()
    graph = {name: imports(name, path, set(known)) for name, path in known.items()}
    assert {"postdeploy.signoff.stash", "postdeploy.glue", "postdeploy.migration.plugin"} <= graph.keys()
    upward = sorted(f"{name} -> {dep}" for name, deps in graph.items() if _within(name, CORE)
                    for dep in deps if not _within(dep, CORE))
    assert not upward, "the core imports a room: " + ", ".join(upward)
    into_glue = sorted(f"{name} -> {dep}" for name, deps in graph.items() if not _within(name, TOP)
                       for dep in deps if _within(dep, TOP))
    assert not into_glue, "a room imports the glue: " + ", ".join(into_glue)
