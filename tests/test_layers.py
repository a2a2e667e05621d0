"""The package's folders are its layers (docs/architecture.md): imports run downward only, the core
stays pure, and no import circle forms anywhere in migrator/.

The graph is read from the source with `ast` (imports inside functions and TYPE_CHECKING blocks
count too); the same checks run over small synthetic graphs to prove each one catches its case.
"""

from __future__ import annotations

import ast
from collections.abc import Container
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "migrator"

# The floors, lowest first. A module may import its own layer or any lower floor, never one
# beside or above it. "" is the package root (`migrator/__init__.py`: the version, the errors).
LEVELS = {
    "core": 0,
    "": 1,
    "render": 1,  # pure presentation of core models (terminal text, one HTML page)
    "zuora": 2,
    "store": 2,
    "fake": 2,
    "run": 3,
    "commands": 4,
    "cli": 5,
    "demo": 6,  # starts a fake and runs the CLI against it
    "__main__": 6,  # `python -m migrator`: runs the CLI
}
# What the pure core never imports: the event loop, the network, the database.
NOT_IN_CORE = ("aiohttp", "anyio", "asyncio", "sqlite3")
MAX_LINES = 800  # the house rule says about 700; this is where "about" ends

Graph = dict[str, set[str]]


def module_names(package: Path) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    out: dict[str, Path] = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports_of(name: str, path: Path, modules: Container[str] = ()) -> set[str]:
    """The dotted names a module imports: `from a.b import c` gives `a.b.c` when that is one of
    `modules`, else `a.b`; relative imports are made absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in modules else base)
    return found


def package_graph(package: Path) -> Graph:
    """Module → what it imports: modules of the package by their own name, others as written."""
    mods = module_names(package)
    graph: Graph = {}
    for name, path in mods.items():
        deps: set[str] = set()
        for target in imports_of(name, path, mods):
            if target.split(".")[0] != package.name:
                deps.add(target)
                continue
            while target not in mods and "." in target:
                target = target.rpartition(".")[0]
            if target in mods and target != name:
                deps.add(target)
        if path.name == "__init__.py":  # a package re-exporting its children is no circle
            deps = {d for d in deps if not d.startswith(name + ".")}
        graph[name] = deps
    return graph


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def circles(graph: Graph) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), among the package's own."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue  # outside the package
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layer_problems(graph: Graph) -> list[str]:
    """Every broken rule of the graph, one line each (empty when the layers hold)."""
    problems = [f"import circle: {' <-> '.join(c)}" for c in circles(graph)]
    for module, deps in sorted(graph.items()):
        layer = layer_of(module)
        if layer not in LEVELS:
            problems.append(f"{module}: layer {layer!r} is not in LEVELS (nor, then, in the docs)")
            continue
        for dep in sorted(deps):
            if dep not in graph:
                if layer == "core" and dep.split(".")[0] in NOT_IN_CORE:
                    problems.append(f"{module} is in the pure core but imports {dep}")
                continue
            other = layer_of(dep)
            if other != layer and LEVELS.get(other, 99) >= LEVELS[layer]:
                problems.append(f"{module} imports {dep}, a layer beside or above it")
    return problems


def test_the_package_keeps_its_layers() -> None:
    """migrator/ has no import circle, a core free of I/O imports, and only downward imports."""
    graph = package_graph(PACKAGE)
    assert {layer_of(m) for m in graph} >= {"core", "zuora", "store", "run", "commands", "cli"}
    assert layer_problems(graph) == []


def test_no_module_is_over_the_size_limit() -> None:
    """Every module of migrator/ can be read in one sitting (at most MAX_LINES lines)."""
    sizes = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in module_names(PACKAGE).items()
    }
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        pytest.param(
            {"migrator.run.a": {"migrator.run.b"}, "migrator.run.b": {"migrator.run.a"}},
            "import circle: migrator.run.a <-> migrator.run.b",
            id="circle-in-a-layer",
        ),
        pytest.param(
            {
                "migrator.run.a": {"migrator.run.b"},
                "migrator.run.b": {"migrator.run.c"},
                "migrator.run.c": {"migrator.run.a"},
            },
            "import circle: migrator.run.a <-> migrator.run.b <-> migrator.run.c",
            id="circle-of-three",
        ),
        *(
            pytest.param(
                {"migrator.core.plan": {f"{lib}.sub", "re"}},
                f"migrator.core.plan is in the pure core but imports {lib}.sub",
                id=f"core-imports-{lib}",
            )
            for lib in NOT_IN_CORE
        ),
        *(
            pytest.param(
                {"migrator.core.plan": {f"migrator.{layer}.x"}, f"migrator.{layer}.x": set()},
                f"migrator.core.plan imports migrator.{layer}.x, a layer beside or above it",
                id=f"core-imports-{layer}",
            )
            for layer in ("zuora", "store", "run", "commands", "fake")
        ),
        pytest.param(
            {"migrator.core.plan": {"migrator.cli"}, "migrator.cli": set()},
            "migrator.core.plan imports migrator.cli, a layer beside or above it",
            id="core-imports-cli",
        ),
        pytest.param(
            {"migrator.core.plan": {"migrator"}, "migrator": set()},
            "migrator.core.plan imports migrator, a layer beside or above it",
            id="core-imports-the-root",
        ),
        pytest.param(
            {"migrator.store.journal": {"migrator.run.migrate"}, "migrator.run.migrate": set()},
            "migrator.store.journal imports migrator.run.migrate, a layer beside or above it",
            id="store-imports-run",
        ),
        pytest.param(
            {"migrator.zuora.client": {"migrator.store.lock"}, "migrator.store.lock": set()},
            "migrator.zuora.client imports migrator.store.lock, a layer beside or above it",
            id="zuora-imports-store",
        ),
        pytest.param(
            {"migrator.commands.plan": {"migrator.cli"}, "migrator.cli": set()},
            "migrator.commands.plan imports migrator.cli, a layer beside or above it",
            id="command-imports-cli",
        ),
        pytest.param(
            {"migrator.rollout.waves": set()},
            "migrator.rollout.waves: layer 'rollout' is not in LEVELS (nor, then, in the docs)",
            id="unknown-layer",
        ),
    ],
)
def test_each_rule_catches_its_violation(graph: Graph, expected: str) -> None:
    """A synthetic graph that breaks one rule is reported with that rule's line."""
    assert expected in layer_problems(graph)


