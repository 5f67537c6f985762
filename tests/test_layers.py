"""Imports point one way: no module of ``parley`` imports from a layer above its own.

    cli                                   the commands
    server, terminal, web, embedded       the faces (and the embedded server's launcher)
    sdk, engine                           the client, and the run engine
    retrieval                             text out of files, chunks and their embeddings
    providers, store, mcp, files,         upstream adapters, the database (and its chunk
    sandbox, webhooks                     index), the MCP client, file bytes, code
                                          containers, and webhook deliveries
    events, types, config, errors,        the vocabulary, the one filter of control
    controls, wake                        characters, and the timed wait of the loops

Imports inside functions count too (deferred imports are still dependencies). The package
``__init__`` (lazy public names) and ``parley.testing`` (fakes for tests and benchmarks) stand
outside the stack.
"""

from __future__ import annotations

import ast
from pathlib import Path

import parley

ROOT = Path(parley.__file__).parent
LAYERS = {
    "cli": 6,
    "server": 5,
    "terminal": 5,
    "web": 5,
    "embedded": 5,
    "sdk": 4,
    "engine": 4,
    "retrieval": 3,
    "providers": 2,
    "store": 2,
    "mcp": 2,
    "files": 2,
    "sandbox": 2,
    "webhooks": 2,
    "guarded_http": 2,
    "events": 1,
    "types": 1,
    "config": 1,
    "errors": 1,
    "controls": 1,
    "wake": 1,
}


def _part(module: str) -> str | None:
    """The top part of a ``parley.X...`` module name (None outside parley's layers)."""
    if not module.startswith("parley."):
        return None
    top = module.split(".")[1]
    return top if top in LAYERS else None


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def upward_imports() -> list[str]:
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        module = ".".join(("parley", *path.relative_to(ROOT).with_suffix("").parts))
        own = _part(module)
        if own is None:
            continue
        for line, imported in _imports(path):
            other = _part(imported)
            if other is not None and LAYERS[other] > LAYERS[own]:
                problems.append(f"{module}:{line} imports {imported} (a layer above {own})")
    return problems


def test_no_module_imports_from_a_layer_above() -> None:
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from parley.cli.serve import build_server\n")
    assert _imports(bad) == [(2, "parley.cli.serve")]
    assert LAYERS[_part("parley.cli.serve") or ""] > LAYERS["terminal"]


def test_the_engine_is_reached_through_its_interface_only() -> None:
    """Outside ``parley.engine``, code imports the package (``Engine``, ``TurnHandle``, ...),
    never one of its modules: a face cannot reach into a turn."""
    inside = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.relative_to(ROOT).parts[0] == "engine":
            continue
        inside += [
            f"{path.relative_to(ROOT)}:{line} imports {imported}"
            for line, imported in _imports(path)
            if imported.startswith("parley.engine.")
        ]
    assert inside == []


# ------------------------------------------------------------------- the server's faces

SERVER = ROOT / "server"
FACES = SERVER / "faces"
#: The shared parts under every face: no face imports another, the kit imports none.
KIT = "kit"


def _face(module: str) -> str | None:
    """The face (``native``, ``responses``, ..., or ``kit``) of a ``parley.server.faces.X``
    module name; None for any other module."""
    parts = module.split(".")
    if parts[:3] != ["parley", "server", "faces"] or len(parts) < 4:
        return None
    return parts[3]


def _server_modules() -> list[tuple[Path, str]]:
    return [
        (path, ".".join(("parley", *path.relative_to(ROOT).with_suffix("").parts)))
        for path in sorted(SERVER.rglob("*.py"))
    ]


def face_crossings() -> list[str]:
    """Imports from one face into another, from the kit into a face, and from the server's
    shared services into a face (only the app, which puts the faces together, may)."""
    problems = []
    for path, module in _server_modules():
        own = _face(module)
        for line, imported in _imports(path):
            other = _face(imported)
            if other in (None, KIT, own):
                continue
            if own is None and module == "parley.server.app":
                continue
            where = "the kit" if own == KIT else f"face {own}" if own else "a shared service"
            problems.append(f"{module}:{line}: {where} imports {imported}")
    return problems


def test_no_face_imports_another_and_the_kit_imports_none() -> None:
    assert face_crossings() == []


def test_the_face_check_sees_a_crossing() -> None:
    assert _face("parley.server.faces.chat.routes") == "chat"
    assert _face("parley.server.faces.kit.readers") == KIT
    assert _face("parley.server.faces") is None
    assert _face("parley.server.app") is None


def test_every_face_has_its_folder() -> None:
    folders = {p.name for p in FACES.iterdir() if (p / "__init__.py").exists()}
    assert folders == {
        "native",
        "assistants",
        "responses",
        "chat",
        "files",
        "vector_stores",
        "containers",
        "webhooks",
        KIT,
    }


def test_only_reads_modules_touch_sqlalchemy_in_the_server() -> None:
    """Queries live in each face's ``reads`` module (``kit/reads.py`` for shared ones): no
    route takes a connection."""
    touching = [
        str(path.relative_to(ROOT))
        for path, _ in _server_modules()
        if path.stem != "reads"
        and any(i == "sqlalchemy" or i.startswith("sqlalchemy.") for _, i in _imports(path))
    ]
    assert touching == []


# ----------------------------------------------------------------------------- circles


def _modules(root: Path) -> dict[str, Path]:
    """Every module under the package at ``root`` by its dotted name (a package's
    ``__init__`` is the package's name)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imported(module: str, path: Path) -> list[tuple[str, str | None]]:
    """What ``module`` imports, anywhere in it (in functions and under ``TYPE_CHECKING``
    too): ``(module, name)`` for ``from module import name``, ``(module, None)`` for
    ``import module``; relative imports made absolute."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            found += [(base, alias.name) for alias in node.names]
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """The modules under ``root`` each module imports. ``from P import name``, when ``name``
    is no module of package ``P`` but one its ``__init__`` imports from a module, is an edge
    to that module, not to ``P``: a package's re-exports say where its names live, and
    importing one of them depends on its module alone. Anything else a package's
    ``__init__`` defines or imports counts as the package's own."""
    modules = _modules(root)
    imports = {m: _imported(m, p) for m, p in modules.items()}
    exported = {
        m: {name: source for source, name in imports[m] if name is not None}
        for m, p in modules.items()
        if p.name == "__init__.py"
    }

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    def target(source: str, name: str | None) -> str | None:
        if name is not None and f"{source}.{name}" in modules:
            return f"{source}.{name}"
        if name is not None and name in exported.get(source, {}):
            origin = exported[source][name]
            return target(origin, name) if origin != source else source
        return owner(source)

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, found in imports.items():
        for source, name in found:
            other = target(source, name)
            if other is not None and other != module:
                graph[module].add(other)
    return graph


def circles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The groups of nodes of ``graph`` that each reach one another (strongly connected
    components of more than one node), by Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                found.add(frozenset(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """``graph`` between the top packages of ``parley`` (``store``, ``engine``, ...;
    a top module such as ``parley.config`` is one of its own)."""
    packages: dict[str, set[str]] = {}
    for module, imported in graph.items():
        own = _top(module)
        edges = packages.setdefault(own, set())
        edges.update(_top(other) for other in imported if _top(other) != own)
    return packages


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_no_circle_between_modules() -> None:
    """No module imports, by any path of imports, back into itself: a circle says two
    modules are one idea, or that a third one is missing."""
    found = circles(import_graph(ROOT))
    assert found == set()


def test_no_circle_between_packages() -> None:
    """No top package of ``parley`` imports back into itself through others, even where
    their layers (``LAYERS``) are the same."""
    found = circles(package_graph(import_graph(ROOT)))
    assert found == set()


def test_the_circle_check_sees_a_circle(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from pkg.a import A\n")
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "class A: ...\n"
        "if TYPE_CHECKING:\n"
        "    from pkg.c import C\n"
    )
    (package / "b.py").write_text("from pkg import A\n")  # a re-export: an edge to a
    (package / "c.py").write_text("def f():\n    from . import b\n")
    graph = import_graph(package)
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.c"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.b"}}
    assert circles(graph) == {frozenset({"pkg.a", "pkg.b", "pkg.c"})}
    (package / "c.py").write_text("")
    assert circles(import_graph(package)) == set()


def test_the_package_check_sees_a_circle() -> None:
    graph = {
        "parley.store.db": {"parley.types"},
        "parley.store.index": {"parley.retrieval.chunks"},
        "parley.retrieval.chunks": {"parley.store.db"},
        "parley.types": set(),
    }
    assert circles(graph) == set()
    assert circles(package_graph(graph)) == {frozenset({"store", "retrieval"})}