def test_downward_imports_are_fine() -> None:
    """A graph where every layer imports only lower floors (and third-party code) passes."""
    graph: Graph = {
        "migrator": {"migrator.core.errors"},
        "migrator.core.errors": set(),
        "migrator.core.plan": {"migrator.core.errors", "hashlib", "orjson"},
        "migrator.zuora.client": {"migrator.core.plan", "aiohttp", "migrator"},
        "migrator.store.journal": {"migrator.core.plan", "anyio"},
        "migrator.run.migrate": {"migrator.zuora.client", "migrator.store.journal"},
        "migrator.commands.migrate": {"migrator.run.migrate"},
        "migrator.cli": {"migrator.commands.migrate", "migrator.core.errors"},
    }
    assert layer_problems(graph) == []


def test_the_graph_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Imports in functions, under TYPE_CHECKING, relative and `from pkg import module` all count."""
    pkg = tmp_path / "migrator"
    for folder in ("core", "run"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from migrator.run.b import X\n"
        "def f():\n    import sqlite3\n"
    )
    (pkg / "run" / "b.py").write_text("from ..core import a\nfrom . import c\n")
    (pkg / "run" / "c.py").write_text("def g():\n    from migrator.run import b\n")
    graph = package_graph(pkg)
    assert graph["migrator.core.a"] >= {"migrator.run.b", "sqlite3"}
    assert graph["migrator.run.b"] >= {"migrator.core.a", "migrator.run.c"}
    assert graph["migrator.run.c"] == {"migrator.run.b"}
    problems = layer_problems(graph)
    assert "import circle: migrator.core.a <-> migrator.run.b <-> migrator.run.c" in problems
    assert "migrator.core.a is in the pure core but imports sqlite3" in problems
    assert "migrator.core.a imports migrator.run.b, a layer beside or above it" in problems


def private_imports(package: Path) -> list[str]:
    """Every `from migrator.x.y import _name` whose module lives in another folder than the
    importer's, one line each: a `_`-prefixed name is private to its folder."""
    mods = module_names(package)
    found: list[str] = []
    for name, path in mods.items():
        folder = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or not node.module or node.level:
                continue
            if node.module.split(".")[0] != package.name:
                continue
            source = mods.get(node.module)
            source_folder = (
                node.module
                if source is None or source.name == "__init__.py"
                else node.module.rpartition(".")[0]
            )
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and source_folder != folder:
                    found.append(f"{name} takes {node.module}.{alias.name}")
    return found


def test_no_module_imports_another_folders_private_names() -> None:
    """A `_`-prefixed name is used only inside its own folder: no module imports one from another."""
    assert private_imports(PACKAGE) == []


def test_the_private_name_check_catches_a_crossing(tmp_path: Path) -> None:
    """A synthetic package where run/ takes store/'s `_helper` is reported; its own folder's is not."""
    pkg = tmp_path / "migrator"
    for folder in ("store", "run"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "store" / "a.py").write_text("_helper = 1\n")
    (pkg / "store" / "b.py").write_text("from migrator.store.a import _helper\n")
    (pkg / "run" / "c.py").write_text("from migrator.store.a import _helper\n")
    assert private_imports(pkg) == ["migrator.run.c takes migrator.store.a._helper"]


def test_no_test_module_imports_another() -> None:
    """Shared test helpers live in tests/helpers.py, builders.py and strategies.py: no test
    module imports another test module (a test file is read alone, and moved freely)."""
    tests = Path(__file__).resolve().parent
    found = []
    for path in sorted(tests.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            found += [
                f"{path.relative_to(tests)} imports {name}"
                for name in names
                if name.split(".")[-1].startswith("test_") and name.startswith("tests")
            ]
    assert found == []


# What a command may take from below run/: only the writers of the files it is asked to write.
COMMAND_MAY_TAKE = {"migrator.store.files", "migrator.store.planfile"}
# Commands whose pipelines are being moved into run/ by their owners (issue 22): the list only
# shrinks (doctor was the last).
COMMANDS_NOT_YET: set[str] = set()


def command_internals(graph: Graph) -> list[str]:
    """Every import of a zuora/ or store/ module by a command module, beyond COMMAND_MAY_TAKE."""
    return [
        f"{module} imports {dep}"
        for module, deps in sorted(graph.items())
        if layer_of(module) == "commands" and module not in COMMANDS_NOT_YET
        for dep in sorted(deps)
        if layer_of(dep) in ("zuora", "store") and dep not in COMMAND_MAY_TAKE
    ]


def test_commands_import_no_zuora_or_store_internals() -> None:
    """Commands parse, call a run/ pipeline and render: they open no session, journal or cache."""
    assert command_internals(package_graph(PACKAGE)) == []


def test_the_command_check_catches_a_session() -> None:
    """A command that imports the zuora client is reported; one writing its plan file is not."""
    graph: Graph = {
        "migrator.commands.x": {"migrator.zuora", "migrator.store.planfile"},
        "migrator.zuora": set(),
        "migrator.store.planfile": set(),
    }
    assert command_internals(graph) == ["migrator.commands.x imports migrator.zuora"]
